/**
 * What is Next's own: the proxy form (settles before the route, and says so at construction),
 * the route-handler forms' pass-through of Next's handler arguments and errors, the path Next
 * routes on (nextUrl without the basePath, case, percent-encoding, absolute-form targets), and
 * the resource URL named after the Host header rather than Next's own `request.url` origin.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { decodeBase64Json, encodeBase64Json, type PaymentRequired } from "@tollgate/core";
import { createPaywall, getPayment, paymentProxy, PaywallConfigError, withPayment, withPaywall, type PaywallConfig } from "@tollgate/next";
import { rawRequest } from "../../../test/support/raw-http.ts";
import { PAY_TO, PAYER, stubFacilitator, stubScheme } from "../../server/test/fixtures.ts";
import { serveLikeNext, type Running } from "./next-like.ts";

const facilitator = stubFacilitator();
const option = { price: "$0.01", network: "eip155:84532", payTo: PAY_TO } as const;
let runs = 0;
let proxied: Running;
let handlers: Running;

const proxyConfig = (): PaywallConfig => ({
  facilitator,
  schemes: [stubScheme],
  routes: { "GET /report": { ...option, settle: "before" }, "GET /crash": { ...option, settle: "before" } },
});

beforeAll(async () => {
  proxied = await serveLikeNext({
    proxy: paymentProxy(proxyConfig()),
    routes: {
      "/report": {
        GET: () => {
          runs++;
          return new Response("report", { headers: { "Access-Control-Expose-Headers": "X-Own" } });
        },
      },
      "/crash": {
        GET: () => {
          runs++;
          throw new Error("the route failed after the proxy settled");
        },
      },
      "/open": { GET: () => new Response("open") },
    },
  });
  const paywall = createPaywall({ facilitator, schemes: [stubScheme], routes: { "GET /weather": option } });
  const table = withPaywall(async (request: Request, context: { params: Promise<Record<string, string[]>> }) => {
    runs++;
    return Response.json({ path: new URL(request.url).pathname, slug: (await context.params).slug, payer: getPayment(request)?.payer ?? null });
  }, paywall);
  handlers = await serveLikeNext({
    catchAll: { GET: table, POST: table },
    routes: {
      "/thrower": {
        GET: withPayment(
          () => {
            runs++;
            throw new Error("boom");
          },
          option,
          paywall,
          "thrower",
        ),
      },
    },
  });
});
afterAll(async () => {
  await proxied?.close();
  await handlers?.close();
});
beforeEach(() => {
  facilitator.reset();
  runs = 0;
});

function requiredOf(header: string | null | undefined): PaymentRequired {
  const decoded = decodeBase64Json(header ?? null, "PAYMENT-REQUIRED");
  if (!decoded.ok) throw new Error(decoded.message);
  return decoded.value as PaymentRequired;
}

async function paymentHeader(url: string): Promise<string> {
  const required = requiredOf((await fetch(url)).headers.get("payment-required"));
  const accepted = required.accepts[0]!;
  return encodeBase64Json({
    x402Version: 2,
    resource: required.resource,
    accepted,
    payload: { signature: "0x" + "11".repeat(65), authorization: { from: PAYER, to: accepted.payTo, value: accepted.amount, nonce: `0x${Math.random().toString(16).slice(2)}` } },
  });
}

describe("paymentProxy (proxy.ts / middleware.ts)", () => {
  it("refuses, at construction, a route that does not settle before, naming the field and why", () => {
    const config = { ...proxyConfig(), routes: { "GET /report": option } };
    expect(() => paymentProxy(config)).toThrow(PaywallConfigError);
    expect(() => paymentProxy(config)).toThrow(/^routes\["GET \/report"\]\.settle: a proxy cannot see the route's response/);
    expect(() => paymentProxy({ ...proxyConfig(), routes: { "GET /x": { ...option, settle: "after" } } })).toThrow(/withPayment/);
    expect(() => paymentProxy({ ...proxyConfig(), routes: {} })).toThrow(/^routes: paymentProxy needs at least one route key/);
    const paywall = createPaywall(proxyConfig());
    expect(() => paymentProxy(paywall as unknown as PaywallConfig)).toThrow(/expected a paywall configuration object/);
  });

  it("answers an unpaid request 402 itself; the route does not run", async () => {
    const res = await fetch(proxied.url + "/report");
    expect(res.status).toBe(402);
    expect(requiredOf(res.headers.get("payment-required")).resource.url).toBe(`${proxied.url}/report`);
    expect(runs).toBe(0);
  });

  it("settles first, then Next runs the route and its response carries the receipt", async () => {
    const res = await fetch(proxied.url + "/report", { headers: { "PAYMENT-SIGNATURE": await paymentHeader(proxied.url + "/report") } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("report");
    expect(res.headers.get("payment-response")).toBeTruthy();
    expect(res.headers.get("x-middleware-next")).toBeNull();
    // As in Next, the proxy's header replaces the route's own of the same name.
    expect(res.headers.get("access-control-expose-headers")).toBe("PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE");
    expect(facilitator.settleCalls).toHaveLength(1);
    expect(runs).toBe(1);
  });

  it("a failed settlement never reaches the route", async () => {
    facilitator.settleResult = { success: false, errorReason: "insufficient_funds", transaction: "", network: "eip155:84532", payer: PAYER };
    const res = await fetch(proxied.url + "/report", { headers: { "PAYMENT-SIGNATURE": await paymentHeader(proxied.url + "/report") } });
    expect(res.status).toBe(402);
    expect(requiredOf(res.headers.get("payment-required")).error).toBe("insufficient_funds");
    expect(runs).toBe(0);
  });

  it("the documented cost of the proxy form: a route that fails after settlement has still been paid", async () => {
    const res = await fetch(proxied.url + "/crash", { headers: { "PAYMENT-SIGNATURE": await paymentHeader(proxied.url + "/crash") } });
    expect(res.status).toBe(500);
    expect(runs).toBe(1);
    expect(facilitator.settleCalls).toHaveLength(1);
  });

  it("leaves what the route table does not price to Next (undefined: go on)", async () => {
    const res = await fetch(proxied.url + "/open");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("open");
    expect(await paymentProxy(proxyConfig())(new Request("http://localhost:3000/open"))).toBeUndefined();
  });

  it("prices the path without the basePath (nextUrl) as well as the full one", async () => {
    const proxy = paymentProxy(proxyConfig());
    const request = Object.assign(new Request("http://localhost:3000/docs/report", { headers: { host: "shop.example" } }), { nextUrl: new URL("http://localhost:3000/report") });
    const res = await proxy(request);
    expect(res?.status).toBe(402);
    expect(requiredOf(res!.headers.get("payment-required")).resource.url).toBe("http://shop.example/docs/report");
  });
});

describe("route handlers", () => {
  it("pass Next's context through and expose the payment to the handler", async () => {
    const res = await fetch(handlers.url + "/weather", { headers: { "PAYMENT-SIGNATURE": await paymentHeader(handlers.url + "/weather") } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ path: "/weather", slug: ["weather"], payer: PAYER });
  });

  it("a handler that throws: nothing settled, the error is Next's to answer, the payment still good", async () => {
    const header = await paymentHeader(handlers.url + "/thrower");
    const res = await fetch(handlers.url + "/thrower", { headers: { "PAYMENT-SIGNATURE": header } });
    expect(res.status).toBe(500);
    expect(facilitator.settleCalls).toHaveLength(0);
    const again = await fetch(handlers.url + "/thrower", { headers: { "PAYMENT-SIGNATURE": header } });
    expect(again.status).toBe(500);
    expect(facilitator.verifyCalls).toHaveLength(2);
  });

  const targets = ["/weather", "/WEATHER", "/Weather?x=1", "/%77eather", "/a/../weather"];
  it.each(targets)("withPaywall prices GET %s (the handler would serve it)", async (target) => {
    const res = await rawRequest(handlers.port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${handlers.port}`);
    expect(res.status).toBe(402);
    expect(runs).toBe(0);
  });

  it("an absolute-form target is Next's 308 (its \"//\"), before any handler", async () => {
    const res = await rawRequest(handlers.port, `GET http://evil.example/weather HTTP/1.1\r\nHost: 127.0.0.1:${handlers.port}`);
    expect(res.status).toBe(308);
    expect(runs).toBe(0);
  });

  it("names the resource after the Host header, not Next's own origin nor a request URL's host", async () => {
    const res = await rawRequest(handlers.port, `GET /weather?q=1 HTTP/1.1\r\nHost: api.example:8443`);
    expect(requiredOf(res.headers["payment-required"]).resource.url).toBe("http://api.example:8443/weather?q=1");
    // A request whose URL names another host (another server in front of the handler): the path counts, the host does not.
    const paywall = createPaywall({ facilitator, schemes: [stubScheme], routes: { "GET /weather": option } });
    const direct = await withPaywall(() => new Response("served"), paywall)(new Request("http://evil.example/weather?q=1", { headers: { host: "api.example:8443" } }));
    expect(direct.status).toBe(402);
    expect(requiredOf(direct.headers.get("payment-required")).resource.url).toBe("http://api.example:8443/weather?q=1");
    const bad = await rawRequest(handlers.port, `GET /weather HTTP/1.1\r\nHost: evil.example/<x>`);
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ reason: "invalid_request", field: "host" });
  });
});
