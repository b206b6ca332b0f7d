/**
 * wrapAxios against a tiny local HTTP server that speaks the x402 HTTP transport (fake
 * settlement; the on-chain flow is in interop.test.ts). The cases of packages/fetch's
 * wrap.test.ts that concern money, run through axios: the exchange is the same function, so
 * what is checked here is that axios's ways (rejected 402s, validateStatus, parsed JSON bodies,
 * transformed request data, interceptors seeing the retry) keep every rule.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import axios, { AxiosError, type AxiosInstance, type AxiosResponse } from "axios";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { decodeBase64Json, encodeBase64Json, parsePaymentPayload, parsePaymentPayloadV1, type PaymentRequired, type SchemeClient, type SettleResponse } from "@tollgate/core";
import {
  createPaymentClient,
  getPaymentReceipt,
  InvalidPaymentRequiredError,
  PaymentFailedError,
  PaymentRefusedError,
  spendingPolicy,
  wrapAxios,
} from "@tollgate/axios";

const USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
const PAYEE = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
const PAYER = "0x857b06519E91e3A54538791bDbb0E22373e36b66";
const TX = "0x" + "ab".repeat(32);
const usdAssets = [{ network: "eip155:84532", asset: USDC, decimals: 6 }];

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
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});
beforeEach(() => {
  seen = [];
});

function stubScheme(validFor = 60, now = () => Math.floor(Date.now() / 1000)) {
  const calls: string[] = [];
  const scheme: SchemeClient = {
    scheme: "exact",
    networks: ["eip155:*"],
    payer: () => PAYER,
    async createPayload(r) {
      calls.push(r.amount);
      return { signature: "0xsig", authorization: { from: PAYER, to: r.payTo, value: r.amount, validAfter: "0", validBefore: String(now() + Math.min(validFor, r.maxTimeoutSeconds)), nonce: "0x01" } };
    },
  };
  return { scheme, calls };
}

function paymentRequired(over: Partial<PaymentRequired["accepts"][number]> = {}): PaymentRequired {
  return {
    x402Version: 2,
    error: "PAYMENT-SIGNATURE header is required",
    resource: { url: `${base}/data`, description: "data", mimeType: "application/json" },
    accepts: [{ scheme: "exact", network: "eip155:84532", amount: "10000", asset: USDC, payTo: PAYEE, maxTimeoutSeconds: 60, extra: { name: "USDC", version: "2" }, ...over }],
  };
}

function settle(over: Partial<SettleResponse> = {}): SettleResponse {
  return { success: true, transaction: TX, network: "eip155:84532", payer: PAYER, ...over };
}

/** 402 until a valid PAYMENT-SIGNATURE arrives, then 200 + PAYMENT-RESPONSE echoing the request. */
const v2Server: Handler = (req, res) => {
  const sig = req.headers["payment-signature"];
  if (typeof sig !== "string") return void res.writeHead(402, { "content-type": "application/json", "PAYMENT-REQUIRED": encodeBase64Json(paymentRequired()) }).end("{}");
  const decoded = decodeBase64Json(sig, "PAYMENT-SIGNATURE");
  const parsed = decoded.ok ? parsePaymentPayload(decoded.value) : undefined;
  if (!parsed?.ok) return void res.writeHead(400).end("bad payload");
  res
    .writeHead(200, { "content-type": "application/json", "PAYMENT-RESPONSE": encodeBase64Json(settle()) })
    .end(JSON.stringify({ method: req.method, path: req.path, body: req.body, contentType: req.headers["content-type"] ?? null, custom: req.headers["x-custom"] ?? null, resource: parsed.value.resource?.url }));
};

/** 402 asking for payment; the paid retry is answered by `paid`. */
function failingServer(paid: { status: number; receipt?: SettleResponse; error?: string; json?: unknown }): Handler {
  return (req, res) => {
    if (!req.headers["payment-signature"]) return void res.writeHead(402, { "PAYMENT-REQUIRED": encodeBase64Json(paymentRequired()) }).end();
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (paid.error !== undefined) headers["PAYMENT-REQUIRED"] = encodeBase64Json({ ...paymentRequired(), error: paid.error });
    if (paid.receipt) headers["PAYMENT-RESPONSE"] = encodeBase64Json(paid.receipt);
    res.writeHead(paid.status, headers).end(JSON.stringify(paid.json ?? {}));
  };
}

const api = (options: Parameters<typeof wrapAxios>[1], create: Parameters<typeof axios.create>[0] = {}): AxiosInstance => wrapAxios(axios.create({ baseURL: base, ...create }), options);
const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);

describe("wrapAxios: paying", () => {
  const bodies: [string, () => unknown, string, string][] = [
    ["an object (sent as JSON)", () => ({ q: "latest" }), '{"q":"latest"}', "application/json"],
    ["a Buffer", () => Buffer.from("raw-bytes"), "raw-bytes", "application/octet-stream"],
    ["URLSearchParams", () => new URLSearchParams({ a: "1", b: "two words" }), "a=1&b=two+words", "application/x-www-form-urlencoded;charset=utf-8"],
  ];
  it.each(bodies)("pays and retries once with the same %s body, method, headers and URL", async (_, data, expectedBody, contentType) => {
    handler = v2Server;
    const { scheme, calls } = stubScheme();
    const policy = spendingPolicy({ budget: "$1", usdAssets });
    const urls: (string | undefined)[] = [];
    const choose = (options: readonly PaymentRequired["accepts"][number][], context: { url?: string }) => (urls.push(context.url), options);
    const res = await api({ schemes: [scheme], policy, choose }).post("/data", data(), { params: { city: "Oslo" }, headers: { "x-custom": "kept", ...(contentType === "application/octet-stream" ? { "content-type": contentType } : {}) } });
    expect(res.status).toBe(200);
    expect(res.data).toMatchObject({ method: "POST", path: "/data?city=Oslo", body: expectedBody, custom: "kept", resource: `${base}/data` });
    // The client is told the full URL (baseURL, path and params), as wrapFetch tells it.
    expect(urls).toEqual([`${base}/data?city=Oslo`]);
    expect(String(res.data.contentType).toLowerCase()).toBe(contentType.toLowerCase());
    expect(seen).toHaveLength(2);
    expect(seen[0]!.body).toBe(expectedBody);
    expect(seen[0]!.headers["payment-signature"]).toBeUndefined();
    expect(calls).toEqual(["10000"]);
    const info = getPaymentReceipt(res);
    expect(info?.receipt).toEqual(settle());
    expect(info?.requirements.amount).toBe("10000");
    expect(policy.spent().usd).toBe("0.01");
    expect(policy.outstanding()).toEqual([]);
  });

  it("pays a 402 that validateStatus lets through as well", async () => {
    handler = v2Server;
    const { scheme } = stubScheme();
    const res = await api({ schemes: [scheme] }, { validateStatus: () => true }).get("/data");
    expect(res.status).toBe(200);
    expect(getPaymentReceipt(res)?.receipt?.transaction).toBe(TX);
  });

  it("passes other responses through without paying", async () => {
    handler = (_req, res) => void res.writeHead(200, { "content-type": "text/plain" }).end("free");
    const { scheme, calls } = stubScheme();
    const res = await api({ schemes: [scheme] }).get("/free");
    expect(res.data).toBe("free");
    expect(getPaymentReceipt(res)).toBeUndefined();
    handler = (_req, res) => void res.writeHead(500).end("down");
    const e = await failure(api({ schemes: [scheme] }).get("/down"));
    expect(e).toBeInstanceOf(AxiosError);
    expect((e as AxiosError).response?.status).toBe(500);
    expect(calls).toHaveLength(0);
  });

  it("a 402 that is not x402 is axios's own rejection, unpaid", async () => {
    handler = (_req, res) => void res.writeHead(402, { "content-type": "text/plain" }).end("pay at the desk");
    const { scheme, calls } = stubScheme();
    const e = await failure(api({ schemes: [scheme] }).get("/data"));
    expect(e).toBeInstanceOf(AxiosError);
    expect((e as AxiosError).response?.data).toBe("pay at the desk");
    expect(calls).toHaveLength(0);
    expect(seen).toHaveLength(1);
  });

  it("malformed PAYMENT-REQUIRED: typed error naming the field, nothing signed, no retry", async () => {
    const { scheme, calls } = stubScheme();
    const bad = paymentRequired();
    (bad.accepts[0] as { payTo: unknown }).payTo = 42;
    for (const [header, message] of [
      [encodeBase64Json(bad), /paymentRequired\.accepts\.0\.payTo/],
      ["%%%not-base64%%%", /PAYMENT-REQUIRED: not valid base64/],
    ] as const) {
      handler = (_req, res) => void res.writeHead(402, { "PAYMENT-REQUIRED": header }).end();
      seen = [];
      const e = await failure(api({ schemes: [scheme] }).get("/data"));
      expect(e).toBeInstanceOf(InvalidPaymentRequiredError);
      expect((e as Error).message).toMatch(message);
      expect(seen).toHaveLength(1);
    }
    expect(calls).toHaveLength(0);
  });

  it("policy refusal: PaymentRefusedError, no paid retry", async () => {
    handler = v2Server;
    const { scheme, calls } = stubScheme();
    const e = await failure(api({ schemes: [scheme], policy: spendingPolicy({ maxPerRequest: "$0.005", usdAssets }) }).get("/data"));
    expect(e).toBeInstanceOf(PaymentRefusedError);
    expect((e as PaymentRefusedError).code).toBe("max_per_request");
    expect(seen).toHaveLength(1);
    expect(calls).toHaveLength(0);
  });

  it("maxTimeoutSeconds above the cap: refused before signing, nothing reserved", async () => {
    handler = (_req, res) => void res.writeHead(402, { "PAYMENT-REQUIRED": encodeBase64Json(paymentRequired({ maxTimeoutSeconds: 86_400 })) }).end();
    const { scheme, calls } = stubScheme();
    const policy = spendingPolicy({ budget: "$1", usdAssets });
    const e = await failure(api({ schemes: [scheme], policy }).get("/data"));
    expect(e).toBeInstanceOf(PaymentRefusedError);
    expect((e as PaymentRefusedError).code).toBe("max_timeout_exceeded");
    expect(calls).toHaveLength(0);
    expect(policy.reserved().usd).toBe("0");
  });

  it("maxRetries 0 leaves the 402 unpaid", async () => {
    handler = v2Server;
    const { scheme, calls } = stubScheme();
    const e = await failure(api({ schemes: [scheme], maxRetries: 0 }).get("/data"));
    expect((e as AxiosError).response?.status).toBe(402);
    expect(calls).toHaveLength(0);
  });

  it("a stream body cannot be sent twice: refused before signing, nothing reserved", async () => {
    handler = v2Server;
    const { scheme, calls } = stubScheme();
    const policy = spendingPolicy({ budget: "$1", usdAssets });
    const e = await failure(api({ schemes: [scheme], policy }).post("/data", Readable.from([Buffer.from("once")]), { headers: { "content-type": "text/plain" } }));
    expect(e).toBeInstanceOf(TypeError);
    expect((e as Error).message).toMatch(/^wrapAxios: config\.data: a stream request body/);
    expect(calls).toHaveLength(0);
    expect(policy.reserved().usd).toBe("0");
    expect(seen).toHaveLength(1);
  });

  it("a request that already carries a payment is never paid again", async () => {
    handler = failingServer({ status: 402, error: "invalid_exact_evm_payload_signature" });
    const { scheme, calls } = stubScheme();
    const e = await failure(api({ schemes: [scheme] }).get("/data", { headers: { "PAYMENT-SIGNATURE": "caller-made" } }));
    expect((e as AxiosError).response?.status).toBe(402);
    expect(calls).toHaveLength(0);
    expect(seen).toHaveLength(1);
  });

  it("validates what it is given", () => {
    const { scheme } = stubScheme();
    expect(() => wrapAxios({} as AxiosInstance, { schemes: [scheme] })).toThrow(/^wrapAxios: instance: expected an axios instance/);
    expect(() => wrapAxios(axios.create(), { schemes: [scheme], maxRetries: 2 as 1 })).toThrow(/maxRetries must be 0 or 1/);
    const once = wrapAxios(axios.create(), { schemes: [scheme] });
    expect(() => wrapAxios(once, { schemes: [scheme] })).toThrow(/already wrapped/);
  });
});

describe("wrapAxios: the budget counts what was handed over", () => {
  it("retry answered 402 + failed receipt: PaymentFailedError with the reason, not charged, still counted, retried once", async () => {
    handler = failingServer({ status: 402, receipt: settle({ success: false, errorReason: "insufficient_funds", transaction: "" }), error: "insufficient_funds" });
    const { scheme, calls } = stubScheme();
    const policy = spendingPolicy({ budget: "$0.01", usdAssets });
    const e = (await failure(api({ client: createPaymentClient({ schemes: [scheme], policy }) }).get("/data"))) as PaymentFailedError<AxiosResponse>;
    expect(e).toBeInstanceOf(PaymentFailedError);
    expect(e.reason).toBe("insufficient_funds");
    expect(e.status).toBe(402);
    expect(e.charged).toBe(false);
    expect(e.response?.status).toBe(402);
    expect(seen).toHaveLength(2);
    expect(calls).toHaveLength(1);
    expect(policy.reserved().usd).toBe("0.01");
    expect(policy.outstanding().map((o) => o.id)).toEqual([e.reservationId]);
  });

  it("retry 402 without a receipt takes the reason from PAYMENT-REQUIRED.error", async () => {
    handler = failingServer({ status: 402, error: "invalid_exact_evm_payload_signature" });
    const { scheme } = stubScheme();
    const e = (await failure(api({ schemes: [scheme] }).get("/data"))) as PaymentFailedError;
    expect(e.reason).toBe("invalid_exact_evm_payload_signature");
  });

  it("retry failing with a settled receipt keeps the amount spent", async () => {
    handler = failingServer({ status: 500, receipt: settle(), json: { error: "resource_failed" } });
    const { scheme } = stubScheme();
    const policy = spendingPolicy({ budget: "$1", usdAssets });
    const e = (await failure(api({ schemes: [scheme], policy }).get("/data"))) as PaymentFailedError;
    expect(e.charged).toBe(true);
    expect(policy.spent().usd).toBe("0.01");
  });

  it("retry 500 without receipt: charged unknown, still counted, reason from the (axios-parsed) JSON body", async () => {
    handler = failingServer({ status: 500, json: { error: "unexpected_settle_error" } });
    const { scheme } = stubScheme();
    const policy = spendingPolicy({ budget: "$1", usdAssets });
    const e = (await failure(api({ schemes: [scheme], policy }).get("/data"))) as PaymentFailedError;
    expect(e.reason).toBe("unexpected_settle_error");
    expect(e.charged).toBe("unknown");
    expect(policy.reserved().usd).toBe("0.01");
    expect(policy.spent().usd).toBe("0");
  });

  it("connection dropped after the paid request was sent: network_error, charged unknown, counted, released by id", async () => {
    handler = (req, res) => {
      if (!req.headers["payment-signature"]) return void res.writeHead(402, { "PAYMENT-REQUIRED": encodeBase64Json(paymentRequired()) }).end();
      res.socket?.destroy();
    };
    const { scheme, calls } = stubScheme();
    const policy = spendingPolicy({ budget: "$0.015", usdAssets });
    const paid = api({ schemes: [scheme], policy });
    const e = (await failure(paid.get("/data"))) as PaymentFailedError;
    expect(e).toBeInstanceOf(PaymentFailedError);
    expect(e.reason).toBe("network_error");
    expect(e.charged).toBe("unknown");
    expect(e.message).toContain(`policy.release("${e.reservationId}")`);
    expect(typeof seen[1]!.headers["payment-signature"]).toBe("string");
    expect(policy.reserved().usd).toBe("0.01");
    // A second payment does not fit while the first is outstanding.
    const refused = await failure(paid.get("/data"));
    expect(refused).toBeInstanceOf(PaymentRefusedError);
    expect((refused as PaymentRefusedError).code).toBe("budget_exceeded");
    expect(calls).toHaveLength(1);
    expect(policy.release(e.reservationId!)).toBe(true);
    expect(policy.remaining().usd).toBe("0.015");
  });

  it("settlement_pending: charged unknown, counted, not committed; duplicate_settlement: charged, committed", async () => {
    handler = failingServer({ status: 402, receipt: settle({ success: false, errorReason: "settlement_pending", transaction: "", extensions: { "tollgate-settlement": { status: "pending", transaction: TX } } }) });
    const { scheme } = stubScheme();
    const policy = spendingPolicy({ budget: "$1", usdAssets });
    const pending = (await failure(api({ schemes: [scheme], policy }).get("/data"))) as PaymentFailedError;
    expect(pending.charged).toBe("unknown");
    expect(policy.reserved().usd).toBe("0.01");
    expect(policy.spent().usd).toBe("0");

    handler = failingServer({ status: 402, receipt: settle({ success: false, errorReason: "duplicate_settlement", transaction: "", extensions: { "tollgate-settlement": { status: "settled", transaction: TX } } }) });
    const duplicate = (await failure(api({ schemes: [scheme], policy }).get("/data"))) as PaymentFailedError;
    expect(duplicate.charged).toBe(true);
    expect(policy.spent().usd).toBe("0.01");
    expect(policy.reserved().usd).toBe("0.01"); // the pending one, still
  });

  it("a served response without a receipt is counted as spent", async () => {
    handler = (req, res) => {
      if (!req.headers["payment-signature"]) return void res.writeHead(402, { "PAYMENT-REQUIRED": encodeBase64Json(paymentRequired()) }).end();
      res.writeHead(200).end("served, no receipt");
    };
    const { scheme } = stubScheme();
    const policy = spendingPolicy({ budget: "$1", usdAssets });
    const res = await api({ schemes: [scheme], policy }).get("/data");
    expect(res.data).toBe("served, no receipt");
    expect(policy.spent().usd).toBe("0.01");
  });
});

describe("wrapAxios: v1", () => {
  const v1Required = () => ({
    x402Version: 1,
    error: "X-PAYMENT header is required",
    accepts: [
      { scheme: "exact", network: "base-sepolia", maxAmountRequired: "2500", resource: `${base}/v1`, description: "v1 data", mimeType: "application/json", outputSchema: null, payTo: PAYEE, maxTimeoutSeconds: 60, asset: USDC, extra: { name: "USDC", version: "2" } },
    ],
  });

  it("reads the JSON body axios parsed, pays with X-PAYMENT and decodes X-PAYMENT-RESPONSE", async () => {
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
    const res = await api({ schemes: [scheme], policy }).get("/v1");
    expect(res.data).toBe("v1 ok");
    expect(calls).toEqual(["2500"]);
    const info = getPaymentReceipt(res)!;
    expect(info.x402Version).toBe(1);
    expect(info.receipt).toMatchObject({ success: true, transaction: TX, network: "base-sepolia" });
    expect(policy.spent().usd).toBe("0.0025");
  });

  it("a malformed v1 body names the field and signs nothing", async () => {
    handler = (_req, res) => {
      const body = v1Required() as unknown as { accepts: Record<string, unknown>[] };
      delete body.accepts[0]!.maxAmountRequired;
      res.writeHead(402, { "content-type": "application/json" }).end(JSON.stringify(body));
    };
    const { scheme, calls } = stubScheme();
    const e = await failure(api({ schemes: [scheme] }).get("/v1"));
    expect(e).toBeInstanceOf(InvalidPaymentRequiredError);
    expect((e as Error).message).toContain("paymentRequired.accepts.0.maxAmountRequired");
    expect(calls).toHaveLength(0);
  });
});
