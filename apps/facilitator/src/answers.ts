/**
 * The shapes of `/settle` answers, one function each, and the reading of a scheme's answer as an
 * explicit SettlementResult. Spec rules they keep: a failed settle has `transaction: ""`; a
 * transaction worth naming on a failure (the pending one, the first settlement of a duplicate,
 * a reverted attempt) travels in our `tollgate-settlement` extension.
 */
import { Reason, type Network, type SettleResponse } from "@tollgate/core";
import type { PaymentEntry, PaymentRecord, SettlementResult } from "./ledger/ledger.ts";

/** Our documented extension on settle answers: `{ status, transaction?, replay? }`. */
export const SETTLEMENT_EXTENSION = "tollgate-settlement";

export interface SettlementExtension {
  status: "pending" | "settled" | "failed";
  transaction?: string;
  /** A cached success handed out again for the same payment-identifier (spec: same id, same payload). */
  replay?: boolean;
}

function withExtension(response: SettleResponse, ext: SettlementExtension): SettleResponse {
  return { ...response, extensions: { ...response.extensions, [SETTLEMENT_EXTENSION]: ext } };
}

/** The extension's transaction, when a response carries one. */
export function extensionTransaction(response: SettleResponse): string {
  const ext = response.extensions?.[SETTLEMENT_EXTENSION] as { transaction?: unknown } | undefined;
  return typeof ext?.transaction === "string" ? ext.transaction : "";
}

/** Sent, not final yet (spec: settlement_pending): retry /settle with the same payload for the result. */
export function pendingResponse(network: string, payer: string, transaction: string): SettleResponse {
  return {
    success: false,
    errorReason: Reason.settlementPending,
    errorMessage: transaction
      ? "the settlement transaction was sent and is not final yet; retry /settle with the same payload for the result"
      : "settlement of this authorization is still in progress; retry /settle with the same payload for the result",
    payer,
    transaction: "",
    network: network as Network,
    extensions: { [SETTLEMENT_EXTENSION]: { status: "pending", ...(transaction ? { transaction } : {}) } satisfies SettlementExtension },
  };
}

export function failureResponse(entry: Pick<PaymentEntry, "network" | "payer">, reason: string, message: string): SettleResponse {
  return { success: false, errorReason: reason, errorMessage: message, payer: entry.payer, transaction: "", network: entry.network as Network };
}

/** A failure as answered: `transaction` empty, a transaction it names moved to the extension. */
export function failedAnswer(response: SettleResponse): SettleResponse {
  const tx = response.transaction || extensionTransaction(response);
  const failed = { ...response, success: false, transaction: "" };
  return tx ? withExtension(failed, { status: "failed", transaction: tx }) : failed;
}

/** This authorization's success was handed out already: a payment buys one response. */
export function duplicateResponse(record: PaymentRecord): SettleResponse {
  const first = record.response?.transaction || record.transaction || "";
  return withExtension(
    failureResponse(record, Reason.duplicateSettlement, "this authorization was already settled and its success answered; a payment buys one response"),
    { status: "settled", ...(first ? { transaction: first } : {}) },
  );
}

/** The stored success again, for the same payment-identifier and payload, marked as a replay. */
export function replayResponse(stored: SettleResponse): SettleResponse {
  return withExtension(stored, { status: "settled", ...(stored.transaction ? { transaction: stored.transaction } : {}), replay: true });
}

/**
 * A scheme's settle answer as a value. A failure that names a transaction (the `exact` scheme's
 * reverted receipt) was mined: it burned gas once and is not sent again.
 */
export function settlementResult(response: SettleResponse, entry: Pick<PaymentEntry, "network" | "payer">): SettlementResult {
  if (response.success) return { status: "settled", transaction: response.transaction, response };
  const tx = extensionTransaction(response) || response.transaction || "";
  // A scheme that finds its own earlier send already on chain (Solana: the same signed
  // transaction) reports it settled there: that is this payment's success, not a failure.
  const ext = response.extensions?.[SETTLEMENT_EXTENSION] as { status?: unknown } | undefined;
  if (ext?.status === "settled" && tx) {
    return { status: "settled", transaction: tx, response: { success: true, transaction: tx, network: response.network, payer: response.payer ?? entry.payer } };
  }
  if (response.errorReason === Reason.settlementPending) {
    return { status: "pending", transaction: tx, response: pendingResponse(entry.network, response.payer ?? entry.payer, tx) };
  }
  return { status: "failed", onChain: tx !== "", transaction: tx, response: failedAnswer(response) };
}

/**
 * Verify's failure path (the scheme said invalid, e.g. nonce already used): the ledger knows this
 * payload settled. Valid when its success was not handed out yet (a retry after a pending or lost
 * answer gets the resource), or when it was, to the same payment-identifier (the paywall answers
 * that replay from its cache, or refuses).
 */
export function settledForRetry(record: PaymentRecord | undefined, entry: PaymentEntry): boolean {
  if (!record || record.status !== "settled" || record.requestHash !== entry.requestHash) return false;
  if (!record.answered) return true;
  return entry.paymentIdentifier !== undefined && record.paymentIdentifier === entry.paymentIdentifier;
}
