/**
 * x402 payments for Fastify 5. The paywall decides in an `onRequest` hook (Fastify has routed the
 * request; its body is not read yet) and settles in an `onSend` hook, where Fastify hands over
 * the serialized payload before anything is written: the payload is held (up to
 * `maxResponseBytes`), the payment settled, and then the payload (plus payment headers) or a
 * replacement is sent. A failed settlement sends a 402 and none of the handler's body or headers;
 * a handler error (status >= 400) is passed through and nothing is charged; a response larger
 * than `maxResponseBytes` is a 500 and nothing is charged; a client that went away is never
 * charged. The verified payment is `getPayment(request)`.
 *
 * Two forms:
 * - `app.register(paymentMiddleware({ ..., routes }))`: a plugin whose hooks apply to every route
 *   of the context it is registered in (the whole app at the root). Route keys are matched on
 *   the path Fastify routed (`request.url` after `rewriteUrl`, cut where find-my-way cuts it,
 *   and the original URL too), ignoring case when the router does, and on the matched route's
 *   own pattern (`request.routeOptions.url`).
 * - `app.get("/report", paymentRoute(paywall, { price, network, payTo }), handler)`: route-level
 *   hooks; Fastify's own match is the paywall's match.
 */
import type { ServerResponse } from "node:http";
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from "fastify";
import {
  createPaywall,
  meteredStream as meteredPaymentStream,
  openMeter,
  pipeMeteredToNode,
  setCharge as setPaymentCharge,
  mergeHeaderValue,
  type Decision,
  type MeteredProducer,
  type PaidDecision,
  type Payment,
  type Paywall,
  type PaywallConfig,
  type PaywallRequest,
  type Proceed,
  type Respond,
  type RouteConfig,
} from "@tollgate/server";

export { createPaywall } from "@tollgate/server";
export type { Payment, Paywall, PaywallConfig, RouteConfig, PaymentOption } from "@tollgate/server";
export type { Meter, MeteredProducer, MeteredRouteConfig } from "@tollgate/server";

/** The two hooks of either form; spread them into a route's options to add your own beside them. */
export interface PaymentHooks {
  onRequest(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined>;
  onSend(request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown>;
}

const payments = new WeakMap<FastifyRequest, Payment>();

/** The verified payment of a request the paywall let through, or undefined for a free one. */
export function getPayment(request: FastifyRequest): Payment | undefined {
  return payments.get(request);
}

/**
 * Usage-priced routes (`upto`): what this request costs, set by the handler before it replies:
 * atomic units ("1234"), a percentage of the signed maximum ("50%") or dollars ("$0.05"). Unset:
 * the maximum. Throws when malformed or above the maximum. (@tollgate/server charge.ts)
 */
export function setCharge(request: FastifyRequest, amount: string): void {
  setPaymentCharge(payments.get(request), amount);
}

/** Metered routes: ends the paywall's hold on the reply when the handler streams instead. */
const takeOver = new WeakMap<Payment, () => boolean>();

/**
 * Metered routes (route option `metered`): the handler streams its answer through `producer`,
 * which sends each message with its units (`meter.send(text, units)`), each charged before it is
 * sent under the signed maximum; the stream settles what it delivered when it stops and ends with
 * the receipt as its last event. The reply is hijacked; resolves when the stream has ended.
 * (@tollgate/server metered/, docs/extensions/metered-stream.md)
 */
export async function meteredStream(request: FastifyRequest, reply: FastifyReply, producer: MeteredProducer): Promise<void> {
  const payment = payments.get(request);
  const stream = meteredPaymentStream(payment, producer);
  // The client left first (the hold is over): the stream is never read, nothing runs or moves.
  if (takeOver.get(payment!)?.() !== true) return;
  reply.hijack();
  await pipeMeteredToNode(stream, reply.raw);
}

/**
 * The paywall for every route in `config.routes` (or of a paywall made with `createPaywall`),
 * as a plugin: `await app.register(paymentMiddleware(config))`.
 */
export function paymentMiddleware(config: PaywallConfig | Paywall): FastifyPluginCallback {
  const paywall = "handle" in config ? config : createPaywall(config);
  const hooks = paymentHooks((request) => paywall.handle(request));
  const plugin: FastifyPluginCallback = (app, _options, done) => {
    app.addHook("onRequest", hooks.onRequest);
    app.addHook("onSend", hooks.onSend);
    done();
  };
  // What fastify-plugin does: without skip-override the hooks would only cover routes declared
  // inside the plugin itself, that is none; with it they cover the context it is registered in.
  return Object.assign(plugin, {
    [Symbol.for("skip-override")]: true,
    [Symbol.for("fastify.display-name")]: "@tollgate/fastify",
    [Symbol.for("plugin-meta")]: { name: "@tollgate/fastify", fastify: "5.x" },
  });
}

/**
 * The paywall for the one route these hooks are attached to:
 * `app.get("/report", paymentRoute(paywall, route), handler)`. Share one `paywall` between
 * routes: its in-flight guard is what keeps one payment from being served twice at once.
 */
export function paymentRoute(paywall: Paywall, route: RouteConfig, name?: string): PaymentHooks {
  const guard = paywall.route(route, name);
  return paymentHooks((request) => guard.handle(request));
}

/** A paid request on its way through the lifecycle. */
type Held =
  | { kind: "before"; decision: PaidDecision }
  | { kind: "after"; decision: PaidDecision; phase: "handler" | "settling" | "done" };

function paymentHooks(decide: (request: PaywallRequest) => Promise<Decision>): PaymentHooks {
  // Per hook pair: a request decided by one paywall is settled by the same one.
  const held = new WeakMap<FastifyRequest, Held>();

  async function onRequest(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    const decision = await decide(paywallRequest(request));
    if (decision.kind === "free") return undefined;
    if (decision.kind === "respond") return reply.code(decision.status).headers(decision.headers).send(payloadOf(decision.body));
    payments.set(request, decision.payment);
    if (gone(request, reply)) {
      // The client left while the payment was being verified: run nothing, charge nothing.
      void decision.settle({ status: reply.statusCode, aborted: true });
      reply.hijack();
      return reply;
    }
    if (decision.settled) {
      // Settled before the handler: nothing to hold; onSend merges the payment headers into the
      // reply's. Set on the raw response too, so a handler that hijacks the reply sends them.
      held.set(request, { kind: "before", decision });
      for (const [k, v] of Object.entries(decision.settled.headers)) reply.raw.setHeader(k, v);
      void decision.settle({ status: 200 });
      return undefined;
    }
    const state: Held = { kind: "after", decision, phase: "handler" };
    held.set(request, state);
    guardRaw(reply, state);
    if (decision.metered) {
      openMeter(decision);
      // The stream settles itself: from here on the guard lets its writes through and onSend ignores the reply.
      takeOver.set(decision.payment, () => state.phase === "handler" && ((state.phase = "done"), true));
    }
    reply.raw.once("close", () => {
      if (state.phase !== "handler") return;
      state.phase = "done";
      void decision.settle({ status: reply.statusCode, aborted: true });
    });
    return undefined;
  }

  async function onSend(request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
    const state = held.get(request);
    if (!state) return payload;
    if (state.kind === "before") {
      addHeaders(reply, state.decision.settled!.headers);
      return payload;
    }
    // The client went away (or the handler bypassed the reply): nothing is read from here on.
    if (state.phase !== "handler") return payload;
    state.phase = "settling";
    return settleHeld(request, reply, payload, state.decision).finally(() => {
      state.phase = "done";
    });
  }

  return { onRequest, onSend };
}

/** Reads the handler's payload whole, settles, and answers with it or with the paywall's replacement. */
async function settleHeld(request: FastifyRequest, reply: FastifyReply, payload: unknown, decision: PaidDecision): Promise<unknown> {
  const read = await readPayload(reply, payload, decision.maxResponseBytes);
  const status = read.kind === "failed" ? 500 : reply.statusCode;
  let outcome: Respond | Proceed;
  try {
    outcome = await decision.settle({
      status,
      headers: headerPairs(reply),
      ...(read.kind === "ok" && read.body ? { body: read.body } : {}),
      tooLarge: read.kind === "tooLarge",
      aborted: gone(request, reply),
    });
  } catch {
    outcome = { kind: "respond", status: 500, headers: { "Content-Type": "application/json" }, body: JSON.stringify({ error: "internal error while settling the payment" }) };
  }
  // Not settled (or served from the replay cache): nothing of the handler's response may leak, headers included.
  if (outcome.kind === "respond") return replace(reply, outcome);
  if (read.kind !== "ok") {
    return replace(reply, { kind: "respond", status: 500, headers: { "Content-Type": "application/json" }, body: JSON.stringify({ error: "the resource failed while sending its response" }) });
  }
  addHeaders(reply, outcome.headers);
  return read.body;
}

/**
 * What the paywall needs of a Fastify request: the path Fastify routed on, every variant of it
 * find-my-way might have routed the same way, and the matched route's pattern. The resource URL
 * is built from Fastify's `request.host` and `request.protocol` (which follow the app's
 * `trustProxy`) and the target the client sent.
 */
export function paywallRequest(request: FastifyRequest): PaywallRequest {
  const paths = new Set(routedPaths(request.url));
  if (request.originalUrl !== request.url) for (const p of routedPaths(request.originalUrl)) paths.add(p);
  const pattern = request.routeOptions.url;
  if (pattern) paths.add(pattern);
  const [path, ...altPaths] = paths;
  const config = request.server.initialConfig as { caseSensitive?: boolean; routerOptions?: { caseSensitive?: boolean } };
  return {
    method: request.method,
    path: path ?? request.url,
    altPaths,
    url: { protocol: request.protocol, host: request.host, target: request.originalUrl },
    headers: (name) => {
      const value = request.headers[name.toLowerCase()];
      return Array.isArray(value) ? value.join(", ") : value;
    },
    // Either place may carry the router's setting (the top-level one is the older spelling).
    ignoreCase: config.caseSensitive === false || config.routerOptions?.caseSensitive === false,
  };
}

const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]*/;

/**
 * The paths find-my-way may route a request target on: it cuts the target at "?" and "#" (and
 * at ";" with `useSemicolonDelimiter`), and routes an absolute-form target
 * ("http://host/path") on its path. A target that is neither is returned as is, and the
 * paywall answers it 400 rather than guess.
 */
function routedPaths(target: string): string[] {
  let rest = target;
  const absolute = ABSOLUTE_FORM.exec(target);
  if (absolute) rest = target.slice(absolute[0].length) || "/";
  if (!rest.startsWith("/")) return [target];
  const path = rest.split(/[?#]/, 1)[0]!;
  const out = [path, path.split(";", 1)[0]!];
  if (absolute) {
    // The WHATWG reading of the same target (dot segments resolved), in case a proxy in front normalized it.
    try {
      out.push(new URL(target).pathname);
    } catch {
      // unparsable: the raw form above is what find-my-way sees
    }
  }
  return out;
}

/** The connection closed before a response could be sent. */
function gone(request: FastifyRequest, reply: FastifyReply): boolean {
  return reply.raw.destroyed || request.raw.socket?.destroyed === true;
}

function payloadOf(body: string | Uint8Array): string | Buffer {
  return typeof body === "string" ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}

function replace(reply: FastifyReply, r: Respond): string | Buffer {
  for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
  reply.code(r.status);
  reply.headers(r.headers);
  return payloadOf(r.body);
}

function addHeaders(reply: FastifyReply, headers: Record<string, string>): void {
  for (const [k, v] of Object.entries(headers)) {
    const existing = reply.getHeader(k);
    reply.header(k, mergeHeaderValue(k, existing === undefined ? undefined : String(existing), v));
  }
}

function headerPairs(reply: FastifyReply): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(reply.getHeaders())) {
    if (v === undefined) continue;
    out.push([k, Array.isArray(v) ? v.join(", ") : String(v)]);
  }
  return out;
}

type Read = { kind: "ok"; body: Buffer | null } | { kind: "tooLarge" } | { kind: "failed" };

/**
 * The whole payload as onSend received it: a string or bytes, a node or web stream (read to the
 * end, cancelled past `limit`), or a web `Response`, whose status and headers are applied to the
 * reply as Fastify would apply them after onSend. A stream that fails midway is `failed`.
 */
async function readPayload(reply: FastifyReply, payload: unknown, limit: number): Promise<Read> {
  if (payload === null || payload === undefined) return { kind: "ok", body: null };
  if (typeof payload === "string") return capped(Buffer.from(payload, "utf8"), limit);
  if (payload instanceof Uint8Array) return capped(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), limit);
  // The tag, as Fastify checks it: a Response from another copy of undici is one too.
  if (Object.prototype.toString.call(payload) === "[object Response]") {
    const response = payload as Response;
    reply.code(response.status);
    response.headers.forEach((value, name) => void reply.header(name, value));
    return readPayload(reply, response.body, limit);
  }
  if (isNodeStream(payload)) return readStream(payload, limit, () => destroy(payload));
  if (isWebStream(payload)) {
    const reader = payload.getReader();
    return readStream(webChunks(reader), limit, () => void reader.cancel().catch(() => {}));
  }
  return { kind: "failed" };
}

function capped(body: Buffer, limit: number): Read {
  return body.byteLength > limit ? { kind: "tooLarge" } : { kind: "ok", body };
}

async function readStream(stream: AsyncIterable<unknown>, limit: number, stop: () => void): Promise<Read> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      const buf = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk instanceof Uint8Array ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.from(String(chunk));
      size += buf.byteLength;
      if (size > limit) {
        stop();
        return { kind: "tooLarge" };
      }
      chunks.push(buf);
    }
  } catch {
    return { kind: "failed" };
  }
  return { kind: "ok", body: Buffer.concat(chunks, size) };
}

function isNodeStream(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === "object" && value !== null && typeof (value as { pipe?: unknown }).pipe === "function" && Symbol.asyncIterator in value;
}

function isWebStream(value: unknown): value is ReadableStream<unknown> {
  return typeof value === "object" && value !== null && typeof (value as { getReader?: unknown }).getReader === "function";
}

async function* webChunks(reader: ReadableStreamDefaultReader<unknown>): AsyncGenerator<unknown> {
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    yield value;
  }
}

function destroy(stream: unknown): void {
  const d = (stream as { destroy?: () => void }).destroy;
  if (typeof d === "function") d.call(stream);
}

const BYPASS_BODY = JSON.stringify({
  error: 'the paid handler wrote to reply.raw (or hijacked the reply); on a route settled after its handler, answer through reply.send, or set settle: "before"',
});

/**
 * A handler that writes to `reply.raw` itself (or after `reply.hijack()`) would send its
 * response past onSend, before any settlement. While the handler runs, such writes are refused:
 * the client gets a 500, nothing is settled, and the handler's later writes are dropped. Once
 * onSend has the payload, Fastify's own writes go through untouched.
 */
function guardRaw(reply: FastifyReply, state: Extract<Held, { kind: "after" }>): void {
  const raw = reply.raw;
  const original = { writeHead: raw.writeHead, write: raw.write, end: raw.end, flushHeaders: raw.flushHeaders };
  let refused = false;

  const blocked = (): boolean => {
    if (refused) return true;
    if (state.phase !== "handler") return false;
    refused = true;
    state.phase = "done";
    void state.decision.settle({ status: 500, aborted: true });
    for (const name of raw.getHeaderNames()) raw.removeHeader(name);
    original.writeHead.call(raw, 500, { "content-type": "application/json", "content-length": String(Buffer.byteLength(BYPASS_BODY)) });
    (original.end as (chunk: string) => ServerResponse).call(raw, BYPASS_BODY);
    return true;
  };
  // A dropped write still calls its callback, so a handler waiting on it does not hang.
  const callBack = (args: unknown[]) => {
    const cb = args.find((a) => typeof a === "function") as (() => void) | undefined;
    if (cb) process.nextTick(cb);
  };

  raw.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    return blocked() ? raw : (original.writeHead as (...a: unknown[]) => ServerResponse).apply(raw, args);
  } as ServerResponse["writeHead"];
  raw.flushHeaders = function () {
    if (!blocked()) original.flushHeaders.call(raw);
  };
  raw.write = function (...args: unknown[]) {
    if (!blocked()) return (original.write as (...a: unknown[]) => boolean).apply(raw, args);
    callBack(args);
    return true;
  } as ServerResponse["write"];
  raw.end = function (...args: unknown[]) {
    if (!blocked()) return (original.end as (...a: unknown[]) => ServerResponse).apply(raw, args);
    callBack(args);
    return raw;
  } as ServerResponse["end"];
}
