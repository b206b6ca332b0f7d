/**
 * The settlement engine's state, shared by its actions (submit, dispatch, lanes, poller, wait):
 * each action is a plain function of this context, viem-style, instead of one long closure.
 */
import { evmChainId, type Network } from "@tollgate/core";
import { createPublicClient, type Address, type Hex, type LocalAccount, type PublicClient } from "viem";
import { fastLocalAccount } from "../crypto/sign.ts";
import { rpcTransportForUrl } from "../rpc/transport.ts";
import type { SettlementResult } from "./result.ts";
import type { TransferAuthorization } from "../exact/payload.ts";
import type { EngineCall, ReplacementConfig, SettlementEngineConfig, SettlementNetworkConfig, TransactionOutcome } from "./types.ts";

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((res) => (resolve = res));
  return { promise, resolve };
}

/**
 * A submitted authorization: the message as signed (bigints), its signature and bookkeeping. A
 * Permit2 payment fills the same fields (owner, witness.to, amount, validAfter, deadline, its
 * nonce as 32 bytes) and carries its proxy call in `permit2`.
 */
export interface Item extends TransferAuthorization {
  call: EngineCall;
  signature: Hex;
  /** A Permit2 payment: the proxy call to send as it is (checked against the payment in items.ts). */
  permit2?: { to: Address; data: Hex; sender?: Address };
  /** `asset|from|nonce`, lowercase: the authorization, for merging a second submit of it. */
  key: string;
  /** The signed content: a second submit with the same key and content joins this one. */
  content: string;
  /** When it entered its batch queue (performance.now()). */
  queuedAt: number;
  /** Latest hash carrying this item (changes on a fee bump). */
  transaction?: Hex;
  /** The hash, once the node has it and onSubmitted ran (never resolved when nothing was sent). */
  sent: Deferred<Hex>;
  /** The hash of a send the node did not answer (it may be in): the caller is told "pending" at once. */
  inDoubt: Deferred<Hex>;
  final: Deferred<SettlementResult>;
}

export interface Lane {
  account: LocalAccount;
  nonce: number | undefined;
  lock: Promise<unknown>;
  /** Dispatches and unmined transactions on this lane; idle at 0. */
  inFlight: number;
  sent: number;
  /** Refused by `signerUsable` at the last look. */
  paused: boolean;
}

export interface Send {
  hash: Hex;
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
}

/** One nonce of one lane, with every hash sent for it. */
export interface Tracked {
  lane: Lane;
  nonce: number;
  items: Item[];
  /** The EIP-3009 token: only its logs prove an item settled. */
  token: Address;
  to: Address;
  data: Hex;
  gas: bigint;
  sends: Send[];
  lastSendAt: number;
  bumping: boolean;
  /** onSubmitted hooks run in order; onFinal runs after them. */
  hooks: Promise<void>;
  outcome?: TransactionOutcome;
  done: Deferred<TransactionOutcome>;
  /** The last block at which all its hashes were looked up (and found missing twice). */
  checkedBlock?: bigint;
  /** The head at which a lookup last found none of its hashes. */
  missedAt?: bigint;
  /** Its first receipt lookup (ungated, alongside eth_blockNumber) was done. */
  looked?: boolean;
  /** Signed bytes of a send the node never acknowledged: broadcast again until it knows them. */
  rebroadcast?: Hex;
}

/** Settlements of one token waiting for a lane. */
export interface Queue {
  asset: Address;
  items: Item[];
  timer?: ReturnType<typeof setTimeout>;
}

export interface Fees {
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
}

export interface NetworkState {
  network: Network;
  config: SettlementNetworkConfig;
  /** Batched JSON-RPC: the poller's many receipt lookups go out as one HTTP request. */
  client: PublicClient;
  /**
   * Unbatched, for the calls one dispatch makes one after another (simulate, nonce, send, first
   * receipt): viem's batch scheduler holds every call for a timer tick (about 1 ms in Node) to
   * collect company, and on that path there is none to collect.
   */
  direct: PublicClient;
  chainId: number | undefined;
  lanes: Lane[];
  nextLane: number;
  queues: Map<string, Queue>;
  pumpScheduled: boolean;
  /** Authorizations submitted and not final yet (see Item.key): a second submit joins or waits. */
  active: Map<string, Item>;
  tracked: Set<Tracked>;
  /** Receipt polling period: configured, or detected from the chain (see pollingIntervalOf). */
  pollMs?: number;
  pollDetect?: { at: number; value: Promise<number> };
  /** The poller has seen every block up to this one (see poll). */
  scannedBlock?: bigint;
  fees?: { at: number; value: Promise<Fees> };
  poller?: ReturnType<typeof setTimeout>;
  /** Whether the node answers eth_simulateV1 (undefined: not yet known). */
  simulateV1?: boolean;
}

/** The engine's settings, defaults applied. */
export interface EngineOptions {
  maxBatchSize: number;
  maxWaitMs: number;
  batching: boolean;
  maxGasPerSettlement: bigint;
  receiptTimeoutMs: number;
  preflight: boolean;
  replacement: ReplacementConfig | undefined;
  bumpPercent: number;
  maxFeePerGasCap: bigint | undefined;
}

export interface EngineContext {
  config: SettlementEngineConfig;
  options: EngineOptions;
  networks: Map<Network, NetworkState>;
  stats: { transactions: number; replacements: number; items: number };
  /** Dispatches running (planning, sending). */
  dispatches: Set<Promise<void>>;
  /** onFinal hooks running, with their callers still waiting. */
  finishing: Set<Promise<void>>;
  closing: boolean;
}

export function engineOptions(config: SettlementEngineConfig): EngineOptions {
  if (config.signers.length === 0) throw new TypeError("signers: at least one fee-paying key is required");
  if (config.networks.length === 0) throw new TypeError("networks: at least one network is required");
  if (config.pollingIntervalMs !== undefined && !(config.pollingIntervalMs >= 0)) throw new TypeError("pollingIntervalMs: must be a non-negative number");
  const maxBatchSize = config.maxBatchSize ?? 50;
  if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) throw new TypeError("maxBatchSize: must be a positive integer");
  const replacement = config.replacement || undefined;
  const bumpPercent = replacement?.bumpPercent ?? 20;
  if (replacement && !(bumpPercent >= 12.5)) throw new TypeError("replacement.bumpPercent: must be at least 12.5");
  return {
    maxBatchSize,
    maxWaitMs: config.maxWaitMs ?? 100,
    batching: config.batching ?? true,
    maxGasPerSettlement: config.maxGasPerSettlement ?? 250_000n,
    receiptTimeoutMs: config.receiptTimeoutMs ?? 30_000,
    preflight: config.preflight ?? true,
    replacement,
    bumpPercent,
    maxFeePerGasCap: config.maxFeePerGasCap,
  };
}

export function createNetworkStates(config: SettlementEngineConfig): Map<Network, NetworkState> {
  // Keys we hold sign through libsecp256k1 (one signature per batch, over large calldata).
  const accounts = config.signers.map((s) => (typeof s === "string" ? fastLocalAccount(s) : s));
  const networks = new Map<Network, NetworkState>();
  for (const n of config.networks) {
    if (networks.has(n.network)) throw new TypeError(`networks: ${n.network} is listed twice`);
    if (!n.client && !n.rpcUrl) throw new TypeError(`networks[${n.network}]: rpcUrl or client is required`);
    // JSON-RPC batching turns the poller's many receipt lookups into one HTTP request.
    // node:http keep-alive transport (rpc/transport.ts): viem's http() costs several times the CPU per call.
    const client = n.client ?? createPublicClient({ transport: rpcTransportForUrl(n.rpcUrl!, { batch: { batchSize: 200 }, retryCount: 2 }) });
    const direct = n.client ?? createPublicClient({ transport: rpcTransportForUrl(n.rpcUrl!, { retryCount: 2 }) });
    networks.set(n.network, {
      network: n.network,
      config: n,
      client: client as PublicClient,
      direct: direct as PublicClient,
      chainId: evmChainId(n.network),
      lanes: accounts.map((account) => ({ account, nonce: undefined, lock: Promise.resolve(), inFlight: 0, sent: 0, paused: false })),
      nextLane: 0,
      queues: new Map(),
      pumpScheduled: false,
      active: new Map(),
      tracked: new Set(),
      ...(config.pollingIntervalMs !== undefined ? { pollMs: config.pollingIntervalMs } : {}),
    });
  }
  return networks;
}

/** Background failures go to `onError`; a failing reporter must not break settlement. */
export function report(ctx: EngineContext, error: unknown, context: string): void {
  try {
    ctx.config.onError?.(error, context);
  } catch {
    // ignored on purpose
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

export function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
