/**
 * Channel state a resource server keeps per `batch-settlement` channel (spec "Per-Channel
 * State"): the charged total it may claim, the latest voucher that backs it, and the on-chain
 * fields mirrored from the facilitator's last snapshot. Amounts are decimal strings so a record
 * is plain JSON wherever it is stored.
 *
 * The store is the server's memory of money owed to it: a record is written, durably, before
 * the response it pays for is released (channels/admit.ts), so a restart never loses a voucher
 * that was served. `fileChannelStore` survives restarts; `memoryChannelStore` is for tests.
 */
export interface ChannelRecord {
  channelId: string;
  network: string;
  /** The channel config as the payer sent it (receiver, token, authorizers...). */
  channelConfig: Record<string, unknown>;
  /** The receiver and token of the config, lower-case, for grouping claims. */
  receiver: string;
  token: string;
  payer: string;
  /** What this server charged in total: the most it will claim. */
  chargedCumulativeAmount: string;
  /** The latest voucher committed (its ceiling and signature). */
  signedMaxClaimable: string;
  signature: string;
  /** Mirrored from the facilitator's last snapshot. */
  balance: string;
  totalClaimed: string;
  withdrawRequestedAt: number;
  refundNonce: string;
  /** Unix ms of the last snapshot. */
  onchainSyncedAt: number;
  /** Unix ms of the last paid request. */
  lastRequestTimestamp: number;
  /** Claimed on chain (by a refund) and not yet swept to the receiver. */
  unswept?: boolean;
}

export interface ChannelStore {
  get(channelId: string): Promise<ChannelRecord | undefined>;
  /** Resolves once the record is durable (a file store: written, synced and renamed into place). */
  put(record: ChannelRecord): Promise<void>;
  delete(channelId: string): Promise<void>;
  list(): Promise<ChannelRecord[]>;
  /**
   * A store several server instances share (sqlChannelStore) holds each channel for one request
   * at a time across all of them: the paywall takes the channel's lease before it serves, commits
   * the charge only while it still holds it, and gives it back after. Without leases the paywall's
   * in-process lock is the only one: one instance per store.
   */
  leases?: ChannelLeases;
}

export interface ChannelLeases {
  /** Holds `channelId` for `owner` until `ttlMs` from now when nobody else holds it; false otherwise. */
  take(channelId: string, owner: string, ttlMs: number): Promise<boolean>;
  /**
   * Writes `record`, durably, only while `owner` still holds its channel (false otherwise: nothing
   * written); `release`: gives the lease back in the same step.
   */
  commit(record: ChannelRecord, owner: string, release: boolean): Promise<boolean>;
  /** Gives the lease back; a no-op unless `owner` holds it. */
  release(channelId: string, owner: string): Promise<void>;
}

/**
 * Leases kept in this process, for stores one process owns (memory, a directory): the same
 * semantics as a shared store's, so the paywall and claimAndSettle hold channels one way.
 * `write` stores a record durably.
 */
export function localLeases(write: (record: ChannelRecord) => Promise<void>): ChannelLeases {
  const leases = new Map<string, { owner: string; until: number }>();
  return {
    async take(channelId, owner, ttlMs) {
      const id = channelId.toLowerCase();
      const l = leases.get(id);
      if (l && l.until > Date.now() && l.owner !== owner) return false;
      leases.set(id, { owner, until: Date.now() + ttlMs });
      return true;
    },
    async commit(record, owner, release) {
      const id = record.channelId.toLowerCase();
      const lease = leases.get(id);
      if (!lease || lease.owner !== owner || lease.until <= Date.now()) return false;
      // Nobody may take the channel while the write is being made durable (the check and the
      // write are one step, as in one SQL statement).
      const until = lease.until;
      lease.until = Number.POSITIVE_INFINITY;
      try {
        await write(record);
      } finally {
        if (release) leases.delete(id);
        else lease.until = until;
      }
      return true;
    },
    async release(channelId, owner) {
      const id = channelId.toLowerCase();
      if (leases.get(id)?.owner === owner) leases.delete(id);
    },
  };
}

/**
 * In-process only: everything is lost with the process. For tests and demos. Leased like a
 * shared store, so several paywalls in one process may share it.
 */
export function memoryChannelStore(): ChannelStore {
  const records = new Map<string, ChannelRecord>();
  return {
    leases: localLeases(async (record) => void records.set(record.channelId.toLowerCase(), structuredClone(record))),
    async get(id) {
      const r = records.get(id.toLowerCase());
      return r ? structuredClone(r) : undefined;
    },
    async put(record) {
      records.set(record.channelId.toLowerCase(), structuredClone(record));
    },
    async delete(id) {
      records.delete(id.toLowerCase());
    },
    async list() {
      return [...records.values()].map((r) => structuredClone(r));
    },
  };
}
