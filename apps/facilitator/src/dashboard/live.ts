/**
 * The dashboard's live feed: payment events read from the LEDGER, not from this process, so a
 * page served by one facilitator also shows what the others sharing the store verified and
 * settled. One poller per process, running only while someone listens, feeds every open stream.
 *
 * Why a look-back: event ids come from a sequence, and on PostgreSQL two transactions may commit
 * out of id order (a later id visible before an earlier one). Each poll re-reads a few ids below
 * the highest delivered and skips those already sent, so a late commit is still delivered.
 */
import { safeMessage } from "@tollgate/core";
import type { Logger } from "../logger.ts";
import type { DashboardQueries, PaymentEventRow } from "./queries.ts";

export interface LiveFeedOptions {
  queries: Pick<DashboardQueries, "eventsAfter" | "lastEventId">;
  /** How often the ledger is read while someone listens. Default 1000 ms. */
  pollMs?: number;
  /** Open streams at most (each one a held connection). Default 20. */
  maxListeners?: number;
  logger?: Logger;
}

export type LiveListener = (events: readonly PaymentEventRow[]) => void;

export interface LiveFeed {
  /** Adds a listener; undefined when the feed is full. The returned function removes it. */
  subscribe(listener: LiveListener): (() => void) | undefined;
  readonly listeners: number;
  close(): void;
}

const LOOK_BACK = 200n;
const BATCH = 500;

export function createLiveFeed(options: LiveFeedOptions): LiveFeed {
  const pollMs = options.pollMs ?? 1_000;
  const max = options.maxListeners ?? 20;
  const listeners = new Set<LiveListener>();
  /** Ids delivered above the look-back floor. */
  const sent = new Set<bigint>();
  let high: bigint | undefined;
  /** The highest id when polling began: events up to it are history, not live. */
  let startedAt: bigint | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let polling = false;
  let closed = false;

  async function poll(): Promise<void> {
    if (high === undefined) high = BigInt(await options.queries.lastEventId());
    const from = high > LOOK_BACK ? high - LOOK_BACK : 0n;
    const rows = await options.queries.eventsAfter(from.toString(), BATCH);
    const fresh = rows.filter((r) => !sent.has(BigInt(r.id)) && BigInt(r.id) > from);
    // Ids at or under the starting point were there before anyone listened: not news.
    const news = fresh.filter((r) => BigInt(r.id) > (startedAt ?? 0n));
    for (const r of fresh) {
      const id = BigInt(r.id);
      sent.add(id);
      if (id > high) high = id;
    }
    for (const id of sent) if (id <= high - LOOK_BACK) sent.delete(id);
    if (news.length > 0) for (const l of listeners) l(news);
  }

  /** Each start of polling gets a generation: a loop of an older one stops at its next turn. */
  let generation = 0;

  function schedule(gen: number): void {
    if (closed || listeners.size === 0 || gen !== generation) return;
    timer = setTimeout(() => {
      void poll()
        .catch((e) => options.logger?.warn({ err: safeMessage(e) }, "dashboard: could not read new payment events"))
        .finally(() => schedule(gen));
    }, pollMs);
    timer.unref?.();
  }

  function start(): void {
    if (polling) return;
    polling = true;
    const gen = ++generation;
    void options.queries
      .lastEventId()
      .then((id) => {
        // Restarted after a pause: what happened meanwhile is not live news either.
        startedAt = BigInt(id);
        if (high === undefined || high < startedAt) high = startedAt;
      })
      .catch((e) => options.logger?.warn({ err: safeMessage(e) }, "dashboard: could not read the event log"))
      .finally(() => schedule(gen));
  }

  function stop(): void {
    polling = false;
    generation++;
    clearTimeout(timer);
  }

  return {
    subscribe(listener) {
      if (closed || listeners.size >= max) return undefined;
      listeners.add(listener);
      start();
      return () => {
        listeners.delete(listener);
        if (listeners.size === 0) stop();
      };
    },
    get listeners() {
      return listeners.size;
    },
    close() {
      closed = true;
      stop();
      listeners.clear();
    },
  };
}
