/**
 * What framework adapters need for metered routes: the adapter opens a paid decision's meter
 * before the handler runs; the handler starts the stream with its payment (`meteredStream` /
 * `meteredResponse`); the adapter then sends that stream as it comes instead of holding the
 * response. A handler of a metered route that answers without the meter is held and settled
 * as any `upto` response (its `setCharge`, default the maximum).
 */
import { settleWebResponse } from "../web.ts";
import type { PaidDecision, Payment } from "../types.ts";
import { createMeteredStream, METERED_HEADERS, MeterError, type MeteredProducer } from "./session.ts";

interface Slot {
  decision: PaidDecision;
  stream?: ReadableStream<Uint8Array>;
}

const slots = new WeakMap<Payment, Slot>();

/** Adapters: call for a paid decision before its handler runs (no-op unless the route is metered). */
export function openMeter(decision: PaidDecision): void {
  if (decision.metered && !decision.settled) slots.set(decision.payment, { decision });
}

/**
 * Handlers: the body of this paid request's metered stream (`producer` runs on the first read).
 * Throws MeterError when the route is not metered or a stream was already started.
 */
export function meteredStream(payment: Payment | undefined, producer: MeteredProducer): ReadableStream<Uint8Array> {
  const slot = payment ? slots.get(payment) : undefined;
  if (!slot) throw new MeterError("meteredStream: this request has no metered payment (is the route configured with `metered` on an upto option?)");
  if (slot.stream) throw new MeterError("meteredStream: a stream was already started for this payment");
  slot.stream = createMeteredStream(slot.decision, producer);
  return slot.stream;
}

/** The stream started for this payment, if any. */
export function meteredStreamOf(payment: Payment): ReadableStream<Uint8Array> | undefined {
  return slots.get(payment)?.stream;
}

/** Handlers of web-standard frameworks (hono, Next.js): the metered stream as a `Response`. */
export function meteredResponse(payment: Payment | undefined, producer: MeteredProducer, init: { headers?: Record<string, string> } = {}): Response {
  const body = meteredStream(payment, producer);
  return new Response(body, { status: 200, headers: { ...init.headers, ...METERED_HEADERS } });
}

/**
 * Settle-after for web-standard adapters on a metered route: the handler's metered stream is
 * sent as it comes (it settles itself when it stops); any other response is held and settled
 * as usual. A handler that started a stream and answered with something else delivered
 * nothing: its stream is stopped (charge 0) and the answer replaced by a 500.
 */
export async function settleMeteredWebResponse(decision: PaidDecision, res: Response, aborted: boolean): Promise<Response> {
  const stream = meteredStreamOf(decision.payment);
  if (!stream) return settleWebResponse(decision, res, aborted);
  // Streamed as it comes: the receipt travels in-band, at its end.
  if (res.body === stream) return res;
  await stream.cancel().catch(() => {});
  await res.body?.cancel().catch(() => {});
  decision.metered?.onError(new MeterError(`route "${decision.payment.route}": the handler started a metered stream but answered with another response; nothing was delivered or charged`));
  return Response.json({ error: "internal error" }, { status: 500 });
}

/** The parts of a node `ServerResponse` a metered stream is written to. */
export interface NodeResponseLike {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  flushHeaders(): void;
  write(chunk: Uint8Array): boolean;
  end(): unknown;
  once(event: "drain" | "close", listener: () => void): unknown;
  off(event: "close", listener: () => void): unknown;
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
}

/**
 * Node adapters (Express, fastify): writes the metered stream to `res` one message at a time,
 * waiting for the socket to drain; a closed connection cancels the stream (the producer stops,
 * what was delivered is settled).
 */
export async function pipeMeteredToNode(stream: ReadableStream<Uint8Array>, res: NodeResponseLike): Promise<void> {
  res.statusCode = 200;
  for (const [k, v] of Object.entries(METERED_HEADERS)) res.setHeader(k, v);
  res.flushHeaders();
  const reader = stream.getReader();
  let closed = false;
  const onClose = () => {
    closed = true;
    void reader.cancel().catch(() => {});
  };
  res.once("close", onClose);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || closed || res.destroyed) break;
      if (!res.write(value)) await new Promise<void>((resolve) => {
        res.once("drain", resolve);
        res.once("close", resolve);
      });
    }
  } catch {
    // the stream failed or was cancelled: the session has stopped and settles on its own
  } finally {
    res.off("close", onClose);
    if (!res.writableEnded && !res.destroyed) res.end();
  }
}
