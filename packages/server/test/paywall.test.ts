/** The transport-neutral core, without HTTP: configuration errors, route matching, edge decisions. */
import { describe, expect, it } from "vitest";
import { decodeBase64Json, type PaymentRequired } from "@tollgate/core";
import { createPaywall, escapeHtml, mergeHeaderValue, parseRouteKey, PaywallConfigError, type PaywallConfig, type PaywallRequest } from "@tollgate/server";
import { ASSET, PAY_TO, stubFacilitator, stubScheme } from "./fixtures.ts";

const base = (routes: PaywallConfig["routes"], extra: Partial<PaywallConfig> = {}): PaywallConfig => ({
  facilitator: stubFacilitator(),
  schemes: [stubScheme],
  routes,
  ...extra,
});
const request = (method: string, path: string, headers: Record<string, string> = {}) => ({
  method,
  url: `https://api.example.com${path}`,
  headers: (name: string) => headers[name.toLowerCase()],
});

describe("createPaywall configuration", () => {
  it("fails at startup, naming the route, for an unpayable price, an unserved network or a bad key", () => {
    expect(() => createPaywall(base({ "GET /a": { price: "0.001 DAI", network: "eip155:84532", payTo: PAY_TO } }))).toThrow(/route "GET \/a": price "0.001 DAI" on eip155:84532: unknown token DAI/);
    expect(() => createPaywall(base({ "/b": { price: "$0.0000001", network: "eip155:84532", payTo: PAY_TO } }))).toThrow(PaywallConfigError);
    expect(() => createPaywall(base({ "/c": { price: "$1", network: "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", payTo: PAY_TO } }))).toThrow(/no "exact" scheme server/);
    expect(() => createPaywall(base({ "/d": { price: "$1", network: ["eip155:1", "eip155:10"], payTo: { "eip155:1": PAY_TO } } }))).toThrow(/payTo has no address for network eip155:10/);
    expect(() => createPaywall(base({ "weather": { price: "$1", network: "eip155:1", payTo: PAY_TO } }))).toThrow(/route key "weather"/);
    expect(() => createPaywall(base({ "/e": { accepts: [] } }))).toThrow(/at least one payment option/);
  });

  it("parses route keys with optional method and wildcard", () => {
    const { method, pattern } = parseRouteKey("get /api/*/items");
    expect(method).toBe("GET");
    expect(pattern.test("/api/v1/items")).toBe(true);
    expect(pattern.test("/api/v1/x/items")).toBe(true);
    expect(pattern.test("/api/items")).toBe(false);
    expect(parseRouteKey("/a.b").pattern.test("/aXb")).toBe(false);
  });
});

describe("handle", () => {
  const paywall = createPaywall(
    base({
      "POST /buy": { price: "$1", network: "eip155:84532", payTo: PAY_TO },
      "/api/*": {
        description: "api",
        accepts: [
          { price: { amount: "5", asset: ASSET }, network: "eip155:84532", payTo: PAY_TO, maxTimeoutSeconds: 30 },
          { price: "2 USDC", network: "eip155:8453", payTo: PAY_TO, extra: { custom: 1 } },
          // Not among the facilitator's kinds: silently not offered.
          { price: "$1", network: "eip155:10", payTo: PAY_TO },
        ],
      },
      "GET /none": { price: "$1", network: "eip155:10", payTo: PAY_TO },
    }),
  );

  it("matches method and path; other requests and real preflights are free", async () => {
    expect((await paywall.handle(request("GET", "/buy"))).kind).toBe("free");
    expect((await paywall.handle(request("POST", "/buy/"))).kind).toBe("respond");
    expect((await paywall.handle(request("POST", "//buy//"))).kind).toBe("respond");
    expect((await paywall.handle(request("OPTIONS", "/api/x", { origin: "https://a.example", "access-control-request-method": "DELETE" }))).kind).toBe("free");
    // OPTIONS without the preflight headers is a request like any other (an app.all handler answers it).
    expect((await paywall.handle(request("OPTIONS", "/api/x"))).kind).toBe("respond");
    expect((await paywall.handle(request("OPTIONS", "/api/x", { origin: "https://a.example" }))).kind).toBe("respond");
    expect((await paywall.handle(request("GET", "/apix"))).kind).toBe("free");
  });

  it("matches the routed path and its decoded and override variants, case-insensitively when told", async () => {
    const routed = (method: string, path: string, extra: Partial<PaywallRequest> = {}, headers: Record<string, string> = {}) =>
      paywall.handle({ method, path, url: { protocol: "http", host: "api.example.com", target: path }, headers: (n) => headers[n.toLowerCase()], ...extra });
    expect((await routed("POST", "/BUY")).kind).toBe("free");
    expect((await routed("POST", "/BUY", { ignoreCase: true })).kind).toBe("respond");
    expect((await routed("POST", "/bu%79")).kind).toBe("respond");
    expect((await routed("GET", "/buy", {}, { "x-http-method-override": "POST" })).kind).toBe("respond");
    expect((await routed("GET", "/buy?_method=POST")).kind).toBe("free");
    expect((await routed("GET", "/static", {}, { "x-original-url": "/buy?x=1", "x-http-method-override": "POST" })).kind).toBe("respond");
    expect((await routed("GET", "/v1/x", { altPaths: ["/api/x"] })).kind).toBe("respond");
  });

  it("answers 400 invalid_request for what it cannot read, never free", async () => {
    const answer = async (r: PaywallRequest) => {
      const d = await paywall.handle(r);
      if (d.kind !== "respond") throw new Error(`expected a response, got ${d.kind}`);
      return { status: d.status, body: JSON.parse(String(d.body)) as { reason: string; field: string; error: string } };
    };
    const none = () => undefined;
    expect(await answer({ method: "POST", url: "not a url", headers: none })).toMatchObject({ status: 400, body: { reason: "invalid_request", field: "request target" } });
    expect(await answer({ method: "POST", path: "*", url: "https://api.example.com/buy", headers: none })).toMatchObject({ status: 400, body: { reason: "invalid_request" } });
    for (const host of ["", "evil.example/x", "a b", "[zz]"]) {
      const r = await answer({ method: "POST", path: "/buy", url: { protocol: "http", host, target: "/buy" }, headers: none });
      expect(r, host).toMatchObject({ status: 400, body: { reason: "invalid_request", field: "host" } });
    }
  });

  it("names the resource from publicUrl, never from an absolute-form target's host", async () => {
    const p = createPaywall(base({ "POST /buy": { price: "$1", network: "eip155:84532", payTo: PAY_TO } }, { publicUrl: "https://shop.example" }));
    const d = await p.handle({ method: "POST", path: "/buy", url: { protocol: "http", host: "bad host", target: "http://evil.example/buy?x=1" }, headers: () => undefined });
    if (d.kind !== "respond") throw new Error("expected 402");
    const required = (decodeBase64Json(d.headers["PAYMENT-REQUIRED"], "h") as { value: PaymentRequired }).value;
    expect(required.resource.url).toBe("https://shop.example/buy?x=1");
    const q = createPaywall(base({ "POST /buy": { price: "$1", network: "eip155:84532", payTo: PAY_TO } }));
    const e = await q.handle({ method: "POST", path: "/buy", url: { protocol: "http", host: "API.example.com:8080", target: "http://evil.example/buy" }, headers: () => undefined });
    if (e.kind !== "respond") throw new Error("expected 402");
    expect((decodeBase64Json(e.headers["PAYMENT-REQUIRED"], "h") as { value: PaymentRequired }).value.resource.url).toBe("http://api.example.com:8080/buy");
    expect(() => createPaywall(base({}, { publicUrl: "ftp://x" }))).toThrow(/publicUrl/);
    expect(() => createPaywall(base({}, { settlementTimeoutMs: -1 }))).toThrow(/settlementTimeoutMs/);
    expect(() => createPaywall(base({ "/x": { price: "$1", network: "eip155:84532", payTo: PAY_TO, settle: "later" as "before" } }))).toThrow(/settle must be/);
  });

  it("sends a v1 body to a facilitator that serves the route's kind over v1 only", async () => {
    const facilitator = stubFacilitator();
    facilitator.supportedResult = { kinds: [{ x402Version: 1, scheme: "exact", network: "base-sepolia" }], extensions: [], signers: {} };
    const p = createPaywall(base({ "GET /x": { price: "$1", network: "eip155:84532", payTo: PAY_TO } }, { facilitator }));
    const first = await p.handle(request("GET", "/x"));
    if (first.kind !== "respond") throw new Error("expected 402");
    const required = (decodeBase64Json(first.headers["PAYMENT-REQUIRED"], "h") as { value: PaymentRequired }).value;
    const header = Buffer.from(JSON.stringify({ x402Version: 2, accepted: required.accepts[0], payload: { n: 1 } })).toString("base64");
    const d = await p.handle(request("GET", "/x", { "payment-signature": header }));
    if (d.kind !== "paid") throw new Error("expected paid");
    await d.settle({ status: 200 });
    expect(facilitator.verifyCalls[0]!.options).toEqual({ v1: { network: "base-sepolia", resource: { url: "https://api.example.com/x" } } });
    expect(facilitator.settleCalls[0]!.options).toEqual(facilitator.verifyCalls[0]!.options);
  });

  it("route(): a guard for a route the framework matched, without path matching", async () => {
    const facilitator = stubFacilitator();
    const p = createPaywall(base({}, { facilitator }));
    const guard = p.route({ price: "$1", network: "eip155:84532", payTo: PAY_TO }, "GET /report");
    expect((await guard.handle(request("GET", "/anything/at/all"))).kind).toBe("respond");
    expect((await guard.handle(request("OPTIONS", "/x", { origin: "https://a.example", "access-control-request-method": "GET" }))).kind).toBe("free");
    expect(() => p.route({ price: "$1", network: "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", payTo: PAY_TO })).toThrow(PaywallConfigError);
  });

  it("offers every accepts entry the facilitator supports, each with its own price", async () => {
    const d = await paywall.handle(request("DELETE", "/api/thing"));
    if (d.kind !== "respond") throw new Error("expected a response");
    const decoded = decodeBase64Json(d.headers["PAYMENT-REQUIRED"], "PAYMENT-REQUIRED");
    const required = (decoded.ok ? decoded.value : null) as PaymentRequired;
    expect(required.resource).toEqual({ url: "https://api.example.com/api/thing", description: "api" });
    expect(required.accepts.map((a) => [a.network, a.amount, a.maxTimeoutSeconds])).toEqual([
      ["eip155:84532", "5", 30],
      ["eip155:8453", "2000000", 60],
    ]);
    expect(required.accepts[1]!.extra).toEqual({ name: "USDC", version: "2", custom: 1, hint: "from-facilitator" });
  });

  it("answers 500 when the facilitator supports none of a route's options", async () => {
    const d = await paywall.handle(request("GET", "/none"));
    expect(d).toMatchObject({ kind: "respond", status: 500 });
  });

  it("makes settle single-use and skips settlement for failed handlers", async () => {
    const facilitator = stubFacilitator();
    const p = createPaywall(base({ "/x": { price: "$1", network: "eip155:84532", payTo: PAY_TO } }, { facilitator }));
    const first = await p.handle(request("GET", "/x"));
    if (first.kind !== "respond") throw new Error("expected 402");
    const required = (decodeBase64Json(first.headers["PAYMENT-REQUIRED"], "h") as { value: PaymentRequired }).value;
    const header = Buffer.from(JSON.stringify({ x402Version: 2, accepted: required.accepts[0], payload: {} })).toString("base64");
    const d = await p.handle(request("GET", "/x", { "payment-signature": header }));
    if (d.kind !== "paid") throw new Error("expected paid");
    expect(d.payment).toMatchObject({ x402Version: 2, route: "/x", requirements: { amount: "1000000" } });
    expect(await d.settle({ status: 404 })).toEqual({ kind: "ok", headers: {} });
    expect(facilitator.settleCalls).toHaveLength(0);
    await expect(d.settle({ status: 200 })).rejects.toThrow(/already/);
  });
});

describe("helpers", () => {
  it("escapes HTML metacharacters", () => {
    expect(escapeHtml(`<a href="x" onclick='y'>&\``)).toBe("&#60;a href=&#34;x&#34; onclick=&#39;y&#39;&#62;&#38;&#96;");
  });
  it("merges list headers and replaces the rest", () => {
    expect(mergeHeaderValue("Access-Control-Expose-Headers", "ETag, payment-response", "PAYMENT-REQUIRED, PAYMENT-RESPONSE")).toBe("ETag, payment-response, PAYMENT-REQUIRED");
    expect(mergeHeaderValue("PAYMENT-RESPONSE", "old", "new")).toBe("new");
  });
});
