// Paid MCP tools over each transport a real deployment uses: the SDK's in-memory pair (one
// process), Streamable HTTP (a node HTTP server on port 0, a new McpServer per request sharing
// one paywall) and stdio (the server in a child process). The same cases run on each.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { PaymentRequirements } from "@tollgate/core";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  getPaymentReceipt,
  PAYMENT_META_KEY,
  PAYMENT_RESPONSE_META_KEY,
  PaymentFailedError,
  PaymentRefusedError,
  readPaymentRequired,
  spendingPolicy,
  wrapMcpClient,
  type PaymentInfo,
} from "@tollgate/mcp";
import { ANALYSIS, createDemo, NETWORK, PAYER, stubSchemeClient, TX, type Control, type Counters } from "./support/demo.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const stdioScript = fileURLToPath(new URL("./support/stdio-server.ts", import.meta.url));

interface Connection {
  client: Client;
  close(): Promise<void>;
}

async function inMemory(): Promise<Connection> {
  const demo = createDemo();
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await demo.createServer().connect(serverSide);
  const client = new Client({ name: "test-agent", version: "0.0.0" });
  await client.connect(clientSide);
  return { client, close: () => client.close() };
}

/** Stateless Streamable HTTP: every POST gets its own McpServer and transport, all on one paywall. */
async function streamableHttp(): Promise<Connection> {
  const demo = createDemo();
  const http: Server = createServer((req, res) => {
    const server = demo.createServer();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => {
      void transport.close();
      void server.close();
    });
    server
      .connect(transport)
      .then(() => transport.handleRequest(req, res))
      .catch((e: unknown) => {
        res.statusCode = 500;
        res.end(String(e));
      });
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const { port } = http.address() as AddressInfo;
  const client = new Client({ name: "test-agent", version: "0.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`)));
  return {
    client,
    async close() {
      await client.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/** The server in a child process: `node --import tsx`, one process, talking on its stdin/stdout. */
async function stdio(): Promise<Connection> {
  const client = new Client({ name: "test-agent", version: "0.0.0" });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: ["--import", "tsx", stdioScript], cwd: root, stderr: "inherit" }));
  return { client, close: () => client.close() };
}

const transports = { "in-memory": inMemory, "Streamable HTTP": streamableHttp, stdio } as const;

const text = (r: CallToolResult) => JSON.stringify(r);
const call = (c: Client, name: string, args: Record<string, unknown> = {}, meta?: Record<string, unknown>) =>
  c.callTool({ name, arguments: args, ...(meta ? { _meta: meta } : {}) }) as Promise<CallToolResult>;

async function stats(c: Client): Promise<Counters> {
  const r = await call(c, "stats");
  return JSON.parse((r.content[0] as { text: string }).text) as Counters;
}

async function steer(c: Client, control: Control): Promise<void> {
  await call(c, "control", control as Record<string, unknown>);
}

function payer(policy = spendingPolicy({ maxPerRequest: "$0.05", budget: "$1", networks: [NETWORK] })) {
  const scheme = stubSchemeClient();
  return { scheme, policy, schemes: [scheme] };
}

describe.each(Object.entries(transports))("paid MCP tools over %s", (_name, connect) => {
  let conn: Connection;
  beforeAll(async () => {
    conn = await connect();
  });
  afterAll(async () => {
    await conn?.close();
  });
  beforeEach(async () => {
    await steer(conn.client, {});
  });

  it("answers an unpaid call with the payment-required result and does not run the tool", async () => {
    const r = await call(conn.client, "financial_analysis", { ticker: "AAPL" });
    expect(r.isError).toBe(true);
    const required = r.structuredContent as Record<string, unknown> & { resource: { url: string }; accepts: { amount: string }[] };
    expect(required).toMatchObject({ x402Version: 2, error: "Payment required to access this resource", resource: { url: "mcp://tool/financial_analysis" } });
    expect(required.accepts).toMatchObject([{ scheme: "exact", network: NETWORK, amount: "10000" }]);
    expect(r.content).toEqual([{ type: "text", text: JSON.stringify(required) }]);
    expect(await stats(conn.client)).toMatchObject({ runs: {}, verify: 0, settle: 0 });
  });

  it("pays, runs the tool once, settles once, and returns the output with its receipt", async () => {
    const { scheme, policy } = payer();
    const paid = wrapMcpClient(conn.client, { schemes: [scheme], policy });
    const r = await paid.callTool({ name: "financial_analysis", arguments: { ticker: "MSFT" } });
    expect(r.isError).toBeFalsy();
    expect(r.content).toEqual([{ type: "text", text: ANALYSIS.replace("AAPL", "MSFT") }]);
    expect(r._meta?.[PAYMENT_RESPONSE_META_KEY]).toMatchObject({ success: true, transaction: TX, network: NETWORK, payer: PAYER });
    const info = getPaymentReceipt(r) as PaymentInfo;
    expect(info.receipt?.transaction).toBe(TX);
    expect(info.requirements).toMatchObject({ amount: "10000", network: NETWORK });
    expect(scheme.calls).toHaveLength(1);
    expect(policy.spent().usd).toBe("0.01");
    expect(await stats(conn.client)).toMatchObject({ runs: { financial_analysis: 1 }, verify: 1, settle: 1, lastPayer: PAYER });
  });

  it("refuses a price over the policy before anything is signed or sent", async () => {
    const { scheme, policy } = payer(spendingPolicy({ maxPerRequest: "$0.001", networks: [NETWORK] }));
    const paid = wrapMcpClient(conn.client, { schemes: [scheme], policy });
    const error = await paid.callTool({ name: "financial_analysis", arguments: { ticker: "AAPL" } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PaymentRefusedError);
    expect((error as PaymentRefusedError).code).toBe("max_per_request");
    expect(scheme.calls).toHaveLength(0);
    expect(policy.reserved().usd).toBe("0");
    expect(await stats(conn.client)).toMatchObject({ runs: {}, verify: 0, settle: 0 });
  });

  it("withholds the output when settlement fails: the payment-required result again", async () => {
    await steer(conn.client, { settle: "fail" });
    const { scheme, policy } = payer();
    const paid = wrapMcpClient(conn.client, { schemes: [scheme], policy });
    const error = (await paid.callTool({ name: "financial_analysis", arguments: { ticker: "AAPL" } }).catch((e: unknown) => e)) as PaymentFailedError<CallToolResult>;
    expect(error).toBeInstanceOf(PaymentFailedError);
    expect(error.reason).toBe("transaction_failed");
    expect(error.charged).toBe(false);
    const result = error.response!;
    expect(readPaymentRequired(result)).toMatchObject({ x402Version: 2, error: "transaction_failed: execution reverted", resource: { url: "mcp://tool/financial_analysis" } });
    expect(result._meta?.[PAYMENT_RESPONSE_META_KEY]).toMatchObject({ success: false, errorReason: "transaction_failed" });
    expect(text(result)).not.toContain("Financial analysis");
    // Handed over and not settled: it stays counted until it expires, never silently released.
    expect(policy.spent().usd).toBe("0");
    expect(policy.reserved().usd).toBe("0.01");
    expect(await stats(conn.client)).toMatchObject({ runs: { financial_analysis: 1 }, verify: 1, settle: 1 });
  });

  it("settles nothing when the tool returns an error or throws", async () => {
    const paid = wrapMcpClient(conn.client, payer());
    for (const name of ["failing_tool", "throwing_tool"]) {
      const error = (await paid.callTool({ name, arguments: {} }).catch((e: unknown) => e)) as PaymentFailedError<CallToolResult>;
      expect(error).toBeInstanceOf(PaymentFailedError);
      expect(error.reason).toBe("tool_error");
      expect(error.response?.isError).toBe(true);
      expect(error.response?._meta?.[PAYMENT_RESPONSE_META_KEY]).toBeUndefined();
    }
    expect(await stats(conn.client)).toMatchObject({ runs: { failing_tool: 1, throwing_tool: 1 }, verify: 2, settle: 0 });
  });

  it("gives a replayed payment no second output", async () => {
    const paid = wrapMcpClient(conn.client, payer());
    const first = await paid.callTool({ name: "financial_analysis", arguments: { ticker: "AAPL" } });
    const payload = getPaymentReceipt(first)!.payload;
    const replay = await call(conn.client, "financial_analysis", { ticker: "AAPL" }, { [PAYMENT_META_KEY]: payload });
    expect(readPaymentRequired(replay)).toMatchObject({ error: expect.stringMatching(/^duplicate_settlement/) });
    expect(text(replay)).not.toContain("Financial analysis");
    expect((await stats(conn.client)).settle).toBe(2);
  });

  it("serves concurrent copies of one payment once", async () => {
    await steer(conn.client, { settleDelayMs: 1_000 });
    const offer = readPaymentRequired(await call(conn.client, "financial_analysis", { ticker: "AAPL" })) as { accepts: PaymentRequirements[] };
    const accepted = offer.accepts[0]!;
    // One payment, sent three times at once.
    const inner = await stubSchemeClient().createPayload(accepted, { x402Version: 2 });
    const payload = { x402Version: 2, resource: { url: "mcp://tool/financial_analysis" }, accepted, payload: inner };
    const results = await Promise.all([1, 2, 3].map(() => call(conn.client, "financial_analysis", { ticker: "AAPL" }, { [PAYMENT_META_KEY]: payload })));
    const served = results.filter((r) => !r.isError);
    expect(served).toHaveLength(1);
    expect(served[0]!.content).toEqual([{ type: "text", text: ANALYSIS }]);
    for (const r of results.filter((x) => x.isError)) {
      expect(readPaymentRequired(r)).toMatchObject({ error: expect.stringMatching(/^duplicate_settlement/) });
      expect(text(r)).not.toContain("Financial analysis");
    }
    expect(await stats(conn.client)).toMatchObject({ runs: { financial_analysis: 1 }, verify: 1, settle: 1 });
  });
});
