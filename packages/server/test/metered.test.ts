// Metered streams with a stub facilitator (the chain is in test/metered-stream.test.ts): exact
// per-unit accounting, the cap, zero units, a client that leaves mid-stream, a settlement that
// fails after delivery, the time limit, configuration errors, and the hono and Express glue.
import { decodeBase64Json, encodeBase64Json, METERED_STREAM, readMeteredStream, type MeteredStreamResult, type PaymentPayload, type PaymentRequirements, type SchemeServer } from "@tollgate/core";
import { meteredStream as expressMetered, paymentMiddleware as expressPaywall } from "@tollgate/express";
import { meteredStream as fastifyMetered, paymentMiddleware as fastifyPaywall } from "@tollgate/fastify";
import { createPaywall as createNextPaywall, meteredResponse as nextMetered, withPayment } from "@tollgate/next";
import Fastify from "fastify";
import type { AddressInfo } from "node:net";
import { serveLikeNext } from "../../next/test/next-like.ts";
import { meteredResponse, paymentMiddleware as honoPaywall, type PaymentEnv } from "@tollgate/hono";
import { createPaywall, createTally, PaywallConfigError, type MeteredProducer, type PaywallConfig, type RouteConfig } from "@tollgate/server";
import express from "express";
import { Hono } from "hono";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { listen } from "../../../test/support/listen.ts";
import { ASSET, PAY_TO, stubFacilitator, stubScheme, TX } from "./fixtures.ts";

const uptoStub: SchemeServer = { ...stubScheme, scheme: "upto" };
const facilitator = stubFacilitator();
const SUPPORTED = { kinds: [{ x402Version: 2 as const, scheme: "upto", network: "eip155:84532" as const, extra: { facilitatorAddress: PAY_TO } }], extensions: [], signers: {} };
const errors: unknown[] = [];

/** Max 1000 atomic units, 300 per token: the cap allows 3 tokens (900), never a 4th. */
const route = (extra: Partial<RouteConfig> = {}): RouteConfig =>
  ({ scheme: "upto", price: { amount: "1000", asset: ASSET }, network: "eip155:84532", payTo: PAY_TO, metered: { unit: "token", pricePerUnit: "300" }, ...extra }) as RouteConfig;

function config(routes: Record<string, RouteConfig>): PaywallConfig {
  return { facilitator, schemes: [uptoStub], routes, onError: (e) => void errors.push(e), checkAtStart: false };
}

const forever: MeteredProducer = async (meter) => {
  for (let i = 0; ; i++) if (!(await meter.send(`token ${i}`))) return;
};

/** A hono app with one metered route per producer. */
function honoApp(producers: Record<string, MeteredProducer>, routeOverrides: Record<string, Partial<RouteConfig>> = {}): Hono<PaymentEnv> {
  const app = new Hono<PaymentEnv>();
  app.use(honoPaywall(createPaywall(config(Object.fromEntries(Object.keys(producers).map((p) => [`GET ${p}`, route(routeOverrides[p])]))))));
  for (const [path, producer] of Object.entries(producers)) app.get(path, (c) => meteredResponse(c, producer));
  return app;
}

async function requirementsOf(res: Response): Promise<{ accepted: PaymentRequirements; extensions: Record<string, unknown> }> {
  expect(res.status).toBe(402);
  await res.body?.cancel();
  const decoded = decodeBase64Json(res.headers.get("PAYMENT-REQUIRED"), "PAYMENT-REQUIRED");
  if (!decoded.ok) throw new Error(decoded.message);
  const v = decoded.value as { accepts: PaymentRequirements[]; extensions: Record<string, unknown> };
  return { accepted: v.accepts[0]!, extensions: v.extensions };
}

const paymentHeader = (accepted: PaymentRequirements) =>
  encodeBase64Json({ x402Version: 2, accepted, payload: { nonce: Math.random().toString() } } satisfies PaymentPayload);

async function paidHono(app: Hono<PaymentEnv>, path: string): Promise<Response> {
  const { accepted } = await requirementsOf(await app.request(path));
  return app.request(path, { headers: { "PAYMENT-SIGNATURE": paymentHeader(accepted) } });
}

/** Resolves once the stub facilitator has been asked to settle (the stream settles after its last read). */
async function settled(n = 1): Promise<string[]> {
  for (let i = 0; i < 200 && facilitator.settleCalls.length < n; i++) await new Promise((r) => setTimeout(r, 5));
  return facilitator.settleCalls.map((c) => c.requirements.amount);
}

beforeEach(() => {
  facilitator.reset?.();
  facilitator.settleCalls = [];
  facilitator.supportedResult = SUPPORTED;
  facilitator.settleResult = { success: true, transaction: TX, network: "eip155:84532", payer: PAY_TO };
  errors.length = 0;
});

describe("createTally", () => {
  it("charges exactly and refuses what would pass the maximum", () => {
    const t = createTally(300n, 1000n);
    expect([t.take(1n), t.take(1n), t.take(1n), t.take(1n)]).toEqual([true, true, true, false]);
    expect([t.delivered, t.charged, t.remainingUnits]).toEqual([3n, 900n, 0n]);
    expect(t.take(0n)).toBe(true);
    // Large amounts stay exact (no float anywhere).
    const big = createTally(10n ** 18n + 1n, 3n * 10n ** 18n + 3n);
    expect(big.take(2n)).toBe(true);
    expect(big.charged).toBe(2n * 10n ** 18n + 2n);
    expect(big.take(2n)).toBe(false);
    expect(big.take(1n)).toBe(true);
    expect(big.charged).toBe(3n * 10n ** 18n + 3n);
  });
});

describe("configuration", () => {
  const make = (r: RouteConfig) => () => createPaywall({ ...config({ "GET /s": r }), schemes: [uptoStub, stubScheme] });
  it("refuses what cannot be metered, naming the field", () => {
    expect(make(route({ scheme: "exact" } as Partial<RouteConfig>))).toThrow(PaywallConfigError);
    expect(make(route({ scheme: "exact" } as Partial<RouteConfig>))).toThrow(/usage-priced scheme \(upto, batch-settlement\)/);
    expect(make(route({ metered: { unit: "token", pricePerUnit: "1001" } }))).toThrow(/pricePerUnit: 1001 atomic units is above the route's maximum 1000/);
    expect(make(route({ metered: { unit: "token", pricePerUnit: "0" } }))).toThrow(/pricePerUnit: must be above zero/);
    expect(make(route({ metered: { unit: "token", pricePerUnit: "0.5" } }))).toThrow(/neither atomic units/);
    expect(make(route({ metered: { unit: "", pricePerUnit: "1" } }))).toThrow(/metered.unit/);
    expect(make(route({ settle: "before" }))).toThrow(/settle "before"/);
    expect(make(route({ maxTimeoutSeconds: 10 } as Partial<RouteConfig>))).toThrow(/maxTimeoutSeconds \(10\) must be above settleMarginSeconds \(15\)/);
  });

  it("converts a dollar price per unit exactly", async () => {
    const app = new Hono<PaymentEnv>();
    app.use(honoPaywall(createPaywall(config({ "GET /s": route({ metered: { unit: "token", pricePerUnit: "$0.0003" } }) }))));
    const { extensions } = await requirementsOf(await app.request("/s"));
    expect((extensions[METERED_STREAM] as { info: { prices: Array<{ pricePerUnit: string }> } }).info.prices[0]!.pricePerUnit).toBe("300");
  });
});

describe("a metered stream on hono", () => {
  it("the 402 advertises the unit and price; the maximum is the stream's cap", async () => {
    const app = honoApp({ "/s": forever });
    const { accepted, extensions } = await requirementsOf(await app.request("/s"));
    expect(accepted).toMatchObject({ scheme: "upto", amount: "1000" });
    expect(extensions[METERED_STREAM]).toMatchObject({
      info: { version: "1", unit: "token", format: "text/event-stream", prices: [{ scheme: "upto", network: "eip155:84532", asset: ASSET, pricePerUnit: "300" }] },
      schema: { type: "object" },
    });
  });

  it("stops at its cap: 3 tokens of 300 under 1000, settled 900 exactly, running cost seen", async () => {
    const res = await paidHono(honoApp({ "/s": forever }), "/s");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const messages: string[] = [];
    const costs: bigint[] = [];
    const r = await readMeteredStream(res, { onMessage: (m) => messages.push(m.data), onCost: (c) => costs.push(c.charged) });
    expect(messages).toEqual(["token 0", "token 1", "token 2"]);
    expect(costs).toEqual([300n, 600n, 900n]);
    expect(r).toMatchObject({ delivered: 3n, charged: 900n, stopped: "cap", capReached: true, success: true });
    expect(r.terms).toMatchObject({ unit: "token", pricePerUnit: "300", max: "1000" });
    expect(r.settlement).toMatchObject({ success: true, transaction: TX });
    expect(await settled()).toEqual(["900"]);
  });

  it("a producer that finishes early is charged what it sent (units per message counted)", async () => {
    const res = await paidHono(honoApp({ "/s": async (m) => void ((await m.send("two", 2)) && (await m.send("free", 0))) }), "/s");
    const r = await readMeteredStream(res);
    expect(r).toMatchObject({ messages: 2, delivered: 2n, charged: 600n, stopped: "done", capReached: false, success: true });
    expect(await settled()).toEqual(["600"]);
  });

  it("a message worth more than the rest of the cap is not sent", async () => {
    const res = await paidHono(honoApp({ "/s": async (m) => void ((await m.send("one")) && (await m.send("three", 3))) }), "/s");
    const r = await readMeteredStream(res);
    expect(r).toMatchObject({ messages: 1, delivered: 1n, charged: 300n, stopped: "cap" });
    expect(await settled()).toEqual(["300"]);
  });

  it("zero units: settled with 0 (the facilitator moves nothing)", async () => {
    facilitator.settleResult = { success: true, transaction: "", network: "eip155:84532", payer: PAY_TO };
    const res = await paidHono(honoApp({ "/s": () => {} }), "/s");
    const r = await readMeteredStream(res);
    expect(r).toMatchObject({ messages: 0, delivered: 0n, charged: 0n, stopped: "done", success: true });
    expect(await settled()).toEqual(["0"]);
  });

  it("a client that leaves mid-stream is charged what was delivered", async () => {
    let produced = 0;
    const slow: MeteredProducer = async (meter) => {
      while (await meter.send(`t${produced}`)) produced++;
    };
    const app = honoApp({ "/s": slow }, { "/s": { price: { amount: "100000", asset: ASSET } } as Partial<RouteConfig> });
    const res = await paidHono(app, "/s");
    const stop = new AbortController();
    let seen = 0;
    const r = await readMeteredStream(res, { onMessage: () => void (++seen === 2 && stop.abort()) }, stop.signal);
    expect(r.stopped).toBeUndefined();
    expect(await settled()).toEqual(["600"]);
    expect(produced).toBe(2);
  });

  it("a settlement that fails after delivery: the last event says so, onError hears it", async () => {
    facilitator.settleResult = { success: false, errorReason: "insufficient_funds", transaction: "", network: "eip155:84532", payer: PAY_TO };
    const res = await paidHono(honoApp({ "/s": async (m) => void (await m.send("one")) }), "/s");
    const r = await readMeteredStream(res);
    expect(r).toMatchObject({ delivered: 1n, charged: 300n, success: false, stopped: "done" });
    expect(r.error).toMatch(/insufficient_funds/);
    expect(String(errors.at(-1))).toMatch(/settlement of 300 failed after delivery/);
  });

  it("a producer that throws: what it delivered is charged, the error goes to onError only", async () => {
    const res = await paidHono(honoApp({ "/s": async (m) => {
      await m.send("one");
      throw new Error("upstream model crashed: secret detail");
    } }), "/s");
    const text = await res.clone().text();
    const r = await readMeteredStream(res);
    expect(r).toMatchObject({ delivered: 1n, charged: 300n, stopped: "error", success: true });
    expect(text).not.toContain("secret detail");
    expect(String(errors[0])).toMatch(/upstream model crashed/);
  });

  it("stops at the time limit (the authorization must still be settleable)", async () => {
    const ticking: MeteredProducer = async (meter) => {
      while (await meter.send("tick")) await new Promise((r) => setTimeout(r, 100));
    };
    // maxTimeoutSeconds 16 with a 15 s margin: the stream may run for 1 s.
    const app = honoApp({ "/s": ticking }, { "/s": { price: { amount: "1000000", asset: ASSET }, maxTimeoutSeconds: 16 } as Partial<RouteConfig> });
    const started = Date.now();
    const r = await readMeteredStream(await paidHono(app, "/s"));
    expect(r.stopped).toBe("time-limit");
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(r.delivered).toBeGreaterThan(3n);
    expect(await settled()).toEqual([(r.delivered * 300n).toString()]);
  });

  it("rejects bad units and the paywall's own event names", async () => {
    const seen: unknown[] = [];
    const res = await paidHono(honoApp({ "/s": async (m) => {
      for (const bad of [-1, 1.5, Number.NaN]) await m.send("x", bad).catch((e: Error) => seen.push(e.message));
      await m.send("x", 1, { event: "x402-cost" }).catch((e: Error) => seen.push(e.message));
    } }), "/s");
    const r = await readMeteredStream(res);
    expect(seen).toHaveLength(4);
    expect(String(seen[0])).toMatch(/units must be a whole number >= 0/);
    expect(String(seen[3])).toMatch(/"x402-" are the paywall's/);
    expect(r).toMatchObject({ delivered: 0n, messages: 0 });
  });

  it("one payment, one stream: a payment-identifier replay is refused, not served from a cache", async () => {
    let runs = 0;
    const app = honoApp({ "/s": async (m) => void (runs++, await m.send("one")) });
    const { accepted } = await requirementsOf(await app.request("/s"));
    const payment = { x402Version: 2, accepted, payload: { nonce: "n1" }, extensions: { "payment-identifier": { info: { required: false, id: "pay_0123456789abcdef" } } } };
    const header = encodeBase64Json(payment);
    const first = await readMeteredStream(await app.request("/s", { headers: { "PAYMENT-SIGNATURE": header } }));
    expect(first).toMatchObject({ delivered: 1n, success: true });
    // The facilitator now reports the payment as already settled (a replay).
    const replay = { "tollgate-settlement": { status: "settled", replay: true } };
    facilitator.verifyResult = { isValid: true, payer: PAY_TO, extensions: replay };
    facilitator.settleResult = { success: true, transaction: TX, network: "eip155:84532", payer: PAY_TO, extensions: replay };
    const again = await app.request("/s", { headers: { "PAYMENT-SIGNATURE": header } });
    expect(again.status).toBe(402);
    expect(runs).toBe(1);
  });

  it("a handler that opens a stream but answers otherwise: 500, nothing delivered, nothing charged", async () => {
    const app = new Hono<PaymentEnv>();
    app.use(honoPaywall(createPaywall(config({ "GET /s": route() }))));
    app.get("/s", (c) => {
      meteredResponse(c, forever);
      return c.json({ secret: "not paid for" });
    });
    const res = await paidHono(app, "/s");
    expect(res.status).toBe(500);
    expect(await res.text()).not.toContain("not paid for");
    expect(await settled()).toEqual(["0"]);
    expect(String(errors[0])).toMatch(/started a metered stream but answered with another response/);
  });

  it("an unpaid request never reaches the producer", async () => {
    let ran = false;
    const res = await honoApp({ "/s": () => void (ran = true) }).request("/s");
    expect(res.status).toBe(402);
    expect(ran).toBe(false);
  });
});

interface Served {
  url: string;
  close(): Promise<void>;
}

/** The same metered route on each node framework, over real HTTP: /s (forever) and /slow (a token every 20 ms). */
const slowForever: MeteredProducer = async (meter) => {
  while (await meter.send("t")) await new Promise((r) => setTimeout(r, 20));
};
const servers: Record<string, () => Promise<Served>> = {
  async express() {
    const app = express();
    app.use(expressPaywall(createPaywall(config({ "GET /s": route(), "GET /slow": route({ price: { amount: "100000", asset: ASSET } } as Partial<RouteConfig>) }))));
    app.get("/s", (_req, res) => expressMetered(res, forever));
    app.get("/slow", (_req, res) => expressMetered(res, slowForever));
    return listen(app);
  },
  async fastify() {
    const app = Fastify({ logger: false, forceCloseConnections: true });
    await app.register(fastifyPaywall(createPaywall(config({ "GET /s": route(), "GET /slow": route({ price: { amount: "100000", asset: ASSET } } as Partial<RouteConfig>) }))));
    app.get("/s", (request, reply) => fastifyMetered(request, reply, forever));
    app.get("/slow", (request, reply) => fastifyMetered(request, reply, slowForever));
    await app.listen({ port: 0, host: "127.0.0.1" });
    return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
  },
  async next() {
    const paywall = createNextPaywall(config({}));
    const running = await serveLikeNext({
      routes: {
        "/s": { GET: withPayment((request: Request) => nextMetered(request, forever), route(), paywall, "GET /s") },
        "/slow": { GET: withPayment((request: Request) => nextMetered(request, slowForever), route({ price: { amount: "100000", asset: ASSET } } as Partial<RouteConfig>), paywall, "GET /slow") },
      },
    });
    return { url: running.url, close: running.close };
  },
};

for (const [name, start] of Object.entries(servers)) {
  describe(`a metered stream on ${name} (over HTTP)`, () => {
    let server: Served;
    afterAll(async () => server?.close());

    const paid = async (path: string) => {
      server ??= await start();
      const { accepted } = await requirementsOf(await fetch(`${server.url}${path}`));
      return fetch(`${server.url}${path}`, { headers: { "PAYMENT-SIGNATURE": paymentHeader(accepted) } });
    };

    it("streams, stops at its cap, settles exactly what was delivered", async () => {
      const res = await paid("/s");
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
      const costs: bigint[] = [];
      const r: MeteredStreamResult = await readMeteredStream(res, { onCost: (c) => costs.push(c.charged) });
      expect(costs).toEqual([300n, 600n, 900n]);
      expect(r).toMatchObject({ delivered: 3n, charged: 900n, stopped: "cap", success: true });
      expect(r.settlement?.transaction).toBe(TX);
      expect(await settled()).toEqual(["900"]);
    });

    it("a client that disconnects is charged what the server delivered", async () => {
      const res = await paid("/slow");
      const stop = new AbortController();
      let seen = 0;
      const r = await readMeteredStream(res, { onMessage: () => void (++seen === 3 && stop.abort()) }, stop.signal);
      expect(r.charged).toBe(900n);
      const [amount] = await settled();
      // Handed to the connection: what the client read, at most one more in flight.
      expect(["900", "1200"]).toContain(amount);
      expect(errors).toEqual([]);
    });
  });
}
