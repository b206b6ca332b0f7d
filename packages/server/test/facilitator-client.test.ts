import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  createFacilitator,
  FacilitatorError,
  httpFacilitatorClient,
  localFacilitatorClient,
  type PaymentPayload,
  type PaymentRequirements,
  type SchemeFacilitator,
} from "@tollgate/core";
import { ASSET, PAY_TO, PAYER, SUPPORTED, TX } from "./fixtures.ts";

const requirements: PaymentRequirements = { scheme: "exact", network: "eip155:84532", amount: "10000", asset: ASSET, payTo: PAY_TO, maxTimeoutSeconds: 60 };
const payload: PaymentPayload = { x402Version: 2, accepted: requirements, payload: { signature: "0x01" } };

type Reply = { status: number; body: string; delayMs?: number };
const seen: { method: string; url: string; headers: IncomingMessage["headers"]; body: string }[] = [];
let reply: (path: string) => Reply;
let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      const r = reply(req.url!);
      const send = () => res.writeHead(r.status, { "content-type": "application/json" }).end(r.body);
      if (r.delayMs) setTimeout(send, r.delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  seen.length = 0;
});

describe("httpFacilitatorClient", () => {
  it("POSTs the spec's body to /verify with the configured headers and parses the answer", async () => {
    reply = () => ({ status: 200, body: JSON.stringify({ isValid: true, payer: PAYER }) });
    const client = httpFacilitatorClient({ url: base + "/", headers: (endpoint) => ({ authorization: `Bearer t-${endpoint}` }) });
    expect(await client.verify(payload, requirements)).toEqual({ isValid: true, payer: PAYER });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.method).toBe("POST");
    expect(seen[0]!.url).toBe("/verify");
    expect(seen[0]!.headers.authorization).toBe("Bearer t-verify");
    expect(seen[0]!.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(seen[0]!.body)).toEqual({ x402Version: 2, paymentPayload: payload, paymentRequirements: requirements });
  });

  it("returns a well-formed negative verdict on a 4xx about the payment, throws on a 5xx or 401", async () => {
    reply = () => ({ status: 400, body: JSON.stringify({ isValid: false, invalidReason: "invalid_payload", invalidMessage: "x", payer: null }) });
    const client = httpFacilitatorClient({ url: base });
    expect(await client.verify(payload, requirements)).toEqual({ isValid: false, invalidReason: "invalid_payload", invalidMessage: "x" });
    reply = () => ({ status: 429, body: JSON.stringify({ success: false, errorReason: "rate_limited", transaction: "", network: "eip155:84532" }) });
    expect(await client.settle(payload, requirements)).toMatchObject({ success: false, errorReason: "rate_limited" });
    expect(seen[1]!.url).toBe("/settle");
    // The facilitator failing is not a verdict on the payment, whatever its body says.
    reply = () => ({ status: 500, body: JSON.stringify({ success: false, errorReason: "unexpected_settle_error", transaction: "", network: "eip155:84532" }) });
    await expect(client.settle(payload, requirements)).rejects.toMatchObject({ name: "FacilitatorError", status: 500, endpoint: "settle" });
    reply = () => ({ status: 401, body: JSON.stringify({ isValid: false, invalidReason: "unauthorized" }) });
    await expect(client.verify(payload, requirements)).rejects.toMatchObject({ name: "FacilitatorError", status: 401 });
  });

  it("sends a v1 body when told the kind is v1-only, and maps the v1 network name back", async () => {
    const client = httpFacilitatorClient({ url: base });
    reply = () => ({ status: 200, body: JSON.stringify({ success: true, transaction: TX, network: "base-sepolia", payer: PAYER }) });
    const v1 = { v1: { network: "base-sepolia", resource: { url: "https://api.example.com/x", description: "d" } } };
    expect(await client.settle(payload, requirements, v1)).toEqual({ success: true, transaction: TX, network: "eip155:84532", payer: PAYER });
    expect(JSON.parse(seen[0]!.body)).toEqual({
      x402Version: 1,
      paymentPayload: { x402Version: 1, scheme: "exact", network: "base-sepolia", payload: payload.payload },
      paymentRequirements: {
        scheme: "exact",
        network: "base-sepolia",
        maxAmountRequired: "10000",
        resource: "https://api.example.com/x",
        description: "d",
        mimeType: "",
        payTo: PAY_TO,
        maxTimeoutSeconds: 60,
        asset: ASSET,
        extra: null,
      },
    });
  });

  it("waits longer for /settle than for /verify (above the facilitator's 30 s receipt wait by default)", async () => {
    reply = () => ({ status: 200, body: JSON.stringify({ success: true, transaction: TX, network: "eip155:84532" }), delayMs: 150 });
    const client = httpFacilitatorClient({ url: base, timeoutMs: 50, settleTimeoutMs: 1_000 });
    expect(await client.settle(payload, requirements)).toMatchObject({ success: true });
    await expect(client.verify(payload, requirements)).rejects.toThrow(/timed out after 50 ms/);
    const slowSettle = httpFacilitatorClient({ url: base, settleTimeoutMs: 50 });
    await expect(slowSettle.settle(payload, requirements)).rejects.toThrow(/settle: timed out after 50 ms/);
  });

  it("throws a FacilitatorError with status and excerpt for anything else", async () => {
    const client = httpFacilitatorClient({ url: base });
    reply = () => ({ status: 502, body: "<html>\n  Bad   gateway " + "x".repeat(500) + "</html>" });
    const e1 = await client.verify(payload, requirements).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(FacilitatorError);
    expect(e1).toMatchObject({ status: 502, endpoint: "verify" });
    expect((e1 as FacilitatorError).excerpt.startsWith("<html> Bad gateway")).toBe(true);
    expect((e1 as FacilitatorError).excerpt.length).toBeLessThanOrEqual(200);

    reply = () => ({ status: 200, body: JSON.stringify({ ok: true }) });
    const e2 = await client.settle(payload, requirements).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(FacilitatorError);
    expect((e2 as Error).message).toContain("settleResponse.success");

    // An error status claiming success is contradictory and not trusted.
    reply = () => ({ status: 500, body: JSON.stringify({ success: true, transaction: TX, network: "eip155:84532" }) });
    await expect(client.settle(payload, requirements)).rejects.toBeInstanceOf(FacilitatorError);
  });

  it("caches /supported, but not a failure", async () => {
    const client = httpFacilitatorClient({ url: base });
    reply = () => ({ status: 503, body: "{}" });
    await expect(client.supported()).rejects.toMatchObject({ status: 503, endpoint: "supported" });
    reply = () => ({ status: 200, body: JSON.stringify(SUPPORTED) });
    expect(await client.supported()).toEqual(SUPPORTED);
    expect(await client.supported()).toEqual(SUPPORTED);
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual(["GET /supported", "GET /supported"]);
  });

  it("reports an unreachable facilitator and a timeout without a status", async () => {
    const down = httpFacilitatorClient({ url: "http://127.0.0.1:1" });
    await expect(down.verify(payload, requirements)).rejects.toMatchObject({ name: "FacilitatorError", status: undefined });
    reply = () => ({ status: 200, body: JSON.stringify({ isValid: true }), delayMs: 500 });
    const slow = httpFacilitatorClient({ url: base, timeoutMs: 50 });
    await expect(slow.verify(payload, requirements)).rejects.toThrow(/timed out after 50 ms/);
  });

  it("refuses a non-http url", () => {
    expect(() => httpFacilitatorClient({ url: "ftp://x" })).toThrow(TypeError);
  });
});

describe("localFacilitatorClient", () => {
  it("passes a v1 call on as a v1 request", async () => {
    const seenRequests: unknown[] = [];
    const scheme: SchemeFacilitator = {
      scheme: "exact",
      networks: ["eip155:84532"],
      signers: () => [],
      verify: async () => ({ isValid: true }),
      settle: async () => ({ success: true, transaction: TX, network: "eip155:84532" }),
    };
    const core = createFacilitator({ schemes: [scheme] });
    const client = localFacilitatorClient({ ...core, verify: async (r) => (seenRequests.push(r), core.verify(r)) });
    await client.verify(payload, requirements, { v1: { network: "base-sepolia", resource: { url: "u" } } });
    expect(seenRequests[0]).toMatchObject({ x402Version: 1, v1Network: "base-sepolia", requirements });
  });

  it("routes to an in-process facilitator's scheme", async () => {
    const scheme: SchemeFacilitator = {
      scheme: "exact",
      networks: ["eip155:84532"],
      signers: () => ["0xfee"],
      verify: async () => ({ isValid: true, payer: PAYER }),
      settle: async () => ({ success: true, transaction: TX, network: "eip155:84532", payer: PAYER }),
    };
    const client = localFacilitatorClient(createFacilitator({ schemes: [scheme] }));
    expect(await client.verify(payload, requirements)).toEqual({ isValid: true, payer: PAYER });
    expect(await client.settle(payload, requirements)).toMatchObject({ success: true, transaction: TX });
    expect((await client.supported()).kinds).toContainEqual({ x402Version: 2, scheme: "exact", network: "eip155:84532" });
    const other = await client.verify(payload, { ...requirements, payTo: ASSET });
    expect(other).toMatchObject({ isValid: false, invalidReason: "invalid_payment_requirements_mismatch" });
  });
});

describe("EXTENSION-RESPONSES from the facilitator", () => {
  it("reaches onExtensionResponses, and a refused listing is one warning per reason, never a failed payment", async () => {
    const { catalogWarnings } = await import("../src/paywall.ts");
    const { encodeExtensionResponses } = await import("@tollgate/core");
    const warnings: string[] = [];
    const warn = catalogWarnings((m) => warnings.push(m));
    let header = encodeExtensionResponses({ bazaar: { status: "rejected", rejectedReason: "info.input.queryParams: does not match" } });
    const fakeFetch = (async () =>
      new Response(JSON.stringify({ success: true, transaction: TX, network: "eip155:84532", payer: PAYER }), { headers: { "content-type": "application/json", "EXTENSION-RESPONSES": header } })) as unknown as typeof fetch;
    const client = httpFacilitatorClient({ url: "https://f.example.com", fetch: fakeFetch, onExtensionResponses: warn });
    expect((await client.settle(payload, requirements)).success).toBe(true);
    expect((await client.settle(payload, requirements)).success).toBe(true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/refused this server's discovery declaration \(settle\): info\.input\.queryParams/);
    header = encodeExtensionResponses({ bazaar: { status: "success" } });
    await client.settle(payload, requirements);
    header = "not base64 json";
    await client.settle(payload, requirements);
    expect(warnings).toHaveLength(1);
    const throwing = httpFacilitatorClient({ url: "https://f.example.com", fetch: fakeFetch, onExtensionResponses: catalogWarnings(() => { throw new Error("hook"); }) });
    header = encodeExtensionResponses({ bazaar: { status: "rejected" } });
    expect((await throwing.settle(payload, requirements)).success).toBe(true);
  });
});
