/**
 * What the service derives from a parsed request before deciding anything: the payment's verified
 * signer and settle-once key (the scheme's `authenticate`), a hash of its content, the
 * `payment-identifier` extension's id, and whether its amount is one this facilitator settles.
 */
import { createHash } from "node:crypto";
import { canonicalJson, Reason, type AuthenticateResult, type FacilitatorRequest, type PaymentPayload, type PaymentRequirements, type SchemeFacilitator } from "@tollgate/core";
import type { PaymentEntry } from "./ledger/ledger.ts";

export const PAYMENT_IDENTIFIER = "payment-identifier";
const ID_FORMAT = /^[A-Za-z0-9_-]{16,128}$/;

export interface PaymentIdentityResult {
  payer: string;
  key: string;
}

/**
 * The payment's verified signer and settle-once key, from the scheme's `authenticate` (an
 * off-chain signature check). Undefined for a scheme without it: such a payment cannot be
 * deduplicated or attributed, and nothing is keyed on it.
 */
export async function identifyPayment(scheme: SchemeFacilitator, payload: PaymentPayload, requirements: PaymentRequirements): Promise<AuthenticateResult | undefined> {
  if (!scheme.authenticate) return undefined;
  try {
    return await scheme.authenticate(payload, requirements);
  } catch {
    return { ok: false, reason: Reason.invalidPayload, message: "paymentPayload.payload: the signer could not be established" };
  }
}

/** The content that decides what money moves: the signed payload and what it pays for. */
export function requestHash(request: FacilitatorRequest): string {
  const q = request.requirements;
  const content = {
    payload: request.payload.payload,
    requirements: { scheme: q.scheme, network: q.network, asset: q.asset.toLowerCase(), payTo: q.payTo.toLowerCase(), amount: q.amount },
  };
  return createHash("sha256").update(canonicalJson(content)).digest("hex");
}

export type IdentifierResult = { ok: true; id: string | undefined } | { ok: false; message: string };

/** The extension's `info.id` (spec: 16-128 of `[A-Za-z0-9_-]`), validated. */
export function paymentIdentifier(payload: PaymentPayload): IdentifierResult {
  const ext = payload.extensions?.[PAYMENT_IDENTIFIER];
  const field = `paymentPayload.extensions.${PAYMENT_IDENTIFIER}`;
  if (ext === undefined) return { ok: true, id: undefined };
  if (typeof ext !== "object" || ext === null || Array.isArray(ext)) return { ok: false, message: `${field}: expected an object` };
  const info = (ext as { info?: unknown }).info;
  if (info === undefined) return { ok: true, id: undefined };
  if (typeof info !== "object" || info === null || Array.isArray(info)) return { ok: false, message: `${field}.info: expected an object` };
  const { id, required } = info as { id?: unknown; required?: unknown };
  if (id === undefined) {
    return required === true ? { ok: false, message: `${field}.info.id: is required (info.required is true)` } : { ok: true, id: undefined };
  }
  if (typeof id !== "string" || !ID_FORMAT.test(id)) {
    return { ok: false, message: `${field}.info.id: expected 16-128 letters, digits, '-' or '_'` };
  }
  return { ok: true, id };
}

export function paymentEntry(request: FacilitatorRequest, identity: PaymentIdentityResult, identifier: string | undefined): PaymentEntry {
  const q = request.requirements;
  return {
    key: identity.key,
    network: q.network,
    scheme: q.scheme,
    asset: q.asset,
    payer: identity.payer,
    payee: q.payTo,
    amount: q.amount,
    nonce: identity.key.split("|").pop() ?? identity.key,
    requestHash: requestHash(request),
    ...(identifier ? { paymentIdentifier: identifier } : {}),
  };
}

export type MinAmount = bigint | ((requirements: PaymentRequirements) => bigint | undefined);

/**
 * Why this amount is not settled here, or undefined. Zero always (nothing to pay for, and the fee
 * payer would spend gas to move nothing); below the configured minimum when one is set.
 */
export function amountRefusal(requirements: PaymentRequirements, minAmount: MinAmount | undefined): { reason: string; message: string } | undefined {
  // batch-settlement: what moves is in the payload (a deposit's amount, claimed totals, a sweep, a
  // refund); `amount` is a per-request price settled off-chain, and "0" on the server's claim,
  // settle and refund calls. The scheme itself refuses any operation that would move nothing.
  if (requirements.scheme === "batch-settlement") return undefined;
  const amount = BigInt(requirements.amount);
  if (amount === 0n) return { reason: Reason.amountZero, message: "paymentRequirements.amount: zero; there is nothing to settle (it would only spend gas)" };
  const min = typeof minAmount === "function" ? minAmount(requirements) : minAmount;
  if (min !== undefined && amount < min) return { reason: Reason.amountBelowMinimum, message: `paymentRequirements.amount: below this facilitator's minimum of ${min}` };
  return undefined;
}
