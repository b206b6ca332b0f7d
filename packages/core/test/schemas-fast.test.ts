import { describe, expect, it } from "vitest";
import { fastVerifyRequest, verifyRequestSchema } from "../src/schemas.ts";

const requirements = () => ({
  scheme: "exact",
  network: "eip155:84532",
  amount: "1000",
  asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
  payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
  maxTimeoutSeconds: 60,
  extra: { name: "USDC", version: "2" },
});
const body = (): Record<string, any> => ({
  x402Version: 2,
  paymentPayload: {
    x402Version: 2,
    resource: { url: "https://api.example/x", description: "d", mimeType: "application/json" },
    accepted: requirements(),
    payload: { signature: "0x12", authorization: { from: "0x1" } },
    extensions: { foo: { bar: 1 } },
    unknownField: [1, 2],
  },
  paymentRequirements: { ...requirements(), more: true },
});

// Every mutation: the fast path may decline, but whatever it accepts zod accepts, with the same value.
const mutations: [string, (b: Record<string, any>) => void][] = [
  ["none", () => {}],
  ["no top version", (b) => delete b.x402Version],
  ["top version 1", (b) => (b.x402Version = 1)],
  ["top version 3", (b) => (b.x402Version = 3)],
  ["no resource", (b) => delete b.paymentPayload.resource],
  ["resource null", (b) => (b.paymentPayload.resource = null)],
  ["resource url missing", (b) => delete b.paymentPayload.resource.url],
  ["resource url long", (b) => (b.paymentPayload.resource.url = "x".repeat(4097))],
  ["mimeType long", (b) => (b.paymentPayload.resource.mimeType = "x".repeat(257))],
  ["payload array", (b) => (b.paymentPayload.payload = [])],
  ["payload null", (b) => (b.paymentPayload.payload = null)],
  ["payload missing", (b) => delete b.paymentPayload.payload],
  ["extensions string", (b) => (b.paymentPayload.extensions = "x")],
  ["payload version 1", (b) => (b.paymentPayload.x402Version = 1)],
  ["payload version '2'", (b) => (b.paymentPayload.x402Version = "2")],
  ["scheme empty", (b) => (b.paymentRequirements.scheme = "")],
  ["scheme long", (b) => (b.paymentRequirements.scheme = "s".repeat(65))],
  ["network bad", (b) => (b.paymentRequirements.network = "base-sepolia")],
  ["network long", (b) => (b.paymentRequirements.network = `eip155:${"1".repeat(60)}`)],
  ["amount number", (b) => (b.paymentRequirements.amount = 1000)],
  ["amount negative", (b) => (b.paymentRequirements.amount = "-1")],
  ["amount huge", (b) => (b.paymentRequirements.amount = "1".repeat(80))],
  ["amount decimal", (b) => (b.paymentRequirements.amount = "1.5")],
  ["asset empty", (b) => (b.paymentPayload.accepted.asset = "")],
  ["payTo long", (b) => (b.paymentRequirements.payTo = "p".repeat(257))],
  ["timeout 0", (b) => (b.paymentRequirements.maxTimeoutSeconds = 0)],
  ["timeout fraction", (b) => (b.paymentRequirements.maxTimeoutSeconds = 1.5)],
  ["timeout huge", (b) => (b.paymentRequirements.maxTimeoutSeconds = 86_400 * 367)],
  ["timeout string", (b) => (b.paymentRequirements.maxTimeoutSeconds = "60")],
  ["timeout NaN", (b) => (b.paymentRequirements.maxTimeoutSeconds = Number.NaN)],
  ["extra null", (b) => (b.paymentRequirements.extra = null)],
  ["extra array", (b) => (b.paymentRequirements.extra = [])],
  ["no extra", (b) => delete b.paymentRequirements.extra],
  ["requirements missing", (b) => delete b.paymentRequirements],
  ["accepted array", (b) => (b.paymentPayload.accepted = [requirements()])],
  ["own __proto__", (b) => (b.paymentPayload.payload = JSON.parse('{"__proto__": {"x": 1}}'))],
  ["own constructor", (b) => (b.paymentPayload.payload = { constructor: "x" })],
];

describe("fastVerifyRequest", () => {
  it.each(mutations)("%s: accepts only what zod accepts, giving zod's value", (name, mutate) => {
    const b = body();
    mutate(b);
    const viaZod = verifyRequestSchema.safeParse(JSON.parse(JSON.stringify(b)));
    const fast = fastVerifyRequest(JSON.parse(JSON.stringify(b)));
    if (fast !== undefined) {
      expect(viaZod.success).toBe(true);
      expect(fast).toEqual(viaZod.data);
    }
    // The valid shapes must take the fast path, or it buys nothing.
    if (["none", "no top version", "no resource", "no extra"].includes(name)) expect(fast).toBeDefined();
    if (!viaZod.success) expect(fast).toBeUndefined();
  });

  it("declines non-objects", () => {
    for (const v of [null, undefined, 1, "x", [], [body()]]) expect(fastVerifyRequest(v)).toBeUndefined();
  });
});
