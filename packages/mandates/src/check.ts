// checkPayment: does one x402 payment fit an (already verified) open Payment Mandate?
import { atomicToUsdScaled, parseAtomic, parseDecimal, USD_SCALE } from "./amount.ts";
import type {
  BudgetConstraint,
  ConstraintType,
  Frequency,
  MandatePayment,
  OpenPaymentMandate,
  PaymentConstraint,
  PaymentInstrument,
  Refusal,
  RefusalCode,
} from "./types.ts";

/** What has already been spent under the mandate in the payment's budget period (committed plus
 * reserved, in budget units: see `budgetFor`), and the recurrence history. */
export interface SpentSoFar {
  amount: bigint | string;
  occurrences?: number;
  lastPaymentAt?: number;
}

export type CheckResult =
  | { ok: true; budget?: { periodStart: number; units: bigint; max: bigint } }
  | Refusal;

/** Minimum separation between two payments for each AP2 frequency (calendar-free: a month is 28 days,
 * a quarter 89, a year 365, so a payment on the same day of the next month always passes). */
export const FREQUENCY_SECONDS: Record<Frequency, number> = {
  ON_DEMAND: 0,
  DAILY: 86_400,
  WEEKLY: 7 * 86_400,
  BIWEEKLY: 14 * 86_400,
  MONTHLY: 28 * 86_400,
  QUARTERLY: 89 * 86_400,
  ANNUALLY: 365 * 86_400,
};

const refuse = (constraint: ConstraintType, code: RefusalCode, reason: string): Refusal => ({ ok: false, constraint, code, reason });

const sameId = (a: string, b: string) => (a.startsWith("0x") && b.startsWith("0x") ? a.toLowerCase() === b.toLowerCase() : a === b);

function find<T extends PaymentConstraint["type"]>(m: OpenPaymentMandate, type: T): Extract<PaymentConstraint, { type: T }>[] {
  return m.constraints.filter((c): c is Extract<PaymentConstraint, { type: T }> => c.type === type);
}

/** The allowed instrument a payment uses (exact asset match first, then a network-wide entry). */
export function instrumentFor(m: OpenPaymentMandate, p: Pick<MandatePayment, "network" | "asset">): PaymentInstrument | undefined {
  const all = find(m, "payment.allowed_payment_instruments").flatMap((c) => c.allowed);
  return (
    all.find((i) => i.network === p.network && i.asset !== undefined && sameId(i.asset, p.asset)) ??
    all.find((i) => i.network === p.network && i.asset === undefined)
  );
}

/** USD decimals of the payment's asset, if the mandate lists it as USD-stable. */
function usdDecimals(m: OpenPaymentMandate, p: MandatePayment): number | undefined {
  const inst = instrumentFor(m, p);
  return inst?.currency === "USD" && inst.asset !== undefined && Number.isInteger(inst.decimals) ? inst.decimals : undefined;
}

/** Converts the payment to the units of an amount constraint (USD at 18 decimals, or atomic of the
 * constraint's asset). Undefined when the payment's asset is not the constraint's currency. */
function toUnits(m: OpenPaymentMandate, c: { currency: string; network?: string }, p: MandatePayment, amount: bigint): bigint | undefined {
  if (c.currency === "USD") {
    const d = usdDecimals(m, p);
    return d === undefined ? undefined : atomicToUsdScaled(amount, d);
  }
  return c.network === p.network && sameId(c.currency, p.asset) ? amount : undefined;
}

const limit = (c: { currency: string }, v: string) => (c.currency === "USD" ? parseDecimal(v, USD_SCALE) : parseAtomic(v));

export function periodStartFor(budget: BudgetConstraint, at: number): number {
  return budget.period_seconds ? Math.floor(at / budget.period_seconds) * budget.period_seconds : 0;
}

/** Budget bookkeeping for a payment: the period it falls in (0 for a lifetime budget), its amount in
 * budget units (what the budget store counts) and the budget's max in the same units. */
export function budgetFor(m: OpenPaymentMandate, p: MandatePayment): { periodStart: number; units: bigint; max: bigint } | undefined | Refusal {
  const b = find(m, "payment.budget")[0];
  if (!b) return undefined;
  const amount = parseAtomic(p.amount);
  if (amount === undefined) return refuse("payment.budget", "invalid_amount", "payment amount is not an atomic integer string");
  const units = toUnits(m, b, p, amount);
  if (units === undefined) return refuse("payment.budget", "currency_mismatch", `payment in ${p.network}/${p.asset} cannot count against a ${b.currency} budget`);
  const max = limit(b, b.max);
  if (max === undefined) return refuse("payment.budget", "invalid_amount", "budget max is malformed");
  return { periodStart: periodStartFor(b, p.at), units, max };
}

const isRefusal = (x: unknown): x is Refusal => typeof x === "object" && x !== null && (x as Refusal).ok === false;

/** Checks one payment against a verified open mandate. Refusals name the AP2 constraint and a code. */
export function checkPayment(m: OpenPaymentMandate, p: MandatePayment, spent: SpentSoFar = { amount: 0n }): CheckResult {
  const amount = parseAtomic(p.amount);
  if (amount === undefined) return refuse("payment.amount_range", "invalid_amount", "payment amount is not an atomic integer string");

  // Validity of the mandate itself at the payment time.
  if (p.at >= m.exp) return refuse("mandate.validity", "expired", `mandate expired at ${m.exp}`);
  if (m.nbf !== undefined && p.at < m.nbf) return refuse("mandate.validity", "not_yet_valid", `mandate valid from ${m.nbf}`);
  for (const c of find(m, "payment.execution_date")) {
    const at = p.at * 1000;
    if (c.not_before !== undefined && at < Date.parse(c.not_before)) return refuse(c.type, "not_yet_valid", `payments allowed from ${c.not_before}`);
    if (c.not_after !== undefined && at > Date.parse(c.not_after)) return refuse(c.type, "expired", `payments allowed until ${c.not_after}`);
  }

  // Network and asset.
  for (const c of find(m, "payment.allowed_payment_instruments")) {
    if (!c.allowed.some((i) => i.network === p.network)) return refuse(c.type, "network_not_allowed", `network ${p.network} is not allowed`);
    if (!c.allowed.some((i) => i.network === p.network && (i.asset === undefined || sameId(i.asset, p.asset)))) {
      return refuse(c.type, "asset_not_allowed", `asset ${p.asset} on ${p.network} is not allowed`);
    }
  }

  // Payee.
  for (const c of find(m, "payment.allowed_payees")) {
    const ok = c.allowed.some((mer) => sameId(mer.id, p.payTo) || (p.payeeAgentId !== undefined && mer.id === p.payeeAgentId));
    if (!ok) return refuse(c.type, "payee_not_allowed", `payee ${p.payTo}${p.payeeAgentId ? ` (${p.payeeAgentId})` : ""} is not allowed`);
  }

  // Amount per payment.
  for (const c of find(m, "payment.amount_range")) {
    const units = toUnits(m, c, p, amount);
    if (units === undefined) return refuse(c.type, "currency_mismatch", `payment in ${p.network}/${p.asset} does not match the range's currency ${c.currency}`);
    const max = limit(c, c.max);
    const min = c.min === undefined ? 0n : limit(c, c.min);
    if (max === undefined || min === undefined) return refuse(c.type, "invalid_amount", "amount range is malformed");
    if (units < min) return refuse(c.type, "amount_below_range", `amount below the minimum ${c.min} ${c.currency}`);
    if (units > max) return refuse(c.type, "amount_above_range", `amount above the maximum ${c.max} ${c.currency}`);
  }

  // Recurrence.
  for (const c of find(m, "payment.agent_recurrence")) {
    const n = spent.occurrences ?? 0;
    if (c.max_occurrences !== undefined && n >= c.max_occurrences) return refuse(c.type, "occurrences_exceeded", `already used ${n} of ${c.max_occurrences} times`);
    const gap = FREQUENCY_SECONDS[c.frequency] ?? 0;
    if (gap > 0 && spent.lastPaymentAt !== undefined && p.at - spent.lastPaymentAt < gap) {
      return refuse(c.type, "too_frequent", `${c.frequency}: last payment at ${spent.lastPaymentAt}, next allowed at ${spent.lastPaymentAt + gap}`);
    }
  }

  // Budget.
  const b = budgetFor(m, p);
  if (isRefusal(b)) return b;
  if (b) {
    const already = typeof spent.amount === "bigint" ? spent.amount : parseAtomic(spent.amount);
    if (already === undefined) return refuse("payment.budget", "invalid_amount", "spent amount is malformed");
    if (already + b.units > b.max) return refuse("payment.budget", "budget_exceeded", `budget exceeded for the period starting ${b.periodStart}`);
    return { ok: true, budget: b };
  }
  return { ok: true };
}
