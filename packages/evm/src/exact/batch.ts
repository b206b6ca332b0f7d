/**
 * Coalesces the Multicall3 `aggregate3` reads of concurrent verifications into few eth_calls.
 *
 * Each verification submits a group of calls (reads, then a dry run of its transfer). Groups
 * arriving in the same window share one aggregate3 (every call `allowFailure: true`, so one
 * group's failing call never affects another's). Inside one eth_call the dry runs change
 * state for the calls after them, so two groups share a batch only when they cannot see each
 * other: a group names the state it changes (`exclusive`: the payer's balance and nonces) and
 * the state it only adds to (`shared`: the payee's balance); groups whose keys collide go to
 * different batches, which are separate eth_calls against the same block state. Each group thus
 * gets exactly the results it would get alone.
 *
 * Batches are sent as soon as the window closes, at most `maxInFlight` at a time; while they
 * wait for a slot the queued batches keep accepting groups, so under load batching grows by
 * itself. If the eth_call fails as a whole, every group in it is rejected with that error.
 */
import type { Address, Hex } from "viem";

export interface Aggregate3Call {
  target: Address;
  callData: Hex;
}

export interface Aggregate3Result {
  success: boolean;
  returnData: Hex;
}

export interface CallGroup {
  calls: readonly Aggregate3Call[];
  /** State the group's calls change or whose exact value they read (no other group may touch it in one batch). */
  exclusive?: readonly string[];
  /** State the group only adds to (other groups may share it, but not hold it exclusively). */
  shared?: readonly string[];
}

export interface CallBatcherOptions {
  /** Sends one aggregate3 of `calls` (all allowFailure) and answers its results in order. */
  send(calls: readonly Aggregate3Call[]): Promise<readonly Aggregate3Result[]>;
  /** Most calls in one batch (a group is never split). Default 300. */
  maxCalls?: number;
  /** Most batches awaiting their eth_call at once. Default 8. */
  maxInFlight?: number;
  /** How long a batch collects groups before it is sent: 0 = until the current I/O turn ends. Default 0. */
  windowMs?: number;
}

export interface CallBatcher {
  /** The group's results, in the order of its calls. */
  submit(group: CallGroup): Promise<Aggregate3Result[]>;
  /** Counters for tests and benchmarks. */
  readonly stats: { batches: number; groups: number; calls: number };
}

interface Waiter {
  start: number;
  count: number;
  resolve(results: Aggregate3Result[]): void;
  reject(error: unknown): void;
}

interface Batch {
  calls: Aggregate3Call[];
  exclusive: Set<string>;
  shared: Set<string>;
  waiters: Waiter[];
}

export function createCallBatcher(options: CallBatcherOptions): CallBatcher {
  const maxCalls = options.maxCalls ?? 300;
  const maxInFlight = options.maxInFlight ?? 8;
  const windowMs = options.windowMs ?? 0;
  const queue: Batch[] = [];
  const stats = { batches: 0, groups: 0, calls: 0 };
  let inFlight = 0;
  let scheduled = false;

  function fits(batch: Batch, group: CallGroup): boolean {
    if (batch.calls.length > 0 && batch.calls.length + group.calls.length > maxCalls) return false;
    for (const k of group.exclusive ?? []) if (batch.exclusive.has(k) || batch.shared.has(k)) return false;
    for (const k of group.shared ?? []) if (batch.exclusive.has(k)) return false;
    return true;
  }

  function schedule() {
    if (scheduled || inFlight >= maxInFlight) return; // a finishing batch pumps the queue
    scheduled = true;
    const flush = () => {
      scheduled = false;
      pump();
    };
    if (windowMs > 0) setTimeout(flush, windowMs);
    else setImmediate(flush);
  }

  function pump() {
    while (inFlight < maxInFlight && queue.length > 0) send(queue.shift()!);
  }

  function send(batch: Batch) {
    inFlight++;
    stats.batches++;
    stats.calls += batch.calls.length;
    let sent: Promise<readonly Aggregate3Result[]>;
    try {
      sent = options.send(batch.calls);
    } catch (e) {
      sent = Promise.reject(e);
    }
    sent
      .then((results) => {
        if (results.length !== batch.calls.length) throw new Error(`aggregate3 answered ${results.length} results for ${batch.calls.length} calls`);
        for (const w of batch.waiters) w.resolve(results.slice(w.start, w.start + w.count));
      })
      .catch((e) => {
        for (const w of batch.waiters) w.reject(e);
      })
      .finally(() => {
        inFlight--;
        if (queue.length > 0) schedule();
      });
  }

  function submit(group: CallGroup): Promise<Aggregate3Result[]> {
    return new Promise((resolve, reject) => {
      let batch = queue.find((b) => fits(b, group));
      if (!batch) {
        batch = { calls: [], exclusive: new Set(), shared: new Set(), waiters: [] };
        queue.push(batch);
      }
      batch.waiters.push({ start: batch.calls.length, count: group.calls.length, resolve, reject });
      batch.calls.push(...group.calls);
      for (const k of group.exclusive ?? []) batch.exclusive.add(k);
      for (const k of group.shared ?? []) batch.shared.add(k);
      stats.groups++;
      schedule();
    });
  }

  return { submit, stats };
}
