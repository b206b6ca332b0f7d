/**
 * Facilitator face of `exact` on EVM (EIP-3009): verifies a signed `TransferWithAuthorization`
 * against the requirements and the chain, encodes it, and hands it to a submitter that pays the
 * gas. The scheme only verifies and encodes; it keeps no in-flight set and never decides that an
 * authorization was "already settled" (the facilitator's ledger does; the chain says "nonce used").
 *
 * Checks run cheapest first and each failure carries the most specific reason code, so a client
 * learns what to fix: see facilitator/check.ts and the modules it calls. Everything the chain
 * must answer goes in ONE eth_call through Multicall3 when the chain has it. `settle` re-runs the
 * same verification, so verify and settle always agree on the same payload (with `settleDryRun:
 * false`, all but the dry run, which the submitter's own simulation then replaces).
 */
import { Reason, safeMessage, type AuthenticateResult, type Network, type PaymentPayload, type PaymentRequirements, type SchemeFacilitator, type VerifyResponse } from "@tollgate/core";
import { getAddress } from "viem";
import { authenticateExactEvm, authorizationKey, type AuthenticatedAuthorization } from "./authenticate.ts";
import { guardedCheck } from "./facilitator/check.ts";
import { checkRequirements } from "./facilitator/requirements.ts";
import { createContext, recoverCached, type FacilitatorContext, type NetworkState } from "./facilitator/context.ts";
import { walletRefusal } from "./facilitator/contract-wallet.ts";
import { builtInSubmit, settlePayment } from "./facilitator/settle.ts";
import { isPayersEcdsa } from "./facilitator/signature.ts";
import type { ExactEvmFacilitatorConfig } from "./facilitator/types.ts";
import { checkPermit2 } from "./facilitator/permit2-check.ts";
import { authenticatePermit2 } from "./facilitator/permit2-authenticate.ts";
import { builtInPermit2Submit, settlePermit2Payment } from "./facilitator/permit2-settle.ts";
import { isPermit2Payload, Permit2Reason } from "./permit2-payload.ts";

export type {
  ExactEvmAssetConfig,
  ExactEvmFacilitatorConfig,
  ExactEvmNetworkConfig,
  ExactEvmSettlementCall,
  ExactEvmSubmit,
  ExactEvmSubmitResult,
  ExactPermit2SettlementCall,
  ExactPermit2Submit,
} from "./facilitator/types.ts";
export { permit2Settled } from "./facilitator/permit2-settle.ts";
export { createPayerBackoff, type PayerBackoff } from "./facilitator/payer-backoff.ts";

export function exactEvmFacilitator(config: ExactEvmFacilitatorConfig): SchemeFacilitator {
  const ctx = createContext(config);
  if (!ctx.settleDryRun && !config.submit) throw new TypeError("settleDryRun: false needs a submit hook that simulates before sending");
  const submit = config.submit ?? builtInSubmit(ctx, config);
  const submitPermit2 = config.submitPermit2 ?? builtInPermit2Submit(ctx, config);

  const permit2 = config.permit2 ?? true;
  const permit2Off = "paymentPayload.payload: the Permit2 asset transfer method is not accepted by this facilitator";

  async function verify(payload: PaymentPayload, requirements: PaymentRequirements): Promise<VerifyResponse> {
    if (isPermit2Payload(payload?.payload)) {
      if (!permit2) return { isValid: false, invalidReason: Permit2Reason.unsupported, invalidMessage: permit2Off };
      const p = await checkPermit2(ctx, payload, requirements, true);
      if (!p.ok) return { isValid: false, invalidReason: p.reason, invalidMessage: p.message, ...(p.payer ? { payer: p.payer } : {}) };
      return { isValid: true, payer: p.payer };
    }
    const r = await guardedCheck(ctx, payload, requirements, Reason.unexpectedVerifyError, true);
    if (!r.ok) return { isValid: false, invalidReason: r.reason, invalidMessage: r.message, ...(r.payer ? { payer: r.payer } : {}) };
    return { isValid: true, payer: r.payer };
  }

  /** Off-chain: the signer, before the service writes or limits anything for this payer. */
  async function authenticate(payload: PaymentPayload, requirements: PaymentRequirements): Promise<AuthenticateResult> {
    if (isPermit2Payload(payload?.payload)) {
      return permit2 ? authenticatePermit2(ctx, payload, requirements) : { ok: false, reason: Permit2Reason.unsupported, message: permit2Off };
    }
    // The off-chain checks first, cheapest first: nothing is keyed or written for a "token" nobody
    // listed, and a tampered amount is named a value mismatch, not a bad signature.
    const pre = checkRequirements(ctx, payload, requirements);
    if (!pre.ok) return { ok: false, reason: pre.reason, message: pre.message };
    // The common case, from what checkRequirements already read: remembered for this request's
    // verify or settle (check.ts), which then neither parses nor recovers again.
    if (isPayersEcdsa(ctx, pre) === true) {
      ctx.authenticated.set(payload, { requirements, req: pre });
      return { ok: true, payer: pre.payer.toLowerCase(), key: authorizationKey(requirements.network, requirements.asset, pre.payer, pre.auth.nonce) };
    }
    const net = pre.net;
    const a = authenticateExactEvm(payload, requirements, {
      contractWallets: net.contractWallets,
      recover: (separator, auth, signature) => recoverCached(ctx, separator, auth, signature),
    });
    if (!a.ok) return a;
    if (!a.ecdsa) {
      // An opted-in contract wallet: its signature is only checkable on chain (one eth_call).
      const refused = await contractWalletRefusal(ctx, net, requirements, a).catch((e: unknown) => `the wallet could not be asked: ${safeMessage(e)}`);
      if (refused) return { ok: false, reason: Reason.evmSignature, message: refused };
    }
    return { ok: true, payer: a.payer, key: a.key };
  }

  return {
    scheme: "exact",
    networks: [...ctx.nets.keys()] as Network[],
    signers: (network: Network) => (ctx.nets.has(network) ? [ctx.signer.address] : []),
    verify,
    settle: async (payload, requirements) => {
      if (!isPermit2Payload(payload?.payload)) return settlePayment(ctx, submit, payload, requirements);
      if (!permit2) return { success: false, errorReason: Permit2Reason.unsupported, errorMessage: permit2Off, transaction: "", network: requirements.network };
      return settlePermit2Payment(ctx, submitPermit2, payload, requirements);
    },
    authenticate,
  };
}

function contractWalletRefusal(ctx: FacilitatorContext, net: NetworkState, requirements: PaymentRequirements, a: AuthenticatedAuthorization): Promise<string | undefined> {
  const extra = requirements.extra as { name: string; version: string };
  return walletRefusal(ctx, { net, asset: getAddress(requirements.asset), payer: a.from, auth: a.auth, signature: a.signature, name: extra.name, version: extra.version });
}
