/**
 * What a settlement attempt comes to, as a value: the engine's `submit`, a custom submitter and
 * the exact scheme all answer with one of these, never with a thrown error or a side-channel map.
 *
 * - settled: the token logged this authorization's `AuthorizationUsed` in `transaction`;
 * - failed: it did not settle. Without `transaction` nothing was sent (refused up front, no gas);
 *   with it, the transaction was mined and this authorization did not settle in it;
 * - pending: sent as `transaction` (the latest hash for its nonce), not final yet. It may still
 *   land, so it must never be reported failed, nor sent again.
 */
import { Reason, type Network, type SettleResponse } from "@tollgate/core";
import type { Hex } from "viem";

export type SettlementResult =
  | { status: "settled"; transaction: Hex }
  | { status: "failed"; reason: string; message: string; transaction?: Hex }
  | { status: "pending"; transaction: Hex };

/** The facilitator's documented extension carrying a settlement's state and hash (see the README). */
export const SETTLEMENT_EXTENSION = "tollgate-settlement";

export function settlementFailed(reason: string, message: string, transaction?: Hex): SettlementResult {
  return transaction ? { status: "failed", reason, message, transaction } : { status: "failed", reason, message };
}

/**
 * The `/settle` answer for a result. A failed or pending one has `transaction: ""` (the spec's
 * "nothing settled"); its hash, when there is one, travels in our extension.
 */
export function settleResponseOf(result: SettlementResult, context: { network: Network; payer: string; amount: string }): SettleResponse {
  const { network, payer, amount } = context;
  if (result.status === "settled") return { success: true, transaction: result.transaction, network, payer, amount };
  if (result.status === "pending") {
    return {
      success: false,
      errorReason: Reason.settlementPending,
      errorMessage: "the settlement transaction was sent and is not final yet; retry /settle with the same payload for the result",
      transaction: "",
      network,
      payer,
      extensions: { [SETTLEMENT_EXTENSION]: { status: "pending", transaction: result.transaction } },
    };
  }
  return {
    success: false,
    errorReason: result.reason,
    errorMessage: result.message,
    transaction: "",
    network,
    payer,
    ...(result.transaction ? { extensions: { [SETTLEMENT_EXTENSION]: { status: "failed", transaction: result.transaction } } } : {}),
  };
}
