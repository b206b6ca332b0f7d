/**
 * The `batch-settlement` scheme (payment channels) in the facilitator service: the library face
 * (packages/evm batch-settlement/facilitator.ts) over the service's ledger, PGlite or PostgreSQL
 * (migration 5):
 *
 * - `batch_transactions`: the write-ahead log. Every channel transaction is stored signed, before
 *   its broadcast; `start()` finishes what a previous run left (receipt, rebroadcast, or dropped).
 *   Several processes sharing PostgreSQL share the relayer key through a lease (leased-key.ts):
 *   only its holder sends and recovers; the others answer /settle with `relayer_unavailable`.
 * - `batch_channels`: each channel's on-chain snapshot after this facilitator's operations, with
 *   its config, so a restart (or an operator) sees the channels without scanning the chain.
 *
 * Deposits, claims, sweeps and refunds are safe to repeat by construction (an EIP-3009/Permit2
 * nonce, cumulative claims, a sweep of what is claimed, a refund nonce): the contract is the
 * settle-once guard, and every operation is simulated before it is signed, so a repeat costs no gas.
 */
import type { Network, SettleResponse } from "@tollgate/core";
import { batchSettlementEvmFacilitator, defaultEvmAssets, rpcTransportForUrl, type BatchSettlementFacilitator, type BatchSettlementStore, type ChannelSnapshot, type SentTransaction } from "@tollgate/evm";
import { createPublicClient, type Address, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { FacilitatorConfig } from "../config.ts";
import type { Ledger } from "../ledger/ledger.ts";
import type { Logger } from "../logger.ts";
import { leasedKey, NOT_HELD_MARK, onePassAtATime, recoveredUnderLease, type LeasedKey } from "./leased-key.ts";

/** The store over the ledger's SQL (PGlite or PostgreSQL, same statements). */
export function ledgerBatchStore(ledger: Ledger): BatchSettlementStore & { channel(network: string, channelId: string): Promise<StoredChannel | undefined> } {
  const { sql, schema: s } = ledger;
  return {
    async recordSent(tx) {
      await sql.query(
        `INSERT INTO ${s}.batch_transactions (hash, network, kind, from_address, nonce, raw, channel_ids, status) VALUES ($1, $2, $3, $4, $5, $6, $7, 'sent') ON CONFLICT (hash) DO NOTHING`,
        [tx.hash, tx.network, tx.kind, tx.from.toLowerCase(), tx.nonce, tx.raw, JSON.stringify(tx.channelIds)],
      );
    },
    async recordFinal(hash, outcome) {
      await sql.query(`UPDATE ${s}.batch_transactions SET status = $2, block_number = $3, updated_at = now() WHERE hash = $1`, [
        hash,
        outcome.status,
        outcome.status === "dropped" ? null : outcome.blockNumber.toString(),
      ]);
    },
    async pending(network) {
      const rows = await sql.query<{ hash: string; network: string; kind: string; from_address: string; nonce: string | number; raw: string; channel_ids: unknown }>(
        `SELECT hash, network, kind, from_address, nonce, raw, channel_ids FROM ${s}.batch_transactions WHERE network = $1 AND status = 'sent' ORDER BY nonce`,
        [network],
      );
      return rows.map(
        (r): SentTransaction => ({
          hash: r.hash as Hex,
          network: r.network as Network,
          kind: r.kind as SentTransaction["kind"],
          from: r.from_address as Hex,
          nonce: Number(r.nonce),
          raw: r.raw as Hex,
          channelIds: (typeof r.channel_ids === "string" ? JSON.parse(r.channel_ids) : r.channel_ids) as Hex[],
        }),
      );
    },
    async saveChannels(network, channels) {
      for (const c of channels) {
        await sql.query(
          `INSERT INTO ${s}.batch_channels (network, channel_id, config, balance, total_claimed, withdraw_requested_at, refund_nonce, last_transaction)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (network, channel_id) DO UPDATE SET config = COALESCE(EXCLUDED.config, ${s}.batch_channels.config), balance = EXCLUDED.balance,
             total_claimed = EXCLUDED.total_claimed, withdraw_requested_at = EXCLUDED.withdraw_requested_at, refund_nonce = EXCLUDED.refund_nonce,
             last_transaction = COALESCE(EXCLUDED.last_transaction, ${s}.batch_channels.last_transaction), updated_at = now()`,
          [
            network,
            c.snapshot.channelId.toLowerCase(),
            c.config ? JSON.stringify(c.config) : null,
            c.snapshot.balance,
            c.snapshot.totalClaimed,
            c.snapshot.withdrawRequestedAt,
            c.snapshot.refundNonce,
            c.transaction ?? null,
          ],
        );
      }
    },
    async channel(network, channelId) {
      const rows = await sql.query<{ balance: string; total_claimed: string; withdraw_requested_at: string | number; refund_nonce: string; config: unknown; last_transaction: string | null }>(
        `SELECT balance, total_claimed, withdraw_requested_at, refund_nonce, config, last_transaction FROM ${s}.batch_channels WHERE network = $1 AND channel_id = $2`,
        [network, channelId.toLowerCase()],
      );
      const r = rows[0];
      if (!r) return undefined;
      return {
        snapshot: { channelId: channelId.toLowerCase() as Hex, balance: String(r.balance), totalClaimed: String(r.total_claimed), withdrawRequestedAt: Number(r.withdraw_requested_at), refundNonce: String(r.refund_nonce) },
        config: typeof r.config === "string" ? JSON.parse(r.config) : r.config,
        lastTransaction: r.last_transaction ?? undefined,
      };
    },
  };
}

/** Receipt polling: channel operations are rare (one claim covers many requests), latency matters little. */
const RECEIPT_POLL_MS = 250;

export interface StoredChannel {
  snapshot: ChannelSnapshot;
  config: unknown;
  lastTransaction: string | undefined;
}

export interface BatchSettlementService {
  scheme: BatchSettlementFacilitator;
  /** Finishes transactions a previous run sent (before taking traffic), then keeps looking every `RECOVER_EVERY_MS`. */
  start(): Promise<void>;
  /** Stops looking and frees the relayer's lease (call after in-flight requests finished). */
  close(): Promise<void>;
  /** The relayer's lease (tests, operators). */
  relayer: LeasedKey;
}

/** How often transactions still without a receipt (answered `settlement_pending`) are looked at again. */
const RECOVER_EVERY_MS = 15_000;

/** `/settle` refused because another instance holds the relayer key: nothing was sent; retry. */
export const RELAYER_UNAVAILABLE = "relayer_unavailable";

/** The scheme on every configured EVM network, or undefined when `batchSettlement` is not configured. */
export function createBatchSettlementService(config: FacilitatorConfig, ledger: Ledger, logger: Logger): BatchSettlementService | undefined {
  const bs = config.batchSettlement;
  if (!bs || config.networks.length === 0) return undefined;
  const account = privateKeyToAccount(bs.relayerKey as Hex);
  if (config.privateKeys.some((k) => k.toLowerCase() === bs.relayerKey.toLowerCase())) {
    // Two nonce managers on one key would collide: the engine's lanes and this relayer's sends.
    throw new Error("batchSettlement.relayerKey: must not be one of privateKeys (the exact engine manages their nonces)");
  }
  const relayer = leasedKey({
    ledger,
    group: "batch-relayer",
    role: "the batch-settlement relayer",
    account,
    networks: config.networks.map((n) => n.network),
    ttlMs: config.signerLeaseMs,
    logger,
    // Taken over from a dead holder: finish what it left pending, now rather than at the next look.
    onChange: () => void pass(),
  });
  const inner = batchSettlementEvmFacilitator({
    networks: config.networks.map((n) => ({
      network: n.network as Network,
      client: createPublicClient({ transport: rpcTransportForUrl(n.rpcUrl, { batch: true }), pollingInterval: RECEIPT_POLL_MS }) as PublicClient,
      // The service's allowlist, as for exact and upto (omitted: the network's USDC from the built-in table).
      assets: (n.assets ?? defaultEvmAssets.filter((a) => a.network === n.network)).map((a) => a.address as Address),
    })),
    relayer: relayer.account,
    ...(bs.receiverAuthorizerKey ? { receiverAuthorizer: privateKeyToAccount(bs.receiverAuthorizerKey as Hex) } : {}),
    store: heldOnly(ledgerBatchStore(ledger), relayer),
    receiptTimeoutMs: bs.receiptTimeoutMs,
  });
  let timer: NodeJS.Timeout | undefined;
  const pass = onePassAtATime(async () => {
    try {
      const finished = await inner.recover();
      if (finished > 0) logger.info({ finished }, "batch-settlement: finished pending channel transactions (of a previous run or holder)");
    } catch (e) {
      logger.warn({ err: e instanceof Error ? e.message.split("\n")[0] : "error" }, "batch-settlement: could not look at pending channel transactions");
    }
  });
  const scheme = refusedUnlessHeld(inner, relayer, recoveredUnderLease(relayer, pass));
  return {
    scheme,
    relayer,
    async start() {
      await relayer.leases.start();
      await pass();
      timer = setInterval(() => void pass(), RECOVER_EVERY_MS);
      timer.unref();
    },
    async close() {
      if (timer) clearInterval(timer);
      await relayer.leases.close();
    },
  };
}

/**
 * Recovery finishes only the transactions of a relayer this process holds (the holder's alone: a
 * rebroadcast by another process could replace the holder's newer send at that nonce). Rows of a
 * key no longer configured need no key (their signed bytes are stored) and stay recoverable.
 */
function heldOnly(store: ReturnType<typeof ledgerBatchStore>, relayer: LeasedKey): ReturnType<typeof ledgerBatchStore> {
  return {
    ...store,
    async pending(network) {
      const rows = await store.pending(network);
      return rows.filter((tx) => tx.from.toLowerCase() !== relayer.address || relayer.holds(network));
    },
  };
}

/**
 * /settle from a process that does not hold the relayer: refused before anything is read or sent
 * (`relayer_unavailable`, retryable). A lease lost while an operation was prepared is caught by the
 * guarded account before the signature; its failure is answered the same way. /verify reads only.
 *
 * The first /settle after the relayer was taken (at start, or over from a dead holder) waits for
 * one recovery pass: a transaction the last holder wrote ahead but never broadcast gets its nonce
 * back before a new send could take it.
 */
export function refusedUnlessHeld(inner: BatchSettlementFacilitator, relayer: LeasedKey, recovered: (network: string) => Promise<void>): BatchSettlementFacilitator {
  const refusal = (network: string): SettleResponse => ({ success: false, errorReason: RELAYER_UNAVAILABLE, errorMessage: relayer.unavailableMessage(network), transaction: "", network: network as Network });
  return {
    ...inner,
    async settle(payload, requirements, caller) {
      const network = requirements.network;
      const served = inner.networks.includes(network as Network);
      if (served && !relayer.holds(network)) return refusal(network);
      if (served) {
        await recovered(network);
        if (!relayer.holds(network)) return refusal(network);
      }
      const result = await inner.settle(payload, requirements, caller);
      if (!result.success && result.transaction === "" && result.errorMessage?.includes(NOT_HELD_MARK)) return { ...refusal(network), ...(result.payer ? { payer: result.payer } : {}) };
      return result;
    },
  };
}
