// The node server answers /verify and /settle itself (server.ts) and hands every other route to
// hono. Both paths run app.payment, so every answer must match what hono gives for the same
// request, byte for byte: status, content-type, the protocol headers, and the body.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AddressInfo } from "node:net";
import { request as httpRequest } from "node:http";
import { createFacilitatorApp, type FacilitatorApp } from "../src/app.ts";
import { createLedger, type Ledger } from "../src/ledger/ledger.ts";
import { createFacilitatorServer } from "../src/server.ts";
import { body, stubFacilitator, stubScheme } from "./helpers.ts";

let ledger: Ledger;
beforeAll(async () => {
  ledger = await createLedger();
});
afterAll(async () => {
  await ledger?.close();
});

interface Raw {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** Send the body in chunks without a content-length (transfer-encoding: chunked). */
  chunked?: boolean;
}

interface Answer {
  status: number;
  contentType: string | null;
  extra: Record<string, string | null>;
  body: string;
}

const EXTRA = ["www-authenticate", "retry-after", "payment-response"];

async function viaHono(app: FacilitatorApp, r: Raw): Promise<Answer> {
  const res = await app.request(`http://x${r.path}`, { method: r.method, headers: r.headers, ...(r.body !== undefined ? { body: r.body } : {}) });
  return { status: res.status, contentType: res.headers.get("content-type"), extra: Object.fromEntries(EXTRA.map((h) => [h, res.headers.get(h)])), body: await res.text() };
}

function viaNode(port: number, r: Raw): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...r.headers };
    if (r.body !== undefined && !r.chunked) headers["content-length"] = Buffer.byteLength(r.body);
    const req = httpRequest({ host: "127.0.0.1", port, path: r.path, method: r.method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const h = (name: string) => {
          const v = res.headers[name];
          return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v;
        };
        resolve({ status: res.statusCode ?? 0, contentType: h("content-type"), extra: Object.fromEntries(EXTRA.map((n) => [n, h(n)])), body: Buffer.concat(chunks).toString("utf8") });
      });
    });
    req.on("error", reject);
    if (r.body !== undefined && r.chunked) {
      for (let i = 0; i < r.body.length; i += 4096) req.write(r.body.slice(i, i + 4096));
      req.end();
    } else {
      req.end(r.body);
    }
  });
}

async function both(app: FacilitatorApp, r: Raw): Promise<{ hono: Answer; node: Answer }> {
  const server = createFacilitatorServer(app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const port = (server.address() as AddressInfo).port;
    return { hono: await viaHono(app, r), node: await viaNode(port, r) };
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

const json = { "content-type": "application/json" };
const valid = () => JSON.stringify(body());

function appWith(extra: Partial<Parameters<typeof createFacilitatorApp>[0]> = {}) {
  const { scheme, facilitator } = stubFacilitator(stubScheme(1));
  return { scheme, app: createFacilitatorApp({ facilitator, ledger, ...extra }) };
}

describe("node fast path and hono answer alike", () => {
  const cases: Array<[string, () => Raw, number]> = [
    ["valid verify", () => ({ method: "POST", path: "/verify", headers: json, body: valid() }), 200],
    ["verify with a query string", () => ({ method: "POST", path: "/verify?trace=1", headers: json, body: valid() }), 200],
    ["bad JSON", () => ({ method: "POST", path: "/settle", headers: json, body: "{" }), 400],
    ["missing field", () => ({ method: "POST", path: "/verify", headers: json, body: JSON.stringify({ x402Version: 2, paymentPayload: {} }) }), 400],
    ["wrong content type", () => ({ method: "POST", path: "/settle", headers: { "content-type": "text/plain" }, body: valid() }), 400],
    ["declared length over the limit", () => ({ method: "POST", path: "/verify", headers: json, body: JSON.stringify({ pad: "x".repeat(70 * 1024) }) }), 413],
    ["chunked body over the limit", () => ({ method: "POST", path: "/settle", headers: json, body: JSON.stringify({ pad: "x".repeat(70 * 1024) }), chunked: true }), 413],
    ["chunked body within the limit", () => ({ method: "POST", path: "/verify", headers: json, body: valid(), chunked: true }), 200],
    ["GET on a payment route (hono: 404)", () => ({ method: "GET", path: "/verify", headers: {} }), 404],
    ["health (hono)", () => ({ method: "GET", path: "/health", headers: {} }), 200],
  ];
  for (const [name, make, status] of cases) {
    it(name, async () => {
      const { app } = appWith();
      const r = make();
      const { hono, node } = await both(app, r);
      expect(hono.status).toBe(status);
      expect(node).toEqual(hono);
    });
  }

  it("settle: the payload settled through hono is a duplicate through the fast path (one success per payment)", async () => {
    const { app, scheme } = appWith();
    const { hono, node } = await both(app, { method: "POST", path: "/settle", headers: json, body: valid() });
    expect(hono.status).toBe(200);
    const settled = JSON.parse(hono.body);
    expect(settled).toMatchObject({ success: true });
    expect({ ...node, body: "" }).toEqual({ ...hono, body: "" });
    expect(JSON.parse(node.body)).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: "", extensions: { "tollgate-settlement": { transaction: settled.transaction } } });
    expect(scheme.settleCalls).toBe(1);
  });

  it("401 with WWW-Authenticate, and 429 with Retry-After, from both", async () => {
    const keyed = appWith({ apiKeys: ["key-one-0123456789"] }).app;
    const unauthorized = await both(keyed, { method: "POST", path: "/verify", headers: json, body: valid() });
    expect(unauthorized.hono.status).toBe(401);
    expect(unauthorized.hono.extra["www-authenticate"]).toMatch(/^Bearer/);
    expect(unauthorized.node).toEqual(unauthorized.hono);
    const authorized = await both(keyed, { method: "POST", path: "/verify", headers: { ...json, authorization: "Bearer key-one-0123456789" }, body: valid() });
    expect(authorized.node.status).toBe(200);

    // A payer bucket of one: the second request in each pair is refused the same way.
    const limited = appWith({ rateLimit: { perPayer: { perSecond: 0.001, burst: 1 } } }).app;
    const payload = valid();
    const first = await both(limited, { method: "POST", path: "/verify", headers: json, body: payload });
    expect(first.hono.status).toBe(200);
    expect(first.node.status).toBe(429);
    expect(first.node.extra["retry-after"]).toBe("1");
  });
});
