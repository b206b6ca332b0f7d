/**
 * Write-behind for audit records (verifications and request events). They document what
 * happened but decide nothing — settle-once rests on the ledger's claim, which stays on the
 * request path — so a `/verify` answer need not wait for its row.
 *
 * Group commit: records are queued as data and written once per event-loop turn as ONE
 * multi-row INSERT per table (up to MAX_BATCH rows each), one flush at a time; whatever arrives
 * during a flush goes in the next. `drain()` waits for everything added so far. A failed flush is
 * logged and its records dropped (they are an audit trail, not state). Memory is bounded: past
 * MAX_QUEUED records, `add*` hands back a promise that resolves once the queue is below the bound,
 * and the caller awaits it (backpressure rather than loss).
 */
import { safeMessage } from "@tollgate/core";
import type { Ledger, LedgerEvent, VerifyRecord } from "./ledger/ledger.ts";
import type { Logger } from "./logger.ts";

export interface AuditQueue {
  /** Queues a verification row; a promise only when the queue is full (await it). */
  addVerify(record: VerifyRecord): Promise<void> | undefined;
  /** Queues an event row; a promise only when the queue is full (await it). */
  addEvent(event: LedgerEvent): Promise<void> | undefined;
  /** Resolves when every record added so far is written (or has failed and been logged). */
  drain(): Promise<void>;
  readonly pending: number;
}

export interface AuditQueueOptions {
  /** Rows per INSERT statement. Default 500. */
  maxBatch?: number;
  /** Queued records beyond which adders are asked to wait. Default 10 000. */
  maxQueued?: number;
}

export function createAuditQueue(ledger: Pick<Ledger, "recordVerifies" | "recordEvents">, logger: Logger, options: AuditQueueOptions = {}): AuditQueue {
  const maxBatch = options.maxBatch ?? 500;
  const maxQueued = options.maxQueued ?? 10_000;
  let verifies: VerifyRecord[] = [];
  let events: LedgerEvent[] = [];
  let running: Promise<void> | undefined;
  let roomWaiters: Array<() => void> = [];

  const size = () => verifies.length + events.length;

  async function write(what: string, rows: number, fn: () => Promise<void>) {
    try {
      await fn();
    } catch (e) {
      logger.warn({ err: safeMessage(e), rows, table: what }, "could not write audit records");
    }
  }

  async function run() {
    // Let the rest of this turn's requests queue their records first.
    await new Promise<void>((r) => setImmediate(r));
    while (size() > 0) {
      const v = verifies.length <= maxBatch ? verifies : verifies.slice(0, maxBatch);
      verifies = verifies.length <= maxBatch ? [] : verifies.slice(maxBatch);
      const e = events.length <= maxBatch ? events : events.slice(0, maxBatch);
      events = events.length <= maxBatch ? [] : events.slice(maxBatch);
      if (v.length > 0) await write("payments", v.length, () => ledger.recordVerifies(v));
      if (e.length > 0) await write("payment_events", e.length, () => ledger.recordEvents(e));
      if (size() < maxQueued && roomWaiters.length > 0) {
        const waiting = roomWaiters;
        roomWaiters = [];
        for (const w of waiting) w();
      }
    }
    running = undefined;
  }

  function added(): Promise<void> | undefined {
    running ??= run();
    if (size() < maxQueued) return undefined;
    return new Promise<void>((r) => roomWaiters.push(r));
  }

  return {
    addVerify(record) {
      verifies.push(record);
      return added();
    },
    addEvent(event) {
      events.push(event);
      return added();
    },
    async drain() {
      while (running) await running;
    },
    get pending() {
      return size();
    },
  };
}
