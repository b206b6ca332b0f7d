/**
 * Wire compatibility with the reference client: @x402/fetch reads the Next adapter's 402 (route
 * handler and proxy forms), pays with a registered scheme client, and decodes its
 * PAYMENT-RESPONSE. The scheme client is a stand-in (no chain): what is tested is the HTTP
 * framing, not the signature.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { decodePaymentResponseHeader, wrapFetchWithPaymentFromConfig, type SchemeNetworkClient } from "@x402/fetch";
import { createPaywall, paymentProxy, withPayment, withPaywall } from "@tollgate/next";
import { PAY_TO, PAYER, stubFacilitator, stubScheme, TX } from "../../server/test/fixtures.ts";
import { serveLikeNext, type Running } from "./next-like.ts";

const facilitator = stubFacilitator();
const option = { price: "$0.01", network: "eip155:84532", payTo: PAY_TO } as const;
let server: Running;

beforeAll(async () => {
  const paywall = createPaywall({ facilitator, schemes: [stubScheme], routes: { "GET /weather": option } });
  server = await serveLikeNext({
    proxy: paymentProxy({ facilitator, schemes: [stubScheme], routes: { "GET /proxied": { ...option, price: "$0.03", settle: "before" } } }),
    routes: {
      "/weather": { GET: withPaywall(() => Response.json({ temp: 21 }), paywall) },
      "/report": { GET: withPayment(() => Response.json({ report: "ok" }), { ...option, price: "$0.02" }, paywall, "report") },
      "/proxied": { GET: () => Response.json({ proxied: true }) },
    },
  });
});
afterAll(() => server?.close());
beforeEach(() => facilitator.reset());

const fakeScheme = (signature: string): SchemeNetworkClient => ({
  scheme: "exact",
  createPaymentPayload: async (x402Version) => ({ x402Version, payload: { signature, authorization: { from: PAYER } } }),
});

describe("@x402/fetch against the Next adapter", () => {
  it.each([
    ["withPaywall", "/weather", { temp: 21 }, "10000"],
    ["withPayment", "/report", { report: "ok" }, "20000"],
    ["paymentProxy", "/proxied", { proxied: true }, "30000"],
  ])("pays %s over v2 and reads the PAYMENT-RESPONSE", async (_, path, body, amount) => {
    // The stand-in scheme has no default-asset table, so the reference spend controls are off.
    const pay = wrapFetchWithPaymentFromConfig(fetch, { schemes: [{ network: "eip155:84532", client: fakeScheme("0xv2") }], spendControls: false });
    const res = await pay(server.url + path);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(body);
    const settlement = decodePaymentResponseHeader(res.headers.get("PAYMENT-RESPONSE")!);
    expect(settlement).toMatchObject({ success: true, transaction: TX, network: "eip155:84532" });
    expect(facilitator.verifyCalls[0]!.payload.payload).toMatchObject({ signature: "0xv2" });
    expect(facilitator.verifyCalls[0]!.payload.accepted).toEqual(facilitator.verifyCalls[0]!.requirements);
    expect(facilitator.settleCalls[0]!.requirements.amount).toBe(amount);
  });
});
