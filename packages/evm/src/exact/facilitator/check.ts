/**
 * The whole verification of one payment, cheapest first: what needs no chain (requirements.ts),
 * who signed (signature.ts), the chain's answers (chain-reads.ts) and, for a contract wallet,
 * its on-chain checks with real fee fields (contract-wallet.ts). Verify and settle both run it,
 * so they always agree on the same payload.
 */
import { Reason, safeMessage, type PaymentPayload, type PaymentRequirements } from "@tollgate/core";
import type { Hex } from "viem";
import { encodeTransferWithAuthorization } from "../encode.ts";
import { judgeOnChain } from "./chain-reads.ts";
import type { FacilitatorContext } from "./context.ts";
import { judgeContractWallet } from "./contract-wallet.ts";
import { checkChain } from "./network.ts";
import { checkRequirements, fail, type Failure, type Request } from "./requirements.ts";
import { judgeSignature } from "./signature.ts";

/** A request whose claims held up (requirements.ts), plus what the signature and chain checks found. */
export interface Verified extends Omit<Request, "name" | "version"> {
  /** Calldata of the transfer (the one encoder), as dry-run and as to be sent. */
  data: Hex;
  contractWallet: boolean;
}

/** `dryRun: false` skips the fee-less dry run (a submitter simulates); contract wallets keep theirs. */
export async function check(ctx: FacilitatorContext, payload: PaymentPayload, requirements: PaymentRequirements, dryRun: boolean): Promise<Verified | Failure> {
  // Authenticated moments ago in this same request (same objects): requirements and signature held.
  const known = ctx.authenticated.get(payload);
  const remembered = known?.requirements === requirements ? known.req : undefined;
  const req = remembered ?? checkRequirements(ctx, payload, requirements);
  if (!req.ok) return req;
  const chainProblem = await checkChain(req.net);
  if (chainProblem) return fail(Reason.invalidNetwork, chainProblem, req.payer);
  const sig = remembered ? { ecdsa: true } : await judgeSignature(ctx, req);
  if ("ok" in sig) return sig;
  const contractWallet = !sig.ecdsa;
  // payer and auth.to are checksummed here, which the fast encoder relies on.
  const data = encodeTransferWithAuthorization(req.auth, req.signature, { ecdsa: sig.ecdsa });
  // A contract wallet's dry run must carry fee fields: it is done below, not in the fee-less batch.
  const chainVerdict = await judgeOnChain(ctx, req, dryRun && !contractWallet ? data : undefined);
  if (chainVerdict) return chainVerdict;
  if (contractWallet) {
    const walletVerdict = await judgeContractWallet(ctx, req, data);
    if (walletVerdict) return walletVerdict;
  }
  return { ok: true, net: req.net, asset: req.asset, payer: req.payer, auth: req.auth, wire: req.wire, signature: req.signature, data, contractWallet };
}

/** RPC failures and the like: the payload may be fine, so this is not a verdict on it. */
export async function guardedCheck(
  ctx: FacilitatorContext,
  payload: PaymentPayload,
  requirements: PaymentRequirements,
  reason: string,
  dryRun: boolean,
): Promise<Verified | Failure> {
  try {
    return await check(ctx, payload, requirements, dryRun);
  } catch (e) {
    return fail(reason, safeMessage(e));
  }
}
