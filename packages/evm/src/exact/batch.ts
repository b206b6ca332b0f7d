/**
 * Coalesces the Multicall3 `aggregate3` calls of concurrent verifications into few eth_calls.
 *
 * Each verification submits a group: `reads` (balance, nonce state, token domain) and `writes`
 * (the dry run of its transfer). A batch runs every group's reads first, then the writes in
 * submission order, all with `allowFailure: true`, so one group's failing call never affects
 * another's results. Reads therefore see the block state exactly as a lone eth_call would.
 *
 * Writes do change state for the writes after them inside one eth_call. A group names the
 * state its writes debit (`key`: token|payer) and the state they credit (`credits`:
 * token|payee):
 * - a group is never batched with one that credits its key (a credit could make a dry run pass
 *   that would fail alone);
 * - groups with the same key may share a batch: a later one's write then runs after an earlier
 *   debit of the same payer, which can only make it fail, never pass. Such a group is reported
 *   `contended`; its caller retries a failed write with `alone: true`, which keeps it out of
 *   batches holding its key. So every verdict equals the verdict of a lone eth_call.
 * A group identical to one already in the batch (the same payload verified twice at once) is
 * not added again: it shares the first one's results, which are what it would get alone.
 *
 * Batches go out when the window closes, at most `maxInFlight` at a time; while waiting for a
 * slot, queued batches keep accepting groups, so batching grows with load. If an eth_call
 * fails as a whole, every group in it is rejected with that error.
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
  /** Calls that only read: they run before every write of the batch. */
  reads: readonly Aggregate3Call[];
  /** Calls that may change state (dry runs): they run after all reads, in submission order. */
  writes: readonly Aggregate3Call[];
  /** The state the writes debit (e.g. `token|payer`). */
  key?: string;
  /** State the writes only credit (e.g. `token|payee`). */
  credits?: readonly string[];
  /** Share no batch with another group of the same key (retry after contention). */
  alone?: boolean;
}

export interface GroupResults {
  reads: Aggregate3Result[];
  writes: Aggregate3Result[];
  /** An earlier group in the same batch had the same key: a failed write may be due to it. */
  contended: boolean;
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
  submit(group: CallGroup): Promise<GroupResults>;
  /** Counters for tests and benchmarks. */
  readonly stats: { batches: number; groups: number; calls: number };
}

interface Waiter {
  also: { resolve(results: GroupResults): void; reject(error: unknown): void }[];
  readStart: number;
  readCount: number;
  writeStart: number;
  writeCount: number;
  contended: boolean;
  resolve(results: GroupResults): void;
  reject(error: unknown): void;
}

interface Batch {
  reads: Aggregate3Call[];
  writes: Aggregate3Call[];
  keys: Set<string>;
  aloneKeys: Set<string>;
  credits: Set<string>;
  waiters: Waiter[];
  byContent: Map<string, Waiter>;
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
    const size = batch.reads.length + batch.writes.length;
    if (size > 0 && size + group.reads.length + group.writes.length > maxCalls) return false;
    const key = group.key;
    if (key !== undefined && (batch.credits.has(key) || batch.aloneKeys.has(key) || (group.alone && batch.keys.has(key)))) return false;
    for (const c of group.credits ?? []) if (batch.keys.has(c)) return false;
    return true;
  }

  function schedule() {
    if (scheduled || inFlight >= maxInFlight) return; // a finishing batch pumps the queue
    scheduled = true;
    const flush = () => {
      scheduled = false;
      while (inFlight < maxInFlight && queue.length > 0) send(queue.shift()!);
    };
    if (windowMs > 0) setTimeout(flush, windowMs);
    else setImmediate(flush);
  }

  function send(batch: Batch) {
    inFlight++;
    const calls = batch.reads.concat(batch.writes);
    stats.batches++;
    stats.calls += calls.length;
    let sent: Promise<readonly Aggregate3Result[]>;
    try {
      sent = options.send(calls);
    } catch (e) {
      sent = Promise.reject(e);
    }
    const writesAt = batch.reads.length;
    sent
      .then((results) => {
        if (results.length !== calls.length) throw new Error(`aggregate3 answered ${results.length} results for ${calls.length} calls`);
        for (const w of batch.waiters) {
          const r: GroupResults = {
            reads: results.slice(w.readStart, w.readStart + w.readCount),
            writes: results.slice(writesAt + w.writeStart, writesAt + w.writeStart + w.writeCount),
            contended: w.contended,
          };
          w.resolve(r);
          for (const x of w.also) x.resolve({ reads: [...r.reads], writes: [...r.writes], contended: r.contended });
        }
      })
      .catch((e) => {
        for (const w of batch.waiters) {
          w.reject(e);
          for (const x of w.also) x.reject(e);
        }
      })
      .finally(() => {
        inFlight--;
        if (queue.length > 0) schedule();
      });
  }

  function submit(group: CallGroup): Promise<GroupResults> {
    return new Promise((resolve, reject) => {
      stats.groups++;
      const content = contentKey(group);
      for (const b of queue) {
        const same = b.byContent.get(content);
        if (same) {
          same.also.push({ resolve, reject });
          return;
        }
      }
      let batch = queue.find((b) => fits(b, group));
      if (!batch) {
        batch = { reads: [], writes: [], keys: new Set(), aloneKeys: new Set(), credits: new Set(), waiters: [], byContent: new Map() };
        queue.push(batch);
      }
      const key = group.key;
      const waiter: Waiter = {
        also: [],
        readStart: batch.reads.length,
        readCount: group.reads.length,
        writeStart: batch.writes.length,
        writeCount: group.writes.length,
        contended: key !== undefined && batch.keys.has(key),
        resolve,
        reject,
      };
      batch.waiters.push(waiter);
      batch.byContent.set(content, waiter);
      batch.reads.push(...group.reads);
      batch.writes.push(...group.writes);
      if (key !== undefined) {
        batch.keys.add(key);
        if (group.alone) batch.aloneKeys.add(key);
      }
      for (const c of group.credits ?? []) batch.credits.add(c);
      schedule();
    });
  }

  return { submit, stats };
}

function contentKey(group: CallGroup): string {
  let k = `${group.key ?? ""}|${group.alone ? 1 : 0}|${(group.credits ?? []).join(",")}|${group.reads.length}`;
  for (const c of group.reads) k += `|${c.target}${c.callData}`;
  for (const c of group.writes) k += `|${c.target}${c.callData}`;
  return k;
}
