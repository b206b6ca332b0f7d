/**
 * wrapFetch against a tiny local HTTP server that speaks the x402 HTTP transport (fake
 * settlement; the on-chain flow is tested elsewhere). Scheme clients are chain-free stubs.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  decodeBase64Json,
  encodeBase64Json,
  parsePaymentPayload,
  parsePaymentPayloadV1,
  type PaymentRequired,
  type PaymentRequiredV1,
  type SchemeClient,
  type SettleResponse,
} from "@tollgate/core";
import {
  createPaymentClient,
  getPaymentReceipt,
  InvalidPaymentRequiredError,
  PaymentFailedError,
  PaymentRefusedError,
  spendingPolicy,
  wrapFetch,
} from "../src/index.ts";

const USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
const PAYEE = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
const PAYER = "0x857b06519E91e3A54538791bDbb0E22373e36b66";
const TX = "0x" + "ab".repeat(32);
const usdAssets = [{ network: "eip155:84532", asset: USDC, decimals: 6 }];
const KEY = `eip155:84532/${USDC.toLowerCase()}`;

interface Seen {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
}
type Handler = (req: Seen, res: ServerResponse) => void;

let server: Server;
let base: string;
let seen: Seen[] = [];
let handler: Handler = () => {};

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const s: Seen = { method: req.method!, path: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") };
      seen.push(s);
      handler(s, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});
beforeEach(() => {
  seen = [];
});

function stubScheme() {
  const calls: string[] = [];
  const scheme: SchemeClient = {
    scheme: "exact",
    networks: ["eip155:*"],
    payer: () => PAYER,
    async createPayload(r) {
      calls.push(r.amount);
      return { signature: "0xsig", authorization: { from: PAYER, to: r.payTo, value: r.amount } };
    },
  };
  return { scheme, calls };
}

/** A fake clock in unix seconds, shared by the policy and the signing stub. */
function fakeClock(start = 1_750_000_000) {
  const clock = { t: start, now: () => clock.t };
  return clock;
}

/** Signs like the EVM exact client: validBefore = now + maxTimeoutSeconds, from `clock`. */
function evmLikeScheme(clock: { now(): number }) {
  const calls: string[] = [];
  const scheme: SchemeClient = {
    scheme: "exact",
    networks: ["eip155:*"],
    payer: () => PAYER,
    async createPayload(r) {
      calls.push(r.amount);
      const validBefore = String(clock.now() + r.maxTimeoutSeconds);
      return { signature: "0xsig", authorization: { from: PAYER, to: r.payTo, value: r.amount, validAfter: "0", validBefore, nonce: "0x01" } };
    },
  };
  return { scheme, calls };
}

/** 402 asking for payment; the paid retry is answered by `paid` (status, receipt, PAYMENT-REQUIRED error). */
function failingServer(paid: { status: number; receipt?: SettleResponse; error?: string }): Handler {
  return (req, res) => {
    if (!req.headers["payment-signature"]) return void res.writeHead(402, { "PAYMENT-REQUIRED": encodeBase64Json(paymentRequired()) }).end();
    const headers: Record<string, string> = {};
    if (paid.error !== undefined) headers["PAYMENT-REQUIRED"] = encodeBase64Json({ ...paymentRequired(), error: paid.error });
    if (paid.receipt) headers["PAYMENT-RESPONSE"] = encodeBase64Json(paid.receipt);
    res.writeHead(paid.status, headers).end("{}");
  };
}

function paymentRequired(amount = "10000"): PaymentRequired {
  return {
    x402Version: 2,
    error: "PAYMENT-SIGNATURE header is required",
    resource: { url: `${base}/data`, description: "data", mimeType: "application/json" },
    accepts: [{ scheme: "exact", network: "eip155:84532", amount, asset: USDC, payTo: PAYEE, maxTimeoutSeconds: 60, extra: { name: "USDC", version: "2" } }],
  };
}

function settle(over: Partial<SettleResponse> = {}): SettleResponse {
  return { success: true, transaction: TX, network: "eip155:84532", payer: PAYER, ...over };
}

/** 402 with PAYMENT-REQUIRED until a valid PAYMENT-SIGNATURE arrives, then 200 + PAYMENT-RESPONSE echoing the request. */
const v2Server: Handler = (req, res) => {
  const sig = req.headers["payment-signature"];
  if (typeof sig !== "string") {
    res.writeHead(402, { "content-type": "application/json", "PAYMENT-REQUIRED": encodeBase64Json(paymentRequired()) }).end("{}");
    return;
  }
  const decoded = decodeBase64Json(sig, "PAYMENT-SIGNATURE");
  const parsed = decoded.ok ? parsePaymentPayload(decoded.value) : undefined;
  if (!parsed?.ok) {
    res.writeHead(400).end("bad payload");
    return;
  }
  res
    .writeHead(200, { "content-type": "application/json", "PAYMENT-RESPONSE": encodeBase64Json(settle()) })
    .end(JSON.stringify({ method: req.method, body: req.body, contentType: req.headers["content-type"] ?? null, custom: req.headers["x-custom"] ?? null }));
};

describe("wrapFetch: v2", () => {
  const bodies: [string, () => BodyInit, string, string | null][] = [
    ["string", () => JSON.stringify({ q: "latest" }), '{"q":"latest"}', "application/json"],
    ["ArrayBuffer", () => new TextEncoder().encode("raw-bytes").buffer as ArrayBuffer, "raw-bytes", "application/octet-stream"],
    ["URLSearchParams", () => new URLSearchParams({ a: "1", b: "two words" }), "a=1&b=two+words", "application/x-www-form-urlencoded;charset=UTF-8"],
    [
      "ReadableStream",
      () =>
        new ReadableStream({
          start(c) {
            c.enqueue(new TextEncoder().encode("stream-"));
            c.enqueue(new TextEncoder().encode("chunks"));
            c.close();
          },
        }),
      "stream-chunks",
      "text/plain",
    ],
  ];

  it.each(bodies)("pays and retries once with the same %s body, method and headers", async (_, makeBody, expectedBody, contentType) => {
    handler = v2Server;
    const { scheme, calls } = stubScheme();
    const policy = spendingPolicy({ budget: "$1", usdAssets });
    const paid = wrapFetch(fetch, { schemes: [scheme], policy });
    const headers: Record<string, string> = { "x-custom": "kept" };
    if (contentType && !contentType.startsWith("application/x-www-form")) headers["content-type"] = contentType;
    const res = await paid(`${base}/data`, { method: "POST", headers, body: makeBody() });
    expect(res.status).toBe(200);
    const echoed = (await res.json()) as { method: string; body: string; contentType: string | null; custom: string | null };
    expect(echoed).toEqual({ method: "POST", body: expectedBody, contentType, custom: "kept" });
    // Both attempts carried the same request; only the second paid.
    expect(seen).toHaveLength(2);
    expect(seen[0]!.body).toBe(expectedBody);
    expect(seen[0]!.headers["payment-signature"]).toBeUndefined();
    expect(seen[1]!.method).toBe("POST");
    expect(calls).toEqual(["10000"]);

    const info = getPaymentReceipt(res);
    expect(info?.receipt).toEqual(settle());
    expect(info?.payer).toBe(PAYER);
    expect(info?.requirements.amount).toBe("10000");
    expect(policy.spent().assets[KEY]).toBe("10000");
    expect(policy.remaining().usd).toBe("0.99");
  });

  it("pays up front for a scheme that allows it: after one 402, each request to the URL is one round trip", async () => {
    handler = v2Server;
    const { scheme, calls } = stubScheme();
    const upFront: SchemeClient = { ...scheme, payUpFront: true };
    const policy = spendingPolicy({ budget: "$1", usdAssets });
    const paid = wrapFetch(fetch, { schemes: [upFront], policy });
    expect((await paid(`${base}/data`)).status).toBe(200);
    expect(seen.map((r) => r.headers["payment-signature"] !== undefined)).toEqual([false, true]); // the first time: 402, then paid
    seen = [];
    for (let i = 0; i < 3; i++) {
      const res = await paid(`${base}/data`);
      expect(res.status).toBe(200);
      expect(getPaymentReceipt(res)?.receipt).toEqual(settle());
    }
    expect(seen.map((r) => r.headers["payment-signature"] !== undefined)).toEqual([true, true, true]); // one request each, paid
    expect(calls).toHaveLength(4);
    expect(policy.spent().assets[KEY]).toBe("40000");
    // Another method or URL is not known: it starts with the 402 again.
    seen = [];
    await paid(`${base}/data`, { method: "POST", body: "x" });
    expect(seen.map((r) => r.headers["payment-signature"] !== undefined)).toEqual([false, true]);
    // Schemes that do not allow it (exact) never pay before being asked.
    seen = [];
    const exact = wrapFetch(fetch, { schemes: [scheme] });
    await exact(`${base}/data`);
    await exact(`${base}/data`);
    expect(seen.map((r) => r.headers["payment-signature"] !== undefined)).toEqual([false, true, false, true]);
  });

  it("paid up front but asked for something else (the price changed): pays that 402 as usual, then remembers it", async () => {
    let price = "10000";
    handler = (req, res) => {
      const sig = req.headers["payment-signature"];
      const asked = (typeof sig === "string" && decodeBase64Json(sig, "PAYMENT-SIGNATURE")) as { ok: boolean; value?: { accepted?: { amount?: string } } } | false;
      if (!asked || asked.value?.accepted?.amount !== price) return void res.writeHead(402, { "PAYMENT-REQUIRED": encodeBase64Json(paymentRequired(price)) }).end("{}");
      res.writeHead(200, { "PAYMENT-RESPONSE": encodeBase64Json(settle()) }).end("{}");
    };
    const { scheme, calls } = stubScheme();
    const paid = wrapFetch(fetch, { schemes: [{ ...scheme, payUpFront: true }] });
    expect((await paid(`${base}/data`)).status).toBe(200);
    price = "20000";
    seen = [];
    const res = await paid(`${base}/data`);
    expect(res.status).toBe(200);
    // Up front at the old price (refused with a 402), then the new price: the 402's own retry.
    expect(calls).toEqual(["10000", "10000", "20000"]);
    expect(seen).toHaveLength(2);
    seen = [];
    expect((await paid(`${base}/data`)).status).toBe(200);
    expect(seen).toHaveLength(1);
    expect(calls.at(-1)).toBe("20000");
  });

  it("a served answer without a receipt is not paid up front again (the route may have stopped charging)", async () => {
    let charging = true;
    handler = (req, res) => {
      if (charging) return v2Server(req, res);
      res.writeHead(200).end("free now");
    };
    const { scheme, calls } = stubScheme();
    const paid = wrapFetch(fetch, { schemes: [{ ...scheme, payUpFront: true }] });
    await paid(`${base}/data`);
    charging = false;
    await paid(`${base}/data`); // sent up front once, served without a receipt
    seen = [];
    await paid(`${base}/data`);
    await paid(`${base}/data`);
    expect(seen.map((r) => r.headers["payment-signature"] !== undefined)).toEqual([false, false]);
    expect(calls).toHaveLength(2);
  });

  it("passes non-402 responses through without paying", async () => {
    handler = (_req, res) => void res.writeHead(200).end("free");
    const { scheme, calls } = stubScheme();
    const res = await wrapFetch(fetch, { schemes: [scheme] })(`${base}/free`);
    expect(await res.text()).toBe("free");
    expect(getPaymentReceipt(res)).toBeUndefined();
    expect(calls).toHaveLength(0);
  });

  it("accepts a Request object as input", async () => {
    handler = v2Server;
    const { scheme } = stubScheme();
    const res = await wrapFetch(fetch, { schemes: [scheme] })(new Request(`${base}/data`, { method: "PUT", body: "req-body", headers: { "x-custom": "r" } }));
    expect(await res.json()).toMatchObject({ method: "PUT", body: "req-body", custom: "r" });
  });

  it("malformed PAYMENT-REQUIRED: typed error naming the field, nothing signed, no retry", async () => {
    const { scheme, calls } = stubScheme();
    const paid = wrapFetch(fetch, { schemes: [scheme] });
    const bad = paymentRequired();
    (bad.accepts[0] as { payTo: unknown }).payTo = 42;
    for (const header of [encodeBase64Json(bad), "%%%not-base64%%%"]) {
      handler = (_req, res) => void res.writeHead(402, { "PAYMENT-REQUIRED": header }).end();
      seen = [];
      const e = await paid(`${base}/data`).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(InvalidPaymentRequiredError);
      expect((e as InvalidPaymentRequiredError).message).toMatch(header === "%%%not-base64%%%" ? /PAYMENT-REQUIRED: not valid base64/ : /paymentRequired\.accepts\.0\.payTo/);
      expect(seen).toHaveLength(1);
    }
    expect(calls).toHaveLength(0);
  });

  it("a 402 that is not x402 is returned as is", async () => {
    handler = (_req, res) => void res.writeHead(402, { "content-type": "text/plain" }).end("pay at the desk");
    const { scheme, calls } = stubScheme();
    const res = await wrapFetch(fetch, { schemes: [scheme] })(`${base}/data`);
    expect(res.status).toBe(402);
    expect(await res.text()).toBe("pay at the desk");
    expect(calls).toHaveLength(0);
  });

  it("policy refusal surfaces as PaymentRefusedError with no paid retry", async () => {
    handler = v2Server;
    const { scheme, calls } = stubScheme();
    const paid = wrapFetch(fetch, { schemes: [scheme], policy: spendingPolicy({ maxPerRequest: "$0.005", usdAssets }) });
    const e = await paid(`${base}/data`).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PaymentRefusedError);
    expect((e as PaymentRefusedError).code).toBe("max_per_request");
    expect(seen).toHaveLength(1);
    expect(calls).toHaveLength(0);
  });

  it("retry answered 402 + failed PAYMENT-RESPONSE: PaymentFailedError with the reason, not charged, still counted", async () => {
    handler = (req, res) => {
      const headers: Record<string, string> = { "PAYMENT-REQUIRED": encodeBase64Json({ ...paymentRequired(), error: "insufficient_funds" }) };
      if (req.headers["payment-signature"]) headers["PAYMENT-RESPONSE"] = encodeBase64Json(settle({ success: false, errorReason: "insufficient_funds", transaction: "" }));
      res.writeHead(402, headers).end("{}");
    };
    const { scheme, calls } = stubScheme();
    const policy = spendingPolicy({ budget: "$0.01", usdAssets });
    const paid = wrapFetch(fetch, { client: createPaymentClient({ schemes: [scheme], policy }) });
    const e = await paid(`${base}/data`).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PaymentFailedError);
    const err = e as PaymentFailedError;
    expect(err.reason).toBe("insufficient_funds");
    expect(err.status).toBe(402);
    expect(err.charged).toBe(false);
    expect(err.receipt?.success).toBe(false);
    expect(seen).toHaveLength(2); // retried exactly once
    expect(calls).toHaveLength(1);
    // The signed header was handed over: whoever holds it can still settle it until it expires.
    expect(policy.remaining().usd).toBe("0");
    expect(policy.reserved().usd).toBe("0.01");
    expect(policy.spent().usd).toBe("0");
    expect(policy.outstanding().map((o) => o.id)).toEqual([err.reservationId]);
  });

  it("retry 402 without a receipt takes the reason from PAYMENT-REQUIRED.error", async () => {
    handler = (req, res) =>
      void res
        .writeHead(402, { "PAYMENT-REQUIRED": encodeBase64Json({ ...paymentRequired(), error: req.headers["payment-signature"] ? "invalid_exact_evm_payload_signature" : "PAYMENT-SIGNATURE header is required" }) })
        .end();
    const { scheme } = stubScheme();
    const e = (await wrapFetch(fetch, { schemes: [scheme] })(`${base}/data`).catch((x: unknown) => x)) as PaymentFailedError;
    expect(e).toBeInstanceOf(PaymentFailedError);
    expect(e.reason).toBe("invalid_exact_evm_payload_signature");
  });

  it("retry failing with a settled receipt keeps the amount spent", async () => {
    handler = (req, res) => {
      if (!req.headers["payment-signature"]) return void res.writeHead(402, { "PAYMENT-REQUIRED": encodeBase64Json(paymentRequired()) }).end();
      res.writeHead(500, { "PAYMENT-RESPONSE": encodeBase64Json(settle()) }).end(JSON.stringify({ error: "resource_failed" }));
    };
    const { scheme } = stubScheme();
    const policy = spendingPolicy({ budget: "$1", usdAssets });
    const e = (await wrapFetch(fetch, { schemes: [scheme], policy })(`${base}/data`).catch((x: unknown) => x)) as PaymentFailedError;
    expect(e).toBeInstanceOf(PaymentFailedError);
    expect(e.charged).toBe(true);
    expect(e.status).toBe(500);
    expect(policy.spent().usd).toBe("0.01");
  });

  it("retry 500 without receipt: charged unknown, still counted, reason from the JSON body", async () => {
    handler = (req, res) => {
      if (!req.headers["payment-signature"]) return void res.writeHead(402, { "PAYMENT-REQUIRED": encodeBase64Json(paymentRequired()) }).end();
      res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ error: "unexpected_settle_error" }));
    };
    const { scheme } = stubScheme();
    const policy = spendingPolicy({ budget: "$1", usdAssets });
    const e = (await wrapFetch(fetch, { schemes: [scheme], policy })(`${base}/data`).catch((x: unknown) => x)) as PaymentFailedError;
    expect(e.reason).toBe("unexpected_settle_error");
    expect(e.charged).toBe("unknown");
    expect(policy.remaining().usd).toBe("0.99");
    expect(policy.reserved().usd).toBe("0.01");
    expect(policy.spent().usd).toBe("0");
  });

  it("maxRetries 0 returns the 402 unpaid", async () => {
    handler = v2Server;
    const { scheme, calls } = stubScheme();
    const res = await wrapFetch(fetch, { schemes: [scheme], maxRetries: 0 })(`${base}/data`);
    expect(res.status).toBe(402);
    expect(calls).toHaveLength(0);
  });
});

describe("wrapFetch: the budget counts what was handed over", () => {
  it("connection dropped after the paid request was sent: charged unknown, still counted, released by id", async () => {
    handler = (req, res) => {
      if (!req.headers["payment-signature"]) return void res.writeHead(402, { "PAYMENT-REQUIRED": encodeBase64Json(paymentRequired()) }).end();
      res.socket?.destroy(); // the server got the header, then the connection dies
    };
    const clock = fakeClock();
    const { scheme, calls } = evmLikeScheme(clock);
    const policy = spendingPolicy({ budget: "$0.015", usdAssets, now: clock.now });
    const paid = wrapFetch(fetch, { schemes: [scheme], policy });
    const e = (await paid(`${base}/data`).catch((x: unknown) => x)) as PaymentFailedError;
    expect(e).toBeInstanceOf(PaymentFailedError);
    expect(e.reason).toBe("network_error");
    expect(e.charged).toBe("unknown");
    expect(e.validUntil).toBe(clock.t + 60);
    expect(e.message).toContain(`policy.release("${e.reservationId}")`);
    expect(typeof seen[1]!.headers["payment-signature"]).toBe("string"); // it was handed over
    expect(calls).toEqual(["10000"]);
    expect(policy.reserved().usd).toBe("0.01");
    expect(policy.remaining().usd).toBe("0.005");
    // A second payment does not fit while the first is outstanding: the budget did not undercount.
    seen = [];
    const refused = await paid(`${base}/data`).catch((x: unknown) => x);
    expect(refused).toBeInstanceOf(PaymentRefusedError);
    expect((refused as PaymentRefusedError).code).toBe("budget_exceeded");
    expect(calls).toHaveLength(1);
    // The caller proves it unusable (e.g. cancelled on chain): released, once.
    expect(policy.release(e.reservationId!)).toBe(true);
    expect(policy.release(e.reservationId!)).toBe(false);
    expect(policy.remaining().usd).toBe("0.015");
  });

  it("server 402 settlement failed: counted until validBefore (+ grace), then released", async () => {
    handler = failingServer({ status: 402, receipt: settle({ success: false, errorReason: "invalid_exact_evm_transaction_simulation_failed", transaction: "" }) });
    const clock = fakeClock();
    const t0 = clock.t;
    const { scheme } = evmLikeScheme(clock);
    const policy = spendingPolicy({ budget: "$1", usdAssets, now: clock.now, expiryGraceSeconds: 30 });
    const e = (await wrapFetch(fetch, { schemes: [scheme], policy })(`${base}/data`).catch((x: unknown) => x)) as PaymentFailedError;
    expect(e.charged).toBe(false);
    expect(e.validUntil).toBe(t0 + 60); // validBefore as signed
    expect(policy.outstanding()).toMatchObject([{ id: e.reservationId, amount: "10000", validUntil: t0 + 60, payer: PAYER }]);
    clock.t = t0 + 60 + 29; // past validBefore, inside the grace
    expect(policy.remaining().usd).toBe("0.99");
    clock.t = t0 + 60 + 30;
    expect(policy.remaining().usd).toBe("1");
    expect(policy.reserved().usd).toBe("0");
    expect(policy.spent().usd).toBe("0");
    expect(policy.outstanding()).toEqual([]);
  });

  it("402 settlement_pending (receipt or PAYMENT-REQUIRED error): charged unknown, counted, not committed", async () => {
    const pending = settle({ success: false, errorReason: "settlement_pending", transaction: "", extensions: { "tollgate-settlement": { status: "pending", transaction: TX } } });
    for (const server of [failingServer({ status: 402, receipt: pending }), failingServer({ status: 402, error: "settlement_pending: still waiting for the receipt" })]) {
      handler = server;
      const clock = fakeClock();
      const { scheme } = evmLikeScheme(clock);
      const policy = spendingPolicy({ budget: "$1", usdAssets, now: clock.now });
      const e = (await wrapFetch(fetch, { schemes: [scheme], policy })(`${base}/data`).catch((x: unknown) => x)) as PaymentFailedError;
      expect(e).toBeInstanceOf(PaymentFailedError);
      expect(e.reason).toMatch(/^settlement_pending/);
      expect(e.charged).toBe("unknown");
      expect(policy.reserved().usd).toBe("0.01");
      expect(policy.spent().usd).toBe("0");
      // Later the caller sees the transaction landed: commit by id.
      expect(policy.commit(e.reservationId!)).toBe(true);
      expect(policy.spent().usd).toBe("0.01");
      expect(policy.reserved().usd).toBe("0");
    }
  });

  it("a pending payment past its expiry is committed when resolveExpired says it settled", async () => {
    handler = failingServer({ status: 402, receipt: settle({ success: false, errorReason: "settlement_pending", transaction: "" }) });
    const clock = fakeClock();
    const { scheme } = evmLikeScheme(clock);
    const asked: string[] = [];
    const policy = spendingPolicy({
      budget: "$1",
      usdAssets,
      now: clock.now,
      resolveExpired: async (p) => {
        asked.push(`${p.id}:${(p.payload as { authorization: { nonce: string } }).authorization.nonce}`);
        return "settled" as const;
      },
    });
    const e = (await wrapFetch(fetch, { schemes: [scheme], policy })(`${base}/data`).catch((x: unknown) => x)) as PaymentFailedError;
    clock.t += 60 + 60;
    expect(policy.reserved().usd).toBe("0.01"); // the lookup runs; still counted meanwhile
    await Promise.resolve();
    expect(asked).toEqual([`${e.reservationId}:0x01`]);
    expect(policy.spent().usd).toBe("0.01");
    expect(policy.reserved().usd).toBe("0");
  });

  it("duplicate_settlement: the authorization settled (another copy won): charged, committed", async () => {
    handler = failingServer({
      status: 402,
      receipt: settle({ success: false, errorReason: "duplicate_settlement", transaction: "", extensions: { "tollgate-settlement": { status: "settled", transaction: TX } } }),
    });
    const { scheme } = stubScheme();
    const policy = spendingPolicy({ budget: "$1", usdAssets });
    const e = (await wrapFetch(fetch, { schemes: [scheme], policy })(`${base}/data`).catch((x: unknown) => x)) as PaymentFailedError;
    expect(e.reason).toBe("duplicate_settlement");
    expect(e.charged).toBe(true);
    expect(policy.spent().usd).toBe("0.01");
    expect(policy.outstanding()).toEqual([]);
  });

  it("receipt success: committed, nothing left outstanding", async () => {
    handler = v2Server;
    const clock = fakeClock();
    const { scheme } = evmLikeScheme(clock);
    const policy = spendingPolicy({ budget: "$1", usdAssets, now: clock.now });
    const res = await wrapFetch(fetch, { schemes: [scheme], policy })(`${base}/data`);
    expect(res.status).toBe(200);
    expect(getPaymentReceipt(res)?.reservationId).toBe("r1");
    expect(policy.spent().usd).toBe("0.01");
    expect(policy.reserved().usd).toBe("0");
    expect(policy.outstanding()).toEqual([]);
    clock.t += 3600; // expiry never gives a settled payment back
    expect(policy.spent().usd).toBe("0.01");
    expect(policy.remaining().usd).toBe("0.99");
  });

  it("maxTimeoutSeconds above the cap: refused before signing, no paid retry", async () => {
    const long = { ...paymentRequired(), accepts: [{ ...paymentRequired().accepts[0]!, maxTimeoutSeconds: 86_400 }] };
    handler = (_req, res) => void res.writeHead(402, { "PAYMENT-REQUIRED": encodeBase64Json(long) }).end();
    for (const policy of [spendingPolicy({ budget: "$1", usdAssets }), undefined]) {
      seen = [];
      const { scheme, calls } = stubScheme();
      const e = (await wrapFetch(fetch, { schemes: [scheme], ...(policy ? { policy } : {}) })(`${base}/data`).catch((x: unknown) => x)) as PaymentRefusedError;
      expect(e).toBeInstanceOf(PaymentRefusedError);
      expect(e.code).toBe("max_timeout_exceeded");
      expect(e.message).toContain("maxTimeoutSeconds 86400 exceeds the limit maxTimeoutSeconds=300");
      expect(calls).toHaveLength(0); // the signer was never called
      expect(seen).toHaveLength(1);
      if (policy) expect(policy.reserved().usd).toBe("0");
    }
  });
});

describe("wrapFetch: v1", () => {
  const v1Required = (): PaymentRequiredV1 => ({
    x402Version: 1,
    error: "X-PAYMENT header is required",
    accepts: [
      {
        scheme: "exact",
        network: "base-sepolia",
        maxAmountRequired: "2500",
        resource: `${base}/v1`,
        description: "v1 data",
        mimeType: "application/json",
        outputSchema: null,
        payTo: PAYEE,
        maxTimeoutSeconds: 60,
        asset: USDC,
        extra: { name: "USDC", version: "2" },
      },
    ],
  });

  it("reads the JSON body, pays with X-PAYMENT and decodes X-PAYMENT-RESPONSE", async () => {
    handler = (req, res) => {
      const x = req.headers["x-payment"];
      if (typeof x !== "string") return void res.writeHead(402, { "content-type": "application/json" }).end(JSON.stringify(v1Required()));
      const d = decodeBase64Json(x, "X-PAYMENT");
      const p = d.ok ? parsePaymentPayloadV1(d.value) : undefined;
      if (!p?.ok || p.value.network !== "base-sepolia") return void res.writeHead(400).end();
      res.writeHead(200, { "X-PAYMENT-RESPONSE": encodeBase64Json({ success: true, transaction: TX, network: "base-sepolia", payer: PAYER }) }).end("v1 ok");
    };
    const { scheme, calls } = stubScheme();
    const policy = spendingPolicy({ maxPerRequest: "$0.01", usdAssets });
    const res = await wrapFetch(fetch, { schemes: [scheme], policy })(`${base}/v1`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("v1 ok");
    expect(calls).toEqual(["2500"]);
    const info = getPaymentReceipt(res)!;
    expect(info.x402Version).toBe(1);
    expect(info.receipt).toMatchObject({ success: true, transaction: TX, network: "base-sepolia" });
    expect(info.requirements.network).toBe("eip155:84532");
    expect(policy.spent().usd).toBe("0.0025");
  });

  it("a malformed v1 body names the field and signs nothing", async () => {
    handler = (_req, res) => {
      const body = v1Required() as unknown as { accepts: Record<string, unknown>[] };
      delete body.accepts[0]!.maxAmountRequired;
      res.writeHead(402, { "content-type": "application/json" }).end(JSON.stringify(body));
    };
    const { scheme, calls } = stubScheme();
    const e = await wrapFetch(fetch, { schemes: [scheme] })(`${base}/v1`).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InvalidPaymentRequiredError);
    expect((e as Error).message).toContain("paymentRequired.accepts.0.maxAmountRequired");
    expect(calls).toHaveLength(0);
  });
});
