/**
 * The channel snapshot the facilitator returns (`/verify` `extra`, `/settle`
 * `extra.channelState`): balance, claimed total, pending withdrawal, refund nonce. Read
 * strictly: a field that is not a whole number means no snapshot, never a guess.
 */
import type { ChannelRecord } from "./store.ts";

/** The spec's reason codes the paywall answers with itself. */
export const ChannelReason = {
  cumulativeMismatch: "invalid_batch_settlement_evm_cumulative_amount_mismatch",
  channelBusy: "invalid_batch_settlement_evm_channel_busy",
  payloadType: "invalid_batch_settlement_evm_payload_type",
  voucherPayload: "invalid_batch_settlement_evm_voucher_payload",
  voucherSignature: "invalid_batch_settlement_evm_voucher_signature",
  exceedsBalance: "invalid_batch_settlement_evm_cumulative_exceeds_balance",
  belowClaimed: "invalid_batch_settlement_evm_cumulative_below_claimed",
  depositFailed: "invalid_batch_settlement_evm_deposit_transaction_failed",
  stateUnavailable: "invalid_batch_settlement_evm_verification_state_unavailable",
  missingChannel: "invalid_batch_settlement_evm_missing_channel",
  refundPayload: "invalid_batch_settlement_evm_refund_payload",
  refundNoBalance: "invalid_batch_settlement_evm_refund_no_balance",
  refundAmountInvalid: "invalid_batch_settlement_evm_refund_amount_invalid",
  refundFailed: "invalid_batch_settlement_evm_refund_transaction_failed",
} as const;

export interface ChannelSnapshot {
  balance: bigint;
  totalClaimed: bigint;
  withdrawRequestedAt: number;
  refundNonce: bigint;
}

export function parseSnapshot(value: unknown): ChannelSnapshot | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const balance = uint(v.balance);
  const totalClaimed = uint(v.totalClaimed);
  const withdraw = uint(v.withdrawRequestedAt ?? 0);
  const refundNonce = uint(v.refundNonce ?? "0");
  if (balance === undefined || totalClaimed === undefined || withdraw === undefined || refundNonce === undefined) return undefined;
  return { balance, totalClaimed, withdrawRequestedAt: Number(withdraw), refundNonce };
}

/** `extra.channelState` as a client reads it (spec "Payment Response Contract"). */
export function channelStateOf(r: ChannelRecord): Record<string, unknown> {
  return {
    channelId: r.channelId,
    balance: r.balance,
    totalClaimed: r.totalClaimed,
    withdrawRequestedAt: r.withdrawRequestedAt,
    refundNonce: r.refundNonce,
    chargedCumulativeAmount: r.chargedCumulativeAmount,
  };
}

function uint(v: unknown): bigint | undefined {
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === "string" && /^\d{1,78}$/.test(v)) return BigInt(v);
  return undefined;
}
