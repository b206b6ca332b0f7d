/**
 * The facilitator's HTTP surface (hono): `/verify`, `/settle`, `/supported`, the discovery
 * catalog (`/discovery/resources`, `/discovery/search`: discovery/), plus `/health`, `/ready`
 * and `/metrics` for operators. Protocol parsing and scheme routing are the core's
 * (createFacilitator); `/verify` and `/settle` are answered by payment-routes.ts (limits,
 * authentication, the ledger, settle-once, metrics and logs), which node's own server calls
 * directly for speed (server.ts).
 *
 * Status codes follow what x402 clients expect (the official HTTPFacilitatorClient throws on any
 * non-2xx): every protocol outcome is 200 with `isValid: false` / `success: false`; a request
 * that cannot be read (bad JSON, wrong shape, missing x402Version) is 400 naming the field; 401,
 * 413, 429 and 503 are transport errors; never 500 for anything a client sent.
 */
import { Hono, type Context } from "hono";
import { getConnInfo } from "@hono/node-server/conninfo";
import { BAZAAR, safeMessage, type Facilitator, type PaymentRequirements } from "@tollgate/core";
import { createCatalog, type CatalogOptions } from "./discovery/catalog.ts";
import { answerList, answerSearch } from "./discovery/routes.ts";
import { mountDashboard, type Dashboard, type DashboardOptions } from "./dashboard/routes.ts";
import { createAuditQueue, type AuditQueue } from "./audit.ts";
import { clientIp, readBody, webBody } from "./http-request.ts";
import type { Ledger } from "./ledger/ledger.ts";
import { createLogger, type Logger } from "./logger.ts";
import { AP2_MANDATE, createMandateGate, type FacilitatorMandateOptions } from "./mandates.ts";
import { createMetrics, PROMETHEUS_CONTENT_TYPE, type FacilitatorMetrics } from "./metrics.ts";
import { PAYMENT_IDENTIFIER } from "./payment.ts";
import { answerPayment, digest, internalError, keyEntries, operatorKeyDigests, type ApiKey, type PaymentDeps, type PaymentHttpRequest, type PaymentHttpResponse } from "./payment-routes.ts";
import { createRateLimiter, type BucketLimit } from "./rate-limit.ts";
import { runProbes, type ReadinessProbe } from "./readiness.ts";
import { createSettlementCoordinator, type SettlementCoordinator } from "./settle.ts";

export type { PaymentHttpRequest, PaymentHttpResponse } from "./payment-routes.ts";

export type { ReadinessProbe } from "./readiness.ts";

export interface FacilitatorAppOptions {
  facilitator: Facilitator;
  ledger: Ledger;
  logger?: Logger;
  metrics?: FacilitatorMetrics;
  /**
   * When set, `/verify` and `/settle` require `Authorization: Bearer <one of these>`. A key with
   * `receivers` acts for those receivers only (payment-routes.ts ApiKey).
   */
  apiKeys?: readonly ApiKey[];
  /** Per client address, and per VERIFIED payer (the scheme's authenticate; never a claimed field). */
  rateLimit?: { perIp?: BucketLimit; perPayer?: BucketLimit };
  /** Smallest amount (atomic units) accepted, globally or per requirement. Zero is always refused. */
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
  /**
   * The discovery catalog (bazaar): paid resources that declare themselves are listed at
   * `GET /discovery/resources` and `/discovery/search`. `false` turns it off. Default on.
   */
  discovery?: CatalogOptions | false;
  /**
   * The operator dashboard at `/dashboard` (dashboard/): behind the API keys when set, else only
   * to this machine. `false` turns it off. Default on.
   */
  dashboard?: DashboardOptions | false;
  /**
   * AP2 mandates (mandates.ts): a payment carrying a mandate chain is verified, and one is
   * required per `require`; `/supported` lists `ap2-mandate`. Default off (the service turns it on).
   */
  mandates?: FacilitatorMandateOptions | false;
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
  /** The dashboard, when on: `close()` ends its open live streams. */
  readonly dashboard: Dashboard | undefined;
  payment(request: PaymentHttpRequest): Promise<PaymentHttpResponse>;
};

export const DEFAULT_BODY_LIMIT = 64 * 1024;

export function createFacilitatorApp(options: FacilitatorAppOptions): FacilitatorApp {
  const { facilitator, ledger } = options;
  const logger = options.logger ?? createLogger({ level: "silent" });
  const metrics = options.metrics ?? createMetrics();
  const coordinator = createSettlementCoordinator({
    facilitator,
    ledger,
    metrics,
    ...options.settle,
    onStoreError: (message, e) => logger.error({ err: e === undefined ? undefined : safeMessage(e) }, message),
  });
  const deps: PaymentDeps = {
    facilitator,
    ledger,
    coordinator,
    audit: createAuditQueue(ledger, logger),
    metrics,
    logger,
    apiKeys: keyEntries(options.apiKeys ?? []),
    ...(options.rateLimit?.perIp ? { ipLimiter: createRateLimiter(options.rateLimit.perIp) } : {}),
    ...(options.rateLimit?.perPayer ? { payerLimiter: createRateLimiter(options.rateLimit.perPayer) } : {}),
    ...(options.minAmount !== undefined ? { minAmount: options.minAmount } : {}),
    maxBodyBytes: options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT,
    ...(options.discovery !== false ? { catalog: createCatalog(ledger, options.discovery) } : {}),
    ...(options.mandates ? { mandates: createMandateGate(options.mandates) } : {}),
  };
  const payment = (request: PaymentHttpRequest) => answerPayment(deps, request);

  const app = new Hono();
  app.onError((e, c) => {
    logger.error({ path: c.req.path, err: safeMessage(e) }, "unhandled error");
    const kind = c.req.path === "/verify" ? "verify" : c.req.path === "/settle" ? "settle" : undefined;
    return kind ? send(c, internalError(kind)) : c.json({ error: "internal error" }, 500);
  });
  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));

  for (const kind of ["verify", "settle"] as const) {
    app.post(`/${kind}`, (c) =>
      payment({
        kind,
        header: (name) => c.req.header(name),
        clientIp: () => clientIp(c.req.header("x-forwarded-for"), connectionAddress(c), options.trustProxy),
        readBody: (maxBytes) => readBody(webBody(c.req.raw.body), { contentLength: c.req.header("content-length"), transferEncoding: c.req.header("transfer-encoding") }, maxBytes),
      }).then((r) => send(c, r)),
    );
  }

  // ------------------------------------------------------------ other routes
  const extensions = [PAYMENT_IDENTIFIER, ...(deps.catalog ? [BAZAAR] : []), ...(deps.mandates ? [AP2_MANDATE] : [])];
  app.get("/supported", (c) => {
    const s = facilitator.supported();
    return c.json({ ...s, extensions: [...s.extensions, ...extensions.filter((e) => !s.extensions.includes(e))] });
  });

  const catalog = deps.catalog;
  if (catalog) {
    for (const [path, answer] of [["/discovery/resources", answerList], ["/discovery/search", answerSearch]] as const) {
      app.get(path, async (c) => {
        if (deps.ipLimiter && !deps.ipLimiter.take(`ip:${clientIp(c.req.header("x-forwarded-for"), connectionAddress(c), options.trustProxy)}`)) {
          return c.json({ error: "too many requests from this address; slow down" }, 429, { "retry-after": "1" });
        }
        const r = await answer(catalog, new URL(c.req.url).searchParams);
        return c.json(r.body, r.status);
      });
    }
  }

  const dashboard =
    options.dashboard === false
      ? undefined
      : mountDashboard(
          app,
          { ledger, logger, apiKeyDigests: operatorKeyDigests(deps.apiKeys), digest, remoteAddress: connectionAddress, clientAddress: (c) => clientIp(c.req.header("x-forwarded-for"), connectionAddress(c), options.trustProxy) },
          options.dashboard,
        );

  app.get("/health", (c) => c.json({ status: "ok" }));

  app.get("/ready", async (c) => {
    const timeout = options.readinessTimeoutMs ?? 3_000;
    const probes: ReadinessProbe[] = [{ name: "store", check: () => ledger.ping() }, ...(options.readinessProbes ?? [])];
    const results = await runProbes(probes, timeout);
    const ready = results.every(([, r]) => r === "ok");
    return c.json({ ready, checks: Object.fromEntries(results) }, ready ? 200 : 503);
  });

  app.get("/metrics", async (c) => c.body(await metrics.registry.render(), 200, { "content-type": PROMETHEUS_CONTENT_TYPE }));

  return Object.assign(app, { coordinator, audit: deps.audit, bodyLimitBytes: deps.maxBodyBytes, dashboard, payment });
}

function send(c: Context, r: PaymentHttpResponse): Response {
  return c.body(r.body, r.status, r.headers);
}

function connectionAddress(c: Context): string | undefined {
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined; // not served by node (tests calling app.request)
  }
}
