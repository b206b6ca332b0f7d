/**
 * Wire compatibility with the reference client: @x402/fetch reads the fastify adapter's 402,
 * pays with a registered scheme client, and decodes its PAYMENT-RESPONSE. The scheme client is a
 * stand-in (no chain): what is tested is the HTTP framing, not the signature.
 */
import type { AddressInfo } from "node:net";
import Fastify from "fastify";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { decodePaymentResponseHeader, wrapFetchWithPaymentFromConfig, type SchemeNetworkClient } from "@x402/fetch";
import { createPaywall, paymentMiddleware, paymentRoute } from "@tollgate/fastify";
import { PAY_TO, PAYER, stubFacilitator, stubScheme, TX } from "../../server/test/fixtures.ts";

const facilitator = stubFacilitator();
const app = Fastify({ logger: false, forceCloseConnections: true });
let base: string;

beforeAll(async () => {
  const paywall = createPaywall({ facilitator, schemes: [stubScheme], routes: { "GET /weather": { price: "$0.01", network: "eip155:84532", payTo: PAY_TO } } });
  await app.register(paymentMiddleware(paywall));
  app.get("/weather", async () => ({ temp: 21 }));
  app.get("/report", paymentRoute(paywall, { price: "$0.02", network: "eip155:84532", payTo: PAY_TO }, "report"), async () => ({ report: "ok" }));
  await app.listen({ port: 0, host: "127.0.0.1" });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});
afterAll(() => app.close());
beforeEach(() => facilitator.reset());

const fakeScheme = (signature: string): SchemeNetworkClient => ({
  scheme: "exact",
  createPaymentPayload: async (x402Version) => ({ x402Version, payload: { signature, authorization: { from: PAYER } } }),
});

describe("@x402/fetch against the fastify adapter", () => {
  it.each([
    ["the plugin (route table)", "/weather", { temp: 21 }, "10000"],
    ["paymentRoute (route hooks)", "/report", { report: "ok" }, "20000"],
  ])("pays %s over v2 and reads the PAYMENT-RESPONSE", async (_, path, body, amount) => {
    // The stand-in scheme has no default-asset table, so the reference spend controls are off.
    const pay = wrapFetchWithPaymentFromConfig(fetch, { schemes: [{ network: "eip155:84532", client: fakeScheme("0xv2") }], spendControls: false });
    const res = await pay(base + path);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(body);
    const settlement = decodePaymentResponseHeader(res.headers.get("PAYMENT-RESPONSE")!);
    expect(settlement).toMatchObject({ success: true, transaction: TX, network: "eip155:84532" });
    expect(facilitator.verifyCalls[0]!.payload.payload).toMatchObject({ signature: "0xv2" });
    expect(facilitator.verifyCalls[0]!.payload.accepted).toEqual(facilitator.verifyCalls[0]!.requirements);
    expect(facilitator.settleCalls[0]!.requirements.amount).toBe(amount);
  });
});
