import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { Reason } from "@tollgate/core";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { createFacilitatorApp } from "../src/app.ts";
import { createLedger, type Ledger } from "../src/ledger/ledger.ts";
import { pgliteSql, type Sql } from "../src/ledger/sql.ts";
import { createLogger } from "../src/logger.ts";
import { createMetrics } from "../src/metrics.ts";
import { paymentEntry } from "../src/payment.ts";
import { body, keyOf, nonce, NETWORK, OTHER_PAYER_KEY, PAYER, post, requirements, stubFacilitator, stubScheme } from "./helpers.ts";

let sql: Sql;
let ledger: Ledger;
beforeAll(async () => {
  sql = await pgliteSql();
  ledger = await createLedger({ sql });
});
afterAll(async () => {
  await sql?.close();
});

function makeApp(extra: Partial<Parameters<typeof createFacilitatorApp>[0]> = {}) {
  const { scheme, facilitator } = stubFacilitator(stubScheme(5));
  return { scheme, app: createFacilitatorApp({ facilitator, ledger, ...extra }) };
}

describe("operational routes", () => {
  it("/health, /supported (with payment-identifier), /ready", async () => {
    const { app } = makeApp({ readinessProbes: [{ name: `chain:${NETWORK}`, check: async () => {} }] });
    expect(await (await app.request("/health")).json()).toEqual({ status: "ok" });
    const supported = await (await app.request("/supported")).json();
    expect(supported.kinds).toContainEqual({ x402Version: 2, scheme: "exact", network: NETWORK });
    expect(supported.kinds).toContainEqual({ x402Version: 1, scheme: "exact", network: "base-sepolia" });
    expect(supported.extensions).toEqual(["payment-identifier", "bazaar"]);
    const ready = await app.request("/ready");
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true, checks: { store: "ok", [`chain:${NETWORK}`]: "ok" } });
  });

  it("/ready is 503 naming the failing probe", async () => {
    const { app } = makeApp({
      readinessProbes: [
        { name: "chain:eip155:84532", check: async () => Promise.reject(new Error("connect ECONNREFUSED")) },
        { name: "slow", check: () => new Promise(() => {}) },
      ],
      readinessTimeoutMs: 50,
    });
    const r = await app.request("/ready");
    expect(r.status).toBe(503);
    expect(await r.json()).toEqual({ ready: false, checks: { store: "ok", "chain:eip155:84532": "connect ECONNREFUSED", slow: "slow: no answer within 50 ms" } });
  });

  it("/metrics renders Prometheus text with latency histograms, outcomes, pending and signer balances", async () => {
    const metrics = createMetrics({ signerBalances: async () => [{ network: NETWORK, address: "0xabc", balance: 10n ** 21n }] });
    const { app } = makeApp({ metrics });
    await app.request(post("/verify", body()));
    await app.request(post("/settle", body()));
    await app.request(post("/verify", "{"));
    metrics.batchSize.observe(7);
    const r = await app.request("/metrics");
    expect(r.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await r.text();
    expect(text).toContain("# TYPE tollgate_verify_duration_seconds histogram");
    expect(text).toMatch(/tollgate_verify_duration_seconds_count\{result="valid"\} 1\n/);
    expect(text).toMatch(/tollgate_settle_duration_seconds_bucket\{result="success",le="\+Inf"\} 1\n/);
    expect(text).toContain('tollgate_settle_total{result="success",reason=""} 1');
    expect(text).toContain('tollgate_verify_total{result="malformed",reason="invalid_payload"} 1');
    expect(text).toContain("tollgate_settlements_pending 0");
    expect(text).toContain('tollgate_settle_batch_size_bucket{le="10"} 1');
    expect(text).toContain('tollgate_signer_balance{network="eip155:84532",address="0xabc"} 1000000000000000000000');
  });
});

describe("malformed requests are 400 naming the field, never 500", () => {
  let app: ReturnType<typeof makeApp>["app"];
  let scheme: ReturnType<typeof makeApp>["scheme"];
  beforeAll(() => {
    ({ app, scheme } = makeApp());
  });
  const valid = body();
  const cases: Array<[string, string | object, RegExp, string?]> = [
    ["invalid JSON", "{ not json", /^body: not valid JSON/],
    ["empty body", "", /^body: not valid JSON/],
    ["a JSON array", "[]", /request body must be a JSON object/],
    ["a JSON string", '"hello"', /request body must be a JSON object/],
    ["missing paymentPayload", { x402Version: 2, paymentRequirements: valid.paymentRequirements }, /paymentPayload: is required/],
    ["missing paymentRequirements", { x402Version: 2, paymentPayload: valid.paymentPayload }, /paymentRequirements: is required/, Reason.invalidPaymentRequirements],
    ["a fractional amount", { ...valid, paymentRequirements: { ...valid.paymentRequirements, amount: "0.01" } }, /paymentRequirements\.amount: expected a non-negative integer string/, Reason.invalidPaymentRequirements],
    ["a numeric amount", { ...valid, paymentRequirements: { ...valid.paymentRequirements, amount: 10000 } }, /paymentRequirements\.amount/, Reason.invalidPaymentRequirements],
    ["a bad network", { ...valid, paymentRequirements: { ...valid.paymentRequirements, network: "base" } }, /paymentRequirements\.network: expected a CAIP-2 network id/, Reason.invalidPaymentRequirements],
    ["a non-object payload", { ...valid, paymentPayload: { ...valid.paymentPayload, payload: "0xdead" } }, /paymentPayload\.payload/],
    ["an unknown x402Version", { ...valid, x402Version: 3 }, /x402Version: unsupported version 3/, Reason.invalidX402Version],
    ["no top-level x402Version", { paymentPayload: valid.paymentPayload, paymentRequirements: valid.paymentRequirements }, /^x402Version: is required/, Reason.invalidX402Version],
    ["a deeply nested body", `{"x402Version":2,"pad":${"[".repeat(5000)}${"]".repeat(5000)}}`, /^body: nested deeper than 32 levels/],
    ["a deeply nested payload", JSON.stringify({ ...valid, paymentPayload: { ...valid.paymentPayload, payload: { ...valid.paymentPayload.payload, deep: JSON.parse("[".repeat(40) + "]".repeat(40)) } } }), /^body: nested deeper than 32 levels/],
    ["a malformed payment-identifier", { ...valid, paymentPayload: { ...valid.paymentPayload, extensions: { "payment-identifier": { info: { id: "short" } } } } }, /paymentPayload\.extensions\.payment-identifier\.info\.id: expected 16-128/],
    ["a required payment-identifier without id", { ...valid, paymentPayload: { ...valid.paymentPayload, extensions: { "payment-identifier": { info: { required: true } } } } }, /info\.id: is required/],
  ];
  for (const [name, value, message, reason = Reason.invalidPayload] of cases) {
    it(`${name} → 400 on /verify and /settle`, async () => {
      const v = await app.request(post("/verify", value));
      expect(v.status).toBe(400);
      const vb = await v.json();
      expect(vb).toMatchObject({ isValid: false, invalidReason: reason });
      expect(vb.invalidMessage).toMatch(message);
      const s = await app.request(post("/settle", value));
      expect(s.status).toBe(400);
      const sb = await s.json();
      expect(sb).toMatchObject({ success: false, errorReason: reason, transaction: "" });
      expect(typeof sb.network).toBe("string");
      expect(sb.errorMessage).toMatch(message);
    });
  }

  it("a non-JSON content type → 400 naming content-type", async () => {
    const r = await app.request(new Request("http://x/settle", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "a=1" }));
    expect(r.status).toBe(400);
    expect((await r.json()).errorMessage).toMatch(/^content-type: expected application\/json/);
  });

  it("a body over the limit → 413", async () => {
    const big = { ...valid, padding: "x".repeat(70 * 1024) };
    const r = await app.request(post("/verify", big));
    expect(r.status).toBe(413);
    expect(await r.json()).toMatchObject({ isValid: false, invalidReason: Reason.invalidPayload, invalidMessage: "body: larger than 65536 bytes" });
  });

  it("none of them reached the scheme", () => {
    expect(scheme.verifyCalls + scheme.settleCalls).toBe(0);
  });
});

describe("payments", () => {
  it("verify: valid → 200 and recorded; invalid content → 200 isValid:false; unserved network → 200 invalid_network", async () => {
    const { app } = makeApp();
    const n = nonce();
    const ok = await app.request(post("/verify", body({ nonce: n })));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ isValid: true, payer: PAYER });
    await app.audit.drain();
    const row = await ledger.get(`${NETWORK}|${requirements().asset.toLowerCase()}|${PAYER.toLowerCase()}|${n}`);
    expect(row).toMatchObject({ status: "verified", amount: "10000", payee: requirements().payTo, nonce: n });

    // Signed for another amount than required: the scheme's verdict.
    const b = body();
    b.paymentRequirements = { ...b.paymentRequirements, amount: "20000" };
    b.paymentPayload.accepted = b.paymentRequirements;
    const invalid = await app.request(post("/verify", b));
    expect(invalid.status).toBe(200);
    expect(await invalid.json()).toMatchObject({ isValid: false, invalidReason: Reason.evmValueMismatch });

    const other = body();
    other.paymentRequirements = { ...other.paymentRequirements, network: "eip155:1" };
    other.paymentPayload.accepted = other.paymentRequirements;
    const unserved = await app.request(post("/verify", other));
    expect(unserved.status).toBe(200);
    expect(await unserved.json()).toMatchObject({ isValid: false, invalidReason: Reason.invalidNetwork });
  });

  it("a v1 request is answered in v1 shape (network name)", async () => {
    const { app } = makeApp();
    const v2 = body();
    const q = v2.paymentRequirements;
    const v1 = {
      x402Version: 1,
      paymentPayload: { x402Version: 1, scheme: "exact", network: "base-sepolia", payload: v2.paymentPayload.payload },
      paymentRequirements: { scheme: "exact", network: "base-sepolia", maxAmountRequired: q.amount, resource: "https://api.example.com/x", description: "", mimeType: "", payTo: q.payTo, maxTimeoutSeconds: 60, asset: q.asset, extra: q.extra },
    };
    const r = await app.request(post("/settle", v1));
    expect(r.status).toBe(200);
    const settled = await r.json();
    expect(settled).toMatchObject({ success: true, network: "base-sepolia" });
    // A v1 caller is told of a duplicate too, with the first transaction in our extension.
    expect(await (await app.request(post("/settle", v1))).json()).toMatchObject({
      success: false,
      errorReason: Reason.duplicateSettlement,
      transaction: "",
      network: "base-sepolia",
      extensions: { "tollgate-settlement": { status: "settled", transaction: settled.transaction } },
    });
  });

  it("zero amount → invalid_amount_zero at verify and settle, the scheme never asked", async () => {
    const { app, scheme } = makeApp();
    const v = await app.request(post("/verify", body({ amount: "0" })));
    expect(v.status).toBe(200);
    expect(await v.json()).toMatchObject({ isValid: false, invalidReason: Reason.amountZero });
    const s = await app.request(post("/settle", body({ amount: "0" })));
    expect(s.status).toBe(200);
    expect(await s.json()).toMatchObject({ success: false, errorReason: Reason.amountZero, transaction: "" });
    expect(scheme.verifyCalls + scheme.settleCalls).toBe(0);
  });

  it("minimum amount → invalid_amount_below_minimum, nothing settled", async () => {
    const { app, scheme } = makeApp({ minAmount: 1000n });
    const v = await app.request(post("/verify", body({ amount: "999" })));
    expect(await v.json()).toMatchObject({ isValid: false, invalidReason: Reason.amountBelowMinimum });
    const s = await app.request(post("/settle", body({ amount: "999" })));
    expect(s.status).toBe(200);
    expect(await s.json()).toMatchObject({ success: false, errorReason: Reason.amountBelowMinimum, transaction: "" });
    expect(scheme.settleCalls).toBe(0);
    expect((await (await app.request(post("/verify", body({ amount: "1000" })))).json()).isValid).toBe(true);
  });
});

describe("authentication: nothing is keyed on a payer whose signature does not check out", () => {
  // A payer nothing was ever written for, so any row or event naming it came from the forgeries.
  const victimKey = generatePrivateKey();
  const victimAddress = privateKeyToAccount(victimKey).address;
  const victim = victimAddress.toLowerCase();
  const writtenFor = async (payer: string) => {
    const rows = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM payments WHERE payer = $1`, [payer]);
    const events = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM payment_events WHERE payer = $1`, [payer]);
    return Number(rows[0]!.n) + Number(events[0]!.n);
  };

  it("unsigned, forged-from and malleable payloads → 200 with the scheme's reason; no row, no event, no scheme call", async () => {
    const { app, scheme } = makeApp();
    const id = `victim_${nonce().slice(2, 30)}`;
    const forgeries = [
      body({ key: victimKey, signature: "0x" + "ab".repeat(65), id }), // random bytes
      body({ key: OTHER_PAYER_KEY, from: victimAddress, id }), // another key's signature, victim named
      body({ key: victimKey, signature: "0x" + "00".repeat(65) }),
      body({ key: victimKey, signature: "0x" + "12".repeat(70) }), // not 65 bytes: a contract-wallet signature, not accepted
    ];
    for (const f of forgeries) {
      const v = await app.request(post("/verify", f));
      expect(v.status).toBe(200);
      const vb = await v.json();
      expect(vb.isValid).toBe(false);
      expect([Reason.evmSignature, Reason.evmContractWalletNotAllowed, Reason.invalidPayload]).toContain(vb.invalidReason);
      const st = await app.request(post("/settle", f));
      expect(st.status).toBe(200);
      expect(await st.json()).toMatchObject({ success: false, errorReason: vb.invalidReason, transaction: "" });
    }
    await app.audit.drain();
    expect(scheme.verifyCalls + scheme.settleCalls).toBe(0);
    expect(await writtenFor(victim)).toBe(0);
    for (const f of forgeries) expect(await ledger.get(keyOf(f))).toBeUndefined();
    // The victim's identifier is still the victim's.
    const real = await app.request(post("/settle", body({ key: victimKey, id })));
    expect(await real.json()).toMatchObject({ success: true });
  });
});

describe("verify consults the ledger on its failure path only", () => {
  const EXT = "tollgate-settlement";

  async function settledAfterPending(b: ReturnType<typeof body>) {
    const key = keyOf(b);
    const entry = paymentEntry({ x402Version: 2, payload: b.paymentPayload, requirements: b.paymentRequirements }, { payer: key.split("|")[2]!, key }, undefined);
    await ledger.claim(entry, "t", 60_000);
    const tx = "0x" + "77".repeat(32);
    await ledger.complete(key, "t", { status: "pending", transaction: tx, response: { success: false, errorReason: Reason.settlementPending, transaction: "", network: NETWORK, extensions: { [EXT]: { status: "pending", transaction: tx } } } });
    await ledger.resolve(key, { success: true, transaction: tx, network: NETWORK, payer: entry.payer });
    return tx;
  }

  it("settled but not answered (the first answer was pending): valid, and /settle hands out the success once", async () => {
    const { app, scheme } = makeApp();
    const b = body();
    const tx = await settledAfterPending(b);
    scheme.verifyFailWith = Reason.evmNonceUsed; // the chain says: used
    expect(await (await app.request(post("/verify", b))).json()).toEqual({ isValid: true, payer: PAYER });
    expect(await (await app.request(post("/settle", b))).json()).toMatchObject({ success: true, transaction: tx });
    // Answered now: a replay of the same header is refused at verify and settle.
    expect(await (await app.request(post("/verify", b))).json()).toMatchObject({ isValid: false, invalidReason: Reason.evmNonceUsed });
    expect(await (await app.request(post("/settle", b))).json()).toMatchObject({ success: false, errorReason: Reason.duplicateSettlement, extensions: { [EXT]: { transaction: tx } } });
    expect(scheme.settleCalls).toBe(0);
  });

  it("settled and answered with a payment-identifier: valid for the same id and payload, refused without it", async () => {
    const { app, scheme } = makeApp();
    const id = `pay_${nonce().slice(2, 34)}`;
    const b = body({ id });
    expect((await (await app.request(post("/settle", b))).json()).success).toBe(true);
    scheme.verifyFailWith = Reason.evmNonceUsed;
    expect((await (await app.request(post("/verify", b))).json()).isValid).toBe(true);
    const { extensions: _e, ...withoutId } = b.paymentPayload;
    expect(await (await app.request(post("/verify", { ...b, paymentPayload: withoutId }))).json()).toMatchObject({ isValid: false, invalidReason: Reason.evmNonceUsed });
  });

  it("a valid verify makes no ledger read", async () => {
    const reads: string[] = [];
    const spy = new Proxy(ledger, { get: (target, prop, receiver) => (prop === "get" ? (k: string) => (reads.push(k), target.get(k)) : Reflect.get(target, prop, receiver)) });
    const { scheme, facilitator } = stubFacilitator(stubScheme(1));
    const app = createFacilitatorApp({ facilitator, ledger: spy });
    expect((await (await app.request(post("/verify", body()))).json()).isValid).toBe(true);
    expect(reads).toEqual([]);
    scheme.verifyFailWith = Reason.evmNonceUsed;
    await app.request(post("/verify", body()));
    expect(reads).toHaveLength(1);
  });
});

describe("access control", () => {
  it("API keys: missing or wrong → 401 unauthorized; right key passes; /supported stays open", async () => {
    const { app, scheme } = makeApp({ apiKeys: ["key-one-0123456789", "key-two-0123456789"] });
    const none = await app.request(post("/verify", body()));
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ isValid: false, invalidReason: Reason.unauthorized });
    const wrong = await app.request(post("/settle", body(), { authorization: "Bearer key-three" }));
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ success: false, errorReason: Reason.unauthorized, transaction: "" });
    expect(scheme.verifyCalls + scheme.settleCalls).toBe(0);
    const right = await app.request(post("/verify", body(), { authorization: "Bearer key-two-0123456789" }));
    expect(right.status).toBe(200);
    expect((await app.request("/supported")).status).toBe(200);
  });

  it("per-IP token bucket → 429 rate_limited", async () => {
    const { app } = makeApp({ rateLimit: { perIp: { perSecond: 0.001, burst: 3 } } });
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await app.request(post("/verify", body()))).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    const r = await app.request(post("/settle", body()));
    expect(r.status).toBe(429);
    expect(await r.json()).toMatchObject({ success: false, errorReason: Reason.rateLimited });
  });

  it("per-payer token bucket → 429 for that payer only", async () => {
    const { app } = makeApp({ rateLimit: { perPayer: { perSecond: 0.001, burst: 2 } } });
    const s = [];
    for (let i = 0; i < 3; i++) s.push((await app.request(post("/verify", body()))).status);
    expect(s).toEqual([200, 200, 429]);
    const other = await app.request(post("/verify", body({ key: OTHER_PAYER_KEY })));
    expect(other.status).toBe(200);
  });

  it("per-payer buckets are keyed on the verified signer: forgeries naming a payer never drain its bucket", async () => {
    const { app } = makeApp({ rateLimit: { perPayer: { perSecond: 0.001, burst: 2 } } });
    // Signed by another key, claiming PAYER: refused at authenticate, no bucket touched.
    for (let i = 0; i < 5; i++) {
      const forged = await app.request(post("/verify", body({ key: OTHER_PAYER_KEY, from: PAYER })));
      expect(forged.status).toBe(200);
      expect(await forged.json()).toMatchObject({ isValid: false, invalidReason: Reason.evmSignature });
    }
    expect((await app.request(post("/verify", body()))).status).toBe(200);
    expect((await app.request(post("/verify", body()))).status).toBe(200);
    expect((await app.request(post("/verify", body()))).status).toBe(429);
  });
});

describe("logs", () => {
  it("never contain the private key, API key or payment signature", async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const privateKey = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
    const logger = createLogger({ level: "debug", secrets: [privateKey, "api-key-secret-123"], destination });
    const scheme = stubScheme(1);
    // A scheme whose error message echoes its inputs: the log must still not carry them.
    scheme.settle = async (payload) => {
      throw new Error(`rpc said: bad signature ${String(payload.payload.signature)} from key ${privateKey}`);
    };
    const app = createFacilitatorApp({ facilitator: stubFacilitator(scheme).facilitator, ledger, logger, apiKeys: ["api-key-secret-123"] });
    const b = body();
    const sig = b.paymentPayload.payload.signature as string;
    const auth = { authorization: "Bearer api-key-secret-123" };
    await app.request(post("/verify", b, auth));
    const r = await app.request(post("/settle", b, auth));
    expect(await r.json()).toMatchObject({ success: false, errorReason: Reason.unexpectedSettleError });
    logger.info({ config: { privateKey, apiKeys: ["api-key-secret-123"] }, signature: sig }, "config");
    logger.info(`free text with ${privateKey.slice(2)} and ${sig}`);
    const all = lines.join("");
    expect(lines.length).toBeGreaterThan(3);
    expect(all).toContain('"route":"settle"');
    expect(all.toLowerCase()).not.toContain(privateKey.slice(2).toLowerCase());
    expect(all.toLowerCase()).not.toContain(sig.slice(2).toLowerCase());
    expect(all).not.toContain("api-key-secret-123");
  });
});
