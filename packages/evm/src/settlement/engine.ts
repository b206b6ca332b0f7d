/**
 * The settlement engine: what turns verified EIP-3009 authorizations into mined transactions
 * quickly and safely under load. It plugs into the exact facilitator's `submit` hook.
 *
 * - Each (network, signer) is a lane with a local nonce counter, initialised from the pending
 *   transaction count. Signing and sending happen under the lane's lock, so nonces are handed out
 *   in order and never skipped; a nonce error resyncs from the node and retries once.
 * - Batching is group commit (Nagle): a settlement that finds a lane idle goes out at once, alone.
 *   While every lane has a transaction being planned, sent or mined, arrivals for the same
 *   (network, token) queue up and leave together as one `BatchSettler.settle` call the moment a
 *   lane frees up. A full batch, or one whose oldest item has waited `maxWaitMs`, does not wait
 *   for a free lane: it goes to the least busy one (its next nonce). So low load pays no waiting
 *   and high load gets large batches; per-item results come back from the receipt's logs.
 * - Without batching, work goes to the least busy lane, so several fee-paying keys send in parallel.
 * - A poller per network follows every unmined nonce, fee-bumps stuck ones (same nonce, all hashes
 *   followed) and reports each nonce exactly once, from whichever hash landed. Its period comes
 *   from the chain unless configured: fast on a local dev chain, a quarter block otherwise.
 * - onSubmitted completes before a caller sees the hash; onFinal completes before the caller (or
 *   a waitFor) sees the final result, so the hook can tell which results somebody still waits for.
 */
import { evmChainId, Reason, type Network } from "@tollgate/core";
import {
  createPublicClient,
  decodeFunctionResult,
  encodeFunctionData,
  isAddress,
  isHex,
  parseSignature,
  size,
  formatTransactionReceipt,
  type Address,
  type Hex,
  type LocalAccount,
  type PublicClient,
  type TransactionReceipt,
} from "viem";
import { fastLocalAccount, keccak256Hex } from "../crypto/sign.ts";
import { batchSettlerAbi, eip3009Abi } from "../contracts/abi.ts";
import { rpcTransportForUrl } from "../rpc/transport.ts";
import { itemStatus, outcomeFromReceipt, reasonFromRevertData, revertDataOf, shortMessage } from "./receipt.ts";
import type {
  EngineStats,
  ItemResult,
  SettlementCall,
  SettlementEngine,
  SettlementEngineConfig,
  SettlementNetworkConfig,
  SubmitResult,
  TransactionOutcome,
  WaitForOptions,
} from "./types.ts";

/** Thrown by `submit` when nothing was sent for the call; `reason` is a spec-style reason code. */
export class SettlementError extends Error {
  override readonly name = "SettlementError";
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

const MAX_UINT256 = (1n << 256n) - 1n;

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {}); // observed by whoever awaits; never an unhandled rejection
  return { promise, resolve, reject };
}

interface Item {
  call: SettlementCall;
  from: Address;
  to: Address;
  value: bigint;
  validAfter: bigint;
  validBefore: bigint;
  nonce: Hex;
  signature: Hex;
  /** `from|nonce`, lowercase: one authorization is settled at most once at a time. */
  key: string;
  /** When it entered its batch queue (performance.now()). */
  queuedAt: number;
  /** Latest hash carrying this item (changes on a fee bump). */
  transaction?: Hex;
  sent: Deferred<Hex>;
  final: Deferred<SubmitResult>;
}

interface Lane {
  account: LocalAccount;
  nonce: number | undefined;
  lock: Promise<unknown>;
  /** Dispatches and unmined transactions on this lane; idle at 0. */
  inFlight: number;
  sent: number;
  /** Refused by `signerUsable` at the last look. */
  paused: boolean;
}

interface Send {
  hash: Hex;
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
}

/** One nonce of one lane, with every hash sent for it. */
interface Tracked {
  lane: Lane;
  nonce: number;
  items: Item[];
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
}

/** Settlements of one token waiting for a lane. */
interface Queue {
  asset: Address;
  items: Item[];
  timer?: ReturnType<typeof setTimeout>;
}

interface NetworkState {
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
  /** Authorizations queued or being sent (see Item.key). */
  active: Set<string>;
  tracked: Set<Tracked>;
  /** Receipt polling period: configured, or detected from the chain (see pollingIntervalOf). */
  pollMs?: number;
  pollDetect?: { at: number; value: Promise<number> };
  /** The poller has seen every block up to this one (see poll). */
  scannedBlock?: bigint;
  fees?: { at: number; value: Promise<{ maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }> };
  poller?: ReturnType<typeof setTimeout>;
  /** Whether the node answers eth_simulateV1 (undefined: not yet known). */
  simulateV1?: boolean;
}

export function createSettlementEngine(config: SettlementEngineConfig): SettlementEngine {
  if (config.signers.length === 0) throw new TypeError("signers: at least one fee-paying key is required");
  if (config.networks.length === 0) throw new TypeError("networks: at least one network is required");
  const maxBatchSize = config.maxBatchSize ?? 50;
  const maxWaitMs = config.maxWaitMs ?? 100;
  const batching = config.batching ?? true;
  const maxGasPerSettlement = config.maxGasPerSettlement ?? 250_000n;
  const receiptTimeoutMs = config.receiptTimeoutMs ?? 30_000;
  if (config.pollingIntervalMs !== undefined && !(config.pollingIntervalMs >= 0)) throw new TypeError("pollingIntervalMs: must be a non-negative number");
  const preflight = config.preflight ?? true;
  const replacement = config.replacement || undefined;
  const bumpPercent = replacement?.bumpPercent ?? 20;
  if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) throw new TypeError("maxBatchSize: must be a positive integer");
  if (replacement && !(bumpPercent >= 12.5)) throw new TypeError("replacement.bumpPercent: must be at least 12.5");
  const cap = config.maxFeePerGasCap;

  // Keys we hold sign through libsecp256k1 (one signature per batch, over large calldata).
  const accounts = config.signers.map((s) => (typeof s === "string" ? fastLocalAccount(s) : s));
  const networks = new Map<Network, NetworkState>();
  for (const n of config.networks) {
    if (networks.has(n.network)) throw new TypeError(`networks: ${n.network} is listed twice`);
    const client =
      n.client ??
      (n.rpcUrl
        ? // JSON-RPC batching turns the poller's many receipt lookups into one HTTP request.
          // node:http keep-alive transport (rpc/transport.ts): viem's http() costs several times the CPU per call.
          createPublicClient({ transport: rpcTransportForUrl(n.rpcUrl, { batch: { batchSize: 200 }, retryCount: 2 }) })
        : undefined);
    if (!client) throw new TypeError(`networks[${n.network}]: rpcUrl or client is required`);
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
      active: new Set(),
      tracked: new Set(),
      ...(config.pollingIntervalMs !== undefined ? { pollMs: config.pollingIntervalMs } : {}),
    });
  }

  const stats = { transactions: 0, replacements: 0, items: 0 };
  const dispatches = new Set<Promise<void>>();
  /** onFinal hooks running, with their callers still waiting. */
  const finishing = new Set<Promise<void>>();
  let closing = false;

  function report(error: unknown, context: string): void {
    try {
      config.onError?.(error, context);
    } catch {
      // A failing error reporter must not break settlement.
    }
  }

  // ---------------------------------------------------------------- submit

  async function submit(call: SettlementCall): Promise<SubmitResult> {
    if (closing) throw new SettlementError(Reason.facilitatorNotReady, "the settlement engine is closing");
    const net = networks.get(call?.network);
    if (!net) throw new SettlementError(Reason.invalidNetwork, `network: ${JSON.stringify(call?.network)} is not served`);
    const item = toItem(call);
    const lanes = usableLanes(net);
    if (lanes.length === 0) throw noSigner(net);
    if (net.active.has(item.key)) {
      throw new SettlementError(Reason.evmNonceUsed, "authorization.nonce: this authorization is already being settled");
    }
    net.active.add(item.key);
    // Held until it is on the wire (or refused): after that, the chain itself refuses a second copy.
    const release = () => void net.active.delete(item.key);
    item.sent.promise.then(release, release);
    item.final.promise.then(release, release);
    stats.items++;
    if (batches(net)) {
      const key = item.call.asset.toLowerCase();
      let queue = net.queues.get(key);
      if (!queue) net.queues.set(key, (queue = { asset: item.call.asset, items: [] }));
      item.queuedAt = performance.now();
      queue.items.push(item);
      // Not synchronously: settlements arriving in the same turn of the event loop share a batch.
      schedulePump(net);
    } else {
      startDispatch(net, pickLane(net, lanes), item.call.asset, [item]);
    }
    return awaitResult(item);
  }

  function batches(net: NetworkState): boolean {
    return batching && net.config.batchSettler !== undefined && maxBatchSize > 1;
  }

  async function awaitResult(item: Item): Promise<SubmitResult> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), receiptTimeoutMs)));
    try {
      const first = await Promise.race([item.final.promise, timedOut]);
      if (first !== "timeout") return first;
      // Past the bound: answer with the hash once there is one (sending itself is not bounded here).
      const hashOrFinal = await Promise.race([item.sent.promise, item.final.promise]);
      if (typeof hashOrFinal !== "string") return hashOrFinal;
      return { transaction: item.transaction ?? hashOrFinal, status: "pending" };
    } finally {
      clearTimeout(timer);
    }
  }

  function schedulePump(net: NetworkState): void {
    if (net.pumpScheduled || net.queues.size === 0) return;
    net.pumpScheduled = true;
    setImmediate(() => pump(net));
  }

  /**
   * Hands queued settlements to lanes: everything (up to maxBatchSize) to an idle lane; to a busy
   * lane only a full batch, or one whose oldest item is due (maxWaitMs) or when closing.
   */
  function pump(net: NetworkState): void {
    net.pumpScheduled = false;
    const now = performance.now();
    const lanes = usableLanes(net);
    for (const [key, queue] of net.queues) {
      clearTimeout(queue.timer);
      queue.timer = undefined;
      if (lanes.length === 0) {
        // Every signer was withdrawn while these waited: nothing was sent for them.
        net.queues.delete(key);
        const err = noSigner(net);
        for (const i of queue.items) i.final.reject(err);
        continue;
      }
      while (queue.items.length > 0) {
        const idle = idleLane(net, lanes);
        const full = queue.items.length >= maxBatchSize;
        const due = closing || now - queue.items[0]!.queuedAt >= maxWaitMs;
        if (!idle && !full && !due) break;
        startDispatch(net, idle ?? pickLane(net, lanes), queue.asset, queue.items.splice(0, maxBatchSize));
      }
      if (queue.items.length === 0) net.queues.delete(key);
      else queue.timer = setTimeout(() => pump(net), Math.max(0, queue.items[0]!.queuedAt + maxWaitMs - now));
    }
  }

  function startDispatch(net: NetworkState, lane: Lane, asset: Address, items: Item[]): void {
    // Counted busy right away, so the next pick this turn sees it.
    lane.inFlight++;
    const p = dispatch(net, lane, asset, items).catch((e: unknown) => {
      const err = e instanceof SettlementError ? e : new SettlementError(Reason.unexpectedSettleError, `settlement failed: ${shortMessage(e)}`);
      for (const i of items) i.final.reject(err);
    });
    dispatches.add(p);
    void p.finally(() => dispatches.delete(p));
  }

  function laneFreed(net: NetworkState, lane: Lane): void {
    lane.inFlight--;
    if (lane.inFlight === 0) schedulePump(net);
  }

  // ---------------------------------------------------------------- dispatch

  async function dispatch(net: NetworkState, lane: Lane, asset: Address, items: Item[]): Promise<void> {
    let handedOver = false;
    try {
      // Fees (cached per second) are read while the simulation runs, not after it.
      const feesRead = currentFees(net);
      feesRead.catch(() => {});
      const { live, to, data, gasUsed } = await plan(net, lane, asset, items);
      if (live.length === 0) return;
      const gasCap = maxGasPerSettlement * BigInt(live.length);
      if (gasUsed > gasCap) {
        throw new SettlementError(Reason.unexpectedSettleError, `estimated gas ${gasUsed} exceeds the cap of ${gasCap} for ${live.length} settlement(s)`);
      }
      // Headroom over the simulated use: refunds are paid only at the end, and with try/catch per
      // item a tight limit would starve the last items instead of reverting.
      const gas = min((gasUsed * 13n) / 10n + 10_000n, gasCap);
      const fees = await feesRead;
      const sent = await sendNew(net, lane, { to, data, gas, ...fees });
      const t: Tracked = {
        lane,
        nonce: sent.nonce,
        items: live,
        to,
        data,
        gas,
        sends: [{ hash: sent.hash, ...fees }],
        lastSendAt: Date.now(),
        bumping: false,
        hooks: Promise.resolve(),
        done: deferred(),
      };
      handedOver = true;
      net.tracked.add(t);
      stats.transactions++;
      for (const i of live) i.transaction = sent.hash;
      const hook = runSubmittedHook(net, t, t.sends[0]!, undefined);
      // Callers see the hash only once the ledger has it.
      void hook.then(() => {
        for (const i of live) i.sent.resolve(sent.hash);
      });
      // On an instantly mining chain the receipt is there as soon as the node accepted the
      // transaction: ask for it right away instead of at the poller's first tick. The poller
      // still follows it (and takes over if this lookup finds nothing or fails); marked looked up,
      // its first tick reads the block number before looking again, by when this one has answered.
      t.looked = true;
      void firstReceipt(net, [sent.hash], net.direct).then(
        (receipt) => receipt && finalize(net, t, receipt),
        () => {},
      );
      ensurePoller(net);
    } finally {
      if (!handedOver) laneFreed(net, lane);
    }
  }

  function runSubmittedHook(net: NetworkState, t: Tracked, send: Send, replaces: Hex | undefined): Promise<void> {
    const run = async () => {
      try {
        await config.onSubmitted?.({
          items: t.items.map((i) => i.call),
          transaction: send.hash,
          signer: t.lane.account.address,
          nonce: t.nonce,
          network: net.network,
          maxFeePerGas: send.maxFeePerGas,
          maxPriorityFeePerGas: send.maxPriorityFeePerGas,
          ...(replaces ? { replaces } : {}),
        });
      } catch (e) {
        report(e, "onSubmitted");
      }
    };
    t.hooks = t.hooks.then(run);
    return t.hooks;
  }

  /**
   * Simulates the settlement: gas use, and for a batch which items would fail. With preflight,
   * failing items are rejected now (with the token's reason, no gas spent) and the rest re-simulated.
   */
  async function plan(
    net: NetworkState,
    lane: Lane,
    asset: Address,
    items: Item[],
  ): Promise<{ live: Item[]; to: Address; data: Hex; gasUsed: bigint }> {
    let live = items;
    for (;;) {
      const { to, data } = encodeSettlement(net, asset, live);
      const sim = await simulate(net, lane.account.address, to, data, true);
      const batch = to !== asset;
      if (!sim.success) {
        const reason = batch ? Reason.evmSimulationFailed : reasonFromRevertData(sim.returnData);
        throw new SettlementError(
          reason === Reason.invalidTransactionState ? Reason.evmSimulationFailed : reason,
          `settlement would revert${sim.message ? `: ${sim.message}` : ""}`,
        );
      }
      if (!batch || !preflight) return { live, to, data, gasUsed: sim.gasUsed };
      let ok: readonly boolean[];
      try {
        ok = decodeFunctionResult({ abi: batchSettlerAbi, functionName: "settle", data: sim.returnData });
      } catch {
        throw new SettlementError(Reason.evmSimulationFailed, "the batch settler returned an unexpected result");
      }
      if (live.every((_, i) => ok[i])) return { live, to, data, gasUsed: sim.gasUsed };
      const failing = live.filter((_, i) => !ok[i]);
      live = live.filter((_, i) => ok[i]);
      await Promise.all(
        failing.map(async (item) => {
          // Ask the token directly for the reason (only for the rare failing item).
          const direct = await simulate(net, lane.account.address, asset, encodeDirect(item), false).catch(() => undefined);
          const r = direct && !direct.success ? reasonFromRevertData(direct.returnData) : Reason.invalidTransactionState;
          const reason = r === Reason.invalidTransactionState ? Reason.evmSimulationFailed : r;
          item.final.reject(new SettlementError(reason, "authorization would fail on chain; it was left out of the batch"));
        }),
      );
      if (live.length === 0) return { live, to, data, gasUsed: 0n };
    }
  }

  /**
   * One execution at full gas: `eth_simulateV1` gives result and gas used together; nodes without
   * it get `eth_call` plus `eth_estimateGas` (a binary search, several executions).
   */
  async function simulate(
    net: NetworkState,
    from: Address,
    to: Address,
    data: Hex,
    needGas: boolean,
  ): Promise<{ success: true; returnData: Hex; gasUsed: bigint } | { success: false; returnData: Hex | undefined; message?: string }> {
    if (net.simulateV1 !== false) {
      try {
        const blocks = (await net.direct.request({
          method: "eth_simulateV1",
          params: [{ blockStateCalls: [{ calls: [{ from, to, data }] }], validation: false }, "latest"],
        } as never)) as { calls?: { status?: Hex; returnData?: Hex; gasUsed?: Hex; error?: { message?: string; data?: Hex } }[] }[];
        const call = blocks?.[0]?.calls?.[0];
        if (call && typeof call.status === "string" && typeof call.gasUsed === "string") {
          net.simulateV1 = true;
          if (call.status === "0x1") return { success: true, returnData: call.returnData ?? "0x", gasUsed: BigInt(call.gasUsed) };
          return { success: false, returnData: call.error?.data ?? call.returnData, message: call.error?.message };
        }
        net.simulateV1 = false;
      } catch (e) {
        // Unsupported method: remember and fall back. Any other failure: fall back this once.
        if (net.simulateV1 === undefined || /not (found|supported|available)|unsupported|does not exist/i.test(errorText(e))) net.simulateV1 = false;
      }
    }
    let returnData: Hex;
    try {
      returnData = (await net.direct.call({ account: from, to, data })).data ?? "0x";
    } catch (e) {
      const revert = revertDataOf(e);
      if (revert !== undefined || /revert/i.test(errorText(e))) return { success: false, returnData: revert, message: shortMessage(e) };
      throw e;
    }
    if (!needGas) return { success: true, returnData, gasUsed: 0n };
    try {
      return { success: true, returnData, gasUsed: await net.direct.estimateGas({ account: from, to, data }) };
    } catch (e) {
      return { success: false, returnData: revertDataOf(e), message: shortMessage(e) };
    }
  }

  function encodeDirect(item: Item): Hex {
    const args = [item.from, item.to, item.value, item.validAfter, item.validBefore, item.nonce] as const;
    if (size(item.signature) === 65) {
      // The v/r/s overload is the one every EIP-3009 token has (older USDC lacks the bytes one).
      const { r, s, v, yParity } = parseSignature(item.signature);
      const vv = Number(v ?? BigInt(yParity + 27));
      return encodeFunctionData({ abi: eip3009Abi, functionName: "transferWithAuthorization", args: [...args, vv, r, s] });
    }
    return encodeFunctionData({ abi: eip3009Abi, functionName: "transferWithAuthorization", args: [...args, item.signature] });
  }

  function encodeSettlement(net: NetworkState, asset: Address, items: Item[]): { to: Address; data: Hex } {
    const settler = net.config.batchSettler;
    if (items.length === 1 || !settler) {
      const only = items[0]!;
      return { to: asset, data: encodeDirect(only) };
    }
    const data = encodeFunctionData({
      abi: batchSettlerAbi,
      functionName: "settle",
      args: [
        asset,
        items.map((i) => ({
          from: i.from,
          to: i.to,
          value: i.value,
          validAfter: i.validAfter,
          validBefore: i.validBefore,
          nonce: i.nonce,
          signature: i.signature,
        })),
      ],
    });
    return { to: settler, data };
  }

  // ---------------------------------------------------------------- lanes, nonces, fees

  /**
   * The lanes that may take new work (config.signerUsable). A lane usable again after a pause
   * re-reads its nonce from the node: someone else may have used the key meanwhile.
   */
  function usableLanes(net: NetworkState): Lane[] {
    const check = config.signerUsable;
    if (!check) return net.lanes;
    const usable: Lane[] = [];
    for (const lane of net.lanes) {
      let ok = false;
      try {
        ok = check(lane.account.address, net.network);
      } catch (e) {
        report(e, "signerUsable");
      }
      if (!ok) {
        lane.paused = true;
        continue;
      }
      if (lane.paused) {
        lane.paused = false;
        void withLock(lane, async () => {
          lane.nonce = undefined;
        });
      }
      usable.push(lane);
    }
    return usable;
  }

  function noSigner(net: NetworkState): SettlementError {
    return new SettlementError(Reason.facilitatorNotReady, `no fee-paying signer is usable on ${net.network}; nothing was sent`);
  }

  /** An idle lane (nothing being sent or mined), round-robin so all signers take turns. */
  function idleLane(net: NetworkState, lanes: readonly Lane[]): Lane | undefined {
    const n = lanes.length;
    for (let k = 0; k < n; k++) {
      const i = (net.nextLane + k) % n;
      const lane = lanes[i]!;
      if (lane.inFlight === 0) {
        net.nextLane = (i + 1) % n;
        return lane;
      }
    }
    return undefined;
  }

  function pickLane(net: NetworkState, lanes: readonly Lane[]): Lane {
    // Least busy; ties go round-robin so idle signers all get used.
    let best: Lane | undefined;
    const n = lanes.length;
    for (let k = 0; k < n; k++) {
      const lane = lanes[(net.nextLane + k) % n]!;
      if (!best || lane.inFlight < best.inFlight) best = lane;
    }
    net.nextLane = (net.nextLane + 1) % n;
    return best!;
  }

  function withLock<T>(lane: Lane, fn: () => Promise<T>): Promise<T> {
    const run = lane.lock.then(fn, fn);
    lane.lock = run.catch(() => {});
    return run;
  }

  async function chainIdOf(net: NetworkState): Promise<number> {
    net.chainId ??= await net.client.getChainId();
    return net.chainId;
  }

  async function pendingNonce(net: NetworkState, lane: Lane): Promise<number> {
    return net.direct.getTransactionCount({ address: lane.account.address, blockTag: "pending" });
  }

  interface TxFields {
    to: Address;
    data: Hex;
    gas: bigint;
    maxFeePerGas: bigint;
    maxPriorityFeePerGas: bigint;
  }

  async function signAndSend(net: NetworkState, lane: Lane, tx: TxFields, nonce: number): Promise<Hex> {
    const serialized = await lane.account.signTransaction!({
      type: "eip1559",
      chainId: await chainIdOf(net),
      nonce,
      to: tx.to,
      data: tx.data,
      gas: tx.gas,
      maxFeePerGas: tx.maxFeePerGas,
      maxPriorityFeePerGas: tx.maxPriorityFeePerGas,
      value: 0n,
    });
    const hash = keccak256Hex(serialized);
    try {
      await net.direct.sendRawTransaction({ serializedTransaction: serialized });
    } catch (e) {
      // The node already has exactly this transaction: it was sent.
      if (/already known|known transaction|already imported/i.test(errorText(e))) return hash;
      throw e;
    }
    lane.sent++;
    return hash;
  }

  /** Takes the lane's next nonce and sends; on a nonce error resyncs from the node and retries once. */
  function sendNew(net: NetworkState, lane: Lane, tx: TxFields): Promise<{ hash: Hex; nonce: number }> {
    return withLock(lane, async () => {
      lane.nonce ??= await pendingNonce(net, lane);
      for (let attempt = 0; ; attempt++) {
        const nonce = lane.nonce;
        try {
          const hash = await signAndSend(net, lane, tx, nonce);
          lane.nonce = nonce + 1;
          return { hash, nonce };
        } catch (e) {
          // Whatever happened, the node's view is the truth for the next nonce.
          lane.nonce = undefined;
          if (attempt === 0 && isNonceError(e)) {
            lane.nonce = await pendingNonce(net, lane);
            continue;
          }
          throw new SettlementError(Reason.unexpectedSettleError, `sending the settlement failed: ${shortMessage(e)}`);
        }
      }
    });
  }

  async function currentFees(net: NetworkState): Promise<{ maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }> {
    const now = Date.now();
    // One fee lookup per second and network is plenty; concurrent callers share it.
    if (!net.fees || now - net.fees.at > 1_000) {
      const value = net.direct.estimateFeesPerGas().then((f) => capFees(f.maxFeePerGas, f.maxPriorityFeePerGas));
      net.fees = { at: now, value };
      value.catch(() => {
        if (net.fees?.value === value) net.fees = undefined;
      });
    }
    return net.fees.value;
  }

  function capFees(maxFeePerGas: bigint, maxPriorityFeePerGas: bigint): { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint } {
    const maxFee = cap !== undefined && maxFeePerGas > cap ? cap : maxFeePerGas;
    return { maxFeePerGas: maxFee, maxPriorityFeePerGas: min(maxPriorityFeePerGas, maxFee) };
  }

  // ---------------------------------------------------------------- tracking, replacement

  function ensurePoller(net: NetworkState): void {
    if (net.poller || net.tracked.size === 0) return;
    void pollingIntervalOf(net); // detect while the first transaction is on its way
    net.poller = setTimeout(() => void poll(net), 0);
  }

  /**
   * The configured period, else one fitting the chain: 10 ms on a local dev chain (chain id
   * 31337/1337, or an anvil/hardhat/ganache node: blocks come at once), otherwise a quarter of
   * the block time seen over the last 20 blocks, within [50 ms, 1 s]. 100 ms while unknown.
   */
  async function pollingIntervalOf(net: NetworkState): Promise<number> {
    if (net.pollMs !== undefined) return net.pollMs;
    const now = Date.now();
    // A failed detection is retried a minute later, not on every tick.
    if (!net.pollDetect || now - net.pollDetect.at > 60_000) {
      const value = chainIdOf(net)
        .then((chainId) => detectPollingInterval(net.client, chainId))
        .then((ms) => (net.pollMs = ms));
      net.pollDetect = { at: now, value: value.catch(() => 100) };
    }
    return net.pollDetect.value;
  }


  async function poll(net: NetworkState): Promise<void> {
    try {
      // Everything finished before this tick (e.g. by the lookup right after sending).
      if (net.tracked.size === 0) return;
      // A transaction not looked up yet is looked up together with eth_blockNumber (one JSON-RPC
      // batch, one round trip): on an instantly mining chain its receipt is already there.
      const fresh = new Set([...net.tracked].filter((t) => !t.looked));
      const early = [...fresh].map(async (t) => {
        const receipt = await firstReceipt(net, t.sends.map((s) => s.hash));
        t.looked = true;
        if (receipt) finalize(net, t, receipt);
      });
      // Receipts only change with a new block; bumps are due on time regardless.
      const [block] = await Promise.all([net.client.getBlockNumber({ cacheTime: 0 }), ...early]);
      // With a few new blocks, read their transaction hashes (one cheap call per block, batched)
      // and look up only our receipts among them, instead of every tracked one on every block.
      const from = net.scannedBlock;
      let landed: Set<string> | undefined;
      if (from !== undefined && block > from && block - from <= 16n) {
        const blocks = await Promise.all(
          Array.from({ length: Number(block - from) }, (_, k) => net.client.getBlock({ blockNumber: from + 1n + BigInt(k) })),
        );
        landed = new Set(blocks.flatMap((b) => b.transactions.map((h) => h.toLowerCase())));
      }
      await Promise.all(
        [...net.tracked].map(async (t) => {
          // Not gated for the fresh ones: their lookup may have run before `block` was mined.
          if (t.checkedBlock !== block && !fresh.has(t)) {
            // The scan covers it only if it was looked up at or after the scan's first block.
            const covered = landed !== undefined && from !== undefined && t.checkedBlock !== undefined && t.checkedBlock >= from;
            if (covered && !t.sends.some((x) => landed!.has(x.hash.toLowerCase()))) {
              t.checkedBlock = block;
            } else {
              // Issued together: the client sends them as one JSON-RPC batch.
              const receipt = await firstReceipt(net, t.sends.map((x) => x.hash));
              if (receipt) return finalize(net, t, receipt);
              // Only a completed lookup counts as checked, so an RPC error is retried next tick. And
              // a miss counts only the second time at the same head: a node can report a new block
              // before its receipts are readable (anvil under load did; so can a load-balanced RPC),
              // and a block counted as checked too early is never looked at again on a chain that
              // then goes quiet.
              if (t.missedAt === block) t.checkedBlock = block;
              else t.missedAt = block;
            }
          }
          if (replacement && !t.bumping && Date.now() - t.lastSendAt >= replacement.bumpAfterMs) await bump(net, t);
        }),
      );
      // Only after every lookup succeeded: a failed tick is scanned again.
      net.scannedBlock = block;
    } catch (e) {
      report(e, "poll");
    } finally {
      net.poller = undefined;
      const interval = await pollingIntervalOf(net);
      if (net.tracked.size > 0 && !net.poller) net.poller = setTimeout(() => void poll(net), interval);
    }
  }

  async function firstReceipt(net: NetworkState, hashes: readonly Hex[], client: PublicClient = net.client): Promise<TransactionReceipt | undefined> {
    const receipts = await Promise.all(
      hashes.map(async (hash) => {
        // Not deduplicated (viem's getTransactionReceipt is): a lookup already in flight started
        // before this tick read the head, and its "not found" says nothing about that head.
        const raw = await client.request({ method: "eth_getTransactionReceipt", params: [hash] }, { dedupe: false });
        return raw ? formatTransactionReceipt(raw) : undefined;
      }),
    );
    return receipts.find((r) => r !== undefined);
  }

  /** Frees the lane at once; runs onFinal, then answers the waiting callers. Never awaited by the poller. */
  function finalize(net: NetworkState, t: Tracked, receipt: TransactionReceipt): void {
    if (t.outcome) return;
    const outcome = outcomeFromReceipt(receipt);
    t.outcome = outcome;
    net.tracked.delete(t);
    // A replaced nonce leaves the lane's counter right (the nonce was used either way).
    laneFreed(net, t.lane);
    const results: ItemResult[] = t.items.map((i) => {
      const s = itemStatus(outcome, i.from, i.nonce);
      return { call: i.call, status: s.status, ...(s.status === "reverted" ? { reason: s.reason } : {}) };
    });
    for (const i of t.items) i.transaction = receipt.transactionHash;
    const done = t.hooks
      .then(async () => {
        try {
          await config.onFinal?.({
            items: results,
            transaction: receipt.transactionHash,
            status: receipt.status,
            network: net.network,
            blockNumber: receipt.blockNumber,
            gasUsed: receipt.gasUsed,
            effectiveGasPrice: receipt.effectiveGasPrice,
          });
        } catch (e) {
          report(e, "onFinal");
        }
      })
      .then(() => {
        // Only now: whoever waits sees a result the hook has already recorded.
        t.items.forEach((i, k) => {
          const r = results[k]!;
          i.final.resolve({ transaction: receipt.transactionHash, status: r.status, ...(r.reason ? { reason: r.reason } : {}) });
        });
        t.done.resolve(outcome);
      });
    t.hooks = done;
    finishing.add(done);
    void done.finally(() => finishing.delete(done));
  }

  async function bump(net: NetworkState, t: Tracked): Promise<void> {
    const last = t.sends[t.sends.length - 1]!;
    t.bumping = true;
    try {
      const pct = BigInt(Math.ceil(bumpPercent * 100));
      const raise = (x: bigint) => (x * (10_000n + pct) + 9_999n) / 10_000n;
      const fresh = await currentFees(net);
      let maxFeePerGas = max(raise(last.maxFeePerGas), fresh.maxFeePerGas);
      let maxPriorityFeePerGas = max(raise(last.maxPriorityFeePerGas), fresh.maxPriorityFeePerGas);
      ({ maxFeePerGas, maxPriorityFeePerGas } = capFees(maxFeePerGas, maxPriorityFeePerGas));
      // Nodes refuse a replacement that raises either fee by less than 12.5% (geth: 10%).
      const enough = (next: bigint, prev: bigint) => next * 8n >= prev * 9n;
      if (!enough(maxFeePerGas, last.maxFeePerGas) || !enough(maxPriorityFeePerGas, last.maxPriorityFeePerGas)) {
        report(new Error(`nonce ${t.nonce} of ${t.lane.account.address} is stuck at the fee cap`), "replacement");
        return;
      }
      if (t.outcome) return;
      const hash = await signAndSend(net, t.lane, { to: t.to, data: t.data, gas: t.gas, maxFeePerGas, maxPriorityFeePerGas }, t.nonce);
      const send = { hash, maxFeePerGas, maxPriorityFeePerGas };
      t.sends.push(send);
      stats.replacements++;
      for (const i of t.items) i.transaction = hash;
      void runSubmittedHook(net, t, send, last.hash);
    } catch (e) {
      // "nonce too low": one of our hashes for this nonce was mined; the next poll finds it.
      if (!isNonceError(e)) report(e, "replacement");
    } finally {
      t.lastSendAt = Date.now();
      t.bumping = false;
    }
  }

  // ---------------------------------------------------------------- waitFor / reconcile

  function networkFor(options: { network?: Network } | undefined): NetworkState {
    if (options?.network) {
      const net = networks.get(options.network);
      if (!net) throw new SettlementError(Reason.invalidNetwork, `network: ${JSON.stringify(options.network)} is not served`);
      return net;
    }
    if (networks.size === 1) return [...networks.values()][0]!;
    throw new SettlementError(Reason.invalidNetwork, "network: required when the engine serves several networks");
  }

  async function waitFor(
    transaction: Hex | readonly Hex[],
    options: WaitForOptions & { network?: Network } = {},
  ): Promise<TransactionOutcome> {
    const hashes = (typeof transaction === "string" ? [transaction] : [...transaction]).map((h) => h.toLowerCase() as Hex);
    if (hashes.length === 0 || !hashes.every((h) => isHex(h) && h.length === 66)) {
      throw new SettlementError(Reason.invalidPayload, "transaction: expected 32-byte 0x-hex transaction hash(es)");
    }
    const net = networkFor(options);
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    const pending = (): TransactionOutcome => ({ transaction: hashes[hashes.length - 1]!, status: "pending", items: [] });
    const shape = (o: TransactionOutcome): TransactionOutcome =>
      options.item ? { ...o, ...itemStatus(o, options.item.from, options.item.nonce) } : o;

    // Ours and still followed: share the poller's result (it also knows about replacements).
    const tracked = [...net.tracked].find((t) => t.sends.some((s) => hashes.includes(s.hash.toLowerCase() as Hex)));
    if (tracked) {
      if (deadline === Infinity) return shape(await tracked.done.promise);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const r = await Promise.race([
        tracked.done.promise,
        new Promise<undefined>((res) => (timer = setTimeout(() => res(undefined), Math.max(0, deadline - Date.now())))),
      ]);
      clearTimeout(timer);
      return r ? shape(r) : pending();
    }
    for (;;) {
      const receipt = await firstReceipt(net, hashes);
      if (receipt) return shape(outcomeFromReceipt(receipt));
      if (Date.now() >= deadline) return pending();
      await sleep(Math.min(await pollingIntervalOf(net), Math.max(0, deadline - Date.now())));
    }
  }

  function reconcile(
    transaction: Hex | readonly Hex[],
    options: Omit<WaitForOptions, "timeoutMs"> & { network?: Network } = {},
  ): Promise<TransactionOutcome> {
    return waitFor(transaction, { ...options, timeoutMs: 0 });
  }

  // ---------------------------------------------------------------- close, stats

  async function close(options: { timeoutMs?: number } = {}): Promise<void> {
    closing = true;
    // Closing makes every queued item due: all of it goes out now.
    for (const net of networks.values()) pump(net);
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    for (;;) {
      const open = [...networks.values()].some((n) => n.tracked.size > 0 || n.queues.size > 0);
      if (dispatches.size === 0 && finishing.size === 0 && !open) break;
      if (Date.now() >= deadline) break;
      await sleep(10);
    }
    for (const net of networks.values()) {
      clearTimeout(net.poller);
      net.poller = undefined;
      // Let hooks of finished work complete.
      await Promise.all([...net.tracked].map((t) => t.hooks));
      net.tracked.clear();
    }
  }

  function engineStats(): EngineStats {
    let queued = 0;
    for (const net of networks.values()) for (const q of net.queues.values()) queued += q.items.length;
    return {
      ...stats,
      queued,
      signers: [...networks.values()].flatMap((net) =>
        net.lanes.map((l) => ({ network: net.network, address: l.account.address, sent: l.sent, inFlight: l.inFlight })),
      ),
    };
  }

  return { submit, waitFor, reconcile, stats: engineStats, close };
}

// ---------------------------------------------------------------- chain

/**
 * A receipt polling period that fits the chain behind `client`: 10 ms on a local dev chain (chain
 * id 31337/1337, or an anvil/hardhat/ganache node: blocks come as soon as a transaction does),
 * otherwise a quarter of the mean block time over the last 20 blocks, within [50 ms, 1 s].
 */
export async function detectPollingInterval(client: PublicClient, chainId?: number): Promise<number> {
  const id = chainId ?? (await client.getChainId());
  if (id === 31337 || id === 1337) return 10;
  const version = await client.request({ method: "web3_clientVersion" }, { retryCount: 0 }).catch(() => "");
  if (typeof version === "string" && /anvil|hardhat|ganache/i.test(version)) return 10;
  const latest = await client.getBlock({ blockTag: "latest" });
  const span = latest.number < 20n ? latest.number : 20n;
  if (span === 0n) return 100;
  const past = await client.getBlock({ blockNumber: latest.number - span });
  const blockMs = (Number(latest.timestamp - past.timestamp) * 1000) / Number(span);
  return Math.min(1_000, Math.max(50, Math.round(blockMs / 4)));
}

// ---------------------------------------------------------------- input

function toItem(call: SettlementCall): Item {
  if (!call || typeof call !== "object") throw new SettlementError(Reason.invalidPayload, "call: expected an object");
  if (typeof call.asset !== "string" || !isAddress(call.asset, { strict: false })) {
    throw new SettlementError(Reason.invalidPayload, "asset: not an address");
  }
  const a = call.authorization;
  if (!a || typeof a !== "object") throw new SettlementError(Reason.invalidPayload, "authorization: expected an object");
  for (const field of ["from", "to"] as const) {
    if (typeof a[field] !== "string" || !isAddress(a[field], { strict: false })) {
      throw new SettlementError(Reason.invalidPayload, `authorization.${field}: not an address`);
    }
  }
  if (typeof a.nonce !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(a.nonce)) {
    throw new SettlementError(Reason.invalidPayload, "authorization.nonce: expected 32 bytes of 0x-hex");
  }
  if (typeof call.signature !== "string" || !/^0x([0-9a-fA-F]{2})+$/.test(call.signature) || call.signature.length < 132) {
    throw new SettlementError(Reason.evmSignature, "signature: expected at least 65 bytes of 0x-hex");
  }
  return {
    call,
    from: a.from,
    to: a.to,
    value: uint(a.value, "authorization.value"),
    validAfter: uint(a.validAfter, "authorization.validAfter"),
    validBefore: uint(a.validBefore, "authorization.validBefore"),
    nonce: a.nonce,
    signature: call.signature,
    key: `${a.from.toLowerCase()}|${a.nonce.toLowerCase()}`,
    queuedAt: 0,
    sent: deferred(),
    final: deferred(),
  };
}

function uint(value: unknown, field: string): bigint {
  let v: bigint | undefined;
  if (typeof value === "bigint") v = value;
  else if (typeof value === "string" && /^(0|[1-9][0-9]{0,77})$/.test(value)) v = BigInt(value);
  if (v === undefined || v < 0n || v > MAX_UINT256) {
    throw new SettlementError(Reason.invalidPayload, `${field}: expected an unsigned integer (decimal string)`);
  }
  return v;
}

// ---------------------------------------------------------------- helpers

function isNonceError(e: unknown): boolean {
  return /nonce too (low|high)|invalid nonce|nonce has already been used|NonceTooLow|NonceTooHigh/i.test(errorText(e));
}

function errorText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const parts: string[] = [];
  let cur: unknown = e;
  for (let depth = 0; cur instanceof Error && depth < 8; depth++) {
    parts.push(cur.message, (cur as { details?: string }).details ?? "");
    cur = cur.cause;
  }
  return parts.join(" | ");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
