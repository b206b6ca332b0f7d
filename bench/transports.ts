// What paying costs on each transport: the p50 of a paid call minus the p50 of the same call
// unpaid, over HTTP (hono + @tollgate/fetch), MCP (Streamable HTTP + @tollgate/mcp) and A2A
// (JSON-RPC + @tollgate/a2a, the a2a tests' image agent), on
// one local chain (anvil, instant mining) with our facilitator. Same handler, same price, same
// payer; calls are sequential and the transports take turns in blocks so background load hits
// them alike.
//
//   npx tsx bench/transports.ts [--requests=60] [--block=10]
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { Hono } from "hono";
import { privateKeyToAccount } from "viem/accounts";
import { z } from "zod";
import type { Network } from "@tollgate/core";
import { startLocalNetwork } from "@tollgate/devnet";
import { exactEvmClient, exactEvmServer } from "@tollgate/evm";
import { getPaymentReceipt as httpReceipt, spendingPolicy, wrapFetch } from "@tollgate/fetch";
import { paymentMiddleware } from "@tollgate/hono";
import { createMcpPaywall, getPaymentReceipt as mcpReceipt, wrapMcpClient } from "@tollgate/mcp";
import { getPaymentReceipt as a2aReceipt, wrapA2aClient } from "@tollgate/a2a";
import { startMerchant, userMessage } from "../packages/a2a/test/support/merchant.ts";
import { startTollgateFacilitator } from "../test/support/tollgate.ts";
import { summarize, type LatencySummary } from "./official.ts";

const arg = (name: string, fallback: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback);
const REQUESTS = arg("requests", 60);
const BLOCK = arg("block", 10);

const net = await startLocalNetwork({ payers: 1 });
const facilitator = await startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, privateKey: net.accounts.facilitator.privateKey });
const network = net.network as Network;
const usdc = net.usdc;
const schemes = [exactEvmServer({ assets: [{ network, address: usdc.address, decimals: usdc.decimals, name: usdc.name, version: usdc.version, symbol: "USDC" }] })];
const route = { price: "$0.01", network, payTo: net.accounts.payee.address };
const answer = (q: string) => ({ answer: `report for ${q}` });

// HTTP: the same handler free and paid.
const app = new Hono();
app.use(paymentMiddleware({ facilitator: facilitator.url, schemes, routes: { "GET /paid": route } }));
app.get("/free", (c) => c.json(answer("free")));
app.get("/paid", (c) => c.json(answer("paid")));
const httpServer = await new Promise<ReturnType<typeof serve>>((resolve) => {
  const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
});
const httpUrl = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;

// MCP: one free tool and the same tool paid, stateless Streamable HTTP.
const paywall = createMcpPaywall({ facilitator: facilitator.url, schemes });
const paid = paywall.tool("report_paid", { ...route, inputSchema: { q: z.string() } }, ({ q }) => ({ content: [{ type: "text", text: JSON.stringify(answer(q)) }] }));
const mcpServer: Server = createServer((req, res) => {
  const server = new McpServer({ name: "bench", version: "0.0.0" });
  paid.register(server);
  server.registerTool("report_free", { inputSchema: { q: z.string() } }, ({ q }) => ({ content: [{ type: "text", text: JSON.stringify(answer(q)) }] }));
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on("close", () => void server.close());
  void server.connect(transport).then(() => transport.handleRequest(req, res));
});
await new Promise<void>((resolve) => mcpServer.listen(0, "127.0.0.1", resolve));
const mcpUrl = new URL(`http://127.0.0.1:${(mcpServer.address() as AddressInfo).port}/mcp`);

const payer = net.accounts.payers[0]!;
const policy = () => spendingPolicy({ maxPerRequest: "$0.05", budget: "$100", networks: [network], usdAssets: [{ network, asset: usdc.address, decimals: usdc.decimals }] });
const clientSchemes = [exactEvmClient({ account: privateKeyToAccount(payer.privateKey) })];
const pay = wrapFetch(fetch, { schemes: clientSchemes, policy: policy() });
const mcp = new Client({ name: "bench", version: "0.0.0" });
await mcp.connect(new StreamableHTTPClientTransport(mcpUrl));
const payingMcp = wrapMcpClient(mcp, { schemes: clientSchemes, policy: policy() });

// A2A: the same agent with and without the paywall.
const a2aPrice = { price: "$0.01", network, payTo: net.accounts.payee.address, description: "Generate an image" };
const merchantPaid = await startMerchant({ facilitator: facilitator.url, schemes, price: a2aPrice, paywall: { settlementTimeoutMs: 60_000, settlementPollMs: 200 } });
const merchantFree = await startMerchant({ unpaid: true });
const a2aFree = await merchantFree.client();
const a2aPaid = wrapA2aClient(await merchantPaid.client(), { schemes: clientSchemes, policy: policy() });
const completed = (task: unknown) => (task as { status?: { state?: unknown } }).status?.state;
const a2aDone = completed(await a2aFree.sendMessage(userMessage("warm-up")));

type Call = () => Promise<void>;
const calls: Record<string, Call> = {
  "http free": async () => {
    const res = await fetch(`${httpUrl}/free`);
    if (res.status !== 200) throw new Error(`http free: ${res.status}`);
    await res.arrayBuffer();
  },
  "http paid": async () => {
    const res = await pay(`${httpUrl}/paid`);
    await res.arrayBuffer();
    if (res.status !== 200 || !httpReceipt(res)?.receipt?.success) throw new Error(`http paid: ${res.status}`);
  },
  "mcp free": async () => {
    const r = await mcp.callTool({ name: "report_free", arguments: { q: "free" } });
    if (r.isError) throw new Error("mcp free failed");
  },
  "a2a free": async () => {
    const task = await a2aFree.sendMessage(userMessage("a cat"));
    if (completed(task) !== a2aDone) throw new Error(`a2a free: ${JSON.stringify(completed(task))}`);
  },
  "a2a paid": async () => {
    const task = await a2aPaid.sendMessage(userMessage("a cat"));
    if (completed(task) !== a2aDone || !a2aReceipt(task as never)?.receipt?.success) throw new Error(`a2a paid: ${JSON.stringify(completed(task))}`);
  },
  "mcp paid": async () => {
    const r = await payingMcp.callTool({ name: "report_paid", arguments: { q: "paid" } });
    if (r.isError || !mcpReceipt(r)?.receipt?.success) throw new Error(`mcp paid failed: ${JSON.stringify(r).slice(0, 300)}`);
  },
};

const samples: Record<string, number[]> = Object.fromEntries(Object.keys(calls).map((k) => [k, []]));
for (const call of Object.values(calls)) for (let i = 0; i < 3; i++) await call(); // warm-up
for (let done = 0; done < REQUESTS; done += BLOCK) {
  for (const [name, call] of Object.entries(calls)) {
    for (let i = 0; i < Math.min(BLOCK, REQUESTS - done); i++) {
      const t = performance.now();
      await call();
      samples[name]!.push(performance.now() - t);
    }
  }
}
const s: Record<string, LatencySummary> = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)]));
console.log(`${REQUESTS} sequential calls each, local chain (anvil), our facilitator`);
console.log("call         p50 ms   p95 ms");
for (const [k, v] of Object.entries(s)) console.log(`${k.padEnd(12)} ${String(v.medianMs).padStart(7)} ${String(v.p95Ms).padStart(8)}`);
const http = s["http paid"]!.medianMs - s["http free"]!.medianMs;
const over = s["mcp paid"]!.medianMs - s["mcp free"]!.medianMs;
const a2a = s["a2a paid"]!.medianMs - s["a2a free"]!.medianMs;
console.log(`p50 overhead of paying: HTTP ${http.toFixed(2)} ms, MCP ${over.toFixed(2)} ms (MCP/HTTP ${(over / http).toFixed(2)}x), A2A ${a2a.toFixed(2)} ms (A2A/HTTP ${(a2a / http).toFixed(2)}x)`);

await mcp.close();
await merchantPaid.close();
await merchantFree.close();
mcpServer.closeAllConnections();
await new Promise<void>((r) => mcpServer.close(() => r()));
await new Promise<void>((r) => httpServer.close(() => r()));
await facilitator.close();
await net.stop();
