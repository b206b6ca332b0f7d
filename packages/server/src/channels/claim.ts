/**
 * Claim and settle: what the operator runs (on a timer, at a threshold, or when a withdrawal is
 * pending) to turn committed vouchers into money. One `claim` payload covers every channel with
 * unclaimed charges for a (network, receiver, token, receiver authorizer) group; then one
 * `settle` payload sweeps the group's claimed total to the receiver. The receiver authorizer's
 * signatures are the facilitator's when the server delegates them to it (the default: the
 * 402 advertises the facilitator's `receiverAuthorizer`), or the server's own when its scheme
 * holds the key (`batchSettlementEvmServer({ receiverAuthorizer: account })`).
 */
import type { ChannelServerFace, FacilitatorClient, Network, PaymentPayload, PaymentRequirements, SettleResponse } from "@tollgate/core";
import { randomUUID } from "node:crypto";
import { parseSnapshot } from "./snapshot.ts";
import type { ChannelRecord, ChannelStore } from "./store.ts";

export interface ClaimOptions {
  store: ChannelStore;
  facilitator: FacilitatorClient;
  /** The scheme's channel face (its `channels`), which writes the claim rows. */
  channels: ChannelServerFace;
  /** Claim at most this many channels per transaction. Default 100. */
  maxPerClaim?: number;
  /** Sweep claimed funds to the receiver after claiming. Default true. */
  settle?: boolean;
  /**
   * Only these channels, e.g. `(r) => r.withdrawRequestedAt > 0` on a short timer: a payer's
   * timed withdrawal must not finalize over unclaimed vouchers (spec "Claim & Settlement Strategy").
   */
  filter?: (record: ChannelRecord) => boolean;
}

export interface ClaimGroupResult {
  network: string;
  receiver: string;
  token: string;
  /** Channels claimed and the amount newly claimed over them. */
  channels: number;
  claimed: string;
  claimTransactions: string[];
  /** The sweep: its transaction and the amount moved to the receiver. */
  settleTransaction?: string;
  settled?: string;
  error?: string;
}

/** Claims every channel's unclaimed charge, then settles; one result per group. Never throws for a facilitator refusal. */
export async function claimAndSettle(o: ClaimOptions): Promise<ClaimGroupResult[]> {
  const max = o.maxPerClaim ?? 100;
  const groups = new Map<string, ChannelRecord[]>();
  for (const r of await o.store.list()) {
    if (BigInt(r.chargedCumulativeAmount) <= BigInt(r.totalClaimed) && !r.unswept) continue;
    if (o.filter && !o.filter(r)) continue;
    const key = [r.network, r.receiver, r.token, String(r.channelConfig.receiverAuthorizer ?? "").toLowerCase()].join("|");
    const list = groups.get(key) ?? [];
    list.push(r);
    groups.set(key, list);
  }
  const results: ClaimGroupResult[] = [];
  for (const records of groups.values()) {
    const first = records[0]!;
    const result: ClaimGroupResult = { network: first.network, receiver: first.receiver, token: first.token, channels: 0, claimed: "0", claimTransactions: [] };
    const requirements: PaymentRequirements = { scheme: "batch-settlement", network: first.network as Network, asset: first.token, amount: "0", payTo: first.receiver, maxTimeoutSeconds: 0, extra: {} };
    const unswept = records.filter((r) => r.unswept);
    const claimable = records.filter((r) => BigInt(r.chargedCumulativeAmount) > BigInt(r.totalClaimed));
    try {
      for (let i = 0; i < claimable.length; i += max) {
        const batch = claimable.slice(i, i + max);
        const sources = batch.map((r) => ({ channelConfig: r.channelConfig, signedMaxClaimable: BigInt(r.signedMaxClaimable), signature: r.signature, chargedCumulativeAmount: BigInt(r.chargedCumulativeAmount) }));
        const claims = sources.map((source) => o.channels.claimEntry(source));
        // A server holding its own receiver-authorizer key signs the batch; otherwise the facilitator does.
        const signature = await o.channels.authorizeClaims?.(sources, first.network);
        const response = await o.facilitator.settle(operation(requirements, { type: "claim", claims, ...(signature ? { claimAuthorizerSignature: signature } : {}) }), requirements);
        if (!response.success) throw new Error(`claim refused: ${response.errorReason ?? "unknown"}${response.errorMessage ? ` (${response.errorMessage})` : ""}`);
        result.claimTransactions.push(response.transaction);
        let claimed = BigInt(result.claimed);
        for (const r of batch) {
          claimed += BigInt(r.chargedCumulativeAmount) - BigInt(r.totalClaimed);
          // Only totalClaimed moves here; a request may have committed on the channel meanwhile.
          await updateRecord(o.store, r.channelId, (now) => ({ ...now, totalClaimed: maxOf(now.totalClaimed, r.chargedCumulativeAmount) }));
        }
        result.claimed = claimed.toString();
        result.channels += batch.length;
      }
      if (o.settle !== false) {
        const response: SettleResponse = await o.facilitator.settle(operation(requirements, { type: "settle", receiver: first.channelConfig.receiver, token: first.channelConfig.token }), requirements);
        if (!response.success) throw new Error(`settle refused: ${response.errorReason ?? "unknown"}${response.errorMessage ? ` (${response.errorMessage})` : ""}`);
        result.settleTransaction = response.transaction;
        result.settled = response.amount ?? "";
        for (const r of unswept) {
          await updateRecord(o.store, r.channelId, ({ unswept: _done, ...rest }) => rest);
        }
      }
    } catch (e) {
      result.error = e instanceof Error ? e.message : String(e);
    }
    results.push(result);
  }
  return results;
}

/**
 * Changes one stored record the way a request would: holding the channel (its lease), so a
 * request committing on it at the same moment, here or on another instance, is never written
 * over. When a request holds the channel the change is skipped: these are mirrors of the chain
 * (a later pass claims nothing new and tries again). Stores without leases: read, then write.
 */
async function updateRecord(store: ChannelStore, channelId: string, change: (r: ChannelRecord) => ChannelRecord): Promise<void> {
  const leases = store.leases;
  if (!leases) {
    const now = await store.get(channelId);
    if (now) await store.put(change(now));
    return;
  }
  const owner = randomUUID();
  if (!(await leases.take(channelId, owner, UPDATE_HOLD_MS))) return;
  try {
    const now = await store.get(channelId);
    if (now) await leases.commit(change(now), owner, true);
  } finally {
    await leases.release(channelId, owner);
  }
}

/** A record update holds its channel this long at most (a read and a write). */
const UPDATE_HOLD_MS = 30_000;

const maxOf = (a: string, b: string): string => (BigInt(a) >= BigInt(b) ? a : b);

/** Refreshes a record's mirrored on-chain fields from a facilitator snapshot (e.g. after a claim). */
export function withSnapshot(r: ChannelRecord, extra: unknown): ChannelRecord {
  const s = parseSnapshot(extra);
  if (!s) return r;
  return { ...r, balance: s.balance.toString(), totalClaimed: s.totalClaimed.toString(), withdrawRequestedAt: s.withdrawRequestedAt, refundNonce: s.refundNonce.toString(), onchainSyncedAt: Date.now() };
}

function operation(accepted: PaymentRequirements, payload: Record<string, unknown>): PaymentPayload {
  return { x402Version: 2, accepted, payload };
}
