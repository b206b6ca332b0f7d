// The paywall attacked as a client would attack it, on every adapter (express, hono, fastify, and
// Next route handlers served the way `next start` serves them), over real HTTP on loopback
// (raw sockets where the request target or Host must be malformed), against a real anvil chain
// and our real facilitator service. Every way to reach a paid handler without paying must be
// refused with the handler never run; one payment must buy exactly one response and move money
// exactly once; a payment must never be charged without its resource being served.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import express from "express";
import { Hono } from "hono";
import { getRequestListener } from "@hono/node-server";
import Fastify from "fastify";
import { createPublicClient, erc20Abi, http, type Address, type Hex, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import {
  decodeBase64Json,
  encodeBase64Json,
  httpFacilitatorClient,
  type FacilitatorClient,
  type Network,
  type PaymentPayload,
  type PaymentRequired,
  type PaymentRequirements,
  type SettleResponse,
} from "@tollgate/core";
import { exactEvmServer, signExactEvmAuthorization } from "@tollgate/evm";
import { mintTo, startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { startFacilitator, type RunningFacilitator } from "@tollgate/facilitator";
import { paymentMiddleware as expressPaywall, paymentRoute as expressRoute } from "@tollgate/express";
import { paymentMiddleware as honoPaywall, paymentRoute as honoRoute } from "@tollgate/hono";
import { paymentMiddleware as fastifyPaywall, paymentRoute as fastifyRoute } from "@tollgate/fastify";
import { withPayment, withPaywall } from "@tollgate/next";
import { createPaywall, isPending, type PaywallConfig, type RouteConfig } from "@tollgate/server";
import { localChain } from "./support/official.ts";
import { listen } from "./support/listen.ts";
import { rawRequest, type RawResponse } from "./support/raw-http.ts";
import { serveLikeNext, type Handler, type RouteModule } from "../packages/next/test/next-like.ts";

const AMOUNT = 10_000n; // 0.01 USDC
const FRAMEWORKS = ["express", "hono", "fastify", "next"] as const;
type Framework = (typeof FRAMEWORKS)[number];

let net: RunningLocalNetwork;
let chain: PublicClient;
let facilitator: RunningFacilitator;
let feePayer: Address;
let payee: Address;

interface Served {
  url: string;
  port: number;
  /** Handler runs by route name. */
  runs: Record<string, number>;
  /** Every settle answer the paywall received from the facilitator. */
  settles: SettleResponse[];
  /** The payee's balance as /before's handler saw it when it ran. */
  beforeSaw: bigint[];
  close(): Promise<void>;
}
const servers = {} as Record<Framework, Served>;
/** Per framework, a server whose paywall gives up on a pending settlement after 1.5 s. */
const impatientServers = {} as Record<Framework, Served>;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 3 });
  chain = createPublicClient({ chain: localChain(net.chainId, net.rpcUrl), transport: http(net.rpcUrl) });
  payee = net.accounts.payee.address;
  feePayer = net.accounts.facilitator.address;
  facilitator = await startFacilitator({
    port: 0,
    host: "127.0.0.1",
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [{ address: net.usdc.address, name: net.usdc.name, version: net.usdc.version, decimals: net.usdc.decimals }] }],
    privateKeys: [net.accounts.facilitator.privateKey],
    logLevel: "silent",
    // Short receipt wait and reconcile period, so the pending path runs in test time; a waiting duplicate answers soon.
    settlement: { receiptTimeoutMs: 1_000, reconcileIntervalMs: 200 },
    settle: { waitMs: 500 },
  });
  for (const framework of FRAMEWORKS) servers[framework] = await startServer(framework);
  for (const framework of FRAMEWORKS) impatientServers[framework] = await startServer(framework, { settlementTimeoutMs: 1_500 });
}, 60_000);

afterAll(async () => {
  for (const s of [...Object.values(servers), ...Object.values(impatientServers)]) await s?.close();
  await facilitator?.close();
  await net?.stop();
});

// ------------------------------------------------------------------ the servers under attack

const price = () => ({ amount: AMOUNT.toString(), asset: net.usdc.address });

function paywallConfig(served: Served, routes: Record<string, RouteConfig>, overrides: Partial<PaywallConfig> = {}): PaywallConfig {
  const network = net.network as Network;
  const client = httpFacilitatorClient({ url: facilitator.url });
  const recording: FacilitatorClient = {
    supported: () => client.supported(),
    verify: (p, r, o) => client.verify(p, r, o),
    settle: async (p, r, o) => {
      const answer = await client.settle(p, r, o);
      served.settles.push(answer);
      return answer;
    },
  };
  return {
    facilitator: recording,
    schemes: [exactEvmServer({ assets: [{ network, address: net.usdc.address, decimals: net.usdc.decimals, name: net.usdc.name, version: net.usdc.version, symbol: "USDC" }] })],
    routes,
    settlementPollMs: 200,
    settlementTimeoutMs: 20_000,
    ...overrides,
  };
}

function mainRoutes(): Record<string, RouteConfig> {
  const network = net.network as Network;
  return {
    "GET /paid": { price: price(), network, payTo: payee },
    "/any": { price: price(), network, payTo: payee },
    "GET /dear": { price: { amount: (AMOUNT * 2n).toString(), asset: net.usdc.address }, network, payTo: payee },
    "GET /big": { price: price(), network, payTo: payee, maxResponseBytes: 1_024 },
    "GET /before": { price: price(), network, payTo: payee, settle: "before" },
  };
}

async function startServer(framework: Framework, overrides: Partial<PaywallConfig> = {}): Promise<Served> {
  const served: Served = { url: "", port: 0, runs: {}, settles: [], beforeSaw: [], close: async () => {} };
  const ran = (name: string) => (served.runs[name] = (served.runs[name] ?? 0) + 1);
  const network = net.network as Network;
  const paywall = createPaywall(paywallConfig(served, mainRoutes(), overrides));
  const perRoute: RouteConfig = { price: price(), network, payTo: payee };
  const resource = (name: string) => ({ ok: true, route: name, secret: "SECRET-CONTENT" });
  const build = { express: expressApp, hono: honoApp, fastify: fastifyApp, next: nextApp }[framework];
  const { url, close } = await build(served, paywall, perRoute, ran, resource);
  served.url = url;
  served.port = Number(new URL(url).port);
  served.close = close;
  return served;
}

type Ran = (name: string) => void;
type Resource = (name: string) => Record<string, unknown>;
type Listening = { url: string; close(): Promise<void> };

async function expressApp(served: Served, paywall: ReturnType<typeof createPaywall>, perRoute: RouteConfig, ran: Ran, resource: Resource): Promise<Listening> {
  const app = express();
  app.use(expressPaywall(paywall));
  // Middleware an application may run after the paywall: a method override and an IIS-style
  // rewrite. Both change what the router runs; the paywall must have priced that already.
  app.use((req, _res, next) => {
    const override = req.get("x-http-method-override");
    if (override) req.method = override.toUpperCase();
    const original = req.get("x-original-url");
    if (original) req.url = original;
    next();
  });
  app.get("/free", (_req, res) => void res.json({ free: true }));
  app.get("/paid", (_req, res) => (ran("paid"), void res.json(resource("paid"))));
  app.all("/any", (_req, res) => (ran("any"), void res.json(resource("any"))));
  app.get("/dear", (_req, res) => (ran("dear"), void res.json(resource("dear"))));
  app.get("/big", (_req, res) => {
    ran("big");
    res.write("B".repeat(1_000));
    res.write("B".repeat(1_000));
    res.end("B".repeat(1_000));
  });
  app.get("/before", async (_req, res) => {
    ran("before");
    served.beforeSaw.push(await balanceOf(payee));
    res.json(resource("before"));
  });
  app.get("/per", expressRoute(paywall, perRoute, "GET /per"), (_req, res) => (ran("per"), void res.json(resource("per"))));
  // A router mounted at /v1 with its own paywall, keyed relative to the mount.
  const router = express.Router();
  const sub = createPaywall(paywallConfig(served, { "GET /report": perRoute }));
  router.use(expressPaywall(sub));
  router.get("/report", (_req, res) => (ran("v1-report"), void res.json(resource("v1-report"))));
  app.use("/v1", router);
  return listen(app);
}

async function honoApp(served: Served, paywall: ReturnType<typeof createPaywall>, perRoute: RouteConfig, ran: Ran, resource: Resource): Promise<Listening> {
  const app = new Hono();
  app.use(honoPaywall(paywall));
  app.get("/free", (c) => c.json({ free: true }));
  app.get("/paid", (c) => (ran("paid"), c.json(resource("paid"))));
  app.all("/any", (c) => (ran("any"), c.json(resource("any"))));
  app.get("/dear", (c) => (ran("dear"), c.json(resource("dear"))));
  app.get("/big", (c) => {
    ran("big");
    return c.body(new ReadableStream({ start: (s) => (s.enqueue(new TextEncoder().encode("B".repeat(3_000))), s.close()) }));
  });
  app.get("/before", async (c) => {
    ran("before");
    served.beforeSaw.push(await balanceOf(payee));
    return c.json(resource("before"));
  });
  app.get("/per", honoRoute(paywall, perRoute, "GET /per"), (c) => (ran("per"), c.json(resource("per"))));
  // A sub-app routed at /v1 with its own paywall, keyed on the full path hono routes on.
  const v1 = new Hono();
  v1.use(honoPaywall(createPaywall(paywallConfig(served, { "GET /v1/report": perRoute }))));
  v1.get("/report", (c) => (ran("v1-report"), c.json(resource("v1-report"))));
  app.route("/v1", v1);
  return listen(getRequestListener(app.fetch));
}

async function fastifyApp(served: Served, paywall: ReturnType<typeof createPaywall>, perRoute: RouteConfig, ran: Ran, resource: Resource): Promise<Listening> {
  const app = Fastify({
    logger: false,
    forceCloseConnections: true,
    // Fastify routes a request before any hook runs, so middleware after the paywall cannot change
    // what it routes to. The closest equivalents of the express app's two middleware run before
    // routing instead: a method override wraps the server's handler (what
    // fastify-method-override-wrapper does), and the rewrite is Fastify's own `rewriteUrl`.
    serverFactory: (handler) =>
      createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => {
        const override = req.headers["x-http-method-override"];
        if (typeof override === "string" && override) req.method = override.toUpperCase();
        handler(req, res);
      }),
    rewriteUrl: (req) => {
      const original = req.headers["x-original-url"];
      return typeof original === "string" && original ? original : req.url!;
    },
  });
  await app.register(fastifyPaywall(paywall));
  app.get("/free", async () => ({ free: true }));
  app.get("/paid", async () => (ran("paid"), resource("paid")));
  app.all("/any", async () => (ran("any"), resource("any")));
  app.get("/dear", async () => (ran("dear"), resource("dear")));
  app.get("/big", async (_request, reply) => {
    ran("big");
    // A Fastify handler streams through the reply (writing to reply.raw would bypass onSend).
    return reply.type("text/plain").send(Readable.from(["B".repeat(1_000), "B".repeat(1_000), "B".repeat(1_000)].map((c) => Buffer.from(c))));
  });
  app.get("/before", async () => {
    ran("before");
    served.beforeSaw.push(await balanceOf(payee));
    return resource("before");
  });
  app.get("/per", fastifyRoute(paywall, perRoute, "GET /per"), async () => (ran("per"), resource("per")));
  // A prefixed context with its own paywall, keyed on the full path Fastify routes on.
  const sub = createPaywall(paywallConfig(served, { "GET /v1/report": perRoute }));
  await app.register(
    async (v1) => {
      await v1.register(fastifyPaywall(sub));
      v1.get("/report", async () => (ran("v1-report"), resource("v1-report")));
    },
    { prefix: "/v1" },
  );
  await app.listen({ port: 0, host: "127.0.0.1" });
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
}

/**
 * The Next app: app/[[...slug]]/route.ts, an optional catch-all exporting every method through
 * `withPaywall` (priced by the route table on the request's path), serves what the express app's
 * routes serve; app/per/route.ts exports GET through `withPayment`; app/v1/[[...slug]]/route.ts
 * is a sub-tree with its own paywall, keyed on the full path (Next routes on it). A catch-all
 * because Next has no middleware between its router and a route's handler: a route.ts exports
 * only the methods it serves (a POST to a GET-only route is Next's 405 and reaches no paywall),
 * and the express app's method override and IIS-style rewrite, run after the paywall, can only be
 * the handler's own dispatch, as here.
 */
async function nextApp(served: Served, paywall: ReturnType<typeof createPaywall>, perRoute: RouteConfig, ran: Ran, resource: Resource): Promise<Listening> {
  const bytes = (text: string) => new TextEncoder().encode(text);
  const get: Record<string, () => Response | Promise<Response>> = {
    "/free": () => Response.json({ free: true }),
    "/paid": () => (ran("paid"), Response.json(resource("paid"))),
    "/dear": () => (ran("dear"), Response.json(resource("dear"))),
    "/big": () => {
      ran("big");
      return new Response(
        new ReadableStream({
          start(c) {
            for (let i = 0; i < 3; i++) c.enqueue(bytes("B".repeat(1_000)));
            c.close();
          },
        }),
      );
    },
    "/before": async () => {
      ran("before");
      served.beforeSaw.push(await balanceOf(payee));
      return Response.json(resource("before"));
    },
  };
  const router: Handler = (request) => {
    // After the paywall, like the express app's middleware: a method override and a rewrite header.
    const method = (request.headers.get("x-http-method-override") || request.method).toUpperCase();
    const path = request.headers.get("x-original-url")?.split("?")[0] || new URL(request.url).pathname;
    if (path === "/any") return (ran("any"), Response.json(resource("any")));
    const page = method === "GET" || method === "HEAD" ? get[path] : undefined;
    return page ? page() : new Response("not found", { status: 404 });
  };
  const everyMethod = (handler: Handler): RouteModule => Object.fromEntries(EVERY_METHOD.map((m) => [m, handler]));
  const sub = createPaywall(paywallConfig(served, { "GET /v1/report": perRoute }));
  const v1: Handler = (request) =>
    new URL(request.url).pathname === "/v1/report" && (request.method === "GET" || request.method === "HEAD")
      ? (ran("v1-report"), Response.json(resource("v1-report")))
      : new Response("not found", { status: 404 });
  const running = await serveLikeNext({
    catchAll: everyMethod(withPaywall(router, paywall)),
    routes: {
      "/per": { GET: withPayment(() => (ran("per"), Response.json(resource("per"))), perRoute, paywall, "GET /per") },
      "/v1/[[...slug]]": everyMethod(withPaywall(v1, sub)),
    },
  });
  return { url: running.url, close: running.close };
}

const EVERY_METHOD = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"] as const;

// ------------------------------------------------------------------ chain and payment helpers

const balanceOf = (owner: Address) => chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [owner] });

/** What no refused request may change: the payee's balance and the fee payer's transaction count. */
async function money() {
  const [received, sent] = await Promise.all([balanceOf(payee), chain.getTransactionCount({ address: feePayer })]);
  return { received, sent };
}

const rpc = (method: string, params: unknown[] = []) => chain.request({ method: method as never, params: params as never });

async function requirementsOf(served: Served, path = "/paid"): Promise<{ required: PaymentRequired; requirements: PaymentRequirements }> {
  const res = await fetch(served.url + path);
  expect(res.status).toBe(402);
  const decoded = decodeBase64Json(res.headers.get("PAYMENT-REQUIRED"), "PAYMENT-REQUIRED");
  if (!decoded.ok) throw new Error(decoded.message);
  const required = decoded.value as PaymentRequired;
  return { required, requirements: required.accepts[0]! };
}

/** A PAYMENT-SIGNATURE for `path`'s requirements, signed by `key` (default: payer 0), each call a fresh authorization. */
async function signedHeader(served: Served, path: string, o: { key?: Hex; id?: string } = {}): Promise<string> {
  const { required, requirements } = await requirementsOf(served, path);
  const account = privateKeyToAccount(o.key ?? net.accounts.payers[0]!.privateKey);
  const inner = await signExactEvmAuthorization(account, requirements);
  const payload: PaymentPayload = {
    x402Version: 2,
    resource: required.resource,
    accepted: requirements,
    payload: inner as unknown as Record<string, unknown>,
    ...(o.id ? { extensions: { "payment-identifier": { info: { required: false, id: o.id } } } } : {}),
  };
  return encodeBase64Json(payload);
}

const payWith = (served: Served, path: string, header: string) => fetch(served.url + path, { headers: { "PAYMENT-SIGNATURE": header } });

function errorOf(res: Response | RawResponse): string {
  const header = typeof res.headers.get === "function" ? (res as Response).headers.get("payment-required") : (res as RawResponse).headers["payment-required"];
  if (!header) return "";
  const decoded = decodeBase64Json(header, "PAYMENT-REQUIRED");
  return decoded.ok ? ((decoded.value as PaymentRequired).error ?? "") : "";
}

const totalRuns = (s: Served) => Object.values(s.runs).reduce((a, b) => a + b, 0);

// ------------------------------------------------------------------ every way in without paying

interface Bypass {
  name: string;
  /** Request line and headers; `{port}` is replaced with the server's port. */
  head: string;
  /**
   * The exact status expected, where the issue names the bypass; otherwise any refusal (400, 402,
   * 404). Next answers a trailing slash and repeated slashes (an absolute-form target's "//"
   * included) with its 308 to the normalized path before any route runs: that is its refusal.
   */
  status?: Partial<Record<Framework, number>>;
}

const host = "Host: 127.0.0.1:{port}";
const utf8 = (s: string) => Buffer.from(s, "utf8").toString("latin1");

const BYPASSES: Bypass[] = [
  { name: "the plain request (control)", head: `GET /paid HTTP/1.1\r\n${host}`, status: { express: 402, hono: 402, fastify: 402, next: 402 } },
  { name: "path in another case", head: `GET /PAID HTTP/1.1\r\n${host}`, status: { express: 402, next: 402 } },
  { name: "mixed case", head: `GET /PaId HTTP/1.1\r\n${host}`, status: { express: 402, next: 402 } },
  { name: "percent-encoded letter", head: `GET /pai%64 HTTP/1.1\r\n${host}`, status: { express: 402, hono: 402, fastify: 402, next: 402 } },
  { name: "percent-encoded, other case", head: `GET /PAI%44 HTTP/1.1\r\n${host}`, status: { express: 402, next: 402 } },
  { name: "trailing slash", head: `GET /paid/ HTTP/1.1\r\n${host}`, status: { express: 402, hono: 402, next: 308 } },
  { name: "double slashes", head: `GET //paid HTTP/1.1\r\n${host}`, status: { next: 308 } },
  { name: "trailing double slash", head: `GET /paid// HTTP/1.1\r\n${host}`, status: { next: 308 } },
  { name: "matrix parameter", head: `GET /paid;a=b HTTP/1.1\r\n${host}` },
  { name: "dot segments", head: `GET /x/../paid HTTP/1.1\r\n${host}`, status: { hono: 402, next: 402 } },
  { name: "encoded dot segments", head: `GET /x/%2e%2e/paid HTTP/1.1\r\n${host}`, status: { hono: 402, next: 402 } },
  { name: "encoded slash", head: `GET /%2Fpaid HTTP/1.1\r\n${host}` },
  { name: "encoded trailing slash", head: `GET /paid%2F HTTP/1.1\r\n${host}` },
  { name: "query and fragment", head: `GET /paid?x=1#frag HTTP/1.1\r\n${host}`, status: { express: 402, hono: 402, fastify: 402, next: 402 } },
  { name: "unicode look-alike (long s)", head: `GET ${utf8("/pai\u017F")} HTTP/1.1\r\n${host}` },
  { name: "unicode look-alike, encoded (Kelvin sign)", head: `GET /%E2%84%AApaid HTTP/1.1\r\n${host}` },
  { name: "absolute-form target", head: `GET http://127.0.0.1:{port}/paid HTTP/1.1\r\n${host}`, status: { express: 402, hono: 402, fastify: 402, next: 308 } },
  { name: "absolute-form target naming another host", head: `GET http://evil.example/paid HTTP/1.1\r\n${host}`, status: { express: 402, hono: 402, fastify: 402, next: 308 } },
  { name: "absolute-form target, other case", head: `GET http://127.0.0.1:{port}/PAID HTTP/1.1\r\n${host}`, status: { express: 402, next: 308 } },
  { name: "empty Host", head: `GET /paid HTTP/1.1\r\nHost: `, status: { express: 400, hono: 400, fastify: 400, next: 400 } },
  { name: "Host with a path", head: `GET /paid HTTP/1.1\r\nHost: evil.example/x`, status: { express: 400, hono: 400, fastify: 400, next: 400 } },
  { name: "Host with a space", head: `GET /paid HTTP/1.1\r\nHost: a b`, status: { express: 400, hono: 400, fastify: 400, next: 400 } },
  { name: "Host with userinfo", head: `GET /paid HTTP/1.1\r\nHost: user@evil.example`, status: { express: 400, hono: 400, fastify: 400, next: 400 } },
  { name: "no Host (HTTP/1.0)", head: `GET /paid HTTP/1.0` },
  { name: "two Host headers", head: `GET /paid HTTP/1.1\r\n${host}\r\nHost: evil.example` },
  { name: "HEAD", head: `HEAD /paid HTTP/1.1\r\n${host}`, status: { express: 402, hono: 402, fastify: 402, next: 402 } },
  { name: "OPTIONS to an app.all route", head: `OPTIONS /any HTTP/1.1\r\n${host}`, status: { express: 402, hono: 402, fastify: 402, next: 402 } },
  { name: "OPTIONS with Origin only (not a preflight)", head: `OPTIONS /any HTTP/1.1\r\n${host}\r\nOrigin: https://evil.example`, status: { express: 402, hono: 402, fastify: 402, next: 402 } },
  { name: "POST to an app.all route", head: `POST /any HTTP/1.1\r\n${host}\r\nContent-Length: 0`, status: { express: 402, hono: 402, fastify: 402, next: 402 } },
  { name: "method override header", head: `POST /paid HTTP/1.1\r\n${host}\r\nX-HTTP-Method-Override: GET\r\nContent-Length: 0`, status: { express: 402, hono: 402, fastify: 402, next: 402 } },
  { name: "X-Original-URL rewrite", head: `GET /free HTTP/1.1\r\n${host}\r\nX-Original-URL: /paid`, status: { express: 402, hono: 402, fastify: 402, next: 402 } },
  { name: "X-Forwarded-Host and -Proto", head: `GET /paid HTTP/1.1\r\n${host}\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Prefix: /free`, status: { express: 402, hono: 402, fastify: 402, next: 402 } },
  { name: "mounted router, other case", head: `GET /V1/REPORT HTTP/1.1\r\n${host}`, status: { express: 402 } },
  { name: "mounted router, encoded", head: `GET /v1/repor%74 HTTP/1.1\r\n${host}`, status: { express: 402, hono: 402, fastify: 402, next: 402 } },
  { name: "mounted router, trailing slash", head: `GET /v1/report/ HTTP/1.1\r\n${host}`, status: { express: 402, hono: 402, next: 308 } },
  { name: "per-route form, other case", head: `GET /PER HTTP/1.1\r\n${host}`, status: { express: 402 } },
  { name: "per-route form, encoded", head: `GET /p%65r HTTP/1.1\r\n${host}`, status: { hono: 402, fastify: 402 } },
];

describe.each(FRAMEWORKS)("%s: every way to reach a paid handler without paying is refused", (framework) => {
  it.each(BYPASSES)("$name", async (bypass) => {
    const served = servers[framework];
    const runsBefore = totalRuns(served);
    const res = await rawRequest(served.port, bypass.head.replaceAll("{port}", String(served.port)));
    const expected = bypass.status?.[framework];
    if (expected !== undefined) expect(res.status, res.raw.slice(0, 300)).toBe(expected);
    else expect([400, 402, 404], res.raw.slice(0, 300)).toContain(res.status);
    expect(res.body).not.toContain("SECRET-CONTENT");
    expect(totalRuns(served)).toBe(runsBefore);
    if (res.status === 402) expect(res.headers["payment-required"]).toBeTruthy();
    if (res.status === 400) expect(JSON.parse(res.body || "{}").reason ?? "invalid_request").toBe("invalid_request");
    // Next's redirects to the normalized path ("/paid//" takes two): where they lead is refused too.
    let redirected = res;
    for (let hops = 0; redirected.status === 308; hops++) {
      expect(hops, "redirect loop").toBeLessThan(3);
      const location = new URL(redirected.headers.location ?? "", served.url);
      expect(location.origin).toBe(served.url);
      const head = bypass.head.replaceAll("{port}", String(served.port)).replace(/^(\S+) \S+/, `$1 ${location.pathname}${location.search}`);
      redirected = await rawRequest(served.port, head);
      if (redirected.status !== 308) expect([400, 402, 404], redirected.raw.slice(0, 300)).toContain(redirected.status);
      expect(redirected.body).not.toContain("SECRET-CONTENT");
      expect(totalRuns(served)).toBe(runsBefore);
    }
  });

  it("names the resource from the request line's path, never from a hostile Host or target host", async () => {
    const served = servers[framework];
    const named = async (target: string) => {
      const res = await rawRequest(served.port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${served.port}\r\nX-Forwarded-Host: evil.example`);
      const required = decodeBase64Json(res.headers["payment-required"], "PAYMENT-REQUIRED");
      return { status: res.status, url: required.ok ? (required.value as PaymentRequired).resource.url : "" };
    };
    expect(await named("/paid")).toEqual({ status: 402, url: `http://127.0.0.1:${served.port}/paid` });
    // Next never routes an absolute-form target (its "//" is a 308 before any route): no resource to name.
    const absolute = await named("http://evil.example/paid");
    if (framework === "next") expect(absolute).toEqual({ status: 308, url: "" });
    else expect(absolute).toEqual({ status: 402, url: `http://127.0.0.1:${served.port}/paid` });
  });

  it("moved no money for any of it", async () => {
    // The bypass table ran before this test and sent no payment at all: nothing can have moved.
    const before = await money();
    await rawRequest(servers[framework].port, `GET /PAID HTTP/1.1\r\nHost: 127.0.0.1:${servers[framework].port}`);
    expect(await money()).toEqual(before);
  });
});

// ------------------------------------------------------------------ one payment, one response

describe.each(FRAMEWORKS)("%s: one payment buys one response", (framework) => {
  let served: Served;
  beforeEach(() => {
    served = servers[framework];
  });

  it.each([8, 50])("%i concurrent requests with one PAYMENT-SIGNATURE: one 200, one transfer", async (copies) => {
    const header = await signedHeader(served, "/paid");
    const before = await money();
    const runs = served.runs.paid ?? 0;
    const answers = await Promise.all(Array.from({ length: copies }, () => payWith(served, "/paid", header)));
    const bodies = await Promise.all(answers.map((r) => r.text()));
    expect(answers.filter((r) => r.status === 200)).toHaveLength(1);
    for (const [i, r] of answers.entries()) {
      if (r.status === 200) continue;
      expect(r.status).toBe(402);
      expect(errorOf(r)).toMatch(/^(duplicate_settlement|invalid_exact_evm_nonce_already_used)/);
      expect(bodies[i]).not.toContain("SECRET-CONTENT");
    }
    expect((served.runs.paid ?? 0) - runs).toBe(1);
    const after = await money();
    expect(after.received - before.received).toBe(AMOUNT);
    expect(after.sent - before.sent).toBe(1);
  });

  it("a sequential replay of a served payment gets no second response", async () => {
    const header = await signedHeader(served, "/paid");
    const before = await money();
    const first = await payWith(served, "/paid", header);
    expect(first.status).toBe(200);
    const runs = served.runs.paid;
    for (const path of ["/paid", "/paid?again=1", "/any", "/per"]) {
      const again = await payWith(served, path, header);
      expect(again.status, path).toBe(402);
      expect(await again.text()).not.toContain("SECRET-CONTENT");
    }
    expect(served.runs.paid).toBe(runs);
    expect((await money()).received - before.received).toBe(AMOUNT);
  });

  it("a payment-identifier replay is answered from the paywall's own cache, for that request only", async () => {
    const header = await signedHeader(served, "/paid", { id: `pay_${framework}_${Date.now()}_abcdef` });
    const before = await money();
    const first = await payWith(served, "/paid", header);
    expect(first.status).toBe(200);
    const body = await first.text();
    const runs = served.runs.paid;
    const again = await payWith(served, "/paid", header);
    expect(again.status).toBe(200);
    expect(await again.text()).toBe(body);
    expect(again.headers.get("payment-response")).toBe(first.headers.get("payment-response"));
    expect(served.runs.paid).toBe(runs);
    // Another request is not the one the cached response answered: refused, whatever its handler made.
    const elsewhere = await payWith(served, "/paid?other=1", header);
    expect(elsewhere.status).toBe(402);
    expect(errorOf(elsewhere)).toMatch(/^duplicate_settlement/);
    expect(await elsewhere.text()).not.toContain("SECRET-CONTENT");
    const after = await money();
    expect(after.received - before.received).toBe(AMOUNT);
    expect(after.sent - before.sent).toBe(1);
  });

  it("a payment for one price does not buy a dearer route", async () => {
    const header = await signedHeader(served, "/paid");
    const before = await money();
    const res = await payWith(served, "/dear", header);
    expect(res.status).toBe(402);
    expect(errorOf(res)).toMatch(/^invalid_payment_requirements_mismatch: accepted\.amount/);
    expect(served.runs.dear ?? 0).toBe(0);
    expect(await money()).toEqual(before);
  });
});

// ------------------------------------------------------------------ never charged without the resource

describe.each(FRAMEWORKS)("%s: never charged without the resource", (framework) => {
  let served: Served;
  beforeEach(() => {
    served = servers[framework];
  });

  it("an oversized response is a 500 resource_response_too_large, nothing settled, the payment still good", async () => {
    const header = await signedHeader(served, "/big");
    const before = await money();
    const res = await payWith(served, "/big", header);
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({ reason: "resource_response_too_large" });
    expect(text).not.toContain("BBBB");
    expect(res.headers.get("payment-response")).toBeNull();
    expect(served.runs.big).toBeGreaterThan(0);
    expect(await money()).toEqual(before);
    // Nothing was spent: the same authorization still buys a route whose response fits.
    const paid = await payWith(served, "/paid", header);
    expect(paid.status).toBe(200);
    expect((await money()).received - before.received).toBe(AMOUNT);
  });

  it("a settlement still pending after the facilitator's receipt wait is polled until it lands, then served", async () => {
    const header = await signedHeader(served, "/paid");
    const before = await money();
    const runs = served.runs.paid ?? 0;
    const seen = served.settles.length;
    await rpc("evm_setAutomine", [false]);
    let res: Response;
    try {
      const request = payWith(served, "/paid", header);
      // Past the facilitator's 1 s receipt wait: it answers settlement_pending and the paywall polls.
      await waitFor(() => served.settles.slice(seen).some(isPending), 10_000);
      await rpc("evm_mine");
      res = await request;
    } finally {
      await rpc("evm_setAutomine", [true]);
    }
    expect(res.status, errorOf(res)).toBe(200);
    expect(await res.json()).toMatchObject({ route: "paid" });
    const answers = served.settles.slice(seen);
    expect(answers.some(isPending)).toBe(true);
    expect(answers.at(-1)).toMatchObject({ success: true });
    expect((served.runs.paid ?? 0) - runs).toBe(1);
    expect((await money()).received - before.received).toBe(AMOUNT);
  });

  it('settle "before": the handler runs only after the money moved', async () => {
    const header = await signedHeader(served, "/before");
    const before = await money();
    const res = await payWith(served, "/before", header);
    expect(res.status).toBe(200);
    expect(res.headers.get("payment-response")).toBeTruthy();
    expect(served.beforeSaw.at(-1)).toBe(before.received + AMOUNT);
  });

  it('settle "before": a settlement that fails never runs the handler', async () => {
    // A payer funded for one payment signs two; sent together, only one can settle.
    const key = generatePrivateKey();
    await mintTo(net.rpcUrl, net.usdc.address, privateKeyToAccount(key).address, AMOUNT);
    const headers = [await signedHeader(served, "/before", { key }), await signedHeader(served, "/before", { key })];
    const before = await money();
    const runs = served.runs.before ?? 0;
    const answers = await Promise.all(headers.map((h) => payWith(served, "/before", h)));
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 402]);
    const refused = answers.find((r) => r.status === 402)!;
    expect(await refused.text()).not.toContain("SECRET-CONTENT");
    expect((served.runs.before ?? 0) - runs).toBe(1);
    expect((await money()).received - before.received).toBe(AMOUNT);
  });
});

describe.each(FRAMEWORKS)("%s: a settlement still pending at the paywall's deadline", (framework) => {
  it("answers 402 settlement_pending with the transaction, and the same payment retried later gets the resource", async () => {
    const impatient = impatientServers[framework];
    const header = await signedHeader(impatient, "/paid");
    const before = await money();
    await rpc("evm_setAutomine", [false]);
    let first: Response;
    try {
      first = await payWith(impatient, "/paid", header);
      expect(first.status).toBe(402);
      expect(errorOf(first)).toMatch(/^settlement_pending/);
      const receipt = decodeBase64Json(first.headers.get("payment-response"), "PAYMENT-RESPONSE");
      expect(receipt.ok && receipt.value).toMatchObject({ success: false, errorReason: "settlement_pending", extensions: { "tollgate-settlement": { status: "pending" } } });
      expect(await first.text()).not.toContain("SECRET-CONTENT");
      await rpc("evm_mine");
    } finally {
      await rpc("evm_setAutomine", [true]);
    }
    // The transaction landed; once the facilitator's reconciler has recorded it, the client's retry of
    // the same payload verifies again (the ledger knows it settled) instead of "nonce already used".
    await waitFor(async () => (await balanceOf(payee)) === before.received + AMOUNT, 10_000);
    const payload = decodeBase64Json(header, "PAYMENT-SIGNATURE");
    if (!payload.ok) throw new Error(payload.message);
    const body = JSON.stringify({ x402Version: 2, paymentPayload: payload.value, paymentRequirements: (payload.value as PaymentPayload).accepted });
    await waitFor(async () => {
      const res = await fetch(`${facilitator.url}/verify`, { method: "POST", headers: { "content-type": "application/json" }, body });
      return ((await res.json()) as { isValid?: boolean }).isValid === true;
    }, 10_000);
    const runs = impatient.runs.paid ?? 0;
    const retry = await payWith(impatient, "/paid", header);
    expect(retry.status, errorOf(retry)).toBe(200);
    expect(await retry.json()).toMatchObject({ route: "paid" });
    expect((impatient.runs.paid ?? 0) - runs).toBe(1);
    const after = await money();
    expect(after.received - before.received).toBe(AMOUNT);
    expect(after.sent - before.sent).toBe(1);
  });
});

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
