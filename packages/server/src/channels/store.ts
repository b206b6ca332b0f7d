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
}

/** In-process only: everything is lost with the process. For tests and demos. */
export function memoryChannelStore(): ChannelStore {
  const records = new Map<string, ChannelRecord>();
  return {
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
