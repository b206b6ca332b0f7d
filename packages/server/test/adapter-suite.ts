/**
 * One behavioural suite, run against every framework adapter over real HTTP. Each adapter's
 * test file starts a server with these routes and handlers:
 *   GET /free     -> 200 "free"
 *   GET /weather  -> 200 {"temp":21} with header x-handler: ran   (paid)
 *   GET /fail     -> 500 "boom"                                   (paid)
 *   GET /stream   -> 200, header x-secret: yes, body written in chunks "SECRET-1" "SECRET-2" (paid)
 * and counts handler runs in `runs`.
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
import type { PaywallConfig, SettledEvent } from "@tollgate/server";
import { ASSET, PAY_TO, PAYER, stubFacilitator, stubScheme, TX, type StubFacilitator } from "./fixtures.ts";

export interface Harness {
  url: string;
  close(): Promise<void>;
}
export type StartServer = (config: PaywallConfig, runs: { count: number }) => Promise<Harness>;

const DESCRIPTION = `Weather <script>alert("x")</script> & more`;

export function adapterSuite(name: string, start: StartServer) {
  describe(`${name} adapter`, () => {
    const facilitator: StubFacilitator = stubFacilitator();
    const runs = { count: 0 };
    const settled: SettledEvent[] = [];
    let server: Harness;
    let down: Harness;

    const config = (f: PaywallConfig["facilitator"]): PaywallConfig => ({
      facilitator: f,
      schemes: [stubScheme],
      routes: {
        "GET /weather": { price: "$0.01", network: ["eip155:84532", "eip155:8453"], payTo: PAY_TO, description: DESCRIPTION, mimeType: "application/json" },
        "GET /fail": { price: "$0.01", network: "eip155:84532", payTo: PAY_TO },
        "GET /stream": { price: "$0.01", network: "eip155:84532", payTo: PAY_TO },
      },
      paywallPage: { appName: `<img src=x onerror=alert(1)>Shop` },
      onSettled: (e) => void settled.push(e),
    });

    beforeAll(async () => {
      server = await start(config(facilitator), runs);
      // Port 1 on loopback refuses connections: a facilitator that is down.
      down = await start(config("http://127.0.0.1:1"), runs);
    });
    afterAll(async () => {
      await server?.close();
      await down?.close();
    });
    beforeEach(() => {
      facilitator.reset();
      runs.count = 0;
      settled.length = 0;
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

    async function pay(path: string, edit?: (p: PaymentPayload) => void) {
      const required = await challenge(path);
      const payment = paymentFor(required.accepts[0]!, required.resource.url);
      edit?.(payment);
      return fetch(server.url + path, { headers: { "PAYMENT-SIGNATURE": encodeBase64Json(payment) } });
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
      expect(html).not.toMatch(/<script/i);
      expect(html).not.toContain("<img src=x");
      expect(html).toContain("Weather &#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; more");
      expect(html).toContain("&#60;img src=x onerror=alert(1)&#62;Shop");
      expect(html).toContain("$0.01");
      expect(html).toContain(PAY_TO);
      expect(html).toContain("base-sepolia (eip155:84532)");
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

    it("answers 503 and serves nothing when the facilitator is unreachable", async () => {
      const res = await fetch(down.url + "/weather");
      expect(res.status).toBe(503);
      const body = (await res.json()) as { error: string };
      expect(body.error).toMatch(/facilitator unavailable/);
      expect(runs.count).toBe(0);
    });

    it("answers 502 and none of the body when settlement cannot reach the facilitator", async () => {
      facilitator.settleResult = new FacilitatorError("facilitator settle: HTTP 500: oops", "settle", 500, "oops");
      const res = await pay("/stream");
      expect(res.status).toBe(502);
      expect(await res.text()).not.toContain("SECRET");
      expect(res.headers.get("x-secret")).toBeNull();
      expect(runs.count).toBe(1);
    });
  });
}
