/**
 * What is Fastify's own: every request target find-my-way routes to a paid handler is priced
 * (absolute form, percent-encoding, "#", ";", case and slashes under the router's options, a
 * `rewriteUrl`), a handler that writes past the reply cannot send before settlement, web
 * `Response` and `ReadableStream` payloads are held like any other, and the plugin covers the
 * context it is registered in.
 */
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import Fastify, { type FastifyInstance, type FastifyServerOptions } from "fastify";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { decodeBase64Json, encodeBase64Json, type PaymentRequired } from "@tollgate/core";
import { createPaywall, getPayment, paymentMiddleware, paymentRoute, type Paywall } from "@tollgate/fastify";
import { rawRequest } from "../../../test/support/raw-http.ts";
import { PAY_TO, PAYER, stubFacilitator, stubScheme } from "../../server/test/fixtures.ts";

const facilitator = stubFacilitator();
const route = { price: "$0.01", network: "eip155:84532", payTo: PAY_TO } as const;
let runs = 0;
const apps: FastifyInstance[] = [];

function makePaywall(): Paywall {
  return createPaywall({
    facilitator,
    schemes: [stubScheme],
    routes: { "GET /weather": route, "GET /raw": route, "GET /web": route, "GET /web-stream": route, "GET /broken": route, "GET /who": route, "GET /raw-before": { ...route, settle: "before" } },
  });
}

async function start(options: FastifyServerOptions, build: (app: FastifyInstance, paywall: Paywall) => void | Promise<void>): Promise<{ port: number; url: string }> {
  const app = Fastify({ logger: false, forceCloseConnections: true, ...options });
  const paywall = makePaywall();
  await app.register(paymentMiddleware(paywall));
  app.get("/weather", async () => {
    runs++;
    return { temp: 21 };
  });
  app.get("/free", async () => "free");
  await build(app, paywall);
  await app.listen({ port: 0, host: "127.0.0.1" });
  apps.push(app);
  const { port } = app.server.address() as AddressInfo;
  return { port, url: `http://127.0.0.1:${port}` };
}

let strict: { port: number; url: string };
let loose: { port: number; url: string };

beforeAll(async () => {
  strict = await start({ rewriteUrl: (req) => (req.url === "/alias" ? "/weather" : req.url!) }, (app) => {
    app.get("/raw", async (_request, reply) => {
      runs++;
      reply.hijack();
      reply.raw.writeHead(200, { "x-secret": "yes" });
      reply.raw.end("SECRET");
    });
    app.get("/raw-before", async (_request, reply) => {
      runs++;
      reply.hijack();
      reply.raw.writeHead(200, { "content-type": "text/plain" });
      reply.raw.end("raw-before");
    });
    app.get("/web", async () => {
      runs++;
      return new Response("WEB-BODY", { status: 200, headers: { "x-web": "1", "content-type": "text/plain" } });
    });
    app.get("/web-stream", async (_request, reply) => {
      runs++;
      const encoder = new TextEncoder();
      return reply.type("text/plain").send(
        new ReadableStream({
          start(c) {
            c.enqueue(encoder.encode("WEB-"));
            c.enqueue(encoder.encode("STREAM"));
            c.close();
          },
        }),
      );
    });
    app.get("/broken", async (_request, reply) => {
      runs++;
      const stream = new Readable({ read() {} });
      stream.push("PARTIAL-SECRET");
      setTimeout(() => stream.destroy(new Error("disk on fire")), 5);
      return reply.send(stream);
    });
    app.get("/who", async (request) => ({ payer: getPayment(request)?.payer ?? null }));
  });
  loose = await start({ useSemicolonDelimiter: true, routerOptions: { caseSensitive: false, ignoreTrailingSlash: true, ignoreDuplicateSlashes: true } }, (app, paywall) => {
    // A child context with its own paywall: the plugin covers that context only.
    void app.register(
      async (child) => {
        await child.register(paymentMiddleware(createPaywall({ facilitator, schemes: [stubScheme], routes: { "GET /api/report": route } })));
        child.get("/report", async () => "report");
      },
      { prefix: "/api" },
    );
    app.get("/report", async () => "outside the child");
    app.get("/hooks", { ...paymentRoute(paywall, route, "hooks"), config: { kept: true } }, async () => "hooks");
  });
});

afterAll(async () => {
  for (const app of apps) await app.close();
});
beforeEach(() => {
  facilitator.reset();
  runs = 0;
});

function requiredOf(header: string | undefined | null): PaymentRequired {
  const decoded = decodeBase64Json(header ?? null, "PAYMENT-REQUIRED");
  if (!decoded.ok) throw new Error(decoded.message);
  return decoded.value as PaymentRequired;
}

async function paymentHeader(url: string, path: string): Promise<string> {
  const required = requiredOf((await fetch(url + path)).headers.get("payment-required"));
  const accepted = required.accepts[0]!;
  return encodeBase64Json({
    x402Version: 2,
    resource: required.resource,
    accepted,
    payload: { signature: "0x" + "11".repeat(65), authorization: { from: PAYER, to: accepted.payTo, value: accepted.amount, nonce: `0x${Math.random().toString(16).slice(2)}` } },
  });
}

describe("every target find-my-way routes to a paid handler is priced", () => {
  const strictTargets = ["/weather", "/%77eather", "/weather#frag", "/weather?x=1", "http://evil.example/weather", "/alias"];
  it.each(strictTargets)("default router: GET %s -> 402, handler not run", async (target) => {
    const res = await rawRequest(strict.port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${strict.port}`);
    expect(res.status).toBe(402);
    expect(runs).toBe(0);
  });

  const looseTargets = ["/WEATHER", "/Weather/", "//weather", "/weather;jsessionid=1", "/%57EATHER", "http://evil.example/WEATHER;x"];
  it.each(looseTargets)("case-insensitive, slash-tolerant, semicolon router: GET %s -> 402", async (target) => {
    const res = await rawRequest(loose.port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${loose.port}`);
    expect(res.status).toBe(402);
    expect(runs).toBe(0);
  });

  it("the same targets do route to the handler once paid (so the variants above were real bypass attempts)", async () => {
    for (const target of ["/%77eather", "http://evil.example/weather"]) {
      const res = await rawRequest(strict.port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${strict.port}\r\nPAYMENT-SIGNATURE: ${await paymentHeader(strict.url, "/weather")}`);
      expect(res.status).toBe(200);
    }
    for (const target of looseTargets) {
      const res = await rawRequest(loose.port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${loose.port}\r\nPAYMENT-SIGNATURE: ${await paymentHeader(loose.url, "/weather")}`);
      expect(res.status, target).toBe(200);
    }
    expect(runs).toBe(2 + looseTargets.length);
  });

  it("names the resource after the Host header and the path, never an absolute-form target's host", async () => {
    const res = await rawRequest(strict.port, `GET http://evil.example/weather?q=1 HTTP/1.1\r\nHost: 127.0.0.1:${strict.port}`);
    expect(requiredOf(res.headers["payment-required"]).resource.url).toBe(`${strict.url}/weather?q=1`);
    const bad = await rawRequest(strict.port, `GET /weather HTTP/1.1\r\nHost: evil.example/<script>`);
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ reason: "invalid_request", field: "host" });
  });

  it("a target that is not a path is a 400, never free", async () => {
    const res = await rawRequest(strict.port, `GET * HTTP/1.1\r\nHost: 127.0.0.1:${strict.port}`);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body)).toMatchObject({ reason: "invalid_request" });
  });

  it("leaves unpriced routes alone", async () => {
    const res = await fetch(strict.url + "/free");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("free");
  });
});

describe("the reply is held whatever the handler sends", () => {
  it("a handler writing to reply.raw on a settle-after route: 500, none of its response, nothing settled", async () => {
    const header = await paymentHeader(strict.url, "/raw");
    const res = await fetch(strict.url + "/raw", { headers: { "PAYMENT-SIGNATURE": header } });
    expect(res.status).toBe(500);
    expect(res.headers.get("x-secret")).toBeNull();
    const text = await res.text();
    expect(text).not.toContain("SECRET");
    expect(text).toContain("reply.raw");
    expect(runs).toBe(1);
    expect(facilitator.settleCalls).toHaveLength(0);
    // Not held: the same payment is good for another request.
    const again = await fetch(strict.url + "/raw", { headers: { "PAYMENT-SIGNATURE": header } });
    expect(again.status).toBe(500);
    expect(facilitator.verifyCalls).toHaveLength(2);
  });

  it('settle "before" lets a hijacked reply through, with the receipt', async () => {
    const res = await fetch(strict.url + "/raw-before", { headers: { "PAYMENT-SIGNATURE": await paymentHeader(strict.url, "/raw-before") } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("raw-before");
    expect(res.headers.get("payment-response")).toBeTruthy();
    expect(facilitator.settleCalls).toHaveLength(1);
  });

  it("a web Response payload: its status and headers go out only once settled", async () => {
    const res = await fetch(strict.url + "/web", { headers: { "PAYMENT-SIGNATURE": await paymentHeader(strict.url, "/web") } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("WEB-BODY");
    expect(res.headers.get("x-web")).toBe("1");
    expect(res.headers.get("payment-response")).toBeTruthy();

    facilitator.settleResult = { success: false, errorReason: "insufficient_funds", transaction: "", network: "eip155:84532", payer: PAYER };
    const failed = await fetch(strict.url + "/web", { headers: { "PAYMENT-SIGNATURE": await paymentHeader(strict.url, "/web") } });
    expect(failed.status).toBe(402);
    expect(failed.headers.get("x-web")).toBeNull();
    expect(await failed.text()).not.toContain("WEB-BODY");
  });

  it("a web ReadableStream payload is read whole, then sent", async () => {
    const res = await fetch(strict.url + "/web-stream", { headers: { "PAYMENT-SIGNATURE": await paymentHeader(strict.url, "/web-stream") } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("WEB-STREAM");
  });

  it("a stream that fails midway: 500, none of it, nothing settled", async () => {
    const res = await fetch(strict.url + "/broken", { headers: { "PAYMENT-SIGNATURE": await paymentHeader(strict.url, "/broken") } });
    expect(res.status).toBe(500);
    expect(await res.text()).not.toContain("PARTIAL-SECRET");
    expect(facilitator.settleCalls).toHaveLength(0);
  });

  it("getPayment(request) is the verified payment", async () => {
    const res = await fetch(strict.url + "/who", { headers: { "PAYMENT-SIGNATURE": await paymentHeader(strict.url, "/who") } });
    expect(await res.json()).toEqual({ payer: PAYER });
  });
});

describe("where the hooks apply", () => {
  it("a plugin registered in a prefixed child context prices that context's routes only", async () => {
    expect((await fetch(loose.url + "/api/report")).status).toBe(402);
    expect((await fetch(loose.url + "/API/Report/")).status).toBe(402);
    const outside = await fetch(loose.url + "/report");
    expect(outside.status).toBe(200);
    expect(await outside.text()).toBe("outside the child");
  });

  it("paymentRoute's hooks spread into route options beside the route's own", async () => {
    const unpaid = await fetch(loose.url + "/hooks");
    expect(unpaid.status).toBe(402);
    // Fastify's automatic HEAD route carries the same hooks.
    expect((await fetch(loose.url + "/hooks", { method: "HEAD" })).status).toBe(402);
    const res = await fetch(loose.url + "/hooks", { headers: { "PAYMENT-SIGNATURE": await paymentHeader(loose.url, "/hooks") } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("hooks");
  });
});
