/**
 * The channel face of a deferred scheme (`batch-settlement`): what a resource server needs from
 * the chain family to take a cumulative voucher off-chain, and nothing more. The paywall keeps
 * the channel state (packages/server/src/channels); the scheme reads payloads, checks voucher
 * signatures without a facilitator call where it can, and writes the claim rows it sends.
 * Nothing here knows a chain.
 */
import type { PaymentPayload, PaymentRequirements } from "./types.ts";

export type ChannelPayloadType = "deposit" | "voucher" | "refund";

/** A channel payment as read from a payload; not checked against any signature yet. */
export interface ChannelPayment {
  type: ChannelPayloadType;
  /** The channel id, lower-case (EVM: 0x + 64 hex digits). */
  channelId: string;
  /** The voucher's cumulative ceiling (`maxClaimableAmount`). */
  maxClaimableAmount: bigint;
  /** The voucher signature, as sent. */
  signature: string;
  /** The channel's immutable configuration, as sent (kept to build claims later). */
  channelConfig: Record<string, unknown>;
  /** Who funds the channel (lower-case for EVM addresses). */
  payer: string;
  /** Deposit payloads: the amount deposited with this request. */
  depositAmount?: bigint;
  /** Refund payloads: the partial amount asked for; undefined = everything unclaimed. */
  refundAmount?: bigint;
}

export type ChannelRead = { ok: true; payment: ChannelPayment } | { ok: false; reason: string; message: string; field: string };

/** What the paywall keeps per channel that a claim row is built from. */
export interface ChannelClaimSource {
  channelConfig: Record<string, unknown>;
  /** The latest signed ceiling and its signature. */
  signedMaxClaimable: bigint;
  signature: string;
  /** What may be claimed: the committed charged total. */
  chargedCumulativeAmount: bigint;
}

export interface ChannelServerFace {
  /** Reads a channel payload; binds it to `requirements` (receiver, token, authorizer, delay) and checks the id is the config's. */
  read(payload: PaymentPayload, requirements: PaymentRequirements): ChannelRead;
  /**
   * Checks the voucher signature off-chain: true when it is the channel's voucher signer's, false
   * when it is not, undefined when it cannot be decided here (a contract wallet: ask /verify).
   */
  checkVoucher(payment: ChannelPayment, network: string): Promise<boolean | undefined>;
  /** One row of the facilitator's `claim` payload. */
  claimEntry(source: ChannelClaimSource): Record<string, unknown>;
  /**
   * When the server holds its own receiver-authorizer key: its signature over a claim batch (the
   * rows `claimEntry` writes, in that order). Absent: the facilitator signs as the delegated one.
   */
  authorizeClaims?(sources: readonly ChannelClaimSource[], network: string): Promise<string>;
  /** When the server holds its own receiver-authorizer key: its signature over a cooperative refund. */
  authorizeRefund?(refund: { channelId: string; refundNonce: bigint; amount: bigint }, network: string): Promise<string>;
}
