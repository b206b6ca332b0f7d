/**
 * What a tool result says about money, in plain JSON an LLM can read: what was paid (in dollars
 * when the asset is a known USD stablecoin), what a refused payment asked for, and whether a
 * failed one cost anything. Every error a payment can end in becomes one of these results, so a
 * refusal or a failed payment is something the agent reads and reasons about, not an exception
 * that ends its loop.
 */
import {
  atomicToDecimal,
  InvalidPaymentRequiredError,
  knownUsdAssets,
  PaymentRefusedError,
  type PaymentRequirements,
  type UsdAsset,
} from "@tollgate/core";
import { PaymentFailedError, type Charged, type PaymentInfo } from "@tollgate/fetch";

/** A payment (made, asked for, or attempted), as a tool result reports it. */
export interface PaymentSummary {
  /** The amount in dollars ("0.01") when the asset is a USD stablecoin the tool knows; otherwise null (see `amountAtomic`). */
  amountUsd: string | null;
  /** The amount in the asset's smallest unit. */
  amountAtomic: string;
  asset: string;
  /** CAIP-2 network id, e.g. "eip155:8453". */
  network: string;
  payTo: string;
}

/** A payment that was made: the receipt's transaction when the server sent one. */
export interface PaidSummary extends PaymentSummary {
  payer: string;
  /** The settlement transaction (hash or signature), null when the server sent no receipt. */
  transaction: string | null;
  /** true: the receipt says settled; null: no receipt (counted as spent all the same). */
  settled: boolean | null;
}

/** The policy (or the client) refused to pay: nothing was signed, nothing was sent, nothing was paid. */
export interface RefusedResult {
  outcome: "refused";
  paid: false;
  /** The refusal code (RefusalCode), e.g. "max_per_request", "budget_exceeded". */
  code: string;
  message: string;
  /** What the server asked for (its first option), when known. */
  price: PaymentSummary | null;
}

/** A payment was signed and sent, but the paid request did not return what was paid for. */
export interface PaymentFailedResult {
  outcome: "payment_failed";
  /** Whether it cost money: true (settled), false (not), "unknown" (it may still settle until `validUntil`). */
  charged: Charged;
  /** The server's reason code, or `http_<status>` / `network_error`. */
  reason: string;
  message: string;
  payment: PaymentSummary;
  /** Unix seconds after which the signed payment can no longer settle. */
  validUntil: number;
}

/** The server's payment request was malformed: nothing was signed or paid. */
export interface InvalidPaymentRequestResult {
  outcome: "invalid_payment_request";
  paid: false;
  message: string;
}

/** The request never got an answer to pay for, or was not allowed: nothing was paid. */
export interface ErrorResult {
  outcome: "error";
  paid: false;
  message: string;
}

export type PaymentErrorResult = RefusedResult | PaymentFailedResult | InvalidPaymentRequestResult;

/** Values amounts in dollars: USDC on every network core knows, plus `extra` (e.g. a local test token). */
export function usdValuer(extra: readonly UsdAsset[] = []): (r: Pick<PaymentRequirements, "network" | "asset" | "amount">) => string | null {
  const assets = [...extra, ...knownUsdAssets()];
  return (r) => {
    const evm = r.network.startsWith("eip155:");
    const hit = assets.find((u) => u.network === r.network && (evm ? u.asset.toLowerCase() === r.asset.toLowerCase() : u.asset === r.asset));
    if (!hit || !/^\d+$/.test(r.amount)) return null;
    return atomicToDecimal(BigInt(r.amount), hit.decimals);
  };
}

export type UsdValuer = ReturnType<typeof usdValuer>;

export function summarize(r: PaymentRequirements, usd: UsdValuer): PaymentSummary {
  return { amountUsd: usd(r), amountAtomic: r.amount, asset: r.asset, network: r.network, payTo: r.payTo };
}

export function paidSummary(info: PaymentInfo, usd: UsdValuer): PaidSummary {
  const receipt = info.receipt;
  return {
    ...summarize(info.requirements, usd),
    payer: info.payer,
    transaction: receipt?.transaction ? receipt.transaction : null,
    settled: receipt ? receipt.success === true : null,
  };
}

function dollars(s: PaymentSummary): string {
  return s.amountUsd !== null ? `$${s.amountUsd}` : `${s.amountAtomic} atomic units of ${s.asset}`;
}

/**
 * The tool result for an error a payment ended in, or undefined when `e` is not a payment error
 * (the caller decides: an abort is rethrown, anything else becomes an ErrorResult).
 */
export function paymentErrorResult(e: unknown, usd: UsdValuer, what: string): PaymentErrorResult | undefined {
  if (e instanceof PaymentRefusedError) {
    const asked = e.refusals.find((r) => r.requirements)?.requirements;
    const price = asked ? summarize(asked, usd) : null;
    return {
      outcome: "refused",
      paid: false,
      code: e.code,
      message: `Not paid: the spending policy refused ${price ? `${dollars(price)} on ${price.network} ` : ""}for ${what} (${e.message.startsWith(e.code) ? e.message : `${e.code}: ${e.message}`}). Nothing was signed or sent, and nothing was paid.`,
      price,
    };
  }
  if (e instanceof PaymentFailedError) {
    const payment = summarize(e.requirements, usd);
    const charged =
      e.charged === true
        ? "you were charged"
        : e.charged === false
          ? "the server reports you were not charged"
          : `it is unknown whether you were charged: the signed payment may still settle until ${new Date(e.validUntil * 1000).toISOString()}; do not pay again for the same thing before checking`;
    return {
      outcome: "payment_failed",
      charged: e.charged,
      reason: e.reason,
      message: `The paid request for ${what} failed (${e.reason}) after a payment of ${dollars(payment)} was sent: ${charged}.`,
      payment,
      validUntil: e.validUntil,
    };
  }
  if (e instanceof InvalidPaymentRequiredError) {
    return { outcome: "invalid_payment_request", paid: false, message: `Not paid: ${what} asked for payment in a malformed way (${e.message}). Nothing was signed or paid.` };
  }
  return undefined;
}

/** Whether `e` is the abort of the agent's own signal: rethrown, so the loop stops as asked. */
export function isAbort(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

export function messageOf(e: unknown): string {
  if (e instanceof Error) {
    const cause = (e as { cause?: unknown }).cause;
    return cause instanceof Error && cause.message && !e.message.includes(cause.message) ? `${e.message} (${cause.message})` : e.message;
  }
  return String(e);
}
