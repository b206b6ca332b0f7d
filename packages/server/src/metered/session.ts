/**
 * One metered stream (docs/extensions/metered-stream.md): the handler's producer sends messages
 * worth some units each through a `Meter`; each is charged BEFORE it is sent (a message that
 * would pass the signed maximum is not sent and the stream stops), and is counted as delivered
 * once it has been handed to the connection (the stream is pulled one message at a time, so a
 * client that stops reading stops the producer). When the stream stops (producer done, cap,
 * client gone, time limit, producer error) the charge — units delivered × price per unit,
 * exact — is set through charge.ts and settled through the paywall's one settle-after path;
 * the receipt goes out as the last event, since the headers left long ago.
 */
import {
  encodeSseEvent,
  Headers as X402Headers,
  MeteredEvent,
  type MeteredCostEvent,
  type MeteredSettlementEvent,
  type MeteredStopReason,
  type MeteredTermsEvent,
} from "@tollgate/core";
import { setCharge } from "../charge.ts";
import type { Respond } from "../responses.ts";
import type { PaidDecision, Proceed } from "../types.ts";
import type { MeteredTerms } from "./terms.ts";

export interface Meter {
  /**
   * Sends `data` as one SSE message worth `units` (default 1; 0 is free) and resolves true once
   * it is handed to the connection, or false when it was not sent: it would pass the cap, the
   * client left, the time limit passed, or the stream is over. Stop producing on false.
   */
  send(data: string, units?: number | bigint, options?: { event?: string; id?: string }): Promise<boolean>;
  /** Units delivered so far. */
  readonly delivered: bigint;
  /** Atomic units charged so far (delivered × pricePerUnit). */
  readonly charged: bigint;
  /** Whole units the cap still allows. */
  readonly remainingUnits: bigint;
  readonly terms: Readonly<Omit<MeteredTerms, "onError">>;
  /** Aborted when the stream is stopped from outside the producer (cap, client gone, time limit). */
  readonly signal: AbortSignal;
}

export type MeteredProducer = (meter: Meter) => void | Promise<void>;

/** Headers of a metered response (sent at once: the body streams). */
export const METERED_HEADERS: Readonly<Record<string, string>> = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-store",
  // Reverse proxies (nginx) must not buffer what is charged as it is delivered.
  "X-Accel-Buffering": "no",
};

export class MeterError extends Error {
  override name = "MeterError";
}

/** Exact accounting of one stream: a charge is taken only when it fits under the maximum. */
export function createTally(pricePerUnit: bigint, max: bigint) {
  let delivered = 0n;
  let charged = 0n;
  return {
    get delivered() {
      return delivered;
    },
    get charged() {
      return charged;
    },
    get remainingUnits() {
      return (max - charged) / pricePerUnit;
    },
    /** Charges `units` when they fit under the maximum; false (nothing charged) when they would pass it. */
    take(units: bigint): boolean {
      const next = charged + units * pricePerUnit;
      if (next > max) return false;
      charged = next;
      delivered += units;
      return true;
    },
  };
}

function unitsOf(units: number | bigint): bigint {
  if (typeof units === "bigint" && units >= 0n) return units;
  if (typeof units === "number" && Number.isSafeInteger(units) && units >= 0) return BigInt(units);
  throw new MeterError(`meter.send: units must be a whole number >= 0, got ${String(units)}`);
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}
function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** The body of a metered response: starts `producer` on the first read, settles when it stops. */
export function createMeteredStream(decision: PaidDecision, producer: MeteredProducer): ReadableStream<Uint8Array> {
  const terms = decision.metered;
  if (!terms) throw new MeterError("this route is not metered (route option `metered`)");
  const encoder = new TextEncoder();
  const tally = createTally(terms.pricePerUnit, terms.max);
  const halted = new AbortController();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let demand = deferred();
  let stopped: MeteredStopReason | undefined;
  let gone = false;
  let sending: Promise<unknown> = Promise.resolve();

  const halt = (reason: MeteredStopReason) => {
    if (stopped) return;
    stopped = reason;
    halted.abort(reason);
    demand.resolve();
  };
  const push = (text: string) => {
    if (gone) return;
    try {
      controller.enqueue(encoder.encode(text));
    } catch {
      gone = true;
    }
  };
  const cost = (): MeteredCostEvent => ({ delivered: tally.delivered.toString(), charged: tally.charged.toString(), max: terms.max.toString() });

  const stream = new ReadableStream<Uint8Array>(
    {
      start: (c) => void (controller = c),
      // One message per read: what is counted delivered has been taken by the connection.
      pull: () => demand.resolve(),
      cancel: () => {
        gone = true;
        halt("client-gone");
      },
    },
    { highWaterMark: 0 },
  );

  const { onError: _onError, ...publicTerms } = terms;
  const meter: Meter = {
    get delivered() {
      return tally.delivered;
    },
    get charged() {
      return tally.charged;
    },
    get remainingUnits() {
      return tally.remainingUnits;
    },
    terms: publicTerms,
    signal: halted.signal,
    send(data, units = 1, options = {}) {
      if (typeof data !== "string") return Promise.reject(new MeterError(`meter.send: data must be a string, got ${typeof data}`));
      let text: string;
      let n: bigint;
      try {
        n = unitsOf(units);
        if (options.event?.startsWith("x402-")) throw new MeterError(`meter.send: event names starting with "x402-" are the paywall's`);
        text = encodeSseEvent({ data, ...(options.event !== undefined ? { event: options.event } : {}), ...(options.id !== undefined ? { id: options.id } : {}) });
      } catch (e) {
        return Promise.reject(e instanceof MeterError ? e : new MeterError(`meter.send: ${(e as Error).message}`));
      }
      const sent = sending.then(async () => {
        if (stopped) return false;
        await demand.promise;
        if (stopped) return false;
        if (Date.now() >= terms.endsBy) return halt("time-limit"), false;
        // Charged before it is sent: a message that does not fit is never sent.
        if (!tally.take(n)) return halt("cap"), false;
        demand = deferred();
        push(text + encodeSseEvent({ event: MeteredEvent.cost, data: JSON.stringify(cost()) }));
        return true;
      });
      sending = sent;
      return sent;
    },
  };

  // Clamped to node's longest timer (~24.8 days; a longer one would fire at once).
  const timer = setTimeout(() => halt("time-limit"), Math.min(Math.max(0, terms.endsBy - Date.now()), 2 ** 31 - 1));
  (timer as { unref?: () => void }).unref?.();

  void (async () => {
    await demand.promise;
    if (!stopped) {
      demand = deferred();
      const opening: MeteredTermsEvent = { unit: terms.unit, pricePerUnit: terms.pricePerUnit.toString(), max: terms.max.toString(), asset: terms.asset, network: terms.network, endsBy: terms.endsBy };
      push(encodeSseEvent({ event: MeteredEvent.terms, data: JSON.stringify(opening) }));
      try {
        await producer(meter);
      } catch (e) {
        terms.onError(e);
        halt("error");
      }
      // Sends the producer did not await still go out (or are refused) before the tally is final.
      await sending.catch(() => {});
      halt("done");
    }
    clearTimeout(timer);
    if (stopped === "cap") push(encodeSseEvent({ event: MeteredEvent.capReached, data: JSON.stringify(cost()) }));
    const final = await settleDelivered(decision, terms, tally.charged);
    push(encodeSseEvent({ event: MeteredEvent.settlement, data: JSON.stringify({ ...cost(), stopped: stopped ?? "done", ...final }) }));
    if (!gone) controller.close();
  })();

  return stream;
}

/** Settles exactly what was delivered through the paywall's settle-after path; the in-band receipt. */
async function settleDelivered(decision: PaidDecision, terms: MeteredTerms, charged: bigint): Promise<Pick<MeteredSettlementEvent, "success" | "paymentResponse" | "error">> {
  let outcome: Respond | Proceed;
  try {
    setCharge(decision.payment, charged.toString());
    // `streamed`: the body went out as it was produced; there is nothing to hold or to cache.
    outcome = await decision.settle({ status: 200, streamed: true });
  } catch (e) {
    terms.onError(e);
    return { success: false, error: "internal error while settling the stream" };
  }
  const receipt = outcome.headers[X402Headers.v2.response] ?? outcome.headers[X402Headers.v1.response];
  if (outcome.kind === "ok") return { success: true, ...(receipt ? { paymentResponse: receipt } : {}) };
  const error = errorOf(outcome);
  terms.onError(new Error(`route "${decision.payment.route}": a metered stream's settlement of ${charged} failed after delivery: ${error}`));
  return { success: false, error, ...(receipt ? { paymentResponse: receipt } : {}) };
}

function errorOf(r: Respond): string {
  try {
    const body = typeof r.body === "string" ? r.body : new TextDecoder().decode(r.body);
    const error = (JSON.parse(body) as { error?: unknown }).error;
    if (typeof error === "string") return error;
  } catch {
    // not JSON: the status says enough
  }
  return `settlement failed (status ${r.status})`;
}
