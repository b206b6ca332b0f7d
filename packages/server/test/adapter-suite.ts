/**
 * One behavioural suite, run against every framework adapter over real HTTP. Each adapter's
 * test file starts a server around the given paywall with these routes and handlers, and
 * counts handler runs in `runs`:
 *   GET /free       -> 200 "free"                                     (not priced)
 *   GET /weather    -> 200 {"temp":21} with header x-handler: ran     (paid)
 *   GET /fail       -> 500 "boom"                                     (paid)
 *   GET /stream     -> 200, header x-secret: yes, body written in chunks "SECRET-1" "SECRET-2" (paid)
 *   GET /big        -> 200, 3 chunks of 1000 "B"                      (paid, maxResponseBytes 2048)
 *   ALL /any        -> 200 "any" for every method                     (paid, key without method)
 *   GET /before     -> 200 "before", records settleCalls.length when it runs (paid, settle "before")
 *   GET /per-route  -> 200 "per-route", attached with paymentRoute(paywall, PER_ROUTE, "per-route")
 *   GET /slow       -> 200 "slow" after 300 ms                         (paid)
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  decodeBase64Json,
  encodeBase64Json,
  FacilitatorError,
  parsePaymentRequired,
  parsePaymentRequiredV1,
  type PaymentPayload,
  type PaymentRequired,
  type PaymentRequirements,
} from "@tollgate/core";
import { createPaywall, PAYMENT_IDENTIFIER_ADVERTISEMENT, type Paywall, type PaywallConfig, type RouteConfig, type SettledEvent } from "@tollgate/server";
import { ASSET, PAY_TO, PAYER, PENDING, stubFacilitator, stubScheme, TX, type StubFacilitator } from "./fixtures.ts";

export interface Harness {
  url: string;
  close(): Promise<void>;
}
export interface Runs {
  count: number;
  /** What `settleCalls.length` was when /before's handler ran. */
  settlesSeenByBefore: number[];
  /** The stub facilitator, for handlers that look at it. */
  facilitator?: StubFacilitator;
}
export type StartServer = (paywall: Paywall, runs: Runs) => Promise<Harness>;

/** The route the adapters attach with their per-route form. */
export const PER_ROUTE: RouteConfig = { price: "$0.01", network: "eip155:84532", payTo: PAY_TO };

const DESCRIPTION = `Weather <script>alert("x")</script> & more`;

export function adapterSuite(name: string, start: StartServer) {
  describe(`${name} adapter`, () => {
    const facilitator: StubFacilitator = stubFacilitator();
    const runs: Runs = { count: 0, settlesSeenByBefore: [], facilitator };
    const settled: SettledEvent[] = [];
    const errors: unknown[] = [];
    let server: Harness;
    let down: Harness;

    const config = (f: PaywallConfig["facilitator"]): PaywallConfig => ({
      facilitator: f,
      schemes: [stubScheme],
      routes: {
        "GET /weather": { price: "$0.01", network: ["eip155:84532", "eip155:8453"], payTo: PAY_TO, description: DESCRIPTION, mimeType: "application/json" },
        "GET /fail": { price: "$0.01", network: "eip155:84532", payTo: PAY_TO },
        "GET /stream": { price: "$0.01", network: "eip155:84532", payTo: PAY_TO },
        "GET /big": { price: "$0.01", network: "eip155:84532", payTo: PAY_TO, maxResponseBytes: 2048 },
        "/any": { price: "$0.01", network: "eip155:84532", payTo: PAY_TO },
        "GET /before": { price: "$0.01", network: "eip155:84532", payTo: PAY_TO, settle: "before" },
        "GET /slow": { price: "$0.01", network: "eip155:84532", payTo: PAY_TO },
      },
      paywallPage: { appName: `<img src=x onerror=alert(1)>Shop` },
      // Short, so the deadline paths run in test time.
      settlementTimeoutMs: 400,
      settlementPollMs: 20,
      onSettled: (e) => void settled.push(e),
      onError: (e) => void errors.push(e),
    });

    beforeAll(async () => {
      server = await start(createPaywall(config(facilitator)), runs);
      // Port 1 on loopback refuses connections: a facilitator that is down.
      down = await start(createPaywall(config("http://127.0.0.1:1")), runs);
    });
    afterAll(async () => {
      await server?.close();
      await down?.close();
    });
    beforeEach(() => {
      facilitator.reset();
      runs.count = 0;
      runs.settlesSeenByBefore = [];
      settled.length = 0;
      errors.length = 0;
    });

    async function challenge(path = "/weather"): Promise<PaymentRequired> {
      const res = await fetch(server.url + path);
      expect(res.status).toBe(402);
      const decoded = decodeBase64Json(res.headers.get("payment-required"), "PAYMENT-REQUIRED");
      if (!decoded.ok) throw new Error(decoded.message);
      const parsed = parsePaymentRequired(decoded.value);
      if (!parsed.ok) throw new Error(parsed.message);
      return parsed.value;
    }

    function paymentFor(accepted: PaymentRequirements, resourceUrl: string): PaymentPayload {
      return {
        x402Version: 2,
        resource: { url: resourceUrl },
        accepted,
        payload: { signature: "0x" + "11".repeat(65), authorization: { from: PAYER, to: accepted.payTo, value: accepted.amount } },
      };
    }

    let nonce = 0;
    async function paymentHeader(path: string, edit?: (p: PaymentPayload) => void): Promise<string> {
      const required = await challenge(path);
      const payment = paymentFor(required.accepts[0]!, required.resource.url);
      // Each payment its own authorization, as a client would sign it.
      (payment.payload.authorization as Record<string, unknown>).nonce = `0x${(++nonce).toString(16).padStart(64, "0")}-${Math.random()}`;
      edit?.(payment);
      return encodeBase64Json(payment);
    }

    async function pay(path: string, edit?: (p: PaymentPayload) => void) {
      return fetch(server.url + path, { headers: { "PAYMENT-SIGNATURE": await paymentHeader(path, edit) } });
    }

    it("lets requests to unprotected routes through untouched", async () => {
      const res = await fetch(server.url + "/free");
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("free");
      expect(res.headers.get("payment-required")).toBeNull();
    });

    it("answers an unpaid request with a v2 PAYMENT-REQUIRED header and a v1 JSON body", async () => {
      const res = await fetch(server.url + "/weather?city=Oslo");
      expect(res.status).toBe(402);
      expect(res.headers.get("access-control-expose-headers")).toContain("PAYMENT-RESPONSE");
      const decoded = decodeBase64Json(res.headers.get("payment-required"), "PAYMENT-REQUIRED");
      expect(decoded.ok).toBe(true);
      const parsed = parsePaymentRequired(decoded.ok ? decoded.value : null);
      if (!parsed.ok) throw new Error(parsed.message);
      const required = parsed.value;
      expect(required.x402Version).toBe(2);
      expect(required.error).toBe("PAYMENT-SIGNATURE header is required");
      expect(required.resource).toEqual({ url: `${server.url}/weather?city=Oslo`, description: DESCRIPTION, mimeType: "application/json" });
      expect(required.accepts).toEqual([
        { scheme: "exact", network: "eip155:84532", amount: "10000", asset: ASSET, payTo: PAY_TO, maxTimeoutSeconds: 60, extra: { name: "USDC", version: "2" } },
        // The facilitator's kind for 8453 carries extra; enhanceRequirements merged it.
        { scheme: "exact", network: "eip155:8453", amount: "10000", asset: ASSET, payTo: PAY_TO, maxTimeoutSeconds: 60, extra: { name: "USDC", version: "2", hint: "from-facilitator" } },
      ]);

      expect(res.headers.get("content-type")).toContain("application/json");
      const v1 = parsePaymentRequiredV1(await res.json());
      if (!v1.ok) throw new Error(v1.message);
      expect(v1.value.accepts.map((a) => a.network)).toEqual(["base-sepolia", "base"]);
      expect(v1.value.accepts[0]).toMatchObject({ maxAmountRequired: "10000", resource: `${server.url}/weather?city=Oslo`, description: DESCRIPTION, payTo: PAY_TO, asset: ASSET });
      expect(runs.count).toBe(0);
    });

    it("shows browsers an HTML paywall with every value escaped", async () => {
      const res = await fetch(server.url + "/weather?q=<script>alert(2)</script>", { headers: { Accept: "text/html,application/xhtml+xml" } });
      expect(res.status).toBe(402);
      expect(res.headers.get("content-type")).toContain("text/html");
      expect(res.headers.get("payment-required")).toBeTruthy();
      const html = await res.text();
      // The only scripts are the page's own: the JSON island and the bundled wallet script (CSP-hashed).
      expect(html.match(/<script/gi)).toHaveLength(2);
      expect(html).toContain('<script type="application/json" id="tollgate-paywall-data">');
      expect(html).not.toContain("<script>alert");
      expect(html).not.toContain("<img src=x");
      expect(html).toContain("Weather &#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; more");
      expect(html).toContain("&#60;img src=x onerror=alert(1)&#62;Shop");
      expect(html).toContain("$0.01");
      expect(html).toContain(PAY_TO);
      expect(html).toContain("Base Sepolia (eip155:84532)");
    });

    const badHeaders: [string, () => string, string, RegExp][] = [
      ["malformed base64", () => "%%%not-base64%%%", "PAYMENT-SIGNATURE", /not valid base64/],
      ["bad JSON", () => Buffer.from("{not json").toString("base64"), "PAYMENT-SIGNATURE", /not valid JSON/],
      ["an oversized header", () => "A".repeat(17_000), "PAYMENT-SIGNATURE", /limit/],
    ];
    for (const [what, header, field, message] of badHeaders) {
      it(`rejects ${what} with a 400 naming the field`, async () => {
        const res = await fetch(server.url + "/weather", { headers: { "PAYMENT-SIGNATURE": header() } });
        expect(res.status).toBe(400);
        const body = (await res.json()) as { error: string; reason: string; field: string };
        expect(body).toMatchObject({ reason: "invalid_payload", field });
        expect(body.error).toMatch(message);
        expect(facilitator.verifyCalls).toHaveLength(0);
        expect(runs.count).toBe(0);
      });
    }

    it("rejects a payload missing a field with a 400 naming that field", async () => {
      const required = await challenge();
      const payment = paymentFor(required.accepts[0]!, required.resource.url) as unknown as { accepted: Record<string, unknown> };
      delete payment.accepted.amount;
      const res = await fetch(server.url + "/weather", { headers: { "PAYMENT-SIGNATURE": encodeBase64Json(payment) } });
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: string; reason: string; field: string };
      expect(body.reason).toBe("invalid_payload");
      expect(body.field).toBe("paymentPayload.accepted.amount");
      expect(body.error).toContain("paymentPayload.accepted.amount: is required");
      expect(facilitator.verifyCalls).toHaveLength(0);
    });

    it("answers 402 when the payment's accepted differs from the route's requirements", async () => {
      const res = await pay("/weather", (p) => (p.accepted = { ...p.accepted, amount: "1" }));
      expect(res.status).toBe(402);
      const decoded = decodeBase64Json(res.headers.get("payment-required"), "x");
      const error = decoded.ok ? (decoded.value as PaymentRequired).error : "";
      expect(error).toMatch(/^invalid_payment_requirements_mismatch: accepted\.amount: "1" differs from the required "10000"/);
      expect(facilitator.verifyCalls).toHaveLength(0);
      expect(runs.count).toBe(0);
    });

    it("the copy's extra must hold every field of the offer's; fields the client added are ignored (never sent to the facilitator)", async () => {
      const changed = await pay("/weather", (p) => (p.accepted = { ...p.accepted, extra: { ...p.accepted.extra, version: "1" } }));
      expect(changed.status).toBe(402);
      const decoded = decodeBase64Json(changed.headers.get("payment-required"), "x");
      expect(decoded.ok && (decoded.value as PaymentRequired).error).toMatch(/^invalid_payment_requirements_mismatch: accepted\.extra\.version: "1" differs from the required "2"/);
      const dropped = await pay("/weather", (p) => (p.accepted = { ...p.accepted, extra: {} }));
      expect(dropped.status).toBe(402);
      expect(facilitator.verifyCalls).toHaveLength(0);
      const added = await pay("/weather", (p) => (p.accepted = { ...p.accepted, extra: { ...p.accepted.extra, channelState: { echoed: true } } }));
      expect(added.status).toBe(200);
      expect(facilitator.verifyCalls).toHaveLength(1);
      expect(JSON.stringify(facilitator.verifyCalls[0])).not.toContain("echoed");
    });

    it("answers 402 with the reason when the facilitator finds the payment invalid", async () => {
      facilitator.verifyResult = { isValid: false, invalidReason: "insufficient_funds", payer: PAYER };
      const res = await pay("/weather");
      expect(res.status).toBe(402);
      const decoded = decodeBase64Json(res.headers.get("payment-required"), "x");
      expect(decoded.ok && (decoded.value as PaymentRequired).error).toBe("insufficient_funds");
      expect(((await res.json()) as { error: string }).error).toBe("insufficient_funds");
      expect(facilitator.verifyCalls).toHaveLength(1);
      expect(facilitator.settleCalls).toHaveLength(0);
      expect(runs.count).toBe(0);
    });

    it("answers 412 Precondition Failed, with the same PAYMENT-REQUIRED, when the payer has no Permit2 allowance", async () => {
      facilitator.verifyResult = { isValid: false, invalidReason: "permit2_allowance_required", invalidMessage: "approve Permit2 once", payer: PAYER };
      const res = await pay("/weather");
      expect(res.status).toBe(412);
      const decoded = decodeBase64Json(res.headers.get("payment-required"), "x");
      const required = decoded.ok ? (decoded.value as PaymentRequired) : undefined;
      expect(required?.error).toBe("permit2_allowance_required: approve Permit2 once");
      expect(required?.accepts.length).toBeGreaterThan(0);
      expect(((await res.json()) as { error: string }).error).toBe("permit2_allowance_required: approve Permit2 once");
      expect(facilitator.settleCalls).toHaveLength(0);
      expect(runs.count).toBe(0);
    });

    it("passes a failing handler's response through and settles nothing", async () => {
      const res = await pay("/fail");
      expect(res.status).toBe(500);
      expect(await res.text()).toBe("boom");
      expect(res.headers.get("payment-response")).toBeNull();
      expect(facilitator.verifyCalls).toHaveLength(1);
      expect(facilitator.settleCalls).toHaveLength(0);
      expect(runs.count).toBe(1);
      expect(settled).toHaveLength(0);
    });

    it("on settlement failure answers 402 with the failure and none of the handler's response", async () => {
      facilitator.settleResult = { success: false, errorReason: "insufficient_funds", transaction: "", network: "eip155:84532", payer: PAYER };
      const res = await pay("/stream");
      expect(res.status).toBe(402);
      expect(runs.count).toBe(1);
      const body = await res.text();
      expect(body).not.toContain("SECRET");
      expect(res.headers.get("x-secret")).toBeNull();
      const decoded = decodeBase64Json(res.headers.get("payment-response"), "PAYMENT-RESPONSE");
      expect(decoded.ok && decoded.value).toEqual({ success: false, errorReason: "insufficient_funds", transaction: "", network: "eip155:84532", payer: PAYER });
      expect(facilitator.settleCalls).toHaveLength(1);
      expect(settled).toHaveLength(0);
    });

    it("serves the resource with a PAYMENT-RESPONSE once settled", async () => {
      const res = await pay("/weather");
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ temp: 21 });
      expect(res.headers.get("x-handler")).toBe("ran");
      expect(res.headers.get("access-control-expose-headers")).toContain("PAYMENT-RESPONSE");
      const decoded = decodeBase64Json(res.headers.get("payment-response"), "PAYMENT-RESPONSE");
      expect(decoded.ok && decoded.value).toEqual({ success: true, transaction: TX, network: "eip155:84532", payer: PAYER });
      // The facilitator is asked about the server's own requirements, not the client's copy.
      expect(facilitator.settleCalls[0]!.requirements).toEqual(facilitator.verifyCalls[0]!.requirements);
      expect(facilitator.settleCalls[0]!.requirements).toMatchObject({ amount: "10000", payTo: PAY_TO, network: "eip155:84532" });
      expect(settled).toHaveLength(1);
      expect(settled[0]).toMatchObject({ route: "GET /weather", x402Version: 2, settlement: { transaction: TX } });
    });

    it("serves a streamed (chunked) response whole once settled", async () => {
      const res = await pay("/stream");
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("SECRET-1SECRET-2");
      expect(res.headers.get("x-secret")).toBe("yes");
      expect(res.headers.get("payment-response")).toBeTruthy();
    });

    it("accepts a v1 X-PAYMENT and answers with a v1 X-PAYMENT-RESPONSE", async () => {
      const v1Payment = { x402Version: 1, scheme: "exact", network: "base-sepolia", payload: { signature: "0x" + "22".repeat(65), authorization: { from: PAYER } } };
      const res = await fetch(server.url + "/weather", { headers: { "X-PAYMENT": encodeBase64Json(v1Payment) } });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ temp: 21 });
      expect(res.headers.get("payment-response")).toBeNull();
      const decoded = decodeBase64Json(res.headers.get("x-payment-response"), "X-PAYMENT-RESPONSE");
      expect(decoded.ok && decoded.value).toEqual({ success: true, transaction: TX, network: "base-sepolia", payer: PAYER });
      const verified = facilitator.verifyCalls[0]!;
      expect(verified.requirements.network).toBe("eip155:84532");
      expect(verified.payload.accepted).toEqual(verified.requirements);
      expect(verified.payload.payload).toEqual(v1Payment.payload);
      expect(settled[0]?.x402Version).toBe(1);
    });

    it("rejects a v1 payment on a network the route does not accept with 402", async () => {
      const v1Payment = { x402Version: 1, scheme: "exact", network: "polygon", payload: {} };
      const res = await fetch(server.url + "/weather", { headers: { "X-PAYMENT": encodeBase64Json(v1Payment) } });
      expect(res.status).toBe(402);
      expect(((await res.json()) as { error: string }).error).toMatch(/invalid_payment_requirements_mismatch/);
      expect(facilitator.verifyCalls).toHaveLength(0);
    });

    it("answers 500 with a fixed text and serves nothing when the facilitator is unreachable", async () => {
      const res = await fetch(down.url + "/weather");
      expect(res.status).toBe(500);
      const text = await res.text();
      expect(JSON.parse(text)).toEqual({ error: "the payment facilitator is unavailable; nothing was charged", reason: "unexpected_verify_error" });
      // The facilitator's failure reaches onError, not the client.
      expect(text).not.toContain("127.0.0.1");
      expect(text).not.toContain("fetch failed");
      expect(errors[0]).toBeInstanceOf(FacilitatorError);
      expect(errors[0]).toMatchObject({ endpoint: "supported", status: undefined });
      expect(runs.count).toBe(0);
    });

    it("retries a settle the facilitator fails (5xx) until the deadline, then answers 500 with none of the body", async () => {
      facilitator.settleResult = new FacilitatorError("facilitator settle: HTTP 500: oops at http://10.0.0.7:8545", "settle", 500, "oops");
      const res = await pay("/stream");
      expect(res.status).toBe(500);
      const text = await res.text();
      expect(text).not.toContain("SECRET");
      expect(text).not.toContain("10.0.0.7");
      expect(res.headers.get("x-secret")).toBeNull();
      expect(runs.count).toBe(1);
      expect(facilitator.settleCalls.length).toBeGreaterThan(1);
    });

    it("keeps the facilitator's internal text out of the 402", async () => {
      facilitator.verifyResult = { isValid: false, invalidReason: "unexpected_verify_error", invalidMessage: "RPC http://10.1.2.3:8545/key/abc failed" };
      const first = await pay("/weather");
      expect(first.status).toBe(402);
      expect(requiredOf(first).error).toBe("unexpected_verify_error");
      facilitator.verifyResult = { isValid: false, invalidReason: "insufficient_funds", invalidMessage: "balance read from https://rpc.internal/v2/secret at 10.1.2.3:8545 is 0" };
      const second = await pay("/weather");
      expect(requiredOf(second).error).toBe("insufficient_funds: balance read from <url> at <address> is 0");
    });

    it("advertises the payment-identifier extension exactly as its spec shows it", async () => {
      const required = await challenge();
      expect(required.extensions).toEqual({ "payment-identifier": PAYMENT_IDENTIFIER_ADVERTISEMENT });
      expect(PAYMENT_IDENTIFIER_ADVERTISEMENT).toEqual({
        info: { required: false },
        schema: {
          $schema: "https://json-schema.org/draft/2020-12/schema",
          type: "object",
          properties: { required: { type: "boolean" }, id: { type: "string", minLength: 16, maxLength: 128 } },
          required: ["required"],
        },
      });
    });

    it("serves concurrent copies of one payment once: one 200, the rest 402 duplicate_settlement", async () => {
      // Every copy must reach the paywall while the first is settling (the stub facilitator has
      // no ledger: a copy arriving after it would be settled again): a wide margin for busy machines.
      facilitator.settleDelayMs = 1_000;
      const header = await paymentHeader("/weather");
      const answers = await Promise.all(Array.from({ length: 6 }, () => fetch(server.url + "/weather", { headers: { "PAYMENT-SIGNATURE": header } })));
      const statuses = answers.map((r) => r.status).sort();
      expect(statuses).toEqual([200, 402, 402, 402, 402, 402]);
      for (const r of answers.filter((a) => a.status === 402)) {
        expect(requiredOf(r).error).toMatch(/^duplicate_settlement/);
        expect(await r.text()).not.toContain("temp");
      }
      expect(runs.count).toBe(1);
      expect(facilitator.verifyCalls).toHaveLength(1);
      expect(facilitator.settleCalls).toHaveLength(1);
    });

    it("polls a pending settlement until it lands and then serves the resource", async () => {
      facilitator.settleQueue = [PENDING, PENDING];
      const res = await pay("/weather");
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ temp: 21 });
      expect(facilitator.settleCalls).toHaveLength(3);
      // Every poll sends the same payload.
      expect(new Set(facilitator.settleCalls.map((c) => JSON.stringify(c.payload))).size).toBe(1);
      expect(settled).toHaveLength(1);
    });

    it("answers 402 settlement_pending with the pending receipt when the deadline passes, and none of the body", async () => {
      facilitator.settleResult = PENDING;
      const res = await pay("/stream");
      expect(res.status).toBe(402);
      expect(requiredOf(res).error).toMatch(/^settlement_pending: /);
      const receipt = decodeBase64Json(res.headers.get("payment-response"), "PAYMENT-RESPONSE");
      expect(receipt.ok && receipt.value).toMatchObject({ success: false, errorReason: "settlement_pending", extensions: { "tollgate-settlement": { status: "pending", transaction: TX } } });
      expect(await res.text()).not.toContain("SECRET");
      expect(facilitator.settleCalls.length).toBeGreaterThan(1);
      expect(settled).toHaveLength(0);
    });

    it("discards the handler's output on duplicate_settlement", async () => {
      facilitator.settleResult = { success: false, errorReason: "duplicate_settlement", transaction: "", network: "eip155:84532", payer: PAYER, extensions: { "tollgate-settlement": { status: "settled", transaction: TX } } };
      const res = await pay("/stream");
      expect(res.status).toBe(402);
      expect(requiredOf(res).error).toBe("duplicate_settlement");
      expect(await res.text()).not.toContain("SECRET");
    });

    it("refuses a replayed success it has no cached response for", async () => {
      facilitator.settleResult = { success: true, transaction: TX, network: "eip155:84532", payer: PAYER, extensions: { "tollgate-settlement": { status: "settled", replay: true } } };
      const res = await pay("/stream");
      expect(res.status).toBe(402);
      expect(requiredOf(res).error).toMatch(/^duplicate_settlement/);
      expect(await res.text()).not.toContain("SECRET");
      expect(settled).toHaveLength(0);
    });

    it("answers a payment-identifier replay from its own cache, for the same request only", async () => {
      const header = await paymentHeader("/weather", (p) => (p.extensions = { "payment-identifier": { info: { required: false, id: "pay_0123456789abcdef" } } }));
      const first = await fetch(server.url + "/weather", { headers: { "PAYMENT-SIGNATURE": header } });
      expect(first.status).toBe(200);
      const firstReceipt = first.headers.get("payment-response");
      expect(await first.json()).toEqual({ temp: 21 });

      const again = await fetch(server.url + "/weather", { headers: { "PAYMENT-SIGNATURE": header } });
      expect(again.status).toBe(200);
      expect(await again.json()).toEqual({ temp: 21 });
      expect(again.headers.get("payment-response")).toBe(firstReceipt);
      expect(again.headers.get("x-handler")).toBe("ran");
      expect(runs.count).toBe(1);
      expect(facilitator.verifyCalls).toHaveLength(1);

      // Another request with the same payment is not the cached one: the facilitator's replay is refused.
      facilitator.settleResult = { success: true, transaction: TX, network: "eip155:84532", payer: PAYER, extensions: { "tollgate-settlement": { status: "settled", replay: true } } };
      const other = await fetch(server.url + "/weather?city=Oslo", { headers: { "PAYMENT-SIGNATURE": header } });
      expect(other.status).toBe(402);
      expect(requiredOf(other).error).toMatch(/^duplicate_settlement/);
    });

    it("rejects a malformed payment-identifier with a 400 naming the field", async () => {
      const header = await paymentHeader("/weather", (p) => (p.extensions = { "payment-identifier": { info: { required: false, id: "short" } } }));
      const res = await fetch(server.url + "/weather", { headers: { "PAYMENT-SIGNATURE": header } });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ reason: "invalid_payload", field: "paymentPayload.extensions.payment-identifier.info.id" });
      expect(facilitator.verifyCalls).toHaveLength(0);
    });

    it("answers 500 resource_response_too_large for a response over the cap, settles nothing, sends none of it", async () => {
      const res = await pay("/big");
      expect(res.status).toBe(500);
      const text = await res.text();
      expect(JSON.parse(text)).toMatchObject({ reason: "resource_response_too_large" });
      expect(text).not.toContain("BBBB");
      expect(runs.count).toBe(1);
      expect(facilitator.settleCalls).toHaveLength(0);
    });

    it("prices OPTIONS unless it is a real CORS preflight, and a method-override header like the method it names", async () => {
      const bare = await fetch(server.url + "/any", { method: "OPTIONS" });
      expect(bare.status).toBe(402);
      const overridden = await fetch(server.url + "/weather", { method: "POST", headers: { "X-HTTP-Method-Override": "GET" } });
      expect(overridden.status).toBe(402);
      expect(runs.count).toBe(0);
      // A preflight passes (a CORS middleware answers it); on a GET-only route no handler runs.
      const preflight = await fetch(server.url + "/weather", { method: "OPTIONS", headers: { Origin: "https://app.example", "Access-Control-Request-Method": "GET" } });
      expect(preflight.status).not.toBe(402);
      expect(runs.count).toBe(0);
    });

    it("prices HEAD like GET", async () => {
      const unpaid = await fetch(server.url + "/weather", { method: "HEAD" });
      expect(unpaid.status).toBe(402);
      expect(runs.count).toBe(0);
      const header = await paymentHeader("/weather");
      const paid = await fetch(server.url + "/weather", { method: "HEAD", headers: { "PAYMENT-SIGNATURE": header } });
      expect(paid.status).toBe(200);
      expect(paid.headers.get("payment-response")).toBeTruthy();
      expect(facilitator.settleCalls).toHaveLength(1);
    });

    it("settle \"before\": settles first, then runs the handler, with the receipt", async () => {
      const res = await pay("/before");
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("before");
      expect(runs.settlesSeenByBefore).toEqual([1]);
      expect(res.headers.get("payment-response")).toBeTruthy();
      expect(settled).toHaveLength(1);
    });

    it("settle \"before\": a failed settlement never runs the handler", async () => {
      facilitator.settleResult = { success: false, errorReason: "insufficient_funds", transaction: "", network: "eip155:84532", payer: PAYER };
      const res = await pay("/before");
      expect(res.status).toBe(402);
      expect(requiredOf(res).error).toBe("insufficient_funds");
      expect(runs.count).toBe(0);
    });

    it("charges nothing when the client goes away before the response is complete", async () => {
      const header = await paymentHeader("/slow");
      const controller = new AbortController();
      const gone = fetch(server.url + "/slow", { headers: { "PAYMENT-SIGNATURE": header }, signal: controller.signal }).catch(() => "aborted");
      await new Promise((resolve) => setTimeout(resolve, 100));
      controller.abort();
      expect(await gone).toBe("aborted");
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(runs.count).toBe(1);
      expect(facilitator.settleCalls).toHaveLength(0);
      // The payment was not spent and is not held: it buys the resource now.
      const again = await fetch(server.url + "/slow", { headers: { "PAYMENT-SIGNATURE": header } });
      expect(again.status).toBe(200);
      expect(facilitator.settleCalls).toHaveLength(1);
    });

    it("per-route form: the framework's match is the paywall's match", async () => {
      const unpaid = await fetch(server.url + "/per-route");
      expect(unpaid.status).toBe(402);
      expect(requiredOf(unpaid).resource.url).toBe(`${server.url}/per-route`);
      expect(runs.count).toBe(0);
      const res = await pay("/per-route");
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("per-route");
      expect(settled[0]?.route).toBe("per-route");
    });
  });
}

function requiredOf(res: Response): PaymentRequired {
  const decoded = decodeBase64Json(res.headers.get("payment-required"), "PAYMENT-REQUIRED");
  if (!decoded.ok) throw new Error(decoded.message);
  return decoded.value as PaymentRequired;
}
