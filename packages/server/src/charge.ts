/**
 * The charge API of usage-priced routes (x402 `upto`, and `batch-settlement` channels): the client signed a MAXIMUM
 * (`requirements.amount`); the handler decides, while it runs, what the request actually costs,
 * and the paywall settles exactly that after it (settle "after" only: before the handler the
 * charge is unknown, so `settle: "before"` is refused for such routes at configuration time).
 *
 * The charge is written one of three ways, parsed exactly (bigint, never a float):
 * - atomic units of the asset: "1234";
 * - a percentage of the maximum with at most two decimals: "50%", "12.5%" (rounded down);
 * - a dollar string: "$0.05", converted by the route's scheme for the route's asset (refused when
 *   that asset is not what "$" prices, or the amount cannot be paid exactly).
 * Nothing set: the full maximum is charged (as the official server does). Zero is a valid charge:
 * nothing moves. Above the maximum or malformed: `setCharge` throws at once (atomic and percent
 * forms); a dollar charge found above the maximum at settle time is never settled, and the
 * handler's response is replaced by a 500 (nothing served, nothing charged).
 *
 * Framework adapters expose this as a small function over their own request/response object
 * (Express `setCharge(res, ...)`, hono `setCharge(c, ...)`, ...), all calling this one.
 */
import { isAtomic, type PaymentRequirements, type SchemeServer } from "@tollgate/core";
import type { Payment } from "./types.ts";

/**
 * Schemes whose requirements carry a maximum and whose settlement takes the actual charge: `upto`
 * (settled with the charge) and `batch-settlement` (the voucher signs the price as a ceiling; the
 * channel commits the charge, and the receipt's `chargedAmount` tells the client).
 */
export const CHARGED_SCHEMES: ReadonlySet<string> = new Set(["upto", "batch-settlement"]);

export class ChargeError extends Error {
  override name = "ChargeError";
}

const charges = new WeakMap<Payment, string>();
const PERCENT = /^(\d{1,3})(?:\.(\d{1,2}))?%$/;
const DOLLARS = /^\$\d+(?:\.\d+)?$/;

/**
 * Records what this paid request costs (see the header for the forms). Throws ChargeError when
 * the payment's scheme takes no charge, the form is malformed, or the amount is above the maximum.
 * May be called again: the last charge counts.
 */
export function setCharge(payment: Payment | undefined, amount: string): void {
  if (!payment || typeof payment !== "object") throw new ChargeError("setCharge: no verified payment on this request (is the route priced?)");
  const { requirements } = payment;
  if (!CHARGED_SCHEMES.has(requirements.scheme)) {
    throw new ChargeError(`setCharge: the "${requirements.scheme}" scheme charges the price as signed; only usage-priced schemes (upto, batch-settlement) take a charge`);
  }
  if (typeof amount !== "string") throw new ChargeError(`setCharge: amount must be a string ("1234", "50%" or "$0.05"), got ${typeof amount}`);
  const s = amount.trim();
  if (!DOLLARS.test(s)) atomicCharge(s, requirements); // throws when malformed or too much
  charges.set(payment, s);
}

/** The charge recorded for `payment`, as written, or undefined. */
export function chargeOf(payment: Payment): string | undefined {
  return charges.get(payment);
}

/** Atomic units for an atomic or percent charge, checked against the maximum. */
function atomicCharge(s: string, requirements: PaymentRequirements): bigint {
  const written: string = s;
  const max = BigInt(requirements.amount);
  let value: bigint;
  const pct = PERCENT.exec(s);
  if (pct) {
    // Hundredths of a percent, so "12.5%" is 1250 / 10000 of the maximum; rounded down.
    const basisPoints = BigInt(pct[1]!) * 100n + BigInt((pct[2] ?? "").padEnd(2, "0"));
    value = (max * basisPoints) / 10_000n;
  } else if (isAtomic(s)) {
    value = BigInt(s);
  } else {
    // (isAtomic's type guard narrows `s` to never here: the text is quoted from `written`.)
    throw new ChargeError(`setCharge: ${JSON.stringify(written.slice(0, 40))} is not a charge: write atomic units ("1234"), a percentage of the maximum ("50%", two decimals at most) or dollars ("$0.05")`);
  }
  if (value > max) throw new ChargeError(`setCharge: ${s} is ${value} atomic units, above the ${max} the payer authorized`);
  return value;
}

/**
 * The requirements to settle a charged payment with: `amount` = the charge (default the maximum).
 * An error (never settled) when the charge cannot be turned into atomic units within the maximum.
 */
export function chargedRequirements(payment: Payment, scheme: SchemeServer): { ok: true; requirements: PaymentRequirements } | { ok: false; error: ChargeError } {
  const requirements = payment.requirements;
  const raw = charges.get(payment);
  if (raw === undefined || !CHARGED_SCHEMES.has(requirements.scheme)) return { ok: true, requirements };
  try {
    const amount = DOLLARS.test(raw) ? dollarCharge(raw, requirements, scheme) : atomicCharge(raw, requirements);
    return { ok: true, requirements: { ...requirements, amount: amount.toString() } };
  } catch (e) {
    return { ok: false, error: e instanceof ChargeError ? e : new ChargeError(`setCharge: ${(e as Error).message}`) };
  }
}

function dollarCharge(raw: string, requirements: PaymentRequirements, scheme: SchemeServer): bigint {
  // The scheme prices "$" exactly (no rounding) in its USD asset: it must be this route's asset.
  const priced = scheme.parsePrice(raw, requirements.network);
  if (priced.asset.toLowerCase() !== requirements.asset.toLowerCase()) {
    throw new ChargeError(`setCharge: ${raw} prices in ${priced.asset}, not this payment's asset ${requirements.asset}; charge in atomic units or a percentage`);
  }
  const value = BigInt(priced.amount);
  const max = BigInt(requirements.amount);
  if (value > max) throw new ChargeError(`setCharge: ${raw} is ${value} atomic units, above the ${max} the payer authorized`);
  return value;
}
