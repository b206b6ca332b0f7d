/**
 * x402 payments for Express 5. The handler's response is held back (status, headers, body)
 * until the payment is settled: a failed settlement sends a 402 and none of the body, a
 * handler error (status >= 400) is passed through and nothing is charged, a response larger
 * than `maxResponseBytes` is a 500 and nothing is charged.
 * The verified payment is available to handlers as `res.locals.payment`.
 *
 * Two forms:
 * - `app.use(paymentMiddleware({ ..., routes }))`: route keys are matched on the path Express
 *   routes on (`req.baseUrl + req.path`, and the mount-relative `req.path`), ignoring case
 *   unless the app has "case sensitive routing" on, and ignoring trailing slashes.
 * - `app.get("/report", paymentRoute(paywall, { price, network, payTo }), handler)`: Express's
 *   own match is the paywall's match; nothing to keep in sync.
 */
import type { NextFunction, Request, RequestHandler, Response } from "express";
import {
  createPaywall,
  meteredStream as meteredPaymentStream,
  openMeter,
  pipeMeteredToNode,
  setCharge as setPaymentCharge,
  type MeteredProducer,
  type Payment,
  mergeHeaderValue,
  type Decision,
  type HeldResponse,
  type PaidDecision,
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

/**
 * Usage-priced routes (`upto`): what this request costs, set by the handler before it responds:
 * atomic units ("1234"), a percentage of the signed maximum ("50%") or dollars ("$0.05"). Unset:
 * the maximum. Throws when malformed or above the maximum. (@tollgate/server charge.ts)
 */
export function setCharge(res: Response, amount: string): void {
  setPaymentCharge(res.locals.payment as Payment | undefined, amount);
}

/** Metered routes: the adapter's hold on the response, released when the handler streams instead. */
const releaseHold = new WeakMap<Payment, () => boolean>();

/**
 * Metered routes (route option `metered`): the handler streams its answer through `producer`,
 * which sends each message with its units (`meter.send(text, units)`), each charged before it is
 * sent under the signed maximum; the stream settles what it delivered when it stops and ends with
 * the receipt as its last event. Resolves when the stream has ended.
 * (@tollgate/server metered/, docs/extensions/metered-stream.md)
 */
export async function meteredStream(res: Response, producer: MeteredProducer): Promise<void> {
  const payment = res.locals.payment as Payment | undefined;
  const stream = meteredPaymentStream(payment, producer);
  // The response is no longer held for settlement: the stream settles itself when it stops. When
  // the hold is already over (the client left first), the stream is never read: nothing runs or moves.
  if (releaseHold.get(payment!)?.() !== true) return;
  await pipeMeteredToNode(stream, res);
}

/** The paywall for every route in `config.routes` (or of a paywall made with `createPaywall`). */
export function paymentMiddleware(config: PaywallConfig | Paywall): RequestHandler {
  const paywall = "handle" in config ? config : createPaywall(config);
  return middleware((request) => paywall.handle(request));
}

/**
 * The paywall for the one route this handler is attached to. Share one `paywall` between
 * routes: its in-flight guard is what keeps one payment from being served twice at once.
 */
export function paymentRoute(paywall: Paywall, route: RouteConfig, name?: string): RequestHandler {
  const guard = paywall.route(route, name);
  return middleware((request) => guard.handle(request));
}

function middleware(decide: (request: PaywallRequest) => Promise<Decision>): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    let decision: Decision;
    try {
      decision = await decide(paywallRequest(req));
    } catch (e) {
      return next(e);
    }
    if (decision.kind === "free") return next();
    if (decision.kind === "respond") return send(res, decision);
    res.locals.payment = decision.payment;
    if (gone(req, res)) {
      // The client left while the payment was being verified: run nothing, charge nothing.
      void decision.settle({ status: res.statusCode, aborted: true });
      return;
    }
    if (decision.settled) {
      // Settled before the handler: nothing to hold, the payment headers go out with whatever it sends.
      addHeaders(res, decision.settled.headers);
      void decision.settle({ status: 200 });
      return next();
    }
    const release = hold(res, decision);
    if (decision.metered) {
      openMeter(decision);
      releaseHold.set(decision.payment, release);
    }
    next();
  };
}

/** What the paywall needs of an Express request: the routed path, not a URL rebuilt from headers. */
export function paywallRequest(req: Request): PaywallRequest {
  const routed = req.baseUrl + req.path;
  return {
    method: req.method,
    path: routed,
    altPaths: req.baseUrl ? [req.path] : [],
    url: { protocol: req.protocol, host: req.get("host"), target: req.originalUrl },
    headers: (name) => req.get(name),
    ignoreCase: !req.app.enabled("case sensitive routing"),
  };
}

/** The connection closed before a response could be sent. */
function gone(req: Request, res: Response): boolean {
  return res.destroyed || req.socket?.destroyed === true;
}

function send(res: Response, r: Respond): void {
  res.status(r.status);
  for (const [k, v] of Object.entries(r.headers)) res.setHeader(k, v);
  res.end(r.body);
}

function addHeaders(res: Response, headers: Record<string, string>): void {
  for (const [k, v] of Object.entries(headers)) {
    const existing = res.getHeader(k);
    res.setHeader(k, mergeHeaderValue(k, existing === undefined ? undefined : String(existing), v));
  }
}

type Callback = (error?: Error | null) => void;

const toBuffer = (chunk: unknown, encoding?: unknown): Buffer | undefined => {
  if (chunk == null) return undefined;
  if (typeof chunk === "string") return Buffer.from(chunk, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return Buffer.from(String(chunk));
};

/**
 * Holds everything the downstream handler writes, up to `maxResponseBytes`. When it ends, the
 * payment is settled and the held response (plus payment headers) or a replacement is sent.
 * Headers are never flushed early because writeHead/flushHeaders are captured too. A client
 * that goes away before the handler ends is never charged.
 */
function hold(res: Response, decision: PaidDecision): () => boolean {
  const original = { write: res.write, end: res.end, writeHead: res.writeHead, flushHeaders: res.flushHeaders };
  const limit = decision.maxResponseBytes;
  let chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  const callbacks: Callback[] = [];
  let phase: "handler" | "settling" | "done" = "handler";

  const keep = (buf: Buffer | undefined) => {
    if (!buf || tooLarge) return;
    size += buf.byteLength;
    if (size > limit) {
      // Over the cap: drop what was held; nothing of it will be sent or charged for.
      tooLarge = true;
      chunks = [];
      return;
    }
    chunks.push(buf);
  };

  res.on("close", () => {
    if (phase !== "handler") return;
    phase = "done";
    Object.assign(res, original);
    void decision.settle({ status: res.statusCode, aborted: true });
  });

  res.writeHead = function (this: Response, status: number, ...rest: unknown[]) {
    res.statusCode = status;
    let headers = rest[0];
    if (typeof headers === "string") {
      res.statusMessage = headers;
      headers = rest[1];
    }
    if (Array.isArray(headers)) {
      // Flat [name, value, name, value] form.
      for (let i = 0; i + 1 < headers.length; i += 2) res.setHeader(String(headers[i]), headers[i + 1] as string);
    } else if (headers && typeof headers === "object") {
      for (const [k, v] of Object.entries(headers)) if (v !== undefined) res.setHeader(k, v as string | string[]);
    }
    return this;
  } as Response["writeHead"];

  res.flushHeaders = () => {};

  res.write = function (chunk: unknown, encoding?: unknown, cb?: unknown) {
    if (phase === "handler") keep(toBuffer(chunk, encoding));
    const done = typeof encoding === "function" ? encoding : cb;
    if (typeof done === "function") process.nextTick(done as Callback);
    return true;
  } as Response["write"];

  res.end = function (this: Response, chunk?: unknown, encoding?: unknown, cb?: unknown) {
    let data = chunk;
    let enc = encoding;
    let done = cb;
    if (typeof data === "function") [data, enc, done] = [undefined, undefined, data];
    else if (typeof enc === "function") [enc, done] = [undefined, enc];
    if (phase !== "handler") return this;
    phase = "settling";
    keep(toBuffer(data, enc));
    if (typeof done === "function") callbacks.push(done as Callback);
    void finish();
    return this;
  } as Response["end"];

  async function finish() {
    Object.assign(res, original);
    const body = Buffer.concat(chunks);
    chunks = [];
    const held: HeldResponse = { status: res.statusCode, headers: headerPairs(res), body, tooLarge };
    let outcome: Respond | Proceed;
    try {
      outcome = await decision.settle(held);
    } catch {
      outcome = { kind: "respond", status: 500, headers: { "Content-Type": "application/json" }, body: JSON.stringify({ error: "internal error while settling the payment" }) };
    }
    phase = "done";
    const onEnd = () => callbacks.forEach((f) => f());
    if (outcome.kind === "respond") {
      // Not settled (or served from the replay cache): nothing of the handler's response may leak, headers included.
      for (const name of res.getHeaderNames()) res.removeHeader(name);
      res.statusCode = outcome.status;
      for (const [k, v] of Object.entries(outcome.headers)) res.setHeader(k, v);
      res.end(outcome.body, onEnd);
      return;
    }
    addHeaders(res, outcome.headers);
    res.end(body, onEnd);
  }

  // A metered stream takes over (metered routes): the real methods back, nothing held or settled here.
  return () => {
    if (phase !== "handler") return false;
    phase = "done";
    Object.assign(res, original);
    return true;
  };
}

function headerPairs(res: Response): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(res.getHeaders())) {
    if (v === undefined) continue;
    out.push([k, Array.isArray(v) ? v.join(", ") : String(v)]);
  }
  return out;
}
