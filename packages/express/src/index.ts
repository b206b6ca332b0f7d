/**
 * x402 payments for Express 5. The handler's response is held back (status, headers, body)
 * until the payment is settled: a failed settlement sends a 402 and none of the body, a
 * handler error (status >= 400) is passed through and nothing is charged.
 * The verified payment is available to handlers as `res.locals.payment`.
 */
import type { NextFunction, Request, RequestHandler, Response } from "express";
import { createPaywall, mergeHeaderValue, type Paywall, type PaywallConfig, type Respond } from "@tollgate/server";

export type { Payment, PaywallConfig, RouteConfig, PaymentOption } from "@tollgate/server";

export function paymentMiddleware(config: PaywallConfig | Paywall): RequestHandler {
  const paywall = "handle" in config ? config : createPaywall(config);
  return async (req: Request, res: Response, next: NextFunction) => {
    let decision;
    try {
      decision = await paywall.handle({
        method: req.method,
        url: `${req.protocol}://${req.get("host") ?? "localhost"}${req.originalUrl}`,
        headers: (name) => req.get(name),
      });
    } catch (e) {
      return next(e);
    }
    if (decision.kind === "free") return next();
    if (decision.kind === "respond") return send(res, decision);
    res.locals.payment = decision.payment;
    hold(res, async (status) => decision.settle({ status }));
    next();
  };
}

function send(res: Response, r: Respond): void {
  res.status(r.status);
  for (const [k, v] of Object.entries(r.headers)) res.setHeader(k, v);
  res.end(r.body);
}

type Callback = (error?: Error | null) => void;

/**
 * Buffers everything the downstream handler writes. When it ends, `decide` settles and the
 * buffered response (plus payment headers) or a replacement is sent. Headers are never
 * flushed early because writeHead/flushHeaders are captured too.
 */
function hold(res: Response, decide: (status: number) => Promise<Respond | { kind: "ok"; headers: Record<string, string> }>): void {
  const original = { write: res.write, end: res.end, writeHead: res.writeHead, flushHeaders: res.flushHeaders };
  const chunks: Buffer[] = [];
  const callbacks: Callback[] = [];
  let ended = false;

  const toBuffer = (chunk: unknown, encoding?: unknown): Buffer | undefined => {
    if (chunk == null) return undefined;
    if (typeof chunk === "string") return Buffer.from(chunk, typeof encoding === "string" ? (encoding as BufferEncoding) : "utf8");
    if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    return Buffer.from(String(chunk));
  };

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
    const buf = toBuffer(chunk, encoding);
    if (buf) chunks.push(buf);
    const done = typeof encoding === "function" ? encoding : cb;
    if (typeof done === "function") process.nextTick(done as Callback);
    return true;
  } as Response["write"];

  res.end = function (this: Response, chunk?: unknown, encoding?: unknown, cb?: unknown) {
    if (ended) return this;
    ended = true;
    let data = chunk;
    let enc = encoding;
    let done = cb;
    if (typeof data === "function") [data, enc, done] = [undefined, undefined, data];
    else if (typeof enc === "function") [enc, done] = [undefined, enc];
    const buf = toBuffer(data, enc);
    if (buf) chunks.push(buf);
    if (typeof done === "function") callbacks.push(done as Callback);
    void finish();
    return this;
  } as Response["end"];

  async function finish() {
    Object.assign(res, original);
    let outcome;
    try {
      outcome = await decide(res.statusCode);
    } catch {
      outcome = { kind: "respond" as const, status: 500, headers: { "Content-Type": "application/json" }, body: JSON.stringify({ error: "internal error while settling the payment" }) };
    }
    const body = Buffer.concat(chunks);
    const onEnd = () => callbacks.forEach((f) => f());
    if (outcome.kind === "respond") {
      // Settlement failed: nothing of the handler's response may leak, headers included.
      for (const name of res.getHeaderNames()) res.removeHeader(name);
      res.statusCode = outcome.status;
      for (const [k, v] of Object.entries(outcome.headers)) res.setHeader(k, v);
      res.end(outcome.body, onEnd);
      return;
    }
    for (const [k, v] of Object.entries(outcome.headers)) {
      const existing = res.getHeader(k);
      res.setHeader(k, mergeHeaderValue(k, existing === undefined ? undefined : String(existing), v));
    }
    res.end(body, onEnd);
  }
}
