/** The paywall's pure pieces: request reading, route matching, the settle loop, the caches, message scrubbing. */
import { describe, expect, it } from "vitest";
import { FacilitatorError, type PaymentPayload, type PaymentRequirements, type SettleResponse } from "@tollgate/core";
import {
  authorizationKeyOf,
  createInFlight,
  createReplayCache,
  isPending,
  isPreflight,
  isReplay,
  matchRoute,
  normalizePath,
  parseRouteKey,
  publicMessage,
  readPaymentIdentifier,
  requestMethods,
  requestPaths,
  resourceUrl,
  settleUntilFinal,
} from "@tollgate/server";
import { ASSET, PAY_TO, PAYER, PENDING, stubScheme, TX } from "./fixtures.ts";

const headers = (h: Record<string, string>) => (name: string) => h[name.toLowerCase()];
const none = headers({});

describe("request reading", () => {
  it("counts only a real CORS preflight as one", () => {
    expect(isPreflight("OPTIONS", headers({ origin: "https://a", "access-control-request-method": "POST" }))).toBe(true);
    expect(isPreflight("options", headers({ origin: "https://a", "access-control-request-method": "GET" }))).toBe(true);
    expect(isPreflight("OPTIONS", headers({ origin: "https://a" }))).toBe(false);
    expect(isPreflight("OPTIONS", headers({ "access-control-request-method": "GET" }))).toBe(false);
    expect(isPreflight("OPTIONS", headers({ origin: " ", "access-control-request-method": "GET" }))).toBe(false);
    expect(isPreflight("OPTIONS", headers({ origin: "https://a", "access-control-request-method": "G T" }))).toBe(false);
    expect(isPreflight("GET", headers({ origin: "https://a", "access-control-request-method": "GET" }))).toBe(false);
  });

  it("adds the methods override headers and _method ask for", () => {
    expect(requestMethods("post", none)).toEqual(["POST"]);
    expect(requestMethods("POST", headers({ "x-http-method-override": "get", "x-http-method": "PUT, delete", "x-method-override": "bad method" }))).toEqual(["POST", "GET", "PUT", "DELETE"]);
    expect(requestMethods("POST", none, "?a=1&_method=PATCH")).toEqual(["POST", "PATCH"]);
  });

  it("matches every variant of the path a framework may route on", () => {
    const read = requestPaths(["/pai%64", "/x"], headers({ "x-original-url": "/orig?q=1", "x-rewrite-url": "not-a-path" }));
    expect(read).toEqual({ ok: true, value: ["/pai%64", "/paid", "/x", "/orig"] });
    // Kelvin sign (U+212A) folds to K under NFKC.
    expect(requestPaths(["/%E2%84%AAey"], none)).toMatchObject({ ok: true, value: expect.arrayContaining(["/Key"]) });
    // A malformed escape is matched as written.
    expect(requestPaths(["/a%zz"], none)).toEqual({ ok: true, value: ["/a%zz"] });
    expect(requestPaths(["*"], none)).toMatchObject({ ok: false, field: "request target" });
    expect(requestPaths(["http://h/x"], none)).toMatchObject({ ok: false });
  });

  it("builds the resource URL from a valid Host or publicUrl, never an absolute target's host", () => {
    expect(resourceUrl({ protocol: "http", host: "api.example.com:8080", target: "/a?b=1" })).toEqual({ ok: true, value: "http://api.example.com:8080/a?b=1" });
    expect(resourceUrl({ protocol: "https", host: "[::1]:443", target: "http://evil.example/a" })).toEqual({ ok: true, value: "https://[::1]:443/a" });
    expect(resourceUrl({ protocol: "http", host: "x", target: "/a" }, new URL("https://shop.example/base/"))).toEqual({ ok: true, value: "https://shop.example/base/a" });
    for (const host of [undefined, "", "a b", "a/b", "a@b", "a:port", "\u00e9.example"]) {
      expect(resourceUrl({ protocol: "http", host, target: "/a" }), String(host)).toMatchObject({ ok: false, field: "host" });
    }
    expect(resourceUrl({ protocol: "gopher", host: "a", target: "/a" })).toMatchObject({ ok: false, field: "protocol" });
    expect(resourceUrl("::not a url")).toMatchObject({ ok: false, field: "url" });
  });
});

describe("route matching", () => {
  const route = (key: string) => ({ key, ...parseRouteKey(key), resource: {}, options: [], settle: "after" as const, maxResponseBytes: undefined, discovery: undefined });
  const routes = [route("GET /paid"), route("/api/*")];

  it("normalizes repeated and trailing slashes", () => {
    expect(normalizePath("//paid//")).toBe("/paid");
    expect(normalizePath("/")).toBe("/");
    expect(normalizePath("//")).toBe("/");
  });

  it("lets a trailing /* cover the bare prefix, as a mounted handler answers both", () => {
    const api = parseRouteKey("/api/*").pattern;
    expect(["/api", "/api/", "/api/x/y"].map((p) => api.test(normalizePath(p)))).toEqual([true, true, true]);
    expect(api.test("/apix")).toBe(false);
    expect(parseRouteKey("/a*").pattern.test("/abc")).toBe(true);
  });

  it("prices HEAD like GET, and any method for a key without one", () => {
    expect(matchRoute(routes, "HEAD", "/paid")?.key).toBe("GET /paid");
    expect(matchRoute(routes, "POST", "/paid")).toBeUndefined();
    expect(matchRoute(routes, ["POST", "GET"], "/paid")?.key).toBe("GET /paid");
    expect(matchRoute(routes, "OPTIONS", "/api/x")?.key).toBe("/api/*");
  });

  it("ignores case only when told, as Express does by default", () => {
    expect(matchRoute(routes, "GET", "/PAID")).toBeUndefined();
    expect(matchRoute(routes, "GET", "/PAID", { ignoreCase: true })?.key).toBe("GET /paid");
    expect(matchRoute(routes, "GET", ["/nope", "/Paid/"], { ignoreCase: true })?.key).toBe("GET /paid");
  });
});

describe("settleUntilFinal", () => {
  const success: SettleResponse = { success: true, transaction: TX, network: "eip155:84532", payer: PAYER };
  function clock() {
    let t = 0;
    return { now: () => t, sleep: async (ms: number) => void (t += ms) };
  }
  const script = (answers: (SettleResponse | Error)[]) => {
    let calls = 0;
    const settle = async () => {
      const a = answers[Math.min(calls++, answers.length - 1)]!;
      if (a instanceof Error) throw a;
      return a;
    };
    return { settle, calls: () => calls };
  };

  it("polls a pending settlement until it is final", async () => {
    const s = script([PENDING, PENDING, success]);
    expect(await settleUntilFinal(s.settle, { timeoutMs: 10_000, pollMs: 1_000, ...clock() })).toEqual({ kind: "settled", response: success, replay: false });
    expect(s.calls()).toBe(3);
  });

  it("answers pending at the deadline", async () => {
    const s = script([PENDING]);
    expect(await settleUntilFinal(s.settle, { timeoutMs: 5_000, pollMs: 1_000, ...clock() })).toEqual({ kind: "pending", response: PENDING });
    expect(s.calls()).toBe(6);
  });

  it("asks again when the facilitator did not answer, not when it refused the request", async () => {
    const down = new FacilitatorError("timed out", "settle", undefined, "");
    const s = script([down, new FacilitatorError("HTTP 503", "settle", 503, ""), success]);
    expect(await settleUntilFinal(s.settle, { timeoutMs: 10_000, pollMs: 1_000, ...clock() })).toMatchObject({ kind: "settled" });
    const auth = new FacilitatorError("HTTP 401", "settle", 401, "");
    const t = script([auth]);
    expect(await settleUntilFinal(t.settle, { timeoutMs: 10_000, pollMs: 1_000, ...clock() })).toEqual({ kind: "unreachable", error: auth });
    expect(t.calls()).toBe(1);
    const u = script([down]);
    expect(await settleUntilFinal(u.settle, { timeoutMs: 3_000, pollMs: 1_000, ...clock() })).toEqual({ kind: "unreachable", error: down });
    // Once pending was seen, money may move: the client hears pending even if the facilitator then went quiet.
    const v = script([PENDING, down]);
    expect(await settleUntilFinal(v.settle, { timeoutMs: 3_000, pollMs: 1_000, ...clock() })).toEqual({ kind: "pending", response: PENDING });
  });

  it("reports failures and replays as they are", async () => {
    const dup: SettleResponse = { success: false, errorReason: "duplicate_settlement", transaction: "", network: "eip155:84532" };
    expect(await settleUntilFinal(script([dup]).settle, { timeoutMs: 1, pollMs: 1, ...clock() })).toEqual({ kind: "failed", response: dup });
    const replay = { ...success, extensions: { "tollgate-settlement": { status: "settled", replay: true } } };
    expect(await settleUntilFinal(script([replay]).settle, { timeoutMs: 1, pollMs: 1, ...clock() })).toMatchObject({ kind: "settled", replay: true });
    expect(isPending({ ...dup, errorReason: "x", extensions: { "tollgate-settlement": { status: "pending" } } })).toBe(true);
    expect(isReplay({ ...success, extensions: { "tollgate-settlement": "replay" } })).toBe(false);
  });
});

describe("in-flight guard", () => {
  it("holds a key once until released", () => {
    const g = createInFlight();
    const release = g.acquire("k")!;
    expect(g.acquire("k")).toBeUndefined();
    expect(g.acquire("other")).toBeDefined();
    release();
    release();
    expect(g.size).toBe(1);
    expect(g.acquire("k")).toBeDefined();
  });

  it("keys a payment by the scheme's authorization, else by its canonical content", () => {
    const requirements: PaymentRequirements = { scheme: "exact", network: "eip155:84532", amount: "1", asset: ASSET, payTo: PAY_TO, maxTimeoutSeconds: 60 };
    const payload = (inner: Record<string, unknown>): PaymentPayload => ({ x402Version: 2, accepted: requirements, payload: inner });
    const a = authorizationKeyOf(stubScheme, payload({ a: 1, b: { c: 2, d: 3 } }), requirements);
    expect(authorizationKeyOf(stubScheme, payload({ b: { d: 3, c: 2 }, a: 1 }), requirements)).toBe(a);
    expect(authorizationKeyOf(stubScheme, payload({ a: 2 }), requirements)).not.toBe(a);
    const keyed = { ...stubScheme, authorizationKey: () => "eip155:84532|asset|payer|nonce" };
    expect(authorizationKeyOf(keyed, payload({ a: 1 }), requirements)).toBe(authorizationKeyOf(keyed, payload({ z: 9 }), requirements));
    let deep: Record<string, unknown> = {};
    for (let i = 0; i < 100; i++) deep = { d: deep };
    expect(() => authorizationKeyOf(stubScheme, payload(deep), requirements)).toThrow(/nested deeper/);
  });
});

describe("replay cache", () => {
  const response = (n: number) => ({ status: 200, headers: [["content-type", "text/plain"]] as Array<[string, string]>, body: new Uint8Array(n) });

  it("expires entries after their TTL and refuses entries over maxEntryBytes", () => {
    let t = 0;
    const cache = createReplayCache({ maxEntryBytes: 1_000, now: () => t });
    expect(cache.set("a", response(100), 60_000)).toBe(true);
    expect(cache.set("big", response(2_000), 60_000)).toBe(false);
    expect(cache.get("a")?.body.byteLength).toBe(100);
    t = 60_000;
    expect(cache.get("a")).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
  });

  it("drops the least recently used past maxEntries or maxBytes", () => {
    const cache = createReplayCache({ maxEntries: 2, maxBytes: 10_000 });
    cache.set("a", response(10), 1_000);
    cache.set("b", response(10), 1_000);
    cache.get("a");
    cache.set("c", response(10), 1_000);
    expect([cache.get("a"), cache.get("b"), cache.get("c")].map(Boolean)).toEqual([true, false, true]);
    const bytes = createReplayCache({ maxBytes: 500, maxEntryBytes: 500 });
    bytes.set("x", response(300), 1_000);
    bytes.set("y", response(300), 1_000);
    expect(bytes.get("x")).toBeUndefined();
    expect(bytes.get("y")).toBeDefined();
    expect(bytes.bytes).toBeLessThanOrEqual(500);
  });
});

describe("payment-identifier", () => {
  const p = (extensions: unknown) => ({ x402Version: 2, accepted: {}, payload: {}, extensions }) as unknown as PaymentPayload;
  it("reads a valid id and names the field of an invalid one", () => {
    expect(readPaymentIdentifier(p(undefined))).toEqual({ ok: true, id: undefined });
    expect(readPaymentIdentifier(p({ "payment-identifier": { info: { required: false } } }))).toEqual({ ok: true, id: undefined });
    expect(readPaymentIdentifier(p({ "payment-identifier": { info: { id: "pay_7d5d747be160e280" } } }))).toEqual({ ok: true, id: "pay_7d5d747be160e280" });
    expect(readPaymentIdentifier(p({ "payment-identifier": { info: { id: "has space in it 12345" } } }))).toMatchObject({ ok: false, field: "paymentPayload.extensions.payment-identifier.info.id" });
    expect(readPaymentIdentifier(p({ "payment-identifier": [] }))).toMatchObject({ ok: false, field: "paymentPayload.extensions.payment-identifier" });
  });
});

describe("publicMessage", () => {
  it("keeps internal reasons' text and addresses away from clients", () => {
    expect(publicMessage("unexpected_settle_error", "anything")).toBeUndefined();
    expect(publicMessage("insufficient_funds", "rpc https://user:key@rpc.example/v3/abc said 0\nstack")).toBe("rpc <url> said 0");
    expect(publicMessage("x", "node 10.0.0.12:8545 down")).toBe("node <address> down");
    expect(publicMessage("x", "a".repeat(500))!.length).toBe(300);
  });
});
