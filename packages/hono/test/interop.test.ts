/**
 * Wire compatibility with the reference client: @x402/fetch reads our 402 (v2 header, v1 body),
 * pays with a registered scheme client, and decodes our PAYMENT-RESPONSE. The scheme client is
 * a stand-in (no chain): what is tested is the HTTP framing, not the signature.
 */
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { decodePaymentResponseHeader, wrapFetchWithPaymentFromConfig, type SchemeNetworkClient } from "@x402/fetch";
import { paymentMiddleware } from "@tollgate/hono";
import { PAY_TO, PAYER, stubFacilitator, stubScheme, TX } from "../../server/test/fixtures.ts";

const facilitator = stubFacilitator();
let server: ReturnType<typeof serve>;
let url: string;

beforeAll(async () => {
  const app = new Hono();
  app.use(paymentMiddleware({ facilitator, schemes: [stubScheme], routes: { "GET /weather": { price: "$0.01", network: "eip155:84532", payTo: PAY_TO } } }));
  app.get("/weather", (c) => c.json({ temp: 21 }));
  server = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/weather`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => facilitator.reset());

const fakeScheme = (signature: string): SchemeNetworkClient => ({
  scheme: "exact",
  createPaymentPayload: async (x402Version) => ({ x402Version, payload: { signature, authorization: { from: PAYER } } }),
});

describe("@x402/fetch against the hono adapter", () => {
  it("pays over v2 and reads the PAYMENT-RESPONSE", async () => {
    // The stand-in scheme has no default-asset table, so the reference spend controls are off.
    const pay = wrapFetchWithPaymentFromConfig(fetch, { schemes: [{ network: "eip155:84532", client: fakeScheme("0xv2") }], spendControls: false });
    const res = await pay(url);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ temp: 21 });
    const settlement = decodePaymentResponseHeader(res.headers.get("PAYMENT-RESPONSE")!);
    expect(settlement).toMatchObject({ success: true, transaction: TX, network: "eip155:84532" });
    expect(facilitator.verifyCalls[0]!.payload.payload).toMatchObject({ signature: "0xv2" });
    expect(facilitator.verifyCalls[0]!.payload.accepted).toEqual(facilitator.verifyCalls[0]!.requirements);
  });
});
