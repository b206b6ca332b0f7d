// The operator dashboard's server side: its queries over a real PGlite ledger filled by real
// /verify and /settle requests (stub scheme: signed payloads, no chain) and by the ledger's own
// settlement API (write-ahead transactions, gas); who may see it (API keys: bearer or session
// cookie; none: this machine only); parameter checks; the live stream; hostile strings.
import type { AddressInfo } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, custom, toEventSelector, toHex, type PublicClient } from "viem";
import { createFacilitatorApp, type FacilitatorApp } from "../src/app.ts";
import { createReconciler } from "../src/reconciler.ts";
import { RESUME_MAX } from "../src/dashboard/routes.ts";
import { sessionValid, sessionValue } from "../src/dashboard/auth.ts";
import { explorerLinkFor } from "../src/dashboard/explorers.ts";
import { createLiveFeed } from "../src/dashboard/live.ts";
import { createDashboardQueries, readSearchQuery, recordTransactionGas, type PaymentEventRow } from "../src/dashboard/queries.ts";
import { createLedger, type Ledger, type PaymentEntry } from "../src/ledger/ledger.ts";
import { digest } from "../src/payment-routes.ts";
import { createFacilitatorServer } from "../src/server.ts";
import { startFacilitator } from "../src/start.ts";
import { ASSET, body, keyOf, NETWORK, PAYEE, PAYER, post, stubFacilitator } from "./helpers.ts";

const KEY = "dashboard-test-api-key-0123456789";
const AUTH = { authorization: `Bearer ${KEY}` };
const SIGNER = "0x2222222222222222222222222222222222222222";

let ledger: Ledger;
let app: FacilitatorApp;
let stub: ReturnType<typeof stubFacilitator>;

function get(path: string, headers: Record<string, string> = AUTH): Promise<Response> {
  return Promise.resolve(app.request(`http://facilitator.test${path}`, { headers }));
}

async function pay(amount = "10000"): Promise<{ key: string; transaction: string }> {
  const b = body({ amount });
  const res = await app.request(post("/settle", b, AUTH));
  const settled = (await res.json()) as { success: boolean; transaction: string };
  expect(settled.success).toBe(true);
  return { key: keyOf(b), transaction: settled.transaction };
}

function entry(n: number, amount: string): PaymentEntry {
  const nonce = `0x${n.toString(16).padStart(64, "0")}`;
  return { key: `${NETWORK}|${ASSET.toLowerCase()}|${PAYER.toLowerCase()}|${nonce}`, network: NETWORK, scheme: "exact", asset: ASSET, payer: PAYER.toLowerCase(), payee: PAYEE, amount, nonce, requestHash: `h${n}` };
}

async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, pattern: RegExp, timeoutMs = 5_000): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(text)) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`no ${pattern} in the stream within ${timeoutMs} ms; got ${JSON.stringify(text)}`);
    const chunk = await Promise.race([reader.read(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`stream silent; got ${JSON.stringify(text)}`)), left))]);
    if (chunk.done) throw new Error(`stream ended; got ${JSON.stringify(text)}`);
    text += decoder.decode(chunk.value, { stream: true });
  }
  return text;
}

beforeAll(async () => {
  ledger = await createLedger();
  stub = stubFacilitator();
  stub.scheme.settleDelayMs = 1;
  app = createFacilitatorApp({
    facilitator: stub.facilitator,
    ledger,
    apiKeys: [KEY],
    dashboard: {
      pollMs: 50,
      maxStreams: 2,
      explorers: { [NETWORK]: "https://explorer.example/tx/{hash}" },
      assets: [{ network: NETWORK, address: ASSET, symbol: "USDC", decimals: 6 }],
      feePayers: async () => [{ network: NETWORK, address: SIGNER, balance: 5n }],
      floorWei: 10n,
    },
  });
});

afterAll(async () => {
  app?.dashboard?.close();
  await app?.audit.drain();
  await ledger?.close();
});

describe("who may see the dashboard", () => {
  it("with API keys: the page is a login form without one, the data 401; a bearer key or the session cookie opens both", async () => {
    const page = await get("/dashboard", {});
    expect(page.status).toBe(401);
    const html = await page.text();
    expect(html).toContain('action="/dashboard/login"');
    expect(html).not.toContain(KEY);
    expect(page.headers.get("content-security-policy")).toMatch(/script-src 'self'/);
    for (const path of ["/dashboard/api/overview", "/dashboard/api/search?q=" + PAYER, "/dashboard/api/events"]) {
      expect((await get(path, {})).status, path).toBe(401);
      expect((await get(path, { authorization: "Bearer not-the-key-at-all-0000" })).status, path).toBe(401);
    }
    expect((await get("/dashboard")).status).toBe(200);
    expect((await get("/dashboard/api/overview")).status).toBe(200);
  });

  it("a key scoped to receivers (another party's server) pays through /settle but never opens the dashboard", async () => {
    const TENANT = "dashboard-test-tenant-key-0123456789";
    const scoped = createFacilitatorApp({ facilitator: stub.facilitator, ledger, apiKeys: [KEY, { key: TENANT, receivers: [PAYEE] }], dashboard: { pollMs: 50 } });
    try {
      const as = (key: string) => ({ authorization: `Bearer ${key}` });
      for (const path of ["/dashboard/api/overview", "/dashboard/api/search?q=" + PAYER]) {
        expect((await scoped.request(`http://facilitator.test${path}`, { headers: as(TENANT) })).status, path).toBe(401);
        expect((await scoped.request(`http://facilitator.test${path}`, { headers: as(KEY) })).status, path).toBe(200);
      }
      const settled = await scoped.request(post("/settle", body({ amount: "10000" }), as(TENANT)));
      expect(settled.status).toBe(200);
      expect(((await settled.json()) as { success: boolean }).success).toBe(true);
      expect((await scoped.request(post("/settle", body({ amount: "10000" }), as("not-a-key-of-this-facilitator")))).status).toBe(401);
    } finally {
      scoped.dashboard?.close();
      await scoped.audit.drain();
    }
  });

  it("the login form sets an HttpOnly SameSite=Strict cookie that is not the key; a wrong key or a cross-site post gets nothing", async () => {
    const form = (key: string, headers: Record<string, string> = {}) =>
      app.request("http://facilitator.test/dashboard/login", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", ...headers }, body: new URLSearchParams({ key }).toString() });
    const wrong = await form("0123456789abcdef-wrong");
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("set-cookie")).toBeNull();
    const crossSite = await form(KEY, { origin: "https://evil.example", host: "facilitator.test" });
    expect(crossSite.status).toBe(403);
    expect(crossSite.headers.get("set-cookie")).toBeNull();

    const ok = await form(KEY, { origin: "http://facilitator.test", host: "facilitator.test" });
    expect(ok.status).toBe(303);
    const cookie = ok.headers.get("set-cookie")!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Path=\/dashboard/);
    expect(cookie).not.toContain(KEY);
    const value = cookie.split(";")[0]!;
    expect((await get("/dashboard/api/overview", { cookie: value })).status).toBe(200);
    // Tampered, or expired: refused.
    expect((await get("/dashboard/api/overview", { cookie: value.slice(0, -2) + "AA" })).status).toBe(401);
    expect(sessionValid(sessionValue(digest(KEY), Date.now() - 13 * 3600_000), [digest(KEY)])).toBe(false);
    expect(sessionValid(sessionValue(digest(KEY)), [digest("another-key-entirely-0000")])).toBe(false);
  });

  it("without API keys: served to a loopback connection only, never through a proxy header, and not to app.request (no socket)", async () => {
    const open = createFacilitatorApp({ facilitator: stub.facilitator, ledger });
    expect((await open.request("http://facilitator.test/dashboard/api/overview")).status).toBe(403);
    const server = createFacilitatorServer(open);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      expect((await fetch(`${base}/dashboard`)).status).toBe(200);
      expect((await fetch(`${base}/dashboard/api/overview`)).status).toBe(200);
      expect((await fetch(`${base}/dashboard/api/overview`, { headers: { "x-forwarded-for": "203.0.113.9" } })).status).toBe(403);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it("over node's server, a stream whose client went away frees its slot", async () => {
    const one = createFacilitatorApp({ facilitator: stub.facilitator, ledger, dashboard: { maxStreams: 1, pollMs: 50 } });
    const server = createFacilitatorServer(one);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dashboard/api/events`;
    try {
      const first = new AbortController();
      const res = await fetch(url, { signal: first.signal });
      expect(res.status).toBe(200);
      expect((await fetch(url)).status).toBe(503);
      first.abort();
      let status = 0;
      for (let i = 0; i < 50 && status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 50));
        const again = await fetch(url);
        status = again.status;
        await again.body?.cancel();
      }
      expect(status).toBe(200);
    } finally {
      one.dashboard?.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it("a facilitator closing with a dashboard stream open does not wait for it (shutdownTimeoutMs is 15 s)", async () => {
    const running = await startFacilitator({ port: 0, logLevel: "silent" }, { ledger });
    const res = await fetch(`${running.url}/dashboard/api/events`);
    expect(res.status).toBe(200);
    const started = Date.now();
    await running.close();
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("dashboard: false serves nothing", async () => {
    const off = createFacilitatorApp({ facilitator: stub.facilitator, ledger, dashboard: false });
    expect((await off.request("http://facilitator.test/dashboard")).status).toBe(404);
  });
});

describe("what the dashboard reads from the ledger", () => {
  it("volume, count, payees and recent records come from real settlements, amounts exact", async () => {
    const before = (await (await get("/dashboard/api/overview")).json()) as { volume: Array<{ count: number; volume: string }> };
    const countBefore = before.volume.reduce((n, p) => n + p.count, 0);
    const sumBefore = before.volume.reduce((n, p) => n + BigInt(p.volume), 0n);
    await pay("10000");
    await pay("2500");
    // An amount past 2^53: the sum must stay exact.
    await pay("123456789012345678901");
    await app.audit.drain();
    const o = (await (await get("/dashboard/api/overview?window=24h")).json()) as {
      volume: Array<{ t: number; network: string; asset: string; count: number; volume: string }>;
      payees: Array<{ payee: string; count: number; total: string }>;
      recent: Array<{ status: string; link: string | null; transaction: string | null }>;
      outcomes: Array<{ kind: string; outcome: string; count: number }>;
      feePayers: Array<{ balance: string; floor: string; belowFloor: boolean }>;
      bucketSeconds: number;
    };
    expect(o.bucketSeconds).toBe(900);
    expect(o.volume.reduce((n, p) => n + p.count, 0)).toBe(countBefore + 3);
    expect(o.volume.reduce((n, p) => n + BigInt(p.volume), 0n) - sumBefore).toBe(10000n + 2500n + 123456789012345678901n);
    for (const p of o.volume) expect(p.t % 900).toBe(0);
    expect(o.payees[0]).toMatchObject({ payee: PAYEE.toLowerCase() });
    expect(BigInt(o.payees[0]!.total)).toBeGreaterThanOrEqual(123456789012345678901n);
    expect(o.recent[0]!.status).toBe("settled");
    expect(o.recent[0]!.link).toBe(`https://explorer.example/tx/${o.recent[0]!.transaction}`);
    expect(o.outcomes.find((x) => x.kind === "settle" && x.outcome === "settled")!.count).toBeGreaterThanOrEqual(3);
    expect(o.feePayers).toEqual([{ network: NETWORK, address: SIGNER, balance: "5", floor: "10", belowFloor: true }]);
  });

  it("outcomes by reason count refusals; pending and in-doubt rows are told apart; gas per payment from recorded receipts", async () => {
    stub.scheme.failWith = "insufficient_funds";
    const refused = await app.request(post("/settle", body(), AUTH));
    stub.scheme.failWith = undefined;
    expect(((await refused.json()) as { errorReason: string }).errorReason).toBe("insufficient_funds");
    await app.audit.drain();

    // Through the ledger's settlement API: one claimed and sent (in doubt once its claim is
    // released), one claimed with nothing sent (pending), one settled with its gas recorded.
    const [sent, claimed, mined, mined2] = [entry(9001, "700"), entry(9002, "800"), entry(9003, "900"), entry(9004, "1000")];
    for (const e of [sent, claimed, mined, mined2]) expect(await ledger.claim(e, "tok", 60_000)).toEqual({ claimed: true });
    const sentHash = `0x${"ab".repeat(32)}`;
    const minedHash = `0x${"cd".repeat(32)}`;
    expect(await ledger.recordTransaction({ keys: [sent.key], hash: sentHash, network: NETWORK, signer: SIGNER, nonce: 1 })).toEqual([]);
    expect(await ledger.recordTransaction({ keys: [mined.key, mined2.key], hash: minedHash, network: NETWORK, signer: SIGNER, nonce: 2 })).toEqual([]);
    await recordTransactionGas(ledger, minedHash, 90_001n, 1_000_000_007n);
    for (const e of [mined, mined2]) {
      expect(await ledger.complete(e.key, "tok", { status: "settled", transaction: minedHash, response: { success: true, transaction: minedHash, network: NETWORK, payer: e.payer } })).toBe(true);
    }
    await ledger.complete(sent.key, "tok", { status: "pending", transaction: sentHash, response: { success: false, errorReason: "settlement_pending", transaction: sentHash, network: NETWORK } });

    const o = (await (await get("/dashboard/api/overview")).json()) as {
      outcomes: Array<{ kind: string; outcome: string; reason: string | null; count: number }>;
      open: { pending: number; inDoubt: number; rows: Array<{ key: string; inDoubt: boolean }> };
      gas: Array<{ network: string; transactions: number; payments: number; gasPerPayment: string; feesWei: string }>;
    };
    expect(o.outcomes).toContainEqual(expect.objectContaining({ kind: "settle", outcome: "failed", reason: "insufficient_funds" }));
    expect(o.open.rows.find((r) => r.key === sent.key)?.inDoubt).toBe(true);
    expect(o.open.rows.find((r) => r.key === claimed.key)?.inDoubt).toBe(false);
    expect(o.open.inDoubt).toBeGreaterThanOrEqual(1);
    expect(o.open.pending).toBeGreaterThanOrEqual(2);
    // 90 001 gas over two payments: 45 000 each (integer division); fees exact past 2^53.
    expect(o.gas).toEqual([{ network: NETWORK, transactions: 1, payments: 2, gasPerPayment: "45000", feesWei: (90_001n * 1_000_000_007n).toString() }]);

    // Search by that transaction hash: both records, each with its attempt and gas.
    const found = (await (await get(`/dashboard/api/search?q=${minedHash.toUpperCase().replace("0X", "0x")}`)).json()) as {
      total: number;
      records: Array<{ key: string; link: string; attempts: Array<{ hash: string; gasUsed: string; payments: number }> }>;
    };
    expect(found.total).toBe(2);
    expect(found.records.map((r) => r.key).sort()).toEqual([mined.key, mined2.key].sort());
    expect(found.records[0]!.attempts).toEqual([expect.objectContaining({ hash: minedHash, gasUsed: "90001", payments: 2 })]);
    expect(found.records[0]!.link).toBe(`https://explorer.example/tx/${minedHash}`);
  });

  it("search by payer or payee address (any case) finds the ledger record; nothing found is an empty answer", async () => {
    const { key, transaction } = await pay("4242");
    const byPayer = (await (await get(`/dashboard/api/search?q=${PAYER.toLowerCase()}`)).json()) as { total: number; records: Array<{ key: string }> };
    expect(byPayer.total).toBeGreaterThan(0);
    expect(byPayer.records.map((r) => r.key)).toContain(key);
    const byPayee = (await (await get(`/dashboard/api/search?q=${PAYEE.toUpperCase().replace("0X", "0x")}`)).json()) as { total: number };
    expect(byPayee.total).toBeGreaterThan(0);
    const byHash = (await (await get(`/dashboard/api/search?q=${transaction}`)).json()) as { records: Array<{ key: string; amount: string; status: string }> };
    expect(byHash.records).toEqual([expect.objectContaining({ key, amount: "4242", status: "settled" })]);
    const none = (await (await get(`/dashboard/api/search?q=0x${"0".repeat(39)}1`)).json()) as { total: number; records: unknown[] };
    expect(none).toMatchObject({ total: 0, records: [] });
  });
});

describe("parameters are checked", () => {
  it("window and q: a 400 naming the parameter; nothing odd reaches SQL", async () => {
    for (const w of ["2h", "", "1h'--", "__proto__", "constructor"]) {
      const res = await get(`/dashboard/api/overview?window=${encodeURIComponent(w)}`);
      expect(res.status, w).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/^window:/);
    }
    for (const q of ["", "abc", "0x123", `0x${"g".repeat(40)}`, "' OR 1=1 --", "<script>alert(1)</script>", "x".repeat(101), `0x${"a".repeat(41)}`]) {
      const res = await get(`/dashboard/api/search?q=${encodeURIComponent(q)}`);
      expect(res.status, q).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/^q:/);
    }
    expect(readSearchQuery(` ${PAYER} `)).toEqual({ kind: "address", value: PAYER, caseless: true });
    expect(readSearchQuery("4Nd1mBQtrMJVYVfKf2PJy9NZUZdTAsp7D4xWLs4gDB4T")).toMatchObject({ kind: "address", caseless: false });
    expect(readSearchQuery("5".repeat(88))).toMatchObject({ kind: "transaction", caseless: false });
  });

  it("assets: only the known files, nothing from a path in the request", async () => {
    const js = await get("/dashboard/assets/dashboard.js", {});
    expect(js.status).toBe(200);
    expect(js.headers.get("content-type")).toMatch(/javascript/);
    const uplot = await get("/dashboard/assets/uPlot.iife.min.js", {});
    expect(uplot.status).toBe(200);
    expect(await uplot.text()).toContain("uPlot");
    expect((await get("/dashboard/assets/uPlot.min.css", {})).status).toBe(200);
    for (const bad of ["..%2Fapp.ts", "%2E%2E%2F%2E%2E%2Fpackage.json", "app.ts", "__proto__"]) expect((await get(`/dashboard/assets/${bad}`, {})).status, bad).toBe(404);
  });

  it("explorer links: only http(s) templates, only hash-shaped values, none for a local chain", () => {
    const hash = `0x${"12".repeat(32)}`;
    expect(explorerLinkFor("eip155:8453", hash)).toBe(`https://basescan.org/tx/${hash}`);
    expect(explorerLinkFor("eip155:31337", hash)).toBeNull();
    expect(explorerLinkFor("eip155:31337", hash, { "eip155:31337": "javascript:alert(1)//{hash}" })).toBeNull();
    expect(explorerLinkFor("eip155:8453", "javascript:alert(1)")).toBeNull();
    expect(explorerLinkFor("eip155:8453", `${hash}/../../x`)).toBeNull();
  });
});

describe("live stream", () => {
  it("delivers a payment's verify and settle events from the ledger, with hostile strings intact as data", async () => {
    const res = await get("/dashboard/api/events");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    try {
      await readUntil(reader, /: connected/);
      // Events written by ANOTHER instance sharing the store (straight into the ledger), then ours.
      await new Promise((r) => setTimeout(r, 120));
      await ledger.recordEvent({ kind: "settle", network: NETWORK, outcome: "failed", reason: '<img src=x onerror="alert(1)">\n\nevent: fake' });
      const b = body({ amount: "3131" });
      await app.request(post("/verify", b, AUTH));
      const settled = (await (await app.request(post("/settle", b, AUTH))).json()) as { transaction: string };
      const text = await readUntil(reader, new RegExp(`"transaction":"${settled.transaction}"`));
      const events = text
        .split("\n\n")
        .filter((block) => block.includes("event: payment"))
        .map((block) => JSON.parse(block.split("\n").find((l) => l.startsWith("data: "))!.slice(6)) as { kind: string; outcome: string; reason: string | null; amount: string | null; payee: string | null });
      // The hostile reason arrives as one JSON value (no injected SSE field), unchanged.
      expect(events).toContainEqual(expect.objectContaining({ outcome: "failed", reason: '<img src=x onerror="alert(1)">\n\nevent: fake' }));
      expect(text).not.toMatch(/^event: fake/m);
      expect(events).toContainEqual(expect.objectContaining({ kind: "verify", outcome: "valid", amount: "3131" }));
      expect(events).toContainEqual(expect.objectContaining({ kind: "settle", outcome: "settled", amount: "3131", payee: PAYEE }));
    } finally {
      await reader.cancel();
    }
  });

  it("bounds open streams (503 past the limit) and frees a slot when a client goes", async () => {
    const a = await get("/dashboard/api/events");
    const b = await get("/dashboard/api/events");
    expect([a.status, b.status]).toEqual([200, 200]);
    const c = await get("/dashboard/api/events");
    expect(c.status).toBe(503);
    expect(c.headers.get("retry-after")).toBe("5");
    await a.body!.cancel();
    const d = await get("/dashboard/api/events");
    expect(d.status).toBe(200);
    await b.body!.cancel();
    await d.body!.cancel();
  });
});

/** SSE blocks carrying a payment, parsed: their id and data. */
function paymentEvents(text: string): Array<{ id: string; kind: string; outcome: string; reason: string | null; amount: string | null; transaction: string | null }> {
  return text
    .split("\n\n")
    .filter((block) => block.includes("event: payment"))
    .map((block) => {
      const lines = block.split("\n");
      const id = lines.find((l) => l.startsWith("id: "))!.slice(4);
      return { id, ...JSON.parse(lines.find((l) => l.startsWith("data: "))!.slice(6)) };
    });
}

const AUTHORIZATION_USED = toEventSelector("AuthorizationUsed(address,bytes32)");

/** A node that mined `receipts` (hash → status and gas; success logs the token's AuthorizationUsed for the row) and knows nothing else. */
function chainWith(receipts: Map<string, { entry: PaymentEntry; status: "0x1" | "0x0"; gasUsed: bigint; price: bigint }>): PublicClient {
  const block = `0x${"0e".repeat(32)}`;
  return createPublicClient({
    transport: custom({
      async request({ method, params }: { method: string; params?: unknown[] }) {
        if (method === "eth_getTransactionCount") return "0x0";
        if (method !== "eth_getTransactionReceipt") throw new Error(`unexpected ${method}`);
        const hash = String(params?.[0]);
        const r = receipts.get(hash);
        if (!r) return null;
        const log = { address: ASSET, topics: [AUTHORIZATION_USED, `0x${r.entry.payer.slice(2).padStart(64, "0")}`, r.entry.nonce], data: "0x", blockNumber: "0x10", transactionHash: hash, transactionIndex: "0x0", blockHash: block, logIndex: "0x0", removed: false };
        return {
          transactionHash: hash, transactionIndex: "0x0", blockHash: block, blockNumber: "0x10", from: SIGNER, to: ASSET, cumulativeGasUsed: toHex(r.gasUsed), gasUsed: toHex(r.gasUsed),
          effectiveGasPrice: toHex(r.price), contractAddress: null, logsBloom: `0x${"00".repeat(256)}`, status: r.status, type: "0x2", logs: r.status === "0x1" ? [log] : [],
        };
      },
    }),
  }) as PublicClient;
}

describe("settlements finished after their answer (reconciler)", () => {
  it("a row the reconciler settles, and one it fails, show up on the live stream (kind final); the receipts' gas is recorded", async () => {
    const [won, lost] = [entry(9101, "4242"), entry(9102, "4343")];
    const [wonHash, lostHash] = [`0x${"1a".repeat(32)}`, `0x${"2b".repeat(32)}`];
    // Each answered pending: claimed, written ahead, claim released with the outcome unknown.
    for (const [e, hash, nonce] of [[won, wonHash, 31], [lost, lostHash, 32]] as const) {
      expect(await ledger.claim(e, "tok", 60_000)).toEqual({ claimed: true });
      expect(await ledger.recordTransaction({ keys: [e.key], hash, network: NETWORK, signer: SIGNER, nonce })).toEqual([]);
      expect(await ledger.complete(e.key, "tok", { status: "pending", transaction: hash, response: { success: false, errorReason: "settlement_pending", transaction: hash, network: NETWORK } })).toBe(true);
    }
    const receipts = new Map([
      [wonHash, { entry: won, status: "0x1" as const, gasUsed: 61_234n, price: 3_000_000_001n }],
      [lostHash, { entry: lost, status: "0x0" as const, gasUsed: 40_001n, price: 7n }],
    ]);
    const reconciler = createReconciler({ ledger, clientFor: () => chainWith(receipts) });

    const res = await get("/dashboard/api/events");
    const reader = res.body!.getReader();
    try {
      await readUntil(reader, /: connected/);
      await new Promise((r) => setTimeout(r, 120));
      expect(await reconciler.runOnce()).toBeGreaterThanOrEqual(2);
      const text = await readUntil(reader, new RegExp(`"transaction":"${lostHash}"[\\s\\S]*"transaction":"${wonHash}"|"transaction":"${wonHash}"[\\s\\S]*"transaction":"${lostHash}"`));
      const finals = paymentEvents(text).filter((e) => e.kind === "final");
      expect(finals).toContainEqual(expect.objectContaining({ outcome: "settled", amount: "4242", transaction: wonHash, reason: null }));
      expect(finals).toContainEqual(expect.objectContaining({ outcome: "failed", amount: "4343", transaction: lostHash }));
    } finally {
      await reader.cancel();
      await reconciler.close();
    }
    // The ledger: each row ended once, one final event each (a second pass changes nothing).
    expect(await ledger.get(won.key)).toMatchObject({ status: "settled", transaction: wonHash, answered: false });
    expect(await ledger.get(lost.key)).toMatchObject({ status: "failed" });
    await createReconciler({ ledger, clientFor: () => chainWith(receipts) }).runOnce();
    for (const e of [won, lost]) expect((await ledger.events(e.key)).filter((x) => x.kind === "final")).toHaveLength(1);
    // Gas from the receipts the reconciler read, as the search shows it per attempt.
    const q = createDashboardQueries(ledger);
    expect(await q.attempts(won.key)).toEqual([expect.objectContaining({ hash: wonHash, gasUsed: "61234", effectiveGasPrice: "3000000001", outcome: "success" })]);
    expect(await q.attempts(lost.key)).toEqual([expect.objectContaining({ hash: lostHash, gasUsed: "40001", effectiveGasPrice: "7", outcome: "reverted" })]);
  });
});

describe("a reconnecting page resumes (Last-Event-ID)", () => {
  it("gets the events it missed, once each and in order, then the live ones; a malformed id is a 400", async () => {
    const q = createDashboardQueries(ledger);
    const seen = await q.lastEventId();
    // Missed while disconnected: three events.
    for (const reason of ["m1", "m2", "m3"]) await ledger.recordEvent({ kind: "settle", network: NETWORK, outcome: "failed", reason });
    const res = await get("/dashboard/api/events", { ...AUTH, "last-event-id": seen });
    const reader = res.body!.getReader();
    try {
      let text = await readUntil(reader, /"reason":"m3"/);
      await new Promise((r) => setTimeout(r, 120));
      await ledger.recordEvent({ kind: "settle", network: NETWORK, outcome: "failed", reason: "live1" });
      text += await readUntil(reader, /"reason":"live1"/);
      const got = paymentEvents(text);
      expect(got.map((e) => e.reason)).toEqual(["m1", "m2", "m3", "live1"]);
      const ids = got.map((e) => BigInt(e.id));
      expect(ids[0]).toBe(BigInt(seen) + 1n);
      expect([...ids].sort((a, b) => (a < b ? -1 : 1))).toEqual(ids);
    } finally {
      await reader.cancel();
    }
    // ?after= (a page that had to open a new EventSource) works the same; nothing after the latest: nothing replayed.
    const latest = await q.lastEventId();
    const again = await get(`/dashboard/api/events?after=${latest}`);
    const r2 = again.body!.getReader();
    try {
      await readUntil(r2, /: connected/);
      await expect(readUntil(r2, /event: payment/, 300)).rejects.toThrow(/stream silent|no \/event/);
    } finally {
      await r2.cancel();
    }
    for (const bad of ["-1", "1e3", "abc", "99999999999999999999999"]) {
      const r = await get("/dashboard/api/events", { ...AUTH, "last-event-id": bad });
      expect(r.status, bad).toBe(400);
      expect(((await r.json()) as { error: string }).error).toMatch(/^Last-Event-ID/);
    }
  });

  it("bounded: a page gone for long gets the latest RESUME_MAX events only", async () => {
    const q = createDashboardQueries(ledger);
    const seen = await q.lastEventId();
    await ledger.recordEvents(Array.from({ length: RESUME_MAX + 25 }, (_, i) => ({ kind: "settle" as const, network: NETWORK, outcome: "failed", reason: `bulk${i}` })));
    const res = await get("/dashboard/api/events", { ...AUTH, "last-event-id": seen });
    const reader = res.body!.getReader();
    try {
      const text = await readUntil(reader, new RegExp(`"reason":"bulk${RESUME_MAX + 24}"`));
      const got = paymentEvents(text);
      expect(got).toHaveLength(RESUME_MAX);
      expect(got[0]!.reason).toBe("bulk25");
    } finally {
      await reader.cancel();
    }
  });
});

describe("the login form's attempt limit", () => {
  it("per client address: past the burst a 429 (even with the right key), another address is not affected, and tokens come back", async () => {
    const limited = createFacilitatorApp({ facilitator: stub.facilitator, ledger, apiKeys: [KEY], trustProxy: true, dashboard: { loginLimit: { perSecond: 1, burst: 3 } } });
    const form = (key: string, from: string) =>
      limited.request("http://facilitator.test/dashboard/login", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", "x-forwarded-for": from }, body: new URLSearchParams({ key }).toString() });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await form("wrong-key-guess-000000" + i, "203.0.113.7")).status);
    expect(statuses).toEqual([401, 401, 401]);
    const blocked = await form(KEY, "203.0.113.7");
    expect(blocked.status).toBe(429);
    expect(blocked.headers.get("retry-after")).toBe("12");
    expect(blocked.headers.get("set-cookie")).toBeNull();
    expect(await blocked.text()).toMatch(/Too many sign-in attempts/);
    // Another client is not limited by the first one's guesses.
    expect((await form(KEY, "198.51.100.2")).status).toBe(303);
    // One token a second here: a second later the first address may try again.
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await form(KEY, "203.0.113.7")).status).toBe(303);
    limited.dashboard?.close();
  });
});

describe("the live feed's reading of the event log", () => {
  it("delivers an event whose id committed late (PostgreSQL sequences), each event once, nothing from before it started", async () => {
    const row = (id: number): PaymentEventRow => ({ id: String(id), at: new Date().toISOString(), kind: "settle", outcome: "settled", reason: null, network: NETWORK, payer: null, payee: null, asset: null, amount: null, transaction: null });
    // The log as the store shows it over time: 1-5 exist before anyone listens; 6, 7, 9 commit; 8 shows up late.
    let visible = [1, 2, 3, 4, 5];
    const queries = {
      lastEventId: async () => String(Math.max(...visible)),
      eventsAfter: async (after: string, limit: number) => visible.filter((id) => id > Number(after)).sort((x, y) => x - y).slice(0, limit).map(row),
    };
    const feed = createLiveFeed({ queries, pollMs: 10 });
    const got: string[] = [];
    const stop = feed.subscribe((events) => got.push(...events.map((e) => e.id)))!;
    const until = async (n: number) => {
      for (let i = 0; i < 300 && got.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    };
    await new Promise((r) => setTimeout(r, 50));
    visible = [...visible, 6, 7, 9];
    await until(3);
    visible = [...visible, 8];
    await until(4);
    await new Promise((r) => setTimeout(r, 60));
    stop();
    expect(got).toEqual(["6", "7", "9", "8"]);
    expect(feed.listeners).toBe(0);
    feed.close();
    expect(feed.subscribe(() => {})).toBeUndefined();
  });
});

describe("the queries on their own", () => {
  it("recent() and lastEventId() agree with what was written", async () => {
    const q = createDashboardQueries(ledger);
    const last = BigInt(await q.lastEventId());
    await ledger.recordEvent({ kind: "verify", network: NETWORK, outcome: "invalid", reason: "invalid_signature" });
    const after = await q.eventsAfter(last.toString(), 10);
    expect(after).toEqual([expect.objectContaining({ kind: "verify", outcome: "invalid", reason: "invalid_signature", payee: null })]);
    expect(BigInt(await q.lastEventId())).toBe(last + 1n);
  });
});

// Several instances, one store: a payment through instance A shows in instance B's overview, its
// search and its live stream (B reads the ledger, not A's memory).
const DATABASE_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const pgUnreachable = await (async () => {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.end();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
})();

describe.skipIf(Boolean(pgUnreachable))("two instances sharing PostgreSQL show one picture", () => {
  const schema = `dash_${process.pid}_${Date.now() % 100000}`;
  let ledgers: Ledger[] = [];
  let a: FacilitatorApp;
  let b: FacilitatorApp;

  beforeAll(async () => {
    ledgers = [await createLedger({ databaseUrl: DATABASE_URL, schema }), await createLedger({ databaseUrl: DATABASE_URL, schema })];
    const s = stubFacilitator();
    s.scheme.settleDelayMs = 1;
    a = createFacilitatorApp({ facilitator: s.facilitator, ledger: ledgers[0]!, apiKeys: [KEY], dashboard: { pollMs: 50 } });
    b = createFacilitatorApp({ facilitator: s.facilitator, ledger: ledgers[1]!, apiKeys: [KEY], dashboard: { pollMs: 50 } });
  });
  afterAll(async () => {
    for (const x of [a, b]) {
      x?.dashboard?.close();
      await x?.audit.drain();
    }
    for (const l of ledgers) await l.close();
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });

  it("B streams, counts and finds what A settled", async () => {
    const stream = await b.request("http://b.test/dashboard/api/events", { headers: AUTH });
    const reader = stream.body!.getReader();
    try {
      await readUntil(reader, /: connected/);
      await new Promise((r) => setTimeout(r, 150));
      const paid = body({ amount: "777" });
      const settled = (await (await a.request(post("/settle", paid, AUTH))).json()) as { success: boolean; transaction: string };
      expect(settled.success).toBe(true);
      await a.audit.drain();
      await readUntil(reader, new RegExp(`"transaction":"${settled.transaction}"`));
      const o = (await (await b.request("http://b.test/dashboard/api/overview", { headers: AUTH })).json()) as { volume: Array<{ count: number; volume: string }>; recent: Array<{ key: string }> };
      expect(o.volume.reduce((n, p) => n + p.count, 0)).toBe(1);
      expect(o.volume[0]!.volume).toBe("777");
      expect(o.recent.map((r) => r.key)).toContain(keyOf(paid));
      const found = (await (await b.request(`http://b.test/dashboard/api/search?q=${settled.transaction}`, { headers: AUTH })).json()) as { records: Array<{ key: string }> };
      expect(found.records.map((r) => r.key)).toEqual([keyOf(paid)]);
    } finally {
      await reader.cancel();
    }
  });
});
