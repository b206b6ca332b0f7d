/**
 * Who signed: an ECDSA signature is recovered off-chain and must be `authorization.from`'s.
 * Anything else is a contract-wallet (ERC-1271) signature, refused before any chain call unless
 * the network opted into them; then the payer must have code (judged on chain later, see
 * contract-wallet.ts).
 */
import { Reason } from "@tollgate/core";
import { isErc6492Signature, size } from "viem";
import { signatureProblem } from "../authenticate.ts";
import { domainSeparator } from "../digest.ts";
import { recoverCached, type FacilitatorContext } from "./context.ts";
import { hasCode } from "./network.ts";
import { fail, type Failure, type Request } from "./requirements.ts";

/** The payer's own ECDSA signature: 65 bytes, canonical, recovering to `authorization.from`. A problem's text, or true/false. */
export function isPayersEcdsa(ctx: FacilitatorContext, req: Request): boolean | string {
  if (size(req.signature) !== 65) return false;
  const problem = signatureProblem(req.signature);
  if (problem) return problem;
  const separator = domainSeparator({ name: req.name, version: req.version, chainId: req.net.chainId, verifyingContract: req.asset });
  const recovered = recoverCached(ctx, separator, req.auth, req.signature);
  return recovered !== undefined && recovered === req.payer.toLowerCase();
}

/** `{ ecdsa: true }` for the payer's own ECDSA signature, `{ ecdsa: false }` for an accepted contract wallet's. */
export async function judgeSignature(ctx: FacilitatorContext, req: Request): Promise<{ ecdsa: boolean } | Failure> {
  const { net, payer, signature } = req;
  if (size(signature) === 65) {
    const own = isPayersEcdsa(ctx, req);
    if (typeof own === "string") return fail(Reason.evmSignature, `paymentPayload.payload.signature: ${own}`, payer);
    if (own) return { ecdsa: true };
    if (!net.contractWallets) {
      return fail(Reason.evmSignature, "paymentPayload.payload.signature: does not recover to authorization.from for this token, chain and message", payer);
    }
  } else if (!net.contractWallets) {
    return fail(
      Reason.evmContractWalletNotAllowed,
      "paymentPayload.payload.signature: not a 65-byte ECDSA signature; this facilitator does not accept contract-wallet (ERC-1271) signatures",
      payer,
    );
  }
  // Contract wallets accepted here: the payer must be a deployed contract.
  if (await hasCode(net, payer)) return { ecdsa: false };
  if (size(signature) === 65) {
    return fail(Reason.evmSignature, "paymentPayload.payload.signature: does not recover to authorization.from for this token, chain and message", payer);
  }
  if (isErc6492Signature(signature)) return fail(Reason.evmSignature, "paymentPayload.payload.signature: undeployed (ERC-6492) smart wallets are not supported", payer);
  return fail(Reason.evmSignature, "paymentPayload.payload.signature: not a 65-byte ECDSA signature, and authorization.from has no contract code", payer);
}
