// The paid-tool wrapper's rules, in one process (the SDK's in-memory transport pair): what is
// read from `_meta`, what runs, what is settled, what is returned, and how the paying client
// accounts for each outcome.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import type { PaymentRequirements } from "@tollgate/core";
import {
  createMcpPaywall,
  getPaymentReceipt,
  PAYMENT_META_KEY,
  PAYMENT_RESPONSE_META_KEY,
  PaymentFailedError,
  PaywallConfigError,
  readPaymentRequired,
  readPaymentResponse,
  spendingPolicy,
  wrapMcpClient,
  type McpPaywallConfig,
  type SettledEvent,
} from "@tollgate/mcp";
import { PAY_TO, PAYER, PENDING, stubFacilitator, stubScheme, TX, type StubFacilitator } from "../../server/test/fixtures.ts";
import { ANALYSIS, createDemo, NETWORK, stubSchemeClient, type Demo } from "./support/demo.ts";

const clients: Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
});

async function connect(server: McpServer): Promise<Client> {
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: "test-agent", version: "0.0.0" });
  await client.connect(clientSide);
  clients.push(client);
  return client;
}

async function demoClient(settings: Partial<McpPaywallConfig> = {}): Promise<{ demo: Demo; client: Client }> {
  const demo = createDemo(settings);
  return { demo, client: await connect(demo.createServer()) };
}

const call = (c: Client, name: string, args: Record<string, unknown>, meta?: Record<string, unknown>) =>
  c.callTool({ name, arguments: args, ...(meta ? { _meta: meta } : {}) }) as Promise<CallToolResult>;
const errorOf = (r: CallToolResult) => (readPaymentRequired(r) as { error?: string } | undefined)?.error;
const paying = (c: Client, extra: Partial<Parameters<typeof wrapMcpClient>[1]> = {}) =>
  wrapMcpClient(c, { schemes: [stubSchemeClient()], policy: spendingPolicy({ maxPerRequest: "$0.05", networks: [NETWORK] }), ...extra });

async function offerOf(c: Client, tool = "financial_analysis"): Promise<PaymentRequirements> {
  return (readPaymentRequired(await call(c, tool, { ticker: "AAPL" })) as { accepts: PaymentRequirements[] }).accepts[0]!;
}

async function paymentFor(accepted: PaymentRequirements) {
  return { x402Version: 2, resource: { url: "mcp://tool/financial_analysis" }, accepted, payload: await stubSchemeClient().createPayload(accepted, { x402Version: 2 }) };
}

describe("reading _meta[\"x402/payment\"]", () => {
  it.each([
    ["a string", "not a payment", /^invalid_payload: _meta\["x402\/payment"\]: /],
    ["null", null, /^invalid_payload: _meta\["x402\/payment"\]: /],
    ["version 1", { x402Version: 1, scheme: "exact", network: "base-sepolia", payload: {} }, /_meta\["x402\/payment"\]\.x402Version: must be 2/],
    ["a bad amount", { x402Version: 2, accepted: { scheme: "exact", network: NETWORK, amount: "ten", asset: "0x1", payTo: PAY_TO, maxTimeoutSeconds: 60 }, payload: {} }, /_meta\["x402\/payment"\]\.accepted\.amount: expected a non-negative integer string/],
    ["no payload", { x402Version: 2, accepted: { scheme: "exact", network: NETWORK, amount: "1", asset: "0x1", payTo: PAY_TO, maxTimeoutSeconds: 60 } }, /_meta\["x402\/payment"\]\.payload: /],
  ])("answers %s with the payment-required result naming the field, not a crash", async (_name, raw, error) => {
    const { demo, client } = await demoClient();
    const r = await call(client, "financial_analysis", { ticker: "AAPL" }, { [PAYMENT_META_KEY]: raw });
    expect(r.isError).toBe(true);
    expect(errorOf(r)).toMatch(error);
    expect(readPaymentRequired(r)).toMatchObject({ resource: { url: "mcp://tool/financial_analysis" }, accepts: [{ amount: "10000" }] });
    expect(demo.counters()).toMatchObject({ runs: {}, verify: 0, settle: 0 });
  });

  it("names the payment-identifier field of a bad id", async () => {
    const { demo, client } = await demoClient();
    const payment = { ...(await paymentFor(await offerOf(client))), extensions: { "payment-identifier": { info: { id: "short" } } } };
    const r = await call(client, "financial_analysis", { ticker: "AAPL" }, { [PAYMENT_META_KEY]: payment });
    expect(errorOf(r)).toMatch(/^invalid_payload: _meta\["x402\/payment"\]\.extensions\.payment-identifier\.info\.id: /);
    expect(demo.counters()).toMatchObject({ verify: 0 });
  });

  it("refuses a payment whose accepted differs from the tool's price, without asking the facilitator", async () => {
    const { demo, client } = await demoClient();
    const payment = await paymentFor({ ...(await offerOf(client)), amount: "1" });
    const r = await call(client, "financial_analysis", { ticker: "AAPL" }, { [PAYMENT_META_KEY]: payment });
    expect(errorOf(r)).toMatch(/^invalid_payment_requirements_mismatch: accepted\.amount/);
    expect(demo.counters()).toMatchObject({ runs: {}, verify: 0 });
  });

  it("answers a payment the facilitator refuses with its reason, and never runs the tool", async () => {
    const { demo, client } = await demoClient();
    demo.control({ verify: "invalid" });
    const error = (await paying(client).callTool({ name: "financial_analysis", arguments: { ticker: "AAPL" } }).catch((e: unknown) => e)) as PaymentFailedError<CallToolResult>;
    expect(error).toBeInstanceOf(PaymentFailedError);
    expect(error.reason).toBe("insufficient_funds: balance 0 < 10000");
    expect(error.charged).toBe(false);
    expect(demo.counters()).toMatchObject({ runs: {}, verify: 1, settle: 0 });
  });
});

describe("a missing Permit2 allowance (HTTP 412 from the paywall)", () => {
  it("is the same payment-required tool error, with the reason, and never runs the tool", async () => {
    const { demo, client } = await demoClient();
    demo.facilitator.verifyResult = { isValid: false, invalidReason: "permit2_allowance_required", invalidMessage: "approve Permit2 once", payer: PAYER };
    const error = (await paying(client).callTool({ name: "financial_analysis", arguments: { ticker: "AAPL" } }).catch((e: unknown) => e)) as PaymentFailedError<CallToolResult>;
    expect(error).toBeInstanceOf(PaymentFailedError);
    expect(error.reason).toBe("permit2_allowance_required: approve Permit2 once");
    expect(error.charged).toBe(false);
    expect(demo.counters()).toMatchObject({ runs: {}, verify: 1, settle: 0 });
  });
});

describe("settlement", () => {
  it("polls a pending settlement until it is final, then returns the output", async () => {
    const { demo, client } = await demoClient({ settlementTimeoutMs: 5_000 });
    demo.facilitator.settleQueue = [PENDING, PENDING];
    const r = await paying(client).callTool({ name: "financial_analysis", arguments: { ticker: "AAPL" } });
    expect(r.content).toEqual([{ type: "text", text: ANALYSIS }]);
    expect(readPaymentResponse(r)).toMatchObject({ success: true, transaction: TX });
    expect(demo.counters()).toMatchObject({ runs: { financial_analysis: 1 }, verify: 1, settle: 3 });
  });

  it("withholds the output of a settlement still pending at the deadline; the client counts it as maybe charged", async () => {
    const { demo, client } = await demoClient({ settlementTimeoutMs: 60 });
    demo.control({ settle: "pending" });
    const policy = spendingPolicy({ maxPerRequest: "$0.05", budget: "$1", networks: [NETWORK] });
    const error = (await paying(client, { policy }).callTool({ name: "financial_analysis", arguments: { ticker: "AAPL" } }).catch((e: unknown) => e)) as PaymentFailedError<CallToolResult>;
    expect(error).toBeInstanceOf(PaymentFailedError);
    expect(error.charged).toBe("unknown");
    expect(error.reason).toBe("settlement_pending");
    expect(errorOf(error.response!)).toMatch(/^settlement_pending/);
    expect(readPaymentResponse(error.response!)).toMatchObject({ success: false, errorReason: "settlement_pending" });
    expect(JSON.stringify(error.response)).not.toContain("Financial analysis");
    expect(policy.reserved().usd).toBe("0.01");
    expect(demo.counters().settle).toBeGreaterThan(1);
  });

  it("answers a facilitator that cannot be reached with an error result, nothing charged", async () => {
    const { demo, client } = await demoClient({ settlementTimeoutMs: 0 });
    demo.facilitator.settleResult = new Error("connection refused");
    const error = (await paying(client).callTool({ name: "financial_analysis", arguments: { ticker: "AAPL" } }).catch((e: unknown) => e)) as PaymentFailedError<CallToolResult>;
    expect(error).toBeInstanceOf(PaymentFailedError);
    expect(JSON.stringify(error.response)).not.toContain("Financial analysis");
    expect(readPaymentRequired(error.response!)).toBeUndefined();
    expect(JSON.parse((error.response!.content[0] as { text: string }).text)).toMatchObject({ reason: "unexpected_settle_error" });
    expect(error.charged).toBe("unknown");
  });

  it("serves a payment-identifier retry the cached result, without running the tool or settling again", async () => {
    const { demo, client } = await demoClient();
    const paid = paying(client, { extensions: { "payment-identifier": { info: { id: "retry-0123456789abcdef" } } } });
    const first = await paid.callTool({ name: "financial_analysis", arguments: { ticker: "AAPL" } });
    const payload = getPaymentReceipt(first)!.payload;
    expect(payload.x402Version === 2 && payload.extensions?.["payment-identifier"]).toMatchObject({ info: { required: false, id: "retry-0123456789abcdef" } });
    const again = await call(client, "financial_analysis", { ticker: "AAPL" }, { [PAYMENT_META_KEY]: payload });
    expect(again).toEqual(first);
    expect(demo.counters()).toMatchObject({ runs: { financial_analysis: 1 }, verify: 1, settle: 1 });
  });

  it("tells onSettled which tool was paid", async () => {
    const events: SettledEvent[] = [];
    const { client } = await demoClient({ onSettled: (e) => void events.push(e) });
    await paying(client).callTool({ name: "financial_analysis", arguments: { ticker: "AAPL" } });
    expect(events).toEqual([expect.objectContaining({ route: "financial_analysis", resource: expect.objectContaining({ url: "mcp://tool/financial_analysis" }), settlement: expect.objectContaining({ transaction: TX }) })]);
  });
});

/** A server with tools defined for one test, on the stub facilitator. */
function paywallWith(facilitator: StubFacilitator, settings: Partial<McpPaywallConfig> = {}) {
  return createMcpPaywall({ facilitator, schemes: [stubScheme], checkAtStart: false, settlementPollMs: 10, settlementTimeoutMs: 200, ...settings });
}
const price = { price: "$0.01", network: NETWORK, payTo: PAY_TO } as const;

describe("the tool's side", () => {
  it("settles nothing for output its outputSchema rejects, and returns no output", async () => {
    const facilitator = stubFacilitator();
    const paywall = paywallWith(facilitator);
    const server = new McpServer({ name: "t", version: "0" });
    paywall.tool("quote", { ...price, outputSchema: { price: z.number() } }, () => ({ content: [{ type: "text", text: "12" }], structuredContent: { price: "twelve" } })).register(server);
    const error = (await paying(await connect(server)).callTool({ name: "quote", arguments: {} }).catch((e: unknown) => e)) as PaymentFailedError<CallToolResult>;
    expect(error).toBeInstanceOf(PaymentFailedError);
    expect((error.response!.content[0] as { text: string }).text).toMatch(/^Output validation error: Invalid structured content for tool quote/);
    expect(JSON.stringify(error.response)).not.toContain("twelve");
    expect(facilitator.verifyCalls).toHaveLength(1);
    expect(facilitator.settleCalls).toHaveLength(0);
  });

  it("settles nothing for a result larger than maxResponseBytes", async () => {
    const facilitator = stubFacilitator();
    const server = new McpServer({ name: "t", version: "0" });
    paywallWith(facilitator, { maxResponseBytes: 100 }).tool("big", price, () => ({ content: [{ type: "text", text: "x".repeat(200) }] })).register(server);
    const error = (await paying(await connect(server)).callTool({ name: "big", arguments: {} }).catch((e: unknown) => e)) as PaymentFailedError<CallToolResult>;
    expect(JSON.parse((error.response!.content[0] as { text: string }).text)).toMatchObject({ reason: "resource_response_too_large" });
    expect(JSON.stringify(error.response)).not.toContain("xxxx");
    expect(facilitator.settleCalls).toHaveLength(0);
  });

  it("settle \"before\": settled before the tool runs, so even its error carries the receipt", async () => {
    const facilitator = stubFacilitator();
    const order: string[] = [];
    const settle = facilitator.settle.bind(facilitator);
    facilitator.settle = async (...a) => (order.push("settle"), settle(...a));
    const server = new McpServer({ name: "t", version: "0" });
    paywallWith(facilitator)
      .tool("send_email", { ...price, settle: "before" }, (extra) => {
        order.push(`run (settled: ${extra.payment.settlement?.success})`);
        return { isError: true, content: [{ type: "text", text: "mailbox full" }] };
      })
      .register(server);
    const error = (await paying(await connect(server)).callTool({ name: "send_email", arguments: {} }).catch((e: unknown) => e)) as PaymentFailedError<CallToolResult>;
    expect(order).toEqual(["settle", "run (settled: true)"]);
    expect(error.charged).toBe(true);
    expect(error.response?._meta?.[PAYMENT_RESPONSE_META_KEY]).toMatchObject({ success: true, transaction: TX });
  });

  it("hands the tool its arguments and the verified payment", async () => {
    const facilitator = stubFacilitator();
    const seen: unknown[] = [];
    const server = new McpServer({ name: "t", version: "0" });
    paywallWith(facilitator)
      .tool("echo", { ...price, inputSchema: z.object({ word: z.string() }) }, ({ word }, extra) => {
        seen.push({ word, payer: extra.payment.payer, amount: extra.payment.requirements.amount, route: extra.payment.route });
        return { content: [{ type: "text", text: word }] };
      })
      .register(server);
    const r = await paying(await connect(server)).callTool({ name: "echo", arguments: { word: "hi" } });
    expect(r.content).toEqual([{ type: "text", text: "hi" }]);
    expect(seen).toEqual([{ word: "hi", payer: PAYER, amount: "10000", route: "echo" }]);
  });

  it("is one paywall for many servers: a payment held by one server's call is refused on another's", async () => {
    const facilitator = stubFacilitator();
    facilitator.settleDelayMs = 1_000;
    const paywall = paywallWith(facilitator);
    const tool = paywall.tool("financial_analysis", price, () => ({ content: [{ type: "text", text: ANALYSIS }] }));
    const servers = [new McpServer({ name: "a", version: "0" }), new McpServer({ name: "b", version: "0" })];
    for (const s of servers) tool.register(s);
    const [a, b] = await Promise.all(servers.map(connect));
    const payment = await paymentFor(await offerOf(a!));
    const results = await Promise.all([a!, b!].map((c) => call(c, "financial_analysis", {}, { [PAYMENT_META_KEY]: payment })));
    expect(results.filter((r) => !r.isError)).toHaveLength(1);
    expect(errorOf(results.find((r) => r.isError)!)).toMatch(/^duplicate_settlement/);
    expect(facilitator.verifyCalls).toHaveLength(1);
  });

  it("checks the definition when it is made", () => {
    const paywall = paywallWith(stubFacilitator());
    expect(() => paywall.tool("has space", price, () => ({ content: [] }))).toThrow(PaywallConfigError);
    expect(() => paywall.tool("x/y", price, () => ({ content: [] }))).toThrow(PaywallConfigError);
    expect(() => paywall.tool("ok", { ...price, price: "12 DOGE" }, () => ({ content: [] }))).toThrow(/price "12 DOGE"/);
    expect(() => paywall.tool("ok", { ...price, network: "solana:mainnet" as never }, () => ({ content: [] }))).toThrow(/no "exact" scheme server/);
    expect(paywall.tool("market.quote-v2", price, () => ({ content: [] })).name).toBe("market.quote-v2");
  });

  it("names a dotted tool's resource mcp://tool/<name>", async () => {
    const server = new McpServer({ name: "t", version: "0" });
    paywallWith(stubFacilitator()).tool("market.quote-v2", price, () => ({ content: [] })).register(server);
    const r = await call(await connect(server), "market.quote-v2", {});
    expect(readPaymentRequired(r)).toMatchObject({ resource: { url: "mcp://tool/market.quote-v2" } });
  });
});

describe("the paying client", () => {
  it("passes free tools' results through untouched, with no receipt", async () => {
    const { client } = await demoClient();
    const paid = paying(client);
    const r = await paid.callTool({ name: "stats", arguments: {} });
    expect(r.isError).toBeFalsy();
    expect(getPaymentReceipt(r)).toBeUndefined();
  });

  it("reads a PaymentRequired from content[0].text when structuredContent is absent", async () => {
    const { client } = await demoClient();
    const unpaid = await call(client, "financial_analysis", { ticker: "AAPL" });
    const textOnly: CallToolResult = { isError: true, content: unpaid.content };
    expect(readPaymentRequired(textOnly)).toEqual(unpaid.structuredContent);
    // Not an error: a tool's own data, never taken for a payment request.
    expect(readPaymentRequired({ content: unpaid.content, structuredContent: unpaid.structuredContent })).toBeUndefined();
  });

  it("refuses a v1 PaymentRequired before signing (the MCP transport is v2)", async () => {
    const server = new McpServer({ name: "t", version: "0" });
    const v1 = { x402Version: 1, error: "", accepts: [{ scheme: "exact", network: "base-sepolia", maxAmountRequired: "10000", resource: "mcp://tool/old", description: "", mimeType: "", payTo: PAY_TO, maxTimeoutSeconds: 60, asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e" }] };
    server.registerTool("old", {}, () => ({ isError: true, structuredContent: v1, content: [{ type: "text", text: JSON.stringify(v1) }] }));
    const scheme = stubSchemeClient();
    const paid = wrapMcpClient(await connect(server), { schemes: [scheme] });
    await expect(paid.callTool({ name: "old", arguments: {} })).rejects.toThrow(/v2 only/);
    expect(scheme.calls).toHaveLength(0);
  });
});
