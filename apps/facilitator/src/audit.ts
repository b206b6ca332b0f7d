/**
 * Write-behind for audit records (verifications and request events). They document what
 * happened but decide nothing — settle-once rests on the ledger's claim, which stays on the
 * request path — so a `/verify` answer need not wait for its row. Records are written in
 * order, off the hot path; `drain()` waits for all of them (graceful shutdown, tests).
 */
import { safeMessage } from "@tollgate/core";
import type { Logger } from "./logger.ts";

export interface AuditQueue {
  add(write: () => Promise<unknown>): void;
  /** Resolves when every record added so far is written (or has failed and been logged). */
  drain(): Promise<void>;
  readonly pending: number;
}

/** Beyond this many queued records, new ones are written inline (backpressure instead of unbounded memory). */
const MAX_QUEUED = 10_000;

export function createAuditQueue(logger: Logger): AuditQueue {
  let queue: Array<() => Promise<unknown>> = [];
  let running: Promise<void> | undefined;

  async function run() {
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      for (const write of batch) {
        try {
          await write();
        } catch (e) {
          logger.warn({ err: safeMessage(e) }, "could not write an audit record");
        }
      }
    }
    running = undefined;
  }

  return {
    add(write) {
      if (queue.length >= MAX_QUEUED) {
        void write().catch((e) => logger.warn({ err: safeMessage(e) }, "could not write an audit record"));
        return;
      }
      queue.push(write);
      running ??= Promise.resolve().then(run);
    },
    async drain() {
      while (running) await running;
    },
    get pending() {
      return queue.length;
    },
  };
}
