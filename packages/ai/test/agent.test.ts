// An LLM agent paying through one tool: the AI SDK's generateText, driven by the SDK's mock
// language model (no model, no network beyond loopback), calls paidFetchTool on a paid hono
// route (stub scheme and facilitator, real HTTP), is refused by its policy over a price
// (nothing signed, the loop goes on), and calls a paid MCP tool bridged by paidMcpTools.
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { generateText, stepCountIs } from "ai";
import { Hono } from "hono";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_MAX_BODY_CHARS, paidFetchTool, paidMcpTools, spendingPolicy, type McpToolResult, type PaidFetchResult, type RefusedResult } from "@tollgate/ai";
import { createPaymentClient } from "@tollgate/core";
import { paymentMiddleware } from "@tollgate/hono";
import { ASSET, PAY_TO, PAYER, stubFacilitator, stubScheme, TX } from "../../server/test/fixtures.ts";
import { ANALYSIS, createDemo, NETWORK, stubSchemeClient } from "../../mcp/test/support/demo.ts";
import { scriptedModel, toolResultsIn } from "./support/model.ts";

const facilitator = stubFacilitator();
let base: string;
let close: () => Promise<void>;
let runs = 0;

beforeAll(async () => {
  const app = new Hono();
  app.use(
    paymentMiddleware({
      facilitator,
      schemes: [stubScheme],
      routes: {
        "GET /weather": { price: "$0.01", network: NETWORK, payTo: PAY_TO, description: "Weather" },
        "GET /premium": { price: "$1", network: NETWORK, payTo: PAY_TO, description: "Premium report" },
        "GET /big": { price: "$0.01", network: NETWORK, payTo: PAY_TO },
      },
    }),
  );
  app.get("/weather", (c) => (runs++, c.json({ forecast: "sunny" })));
  app.get("/premium", (c) => (runs++, c.json({ report: "secret" })));
  app.get("/big", (c) => (runs++, c.text("x".repeat(DEFAULT_MAX_BODY_CHARS + 100))));
  app.get("/free", (c) => c.text("free"));
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    });
});
afterAll(async () => close?.());
beforeEach(() => {
  facilitator.reset();
  runs = 0;
});

const policy = () => spendingPolicy({ maxPerRequest: "$0.05", budget: "$1", networks: [NETWORK] });

describe("paidFetchTool in an agent loop", () => {
  it("the model fetches a paid route: 200, the receipt in the tool result, the policy's spending updated", async () => {
    const scheme = stubSchemeClient();
    const spending = policy();
    const model = scriptedModel([
      { toolCalls: [{ toolName: "paidFetch", input: { url: `${base}/weather` } }] },
      (prompt) => {
        const [result] = toolResultsIn(prompt) as PaidFetchResult[];
        return { text: result?.outcome === "response" ? `It is ${JSON.parse(result.body).forecast}; paid $${result.paid?.amountUsd}.` : "failed" };
      },
    ]);
    const result = await generateText({ model, tools: { paidFetch: paidFetchTool({ schemes: [scheme], policy: spending }) }, stopWhen: stepCountIs(5), prompt: "What is the weather?" });

    expect(result.text).toBe("It is sunny; paid $0.01.");
    expect(result.steps).toHaveLength(2);
    const output = result.steps[0]!.toolResults[0]!.output as PaidFetchResult;
    expect(output).toMatchObject({
      outcome: "response",
      ok: true,
      status: 200,
      body: JSON.stringify({ forecast: "sunny" }),
      truncated: false,
      paid: { amountUsd: "0.01", amountAtomic: "10000", asset: ASSET, network: NETWORK, payTo: PAY_TO, payer: PAYER, transaction: TX, settled: true },
    });
    expect(output.outcome === "response" && output.contentType).toMatch(/^application\/json/);
    expect(scheme.calls).toHaveLength(1);
    expect(facilitator.settleCalls).toHaveLength(1);
    expect(runs).toBe(1);
    expect(spending.spent().usd).toBe("0.01");
    expect(spending.remaining().usd).toBe("0.99");
  });

  it("the policy refuses an over-price route: the result says nothing was paid and why, nothing is signed, and the loop goes on", async () => {
    const scheme = stubSchemeClient();
    const spending = policy();
    const model = scriptedModel([
      { toolCalls: [{ toolName: "paidFetch", input: { url: `${base}/premium` } }] },
      // The model reads the refusal and turns to the cheaper source.
      (prompt) => {
        const [refused] = toolResultsIn(prompt) as PaidFetchResult[];
        expect(refused?.outcome).toBe("refused");
        return { toolCalls: [{ toolName: "paidFetch", input: { url: `${base}/weather` } }] };
      },
      { text: "The premium report is over my budget; the weather is sunny." },
    ]);
    const result = await generateText({ model, tools: { paidFetch: paidFetchTool({ schemes: [scheme], policy: spending }) }, stopWhen: stepCountIs(5), prompt: "Get the premium report." });

    expect(result.steps).toHaveLength(3);
    expect(result.text).toBe("The premium report is over my budget; the weather is sunny.");
    const refused = result.steps[0]!.toolResults[0]!.output as RefusedResult;
    expect(refused).toMatchObject({ outcome: "refused", paid: false, code: "max_per_request", price: { amountUsd: "1", network: NETWORK, payTo: PAY_TO } });
    expect(refused.message).toMatch(/^Not paid: the spending policy refused \$1 on eip155:84532 for http:\/\/127\.0\.0\.1:\d+\/premium \(max_per_request: .*\)\. Nothing was signed or sent, and nothing was paid\.$/);
    // The refusal was for /premium only: one signature in all, for /weather.
    expect(scheme.calls.map((r) => r.amount)).toEqual(["10000"]);
    expect(runs).toBe(1);
    expect(spending.spent().usd).toBe("0.01");
    expect(result.steps[1]!.toolResults[0]!.output).toMatchObject({ outcome: "response", status: 200, paid: { amountUsd: "0.01" } });
  });

  it("says whether a failed payment cost money, as a result the model reads", async () => {
    const scheme = stubSchemeClient();
    facilitator.settleResult = { success: false, errorReason: "transaction_failed", errorMessage: "execution reverted", transaction: "", network: NETWORK, payer: PAYER };
    const model = scriptedModel([{ toolCalls: [{ toolName: "paidFetch", input: { url: `${base}/weather` } }] }, { text: "payment failed" }]);
    const result = await generateText({ model, tools: { paidFetch: paidFetchTool({ schemes: [scheme], policy: policy() }) }, stopWhen: stepCountIs(3), prompt: "weather" });
    expect(result.steps[0]!.toolResults[0]!.output).toMatchObject({ outcome: "payment_failed", charged: false, reason: "transaction_failed", payment: { amountUsd: "0.01" } });
    expect((result.steps[0]!.toolResults[0]!.output as { message: string }).message).toMatch(/the server reports you were not charged/);
    expect(result.text).toBe("payment failed");
  });

  it("truncates a long body to the documented cap, reads free routes unpaid, and shares one payment client's budget", async () => {
    const scheme = stubSchemeClient();
    const spending = spendingPolicy({ maxPerRequest: "$0.05", budget: "$0.01", networks: [NETWORK] });
    const client = createPaymentClient({ schemes: [scheme], policy: spending });
    const model = scriptedModel([
      { toolCalls: [{ toolName: "paidFetch", input: { url: `${base}/big` } }, { toolName: "paidFetch", input: { url: `${base}/free` } }] },
      { toolCalls: [{ toolName: "paidFetch", input: { url: `${base}/weather` } }, { toolName: "paidFetch", input: { url: "file:///etc/passwd" } }] },
      { text: "done" },
    ]);
    const result = await generateText({ model, tools: { paidFetch: paidFetchTool({ client }) }, stopWhen: stepCountIs(5), prompt: "go" });
    const [big, free] = result.steps[0]!.toolResults.map((r) => r.output as PaidFetchResult);
    expect(big).toMatchObject({ outcome: "response", status: 200, truncated: true, paid: { amountUsd: "0.01" } });
    expect(big?.outcome === "response" && big.body.length).toBe(DEFAULT_MAX_BODY_CHARS);
    expect(free).toMatchObject({ outcome: "response", status: 200, body: "free", paid: null });
    const [weather, file] = result.steps[1]!.toolResults.map((r) => r.output as PaidFetchResult);
    expect(weather).toMatchObject({ outcome: "refused", paid: false, code: "budget_exceeded" });
    expect(file).toMatchObject({ outcome: "error", paid: false });
    expect(scheme.calls).toHaveLength(1);
  });
});

describe("paidMcpTools in an agent loop", () => {
  it("bridges an MCP server's tools; the model's call of a paid tool is paid once, within the policy", async () => {
    const demo = createDemo();
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await demo.createServer().connect(serverSide);
    const mcp = new Client({ name: "agent", version: "0.0.0" });
    await mcp.connect(clientSide);
    try {
      const scheme = stubSchemeClient();
      const spending = policy();
      const tools = await paidMcpTools(mcp, { schemes: [scheme], policy: spending, tools: ["financial_analysis", "stats"] });
      expect(Object.keys(tools).sort()).toEqual(["financial_analysis", "stats"]);

      const model = scriptedModel([
        { toolCalls: [{ toolName: "financial_analysis", input: { ticker: "NVDA" } }] },
        (prompt) => ({ text: (toolResultsIn(prompt)[0] as McpToolResult).text }),
      ]);
      const result = await generateText({ model, tools, stopWhen: stepCountIs(4), prompt: "Analyse NVDA." });

      expect(result.text).toBe(ANALYSIS.replace("AAPL", "NVDA"));
      expect(result.steps[0]!.toolResults[0]!.output).toMatchObject({
        outcome: "result",
        isError: false,
        text: ANALYSIS.replace("AAPL", "NVDA"),
        paid: { amountUsd: "0.01", network: NETWORK, payTo: PAY_TO, transaction: TX, settled: true },
      });
      expect(scheme.calls).toHaveLength(1);
      expect(demo.counters()).toMatchObject({ runs: { financial_analysis: 1 }, verify: 1, settle: 1 });
      expect(spending.spent().usd).toBe("0.01");
      // The tool's JSON Schema reached the model.
      const sent = model.doGenerateCalls[0]!.tools?.find((t) => t.name === "financial_analysis");
      expect(sent).toMatchObject({ type: "function", inputSchema: { type: "object", properties: { ticker: { type: "string" } } } });

      // Over the policy's price: refused, nothing signed, the tool never ran again.
      const strict = await paidMcpTools(mcp, { schemes: [scheme], policy: spendingPolicy({ maxPerRequest: "$0.001", networks: [NETWORK] }) });
      const refusing = scriptedModel([{ toolCalls: [{ toolName: "financial_analysis", input: { ticker: "AAPL" } }] }, { text: "too expensive" }]);
      const refused = await generateText({ model: refusing, tools: strict, stopWhen: stepCountIs(3), prompt: "Analyse AAPL." });
      expect(refused.steps[0]!.toolResults[0]!.output).toMatchObject({ outcome: "refused", paid: false, code: "max_per_request", price: { amountUsd: "0.01" } });
      expect(refused.text).toBe("too expensive");
      expect(scheme.calls).toHaveLength(1);
      expect(demo.counters()).toMatchObject({ runs: { financial_analysis: 1 }, verify: 1, settle: 1 });
    } finally {
      await mcp.close();
    }
  });
});
