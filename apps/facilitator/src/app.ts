/**
 * The facilitator's HTTP surface (hono): `/verify`, `/settle`, `/supported`, plus `/health`,
 * `/ready` and `/metrics` for operators. Protocol parsing and scheme routing are the core's
 * (createFacilitator); this layer adds what a service needs: limits, authentication, rate
 * limits, the ledger, settle-once, metrics and logs.
 *
 * Status codes follow what x402 clients expect: a well-formed request for a payment that
 * does not hold up is 200 with `isValid: false` / `success: false`; a request that cannot be
 * read (bad JSON, wrong shape) is 400 naming the field; never 500 for anything a client sent.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Hono, type Context } from "hono";
import { getConnInfo } from "@hono/node-server/conninfo";
import {
  Reason,
  safeMessage,
  type Facilitator,
  type FacilitatorRequest,
  type Network,
  type PaymentRequirements,
  type SettleResponse,
  type VerifyResponse,
} from "@tollgate/core";
import type { Ledger } from "./ledger/ledger.ts";
import { createLogger, type Logger } from "./logger.ts";
import { createMetrics, PROMETHEUS_CONTENT_TYPE, type FacilitatorMetrics } from "./metrics.ts";
import { identifyPayment, PAYMENT_IDENTIFIER, paymentEntry, paymentIdentifier, type PaymentIdentityResult } from "./payment.ts";
import { createRateLimiter, type BucketLimit } from "./rate-limit.ts";
import { createSettlementCoordinator, type SettlementCoordinator } from "./settle.ts";
import { createAuditQueue, type AuditQueue } from "./audit.ts";

export interface ReadinessProbe {
  name: string;
  /** Resolves when the dependency answers; throws (or rejects) when it does not. */
  check: () => Promise<void>;
}

export interface FacilitatorAppOptions {
  facilitator: Facilitator;
  ledger: Ledger;
  logger?: Logger;
  metrics?: FacilitatorMetrics;
  /** When set, `/verify` and `/settle` require `Authorization: Bearer <one of these>`. */
  apiKeys?: readonly string[];
  rateLimit?: { perIp?: BucketLimit; perPayer?: BucketLimit };
  /** Smallest amount (atomic units) accepted, globally or per requirement. */
  minAmount?: bigint | ((requirements: PaymentRequirements) => bigint | undefined);
  /** Request bodies above this are refused with 413. Default 64 KiB. */
  bodyLimitBytes?: number;
  /** Chain and other checks for `/ready` (the ledger is always checked). */
  readinessProbes?: readonly ReadinessProbe[];
  readinessTimeoutMs?: number;
  /** Settle-once tuning, see SettlementCoordinatorOptions. */
  settle?: { leaseMs?: number; waitMs?: number; pollMs?: number };
  /** Take the client IP from `X-Forwarded-For` (only behind a proxy you run). */
  trustProxy?: boolean;
}

/** What `/verify` and `/settle` need from an HTTP request, whatever server received it. */
export interface PaymentHttpRequest {
  kind: "verify" | "settle";
  header(name: "authorization" | "content-type"): string | undefined;
  /** The client's address (for per-IP limits); only called when a limit is configured. */
  clientIp(): string;
  /** The body as text, or `undefined` when it is larger than `maxBytes` (read no further). */
  readBody(maxBytes: number): Promise<string | undefined>;
}

export interface PaymentHttpResponse {
  status: 200 | 400 | 401 | 409 | 413 | 429 | 500 | 503;
  headers: Record<string, string>;
  /** JSON text. */
  body: string;
}

/**
 * `audit` holds the write-behind audit records: `await app.audit.drain()` before closing the
 * ledger. `payment` answers `/verify` and `/settle` without hono: the node server calls it
 * directly for those two routes (see start.ts); the hono routes call it too.
 */
export type FacilitatorApp = Hono & {
  readonly coordinator: SettlementCoordinator;
  readonly audit: AuditQueue;
  readonly bodyLimitBytes: number;
  payment(request: PaymentHttpRequest): Promise<PaymentHttpResponse>;
};

export const DEFAULT_BODY_LIMIT = 64 * 1024;

type Kind = "verify" | "settle";

export function createFacilitatorApp(options: FacilitatorAppOptions): FacilitatorApp {
  const { facilitator, ledger } = options;
  const logger = options.logger ?? createLogger({ level: "silent" });
  const audit = createAuditQueue(ledger, logger);
  const metrics = options.metrics ?? createMetrics();
  const apiKeyDigests = (options.apiKeys ?? []).map(digest);
  const ipLimiter = options.rateLimit?.perIp ? createRateLimiter(options.rateLimit.perIp) : undefined;
  const payerLimiter = options.rateLimit?.perPayer ? createRateLimiter(options.rateLimit.perPayer) : undefined;
  const coordinator = createSettlementCoordinator({
    facilitator,
    ledger,
    metrics,
    ...options.settle,
    onStoreError: (message, e) => logger.error({ err: e === undefined ? undefined : safeMessage(e) }, message),
  });

  const app = new Hono();

  const maxBodyBytes = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT;

  // --------------------------------------------------------------- error shapes
  const json = (status: PaymentHttpResponse["status"], body: unknown, headers: Record<string, string> = {}): PaymentHttpResponse => ({
    status,
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const errorFor = (kind: Kind, status: PaymentHttpResponse["status"], reason: string, message: string, network = "", headers?: Record<string, string>) =>
    kind === "verify"
      ? json(status, { isValid: false, invalidReason: reason, invalidMessage: message } satisfies VerifyResponse, headers)
      : json(status, { success: false, errorReason: reason, errorMessage: message, transaction: "", network: network as Network } satisfies SettleResponse, headers);

  app.onError((e, c) => {
    logger.error({ path: c.req.path, err: safeMessage(e) }, "unhandled error");
    const kind: Kind | undefined = c.req.path === "/verify" ? "verify" : c.req.path === "/settle" ? "settle" : undefined;
    return kind ? send(c, errorFor(kind, 500, kind === "verify" ? Reason.unexpectedVerifyError : Reason.unexpectedSettleError, "internal error")) : c.json({ error: "internal error" }, 500);
  });
  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));

  // ------------------------------------------------------------ payment routes
  for (const kind of ["verify", "settle"] as const) {
    app.post(`/${kind}`, (c) =>
      payment({
        kind,
        header: (name) => c.req.header(name),
        clientIp: () => clientIp(c, options.trustProxy),
        readBody: (maxBytes) => readHonoBody(c, maxBytes),
      }).then((r) => send(c, r)),
    );
  }

  /** `/verify` and `/settle`: authentication and per-IP limits before the body is read, then the payment. */
  async function payment(req: PaymentHttpRequest): Promise<PaymentHttpResponse> {
    const { kind } = req;
    try {
      if (apiKeyDigests.length > 0 && !authorized(req.header("authorization"), apiKeyDigests)) {
        count(kind, "rejected", Reason.unauthorized);
        return errorFor(kind, 401, Reason.unauthorized, "authorization: expected `Bearer <api key>` with a valid key", "", { "www-authenticate": 'Bearer realm="tollgate-facilitator"' });
      }
      if (ipLimiter && !ipLimiter.take(`ip:${req.clientIp()}`)) {
        count(kind, "rejected", Reason.rateLimited);
        return errorFor(kind, 429, Reason.rateLimited, "too many requests from this address; slow down", "", { "retry-after": "1" });
      }
      const text = await req.readBody(maxBodyBytes);
      if (text === undefined) return errorFor(kind, 413, Reason.invalidPayload, `body: larger than ${maxBodyBytes} bytes`);
      return await handle(req, kind, text);
    } catch (e) {
      logger.error({ path: `/${kind}`, err: safeMessage(e) }, "unhandled error");
      return errorFor(kind, 500, kind === "verify" ? Reason.unexpectedVerifyError : Reason.unexpectedSettleError, "internal error");
    }
  }

  async function handle(req: PaymentHttpRequest, kind: Kind, text: string): Promise<PaymentHttpResponse> {
    const started = performance.now();
    const type = req.header("content-type");
    if (type && !/^application\/([a-z0-9.+-]*\+)?json\b/i.test(type.trim())) {
      return bad(kind, Reason.invalidPayload, `content-type: expected application/json, got ${JSON.stringify(type.slice(0, 64))}`);
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      // The parser's message quotes the body; say only what is wrong.
      return bad(kind, Reason.invalidPayload, "body: not valid JSON");
    }
    const parsed = facilitator.parseRequest(body);
    if (!parsed.ok) return bad(kind, parsed.reason, parsed.message, networkOf(body));
    const request = parsed.request;
    const identifier = paymentIdentifier(request.payload);
    if (!identifier.ok) return bad(kind, Reason.invalidPayload, identifier.message, request.requirements.network);

    const routed = facilitator.route(request);
    const authenticated = routed.ok ? await identifyPayment(routed.scheme, request.payload, request.requirements) : undefined;
    const identity = authenticated?.ok ? { payer: authenticated.payer, key: authenticated.key } : undefined;
    if (identity && payerLimiter && !payerLimiter.take(`payer:${request.requirements.network}|${identity.payer}`)) {
      count(kind, "rejected", Reason.rateLimited);
      return errorFor(kind, 429, Reason.rateLimited, "too many requests for this payer; slow down", request.requirements.network, { "retry-after": "1" });
    }
    const min = typeof options.minAmount === "function" ? options.minAmount(request.requirements) : options.minAmount;
    const belowMinimum = min !== undefined && BigInt(request.requirements.amount) < min;

    return kind === "verify"
      ? verify(request, identity, identifier.id, belowMinimum ? min : undefined, started)
      : settle(request, identity, identifier.id, belowMinimum ? min : undefined, started);
  }

  async function verify(request: FacilitatorRequest, identity: PaymentIdentityResult | undefined, id: string | undefined, min: bigint | undefined, started: number) {
    const response: VerifyResponse =
      min !== undefined
        ? { isValid: false, invalidReason: Reason.amountBelowMinimum, invalidMessage: `paymentRequirements.amount: below this facilitator's minimum of ${min}`, ...(identity ? { payer: identity.payer } : {}) }
        : await facilitator.verify(request);
    const network = request.requirements.network;
    // The answer does not depend on the record (settlement does, and fails closed there): write it behind.
    // Group-committed by the audit queue; a promise comes back only when it is full (backpressure).
    const full = [
      identity ? audit.addVerify({ entry: paymentEntry(request, identity, id), valid: response.isValid, ...(response.invalidReason ? { reason: response.invalidReason } : {}) }) : undefined,
      audit.addEvent({ kind: "verify", network, outcome: response.isValid ? "valid" : "invalid", ...(identity ? { key: identity.key, payer: identity.payer } : {}), ...(response.invalidReason ? { reason: response.invalidReason } : {}) }),
    ];
    if (full[0] || full[1]) await Promise.all(full);
    const seconds = (performance.now() - started) / 1000;
    metrics.verifyDuration.observe(seconds, { result: response.isValid ? "valid" : "invalid" });
    count("verify", response.isValid ? "valid" : "invalid", response.invalidReason);
    // Per request at debug: counts and durations are in /metrics; info is for what an operator acts on.
    if (logger.isLevelEnabled("debug")) logger.debug({ route: "verify", network, scheme: request.requirements.scheme, payer: identity?.payer ?? response.payer, key: identity?.key, isValid: response.isValid, reason: response.invalidReason, ms: Math.round(seconds * 1000) }, "verify");
    return json(200, response);
  }

  async function settle(request: FacilitatorRequest, identity: PaymentIdentityResult | undefined, id: string | undefined, min: bigint | undefined, started: number) {
    const network = request.requirements.network;
    let status: 200 | 409 | 503 = 200;
    let outcome: string;
    let response: SettleResponse;
    if (min !== undefined) {
      outcome = "rejected";
      response = { success: false, errorReason: Reason.amountBelowMinimum, errorMessage: `paymentRequirements.amount: below this facilitator's minimum of ${min}`, transaction: "", network, ...(identity ? { payer: identity.payer } : {}) };
    } else if (!identity) {
      // No authorization key to deduplicate on (unknown scheme shape, or unroutable): the
      // scheme itself is the only guard, so say so in the log.
      response = await facilitator.settle(request);
      outcome = response.success ? "settled" : "failed";
      if (response.success) logger.warn({ network, scheme: request.requirements.scheme }, "settled a payment without an authorization key; not deduplicated");
    } else {
      const o = await coordinator.settle(request, paymentEntry(request, identity, id));
      status = o.status;
      response = o.response;
      outcome = o.outcome === "settled" && !response.success ? "failed" : o.outcome;
    }
    await audit.addEvent({ kind: "settle", network, outcome, ...(identity ? { key: identity.key, payer: identity.payer } : {}), ...(response.errorReason ? { reason: response.errorReason } : {}), ...(response.transaction ? { transaction: response.transaction } : {}) });
    const seconds = (performance.now() - started) / 1000;
    metrics.settleDuration.observe(seconds, { result: response.success ? "success" : "failure" });
    count("settle", response.success ? (outcome === "replay" ? "replay" : "success") : "failure", response.errorReason);
    if (logger.isLevelEnabled("debug")) logger.debug({ route: "settle", network, scheme: request.requirements.scheme, payer: identity?.payer ?? response.payer, key: identity?.key, success: response.success, outcome, reason: response.errorReason, transaction: response.transaction || undefined, status, ms: Math.round(seconds * 1000) }, "settle");
    return json(status, facilitator.settleResponseFor(request, response));
  }

  function bad(kind: Kind, reason: string, message: string, network?: string) {
    count(kind, "malformed", reason);
    logger.debug({ route: kind, status: 400, reason, message }, "malformed request");
    return errorFor(kind, 400, reason, message, network);
  }

  function count(kind: Kind, result: string, reason: string | undefined) {
    (kind === "verify" ? metrics.verifyOutcomes : metrics.settleOutcomes).inc({ result, reason: reason ?? "" });
  }

  // ------------------------------------------------------------ other routes
  app.get("/supported", (c) => {
    const s = facilitator.supported();
    return c.json({ ...s, extensions: s.extensions.includes(PAYMENT_IDENTIFIER) ? s.extensions : [...s.extensions, PAYMENT_IDENTIFIER] });
  });

  app.get("/health", (c) => c.json({ status: "ok" }));

  app.get("/ready", async (c) => {
    const timeout = options.readinessTimeoutMs ?? 3_000;
    const probes: ReadinessProbe[] = [{ name: "store", check: () => ledger.ping() }, ...(options.readinessProbes ?? [])];
    const results = await Promise.all(
      probes.map(async (p) => {
        try {
          await withTimeout(p.check(), timeout, `${p.name}: no answer within ${timeout} ms`);
          return [p.name, "ok"] as const;
        } catch (e) {
          return [p.name, safeMessage(e)] as const;
        }
      }),
    );
    const ready = results.every(([, r]) => r === "ok");
    return c.json({ ready, checks: Object.fromEntries(results) }, ready ? 200 : 503);
  });

  app.get("/metrics", async (c) => c.body(await metrics.registry.render(), 200, { "content-type": PROMETHEUS_CONTENT_TYPE }));

  return Object.assign(app, { coordinator, audit, bodyLimitBytes: maxBodyBytes, payment });
}

function send(c: Context, r: PaymentHttpResponse): Response {
  return c.body(r.body, r.status, r.headers);
}

/**
 * The body through hono, bounded. A declared length (and no transfer-encoding) is checked from
 * the header alone, without touching the stream; anything else is read and counted.
 */
async function readHonoBody(c: Context, maxBytes: number): Promise<string | undefined> {
  const length = c.req.header("content-length");
  if (length !== undefined && c.req.header("transfer-encoding") === undefined) {
    if (parseInt(length || "0", 10) > maxBytes) return undefined;
    return c.req.text();
  }
  const stream = c.req.raw.body;
  if (!stream) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > maxBytes) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function digest(key: string): Buffer {
  return createHash("sha256").update(key).digest();
}

/** Constant-time over every configured key, so timing says nothing about which matched. */
function authorized(header: string | undefined, keys: readonly Buffer[]): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  if (!m) return false;
  const given = digest(m[1]!);
  let ok = false;
  for (const k of keys) ok = timingSafeEqual(given, k) || ok;
  return ok;
}

function clientIp(c: Context, trustProxy: boolean | undefined): string {
  if (trustProxy) {
    const forwarded = c.req.header("x-forwarded-for")?.split(",")[0]?.trim();
    if (forwarded) return forwarded;
  }
  try {
    return getConnInfo(c).remote.address ?? "unknown";
  } catch {
    return "unknown"; // not served by node (tests calling app.request)
  }
}

function networkOf(body: unknown): string {
  const n = (body as { paymentRequirements?: { network?: unknown } } | null)?.paymentRequirements?.network;
  return typeof n === "string" ? n.slice(0, 64) : "";
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]).finally(() => clearTimeout(timer));
}
