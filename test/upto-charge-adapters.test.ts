// The charge API through every framework adapter, with a stub facilitator (the chain is in
// upto-interop.test.ts): the handler's setCharge decides the amount sent to /settle; a charge
// above the maximum is never settled and the handler's response is not served; unset charges
// the maximum.
import { getRequestListener } from "@hono/node-server";
import { encodeBase64Json, decodeBase64Json, type PaymentPayload, type PaymentRequirements, type SchemeServer } from "@tollgate/core";
import { paymentMiddleware as expressPaywall, setCharge as expressCharge } from "@tollgate/express";
import { paymentMiddleware as fastifyPaywall, setCharge as fastifyCharge } from "@tollgate/fastify";
import { paymentMiddleware as honoPaywall, setCharge as honoCharge, type PaymentEnv } from "@tollgate/hono";
import { createPaywall as createNextPaywall, setCharge as nextCharge, withPayment } from "@tollgate/next";
import { createPaywall, type PaywallConfig } from "@tollgate/server";
import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import type { AddressInfo } from "node:net";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { serveLikeNext } from "../packages/next/test/next-like.ts";
import { ASSET, PAY_TO, stubFacilitator, stubScheme } from "../packages/server/test/fixtures.ts";
import { listen } from "./support/tollgate.ts";

const uptoStub: SchemeServer = { ...stubScheme, scheme: "upto" };
const facilitator = stubFacilitator();
facilitator.supportedResult = { kinds: [{ x402Version: 2, scheme: "upto", network: "eip155:84532", extra: { facilitatorAddress: PAY_TO } }], extensions: [], signers: {} };
const errors: unknown[] = [];
const config: PaywallConfig = {
  facilitator,
  schemes: [uptoStub],
  routes: {
    "GET /quarter": { scheme: "upto", price: { amount: "1000", asset: ASSET }, network: "eip155:84532", payTo: PAY_TO },
    "GET /over": { scheme: "upto", price: { amount: "1000", asset: ASSET }, network: "eip155:84532", payTo: PAY_TO },
    "GET /unset": { scheme: "upto", price: { amount: "1000", asset: ASSET }, network: "eip155:84532", payTo: PAY_TO },
  },
  onError: (e) => void errors.push(e),
};

/** What each handler does: /quarter charges 25%, /over a "$" amount above the maximum (found at settle), /unset nothing. */
const plan: Record<string, string | undefined> = { "/quarter": "25%", "/over": "$1", "/unset": undefined };

interface Server {
  url: string;
  close(): Promise<void>;
}

async function expressServer(): Promise<Server> {
  const app = express();
  app.use(expressPaywall(createPaywall(config)));
  for (const [path, charge] of Object.entries(plan)) {
    app.get(path, (_req, res) => {
      if (charge) expressCharge(res, charge);
      res.json({ served: path });
    });
  }
  return listen(app);
}

async function honoServer(): Promise<Server> {
  const app = new Hono<PaymentEnv>();
  app.use(honoPaywall(createPaywall(config)));
  for (const [path, charge] of Object.entries(plan)) {
    app.get(path, (c) => {
      if (charge) honoCharge(c, charge);
      return c.json({ served: path });
    });
  }
  return listen(getRequestListener(app.fetch));
}

async function fastifyServer(): Promise<Server> {
  const app = Fastify({ logger: false, forceCloseConnections: true });
  await app.register(fastifyPaywall(createPaywall(config)));
  for (const [path, charge] of Object.entries(plan)) {
    app.get(path, async (request) => {
      if (charge) fastifyCharge(request, charge);
      return { served: path };
    });
  }
  await app.listen({ port: 0, host: "127.0.0.1" });
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
}

async function nextServer(): Promise<Server> {
  const { routes, ...shared } = config;
  const paywall = createNextPaywall(shared);
  const modules = Object.fromEntries(
    Object.entries(plan).map(([path, charge]) => [
      path,
      {
        GET: withPayment(
          (request: Request) => {
            if (charge) nextCharge(request, charge);
            return Response.json({ served: path });
          },
          routes![`GET ${path}`]!,
          paywall,
          `GET ${path}`,
        ),
      },
    ]),
  );
  const running = await serveLikeNext({ routes: modules });
  return { url: running.url, close: running.close };
}

async function paidGet(url: string): Promise<Response> {
  const first = await fetch(url);
  expect(first.status).toBe(402);
  const required = decodeBase64Json(first.headers.get("PAYMENT-REQUIRED"), "PAYMENT-REQUIRED");
  if (!required.ok) throw new Error(required.message);
  const accepted = (required.value as { accepts: PaymentRequirements[] }).accepts[0]!;
  expect(accepted).toMatchObject({ scheme: "upto", amount: "1000", extra: { facilitatorAddress: PAY_TO } });
  const payment: PaymentPayload = { x402Version: 2, accepted, payload: { nonce: Math.random().toString() } };
  return fetch(url, { headers: { "PAYMENT-SIGNATURE": encodeBase64Json(payment) } });
}

const servers: Server[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

for (const [name, start] of Object.entries({ express: expressServer, hono: honoServer, fastify: fastifyServer, next: nextServer })) {
  describe(`setCharge with ${name}`, () => {
    let server: Server;
    beforeEach(async () => {
      facilitator.settleCalls = [];
      errors.length = 0;
      if (!server) servers.push((server = await start()));
    });

    it("settles the handler's charge (25% of the maximum) and serves the response", async () => {
      const res = await paidGet(`${server.url}/quarter`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ served: "/quarter" });
      expect(facilitator.settleCalls.map((c) => c.requirements.amount)).toEqual(["250"]);
    });

    it("unset: settles the maximum", async () => {
      const res = await paidGet(`${server.url}/unset`);
      expect(res.status).toBe(200);
      expect(facilitator.settleCalls.map((c) => c.requirements.amount)).toEqual(["1000"]);
    });

    it("a charge above the maximum: nothing settled, the response not served", async () => {
      const res = await paidGet(`${server.url}/over`);
      expect(res.status).toBe(500);
      expect(await res.text()).not.toContain("/over");
      expect(facilitator.settleCalls).toHaveLength(0);
      expect(String(errors[0])).toMatch(/above the 1000 the payer authorized/);
    });
  });
}

describe("setCharge outside a paid request", () => {
  it("throws, naming why", () => {
    expect(() => expressCharge({ locals: {} } as never, "1")).toThrow(/no verified payment/);
  });
});

