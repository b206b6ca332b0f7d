// Off-chain authentication of a Permit2 payment (exact or upto): who signed, and its settle-once key.
import type { AuthenticateResult, PaymentPayload, PaymentRequirements } from "@tollgate/core";
import { Permit2Reason, permit2PaymentKey } from "../permit2-payload.ts";
import type { FacilitatorContext } from "./context.ts";
import { hasCode } from "./network.ts";
import { checkPermit2Requirements, isPayersPermit2Ecdsa, type Permit2CheckOptions } from "./permit2-check.ts";

/**
 * Off-chain: the Permit2 signer and the payment's settle-once key (`network|token|owner|nonce`,
 * one namespace for exact and upto: Permit2 nonces are the owner's, whatever the proxy).
 */
export async function authenticatePermit2(ctx: FacilitatorContext, payload: PaymentPayload, requirements: PaymentRequirements, opts: Permit2CheckOptions = {}): Promise<AuthenticateResult> {
  const req = checkPermit2Requirements(ctx, payload, requirements, opts);
  if (!req.ok) return { ok: false, reason: req.reason, message: req.message };
  const key = permit2PaymentKey(requirements.network, req.asset, req.payer, req.auth.nonce);
  const own = isPayersPermit2Ecdsa(req);
  if (own === true) return { ok: true, payer: req.payer.toLowerCase(), key };
  // An opted-in contract wallet is judged by Permit2 itself in verify's dry run.
  if (own === false && req.net.contractWallets && (await hasCode(req.net, req.payer).catch(() => false))) return { ok: true, payer: req.payer.toLowerCase(), key };
  const detail = typeof own === "string" ? own : "does not recover to permit2Authorization.from for this chain and message";
  return { ok: false, reason: Permit2Reason.invalidSignature, message: `paymentPayload.payload.signature: ${detail}` };
}
