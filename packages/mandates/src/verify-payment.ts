// The verifier's side of the `ap2-mandate` extension: one x402 payment payload, the requirements it
// pays and the resource it is for. Checks, in order (reason codes in docs/extensions/ap2-mandate.md):
// presence, shape, trusted issuer, the open mandate (signature, validity, disclosures, revocation),
// the closed mandate (agent signature under the open mandate's cnf key, sd_hash, transaction_id bound
// to this resource and these requirements, payee/amount/asset/network), the open mandate's
// constraints, and the nonce binding (the signed authorization's nonce is keccak256 of the chain).
import type { PaymentPayload, PaymentRequirements } from "@tollgate/core";
import { keccak256, toBytes, type Hex } from "viem";
import { verifyClosedMandate } from "./closed.ts";
import { mandateTransactionId, readAp2MandateInfo, splitChain } from "./extension.ts";
import { importPublicMandateJwk, mandateKeyThumbprint, type PublicMandateJwk } from "./keys.ts";
import type { OpenPaymentMandate } from "./types.ts";
import { payloadCarriesNonce } from "./wallet.ts";

export const MandateReason = {
  required: "mandate_required",
  malformed: "mandate_malformed",
  untrustedIssuer: "mandate_untrusted_issuer",
  signature: "mandate_invalid_signature",
  expired: "mandate_expired",
  notYetValid: "mandate_not_yet_valid",
  revoked: "mandate_revoked",
  tampered: "mandate_tampered_disclosure",
  keyBinding: "mandate_key_binding_invalid",
  transaction: "mandate_transaction_mismatch",
  paymentMismatch: "mandate_payment_mismatch",
  constraint: "mandate_constraint_violated",
  nonce: "mandate_nonce_mismatch",
} as const;
export type MandateReason = (typeof MandateReason)[keyof typeof MandateReason];

export interface VerifyMandatedPaymentOptions {
  /** The resource URL the server serves for this request (as in its 402's `resource.url`). */
  resourceUrl: string;
  /** User keys whose mandates are accepted. Absent: the key the client presents is used (the chain is
   * then checked for consistency and binding, not for whose it is). */
  trustedIssuers?: readonly PublicMandateJwk[];
  /** Revocation by mandate id (`statusListRevocation(url)` reads a published list). */
  isRevoked?: (mandateId: string) => boolean | Promise<boolean>;
  /** Unix seconds; default now. */
  now?: number;
}

export type VerifyMandatedPaymentResult =
  | { ok: true; mandate: OpenPaymentMandate; chainHash: Hex; transactionId: string }
  | { ok: false; reason: MandateReason; message: string; constraint?: string };

const fail = (reason: MandateReason, message: string, constraint?: string): VerifyMandatedPaymentResult => ({ ok: false, reason, message, ...(constraint ? { constraint } : {}) });

export async function verifyMandatedPayment(payload: PaymentPayload, requirements: PaymentRequirements, opts: VerifyMandatedPaymentOptions): Promise<VerifyMandatedPaymentResult> {
  const info = readAp2MandateInfo(payload.extensions);
  if (!info) return fail(MandateReason.required, "this resource requires an AP2 mandate chain in extensions[\"ap2-mandate\"].info");
  if ("malformed" in info) return fail(MandateReason.malformed, info.malformed);
  const parts = splitChain(info.chain);
  if (!parts) return fail(MandateReason.malformed, "info.chain must be <open SD-JWT VC>~~<closed mandate JWS>");
  let issuer: PublicMandateJwk;
  try {
    issuer = importPublicMandateJwk(info.issuerJwk);
  } catch (e) {
    return fail(MandateReason.malformed, `info.issuerJwk: ${(e as Error).message}`);
  }
  if (opts.trustedIssuers) {
    const t = await mandateKeyThumbprint(issuer);
    const trusted = await Promise.all(opts.trustedIssuers.map((k) => mandateKeyThumbprint(importPublicMandateJwk(k))));
    if (!trusted.includes(t)) return fail(MandateReason.untrustedIssuer, "the mandate's issuer key is not one this server trusts");
  }
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const transactionId = mandateTransactionId(opts.resourceUrl, requirements);
  const res = await verifyClosedMandate(parts.closed, {
    open: parts.open,
    userPublicJwk: issuer,
    payment: { payTo: requirements.payTo, amount: requirements.amount, asset: requirements.asset, network: requirements.network, at: now },
    transactionId,
    audience: requirements.payTo,
    now,
    ...(opts.isRevoked ? { isRevoked: opts.isRevoked } : {}),
  });
  if (!res.ok) {
    if ("constraint" in res) return fail(MandateReason.constraint, `${res.constraint}: ${res.reason}`, res.constraint);
    const byCode: Record<string, MandateReason> = {
      malformed: MandateReason.malformed,
      signature: MandateReason.signature,
      expired: MandateReason.expired,
      not_yet_valid: MandateReason.notYetValid,
      wrong_vct: MandateReason.malformed,
      tampered_disclosure: MandateReason.tampered,
      revoked: MandateReason.revoked,
      invalid_claims: MandateReason.malformed,
      payment_mismatch: MandateReason.paymentMismatch,
    };
    // A KB-JWT whose nonce is not this payment's transaction id was made for another resource or option.
    if (res.code === "key_binding") {
      const claimedNonce = decodeNonce(parts.closed);
      if (claimedNonce !== undefined && claimedNonce !== transactionId) return fail(MandateReason.transaction, "the closed mandate was made for another resource or payment option (transaction_id)");
      return fail(MandateReason.keyBinding, `closed mandate key binding: ${res.reason}`);
    }
    return fail(byCode[res.code] ?? MandateReason.malformed, `${res.field}: ${res.reason}`);
  }
  const chainHash = keccak256(toBytes(info.chain));
  if (!payloadCarriesNonce(payload.payload, chainHash)) return fail(MandateReason.nonce, "the authorization's nonce is not keccak256 of the mandate chain");
  return { ok: true, mandate: res.open, chainHash, transactionId };
}

function decodeNonce(jwt: string): string | undefined {
  try {
    const p = JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString("utf8")) as { nonce?: unknown };
    return typeof p.nonce === "string" ? p.nonce : undefined;
  } catch {
    return undefined;
  }
}
