/**
 * The facilitator's chain access for `batch-settlement`: channel snapshots, and the one way a
 * transaction leaves — simulated, signed, written ahead, broadcast, followed to its receipt.
 *
 * Why not the exact scheme's settlement engine: that engine batches EIP-3009/Permit2 items into
 * its own settler calls; channel operations are already batched by the protocol (one
 * `claimWithSignature` carries many channels) and go to a different contract. This path keeps the
 * engine's money rules in a smaller form:
 *   - never pay gas for a revert: `eth_estimateGas` runs the exact call first; a revert is a
 *     `*_simulation_failed` answer and nothing is signed;
 *   - write-ahead: the signed raw transaction and its hash are stored BEFORE the broadcast, so a
 *     crash between the two loses nothing: `recoverPending` rebroadcasts or finishes it from its
 *     receipt on the next start;
 *   - one relayer key per chain, sends serialized per key (nonces from the node's pending count).
 *     Give this relayer its own key: the exact engine manages its keys' nonces itself.
 */
import { keccak256, type Address, type Hex, type LocalAccount, type PublicClient, type TransactionReceipt } from "viem";
import type { Network } from "@tollgate/core";
import { batchSettlementAbi } from "../contracts/batch-settlement-abi.ts";
import type { ChannelConfig } from "./eip712.ts";

/** The on-chain channel snapshot every /verify and /settle answer carries. */
export interface ChannelSnapshot {
  channelId: Hex;
  balance: string;
  totalClaimed: string;
  withdrawRequestedAt: number;
  refundNonce: string;
}

export type OperationKind = "deposit" | "claim" | "settle" | "refund";

export interface SentTransaction {
  hash: Hex;
  network: Network;
  kind: OperationKind;
  from: Address;
  nonce: number;
  /** The signed transaction, to rebroadcast after a crash. */
  raw: Hex;
  channelIds: Hex[];
}

export type TransactionOutcome = { status: "success" | "reverted"; blockNumber: bigint } | { status: "dropped" };

/**
 * Where the facilitator keeps channel state (the service: its ledger, PGlite or PostgreSQL).
 * Optional for the library face; without it nothing survives a restart but nothing is lost on
 * chain either (the chain is the source of truth; this is its mirror plus the write-ahead log).
 */
export interface BatchSettlementStore {
  recordSent(tx: SentTransaction): Promise<void>;
  recordFinal(hash: Hex, outcome: TransactionOutcome): Promise<void>;
  /** Sent, not yet final (for recovery at start). */
  pending(network: Network): Promise<SentTransaction[]>;
  /** Mirrors snapshots read from the chain; `config` when this facilitator has seen it. */
  saveChannels(network: Network, channels: Array<{ snapshot: ChannelSnapshot; config?: ChannelConfig; transaction?: Hex }>): Promise<void>;
}

export interface BatchChain {
  network: Network;
  chainId: number;
  client: PublicClient;
  /** Pays the gas; relays every operation. */
  relayer: LocalAccount;
  /** The x402BatchSettlement address (canonical by default). */
  contract: Address;
  store?: BatchSettlementStore;
  /** Receipt wait bound. Default 60 s. */
  receiptTimeoutMs?: number;
}

export async function readSnapshot(chain: BatchChain, channelId: Hex): Promise<ChannelSnapshot & { raw: { balance: bigint; totalClaimed: bigint; refundNonce: bigint } }> {
  const { client, contract } = chain;
  const [[balance, totalClaimed], [, initiatedAt], refundNonce] = await Promise.all([
    client.readContract({ address: contract, abi: batchSettlementAbi, functionName: "channels", args: [channelId] }),
    client.readContract({ address: contract, abi: batchSettlementAbi, functionName: "pendingWithdrawals", args: [channelId] }),
    client.readContract({ address: contract, abi: batchSettlementAbi, functionName: "refundNonce", args: [channelId] }),
  ]);
  return {
    channelId,
    balance: balance.toString(),
    totalClaimed: totalClaimed.toString(),
    withdrawRequestedAt: Number(initiatedAt),
    refundNonce: refundNonce.toString(),
    raw: { balance, totalClaimed, refundNonce },
  };
}

export function publicSnapshot(s: ChannelSnapshot): ChannelSnapshot {
  return { channelId: s.channelId, balance: s.balance, totalClaimed: s.totalClaimed, withdrawRequestedAt: s.withdrawRequestedAt, refundNonce: s.refundNonce };
}

export type SendResult =
  | { ok: true; hash: Hex; receipt: TransactionReceipt }
  | { ok: false; stage: "simulation"; message: string }
  | { ok: false; stage: "transaction"; message: string; hash?: Hex }
  /** Sent, no receipt within the bound: it may still land (the write-ahead record stays open). */
  | { ok: false; stage: "pending"; message: string; hash: Hex };

const locks = new Map<string, Promise<unknown>>();

/** Runs `fn` after every earlier call for the same key (a per-relayer FIFO; also the gas sponsor's). */
export function serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const prev = locks.get(key) ?? Promise.resolve();
  const next = prev.then(fn, fn);
  const tail = next.catch(() => undefined);
  locks.set(key, tail);
  void tail.then(() => {
    if (locks.get(key) === tail) locks.delete(key);
  });
  return next;
}

/** A short, secret-free reason from a viem error (its first line; RPC URLs stay out). */
export function shortMessage(e: unknown): string {
  const m = e && typeof e === "object" && "shortMessage" in e && typeof e.shortMessage === "string" ? e.shortMessage : e instanceof Error ? e.message : String(e);
  return m.split("\n")[0]!.replace(/https?:\/\/\S+/g, "<rpc>").slice(0, 300);
}

/**
 * Simulates, signs, records, broadcasts `data` to the settlement contract and waits for the receipt.
 * Failure before the signature: nothing was sent, nothing is owed. After: the hash is reported.
 */
export async function sendOperation(chain: BatchChain, kind: OperationKind, data: Hex, channelIds: Hex[]): Promise<SendResult> {
  const { client, relayer, contract, store } = chain;
  const sent = await serialized(`${chain.network}|${relayer.address}`, async (): Promise<SendResult | SentTransaction> => {
    let gas: bigint;
    try {
      gas = await client.estimateGas({ account: relayer.address, to: contract, data });
    } catch (e) {
      return { ok: false, stage: "simulation", message: shortMessage(e) };
    }
    let tx: SentTransaction;
    try {
      const [nonce, fees] = await Promise.all([client.getTransactionCount({ address: relayer.address, blockTag: "pending" }), client.estimateFeesPerGas()]);
      const raw = await relayer.signTransaction({
        type: "eip1559",
        chainId: chain.chainId,
        to: contract,
        data,
        nonce,
        gas: gas + gas / 5n, // headroom: storage warmth differs between simulation and inclusion
        maxFeePerGas: fees.maxFeePerGas,
        maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
      });
      tx = { hash: keccak256(raw), network: chain.network, kind, from: relayer.address, nonce, raw, channelIds };
    } catch (e) {
      return { ok: false, stage: "simulation", message: `could not prepare the transaction: ${shortMessage(e)}` };
    }
    // Written ahead: from here on a crash leaves a record that recoverPending finishes.
    await store?.recordSent(tx);
    try {
      await client.sendRawTransaction({ serializedTransaction: tx.raw });
    } catch (e) {
      const known = await client.getTransaction({ hash: tx.hash }).catch(() => undefined);
      if (!known) {
        await store?.recordFinal(tx.hash, { status: "dropped" });
        return { ok: false, stage: "transaction", message: `broadcast failed: ${shortMessage(e)}` };
      }
    }
    return tx;
  });
  if ("ok" in sent) return sent;
  return finish(chain, sent);
}

const REVERTED = "the transaction reverted on chain";

async function finish(chain: BatchChain, tx: SentTransaction): Promise<SendResult> {
  let receipt: TransactionReceipt;
  try {
    receipt = await chain.client.waitForTransactionReceipt({ hash: tx.hash, timeout: chain.receiptTimeoutMs ?? 60_000 });
  } catch (e) {
    // Still pending: the record stays open; recoverPending (or a later look) finishes it.
    return { ok: false, stage: "pending", message: `no receipt yet: ${shortMessage(e)}`, hash: tx.hash };
  }
  await chain.store?.recordFinal(tx.hash, { status: receipt.status === "success" ? "success" : "reverted", blockNumber: receipt.blockNumber });
  if (receipt.status !== "success") return { ok: false, stage: "transaction", message: REVERTED, hash: tx.hash };
  return { ok: true, hash: tx.hash, receipt };
}

/**
 * Finishes what a previous run sent: a mined transaction is recorded from its receipt; one the
 * node does not know is rebroadcast (same signed bytes: it can only land once, at its nonce); one
 * whose nonce another transaction took is recorded as dropped. Returns how many were finished.
 */
export async function recoverPending(chain: BatchChain): Promise<number> {
  if (!chain.store) return 0;
  let finished = 0;
  for (const tx of await chain.store.pending(chain.network)) {
    const receipt = await chain.client.getTransactionReceipt({ hash: tx.hash }).catch(() => undefined);
    if (receipt) {
      await chain.store.recordFinal(tx.hash, { status: receipt.status === "success" ? "success" : "reverted", blockNumber: receipt.blockNumber });
      finished++;
      continue;
    }
    const mined = await chain.client.getTransactionCount({ address: tx.from, blockTag: "latest" });
    if (mined > tx.nonce) {
      // The nonce is used. Look once more: it may be this very transaction, mined since the first look.
      const late = await chain.client.getTransactionReceipt({ hash: tx.hash }).catch(() => undefined);
      await chain.store.recordFinal(tx.hash, late ? { status: late.status === "success" ? "success" : "reverted", blockNumber: late.blockNumber } : { status: "dropped" });
      finished++;
      continue;
    }
    await chain.client.sendRawTransaction({ serializedTransaction: tx.raw }).catch(() => undefined);
    const r = await finish(chain, tx);
    // Counted once final (mined or reverted); still unmined, it stays pending for the next look.
    if (r.ok || r.message === REVERTED) finished++;
  }
  return finished;
}
