/**
 * The specialists of `tollgate demo agents`: four paid services on loopback, each declared for
 * discovery (bazaar) with its own price, payee and transport.
 *
 *   Spot Prices        HTTP  GET /prices          $0.01   ETH prices on three exchanges
 *   Premium Oracle     HTTP  GET /oracle          $5.00   "the best arbitrage", at a price no sane budget pays
 *   Exchange Fees      MCP   tool exchange_fees   $0.02   trading fees per exchange (Streamable HTTP)
 *   Arbitrage Analyst  A2A   skill find-arbitrage $0.03   computes the best route from prices and fees
 *
 * The market is fixed (the demo's answer is reproducible); amounts are integers (cents, basis
 * points) and bigint, never floating point.
 */
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { AGENT_CARD_PATH, Role, TaskState, type AgentCard, type Part } from "@a2a-js/sdk";
import { DefaultRequestHandler, InMemoryTaskStore, type AgentExecutor } from "@a2a-js/sdk/server";
import { agentCardHandler, jsonRpcHandler, UserBuilder } from "@a2a-js/sdk/server/express";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import express from "express";
import { Hono } from "hono";
import { z } from "zod";
import type { FacilitatorClient, Network, SchemeServer } from "@tollgate/core";
import { createA2aPaywall, paidAgentCard } from "@tollgate/a2a";
import { paymentMiddleware } from "@tollgate/hono";
import { createMcpPaywall } from "@tollgate/mcp";

/** ETH/USDC on three exchanges, in cents. */
export const MARKET_CENTS: Record<string, bigint> = { alpha: 301_050n, beta: 302_410n, gamma: 299_870n };
/** Taker fee per exchange, in basis points. */
export const FEES_BPS: Record<string, bigint> = { alpha: 10n, beta: 15n, gamma: 20n };

export interface Specialist {
  name: string;
  transport: "HTTP" | "MCP" | "A2A";
  price: string;
  payTo: string;
  /** Where it is called. */
  url: string;
}

export interface SpecialistsOptions {
  facilitator: FacilitatorClient | string;
  schemes: SchemeServer[];
  network: Network;
  /** One payee per service (index 0 prices, 1 oracle, 2 fees, 3 analyst). */
  payees: readonly string[];
}

export interface RunningSpecialists {
  services: Specialist[];
  close(): Promise<void>;
}

export async function startSpecialists(o: SpecialistsOptions): Promise<RunningSpecialists> {
  const closers: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
  };
  try {
    const http = await startPriceApi(o);
    closers.push(http.close);
    const mcp = await startFeesTool(o);
    closers.push(mcp.close);
    const a2a = await startAnalystAgent(o);
    closers.push(a2a.close);
    return {
      services: [
        { name: "Spot Prices", transport: "HTTP", price: "$0.01", payTo: o.payees[0]!, url: `${http.url}/prices` },
        { name: "Premium Oracle", transport: "HTTP", price: "$5.00", payTo: o.payees[1]!, url: `${http.url}/oracle` },
        { name: "Exchange Fees", transport: "MCP", price: "$0.02", payTo: o.payees[2]!, url: mcp.url },
        { name: "Arbitrage Analyst", transport: "A2A", price: "$0.03", payTo: o.payees[3]!, url: a2a.url },
      ],
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

// ------------------------------------------------------------------ HTTP: prices and the oracle

async function startPriceApi(o: SpecialistsOptions): Promise<{ url: string; close: () => Promise<void> }> {
  const app = new Hono();
  app.use(
    paymentMiddleware({
      facilitator: o.facilitator,
      schemes: o.schemes,
      checkAtStart: false,
      routes: {
        "GET /prices": {
          price: "$0.01",
          network: o.network,
          payTo: o.payees[0]!,
          description: "ETH spot prices on the alpha, beta and gamma exchanges",
          mimeType: "application/json",
          serviceName: "Spot Prices",
          tags: ["prices", "exchanges", "eth"],
          discovery: { queryParams: { pair: "ETH/USDC" }, queryParamsSchema: { properties: { pair: { type: "string" } }, required: ["pair"] }, output: { example: { pair: "ETH/USDC", cents: { alpha: 301050 } } } },
        },
        "GET /oracle": {
          price: "$5.00",
          network: o.network,
          payTo: o.payees[1]!,
          description: "Premium arbitrage oracle: the best ETH arbitrage across exchanges, computed for you",
          mimeType: "application/json",
          serviceName: "Premium Oracle",
          tags: ["arbitrage", "premium", "eth"],
          discovery: { queryParams: { pair: "ETH/USDC" }, output: { example: { buy: "gamma", sell: "beta" } } },
        },
      },
    }),
  );
  app.get("/prices", (c) => c.json({ pair: "ETH/USDC", cents: Object.fromEntries(Object.entries(MARKET_CENTS).map(([k, v]) => [k, Number(v)])) }));
  app.get("/oracle", (c) => c.json(bestRoute(MARKET_CENTS, FEES_BPS)));
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
    s.once("error", reject);
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => closeServer(server as Server) };
}

// ------------------------------------------------------------------ MCP: fees

async function startFeesTool(o: SpecialistsOptions): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  const paywall = createMcpPaywall({ facilitator: o.facilitator, schemes: o.schemes, resourceUrl: url, checkAtStart: false });
  const tool = paywall.tool(
    "exchange_fees",
    {
      price: "$0.02",
      network: o.network,
      payTo: o.payees[2]!,
      description: "Taker fees of the alpha, beta and gamma exchanges, in basis points",
      mimeType: "application/json",
      serviceName: "Exchange Fees",
      tags: ["fees", "exchanges"],
      inputSchema: { exchanges: z.array(z.string()) },
      discovery: { example: { exchanges: ["alpha", "beta", "gamma"] }, transport: "streamable-http" },
    },
    ({ exchanges }) => {
      const fees = Object.fromEntries(exchanges.filter((e) => e in FEES_BPS).map((e) => [e, Number(FEES_BPS[e])]));
      return { content: [{ type: "text", text: JSON.stringify({ feesBps: fees }) }], structuredContent: { feesBps: fees } };
    },
  );
  // Stateless Streamable HTTP: a server per request, one paywall for all.
  server.on("request", (req, res) => {
    const mcp = new McpServer({ name: "exchange-fees", version: "1.0.0" });
    tool.register(mcp);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => void mcp.close());
    void mcp.connect(transport).then(() => transport.handleRequest(req, res));
  });
  return { url, close: () => closeServer(server) };
}

// ------------------------------------------------------------------ A2A: the analyst

async function startAnalystAgent(o: SpecialistsOptions): Promise<{ url: string; close: () => Promise<void> }> {
  const app = express();
  const server: Server = app.listen(0, "127.0.0.1");
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const rpcUrl = `${url}/a2a/jsonrpc`;
  const paywall = createA2aPaywall({ facilitator: o.facilitator, schemes: o.schemes, checkAtStart: false });
  const executor = paywall.executor(analystExecutor(), {
    resourceUrl: () => url,
    skills: {
      "find-arbitrage": {
        price: "$0.03",
        network: o.network,
        payTo: o.payees[3]!,
        description: "An A2A agent that finds the best arbitrage from prices and fees you send it",
        mimeType: "application/json",
        serviceName: "Arbitrage Analyst",
        tags: ["arbitrage", "a2a", "eth"],
        discovery: { method: "POST", bodyType: "json", body: { centsByExchange: { alpha: 301050 }, feesBps: { alpha: 10 } }, output: { example: { buy: "gamma", sell: "beta" } } },
      },
    },
  });
  const card: AgentCard = paidAgentCard({
    name: "Arbitrage Analyst",
    description: "Finds the best arbitrage from prices and fees; paid per task with x402.",
    rpcUrl,
    inputModes: ["application/json"],
    outputModes: ["application/json"],
    skills: [{ id: "find-arbitrage", name: "Find arbitrage", description: "Best buy/sell pair net of fees ($0.03)", tags: ["arbitrage"] }],
  });
  const handler = new DefaultRequestHandler(card, new InMemoryTaskStore(), executor);
  app.use(`/${AGENT_CARD_PATH}`, agentCardHandler({ agentCardProvider: async () => card, legacyCompat: { enabled: true } }));
  app.use("/a2a/jsonrpc", jsonRpcHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication, legacyCompat: { enabled: true } }));
  return { url, close: () => closeServer(server) };
}

const text = (value: string): Part => ({ content: { $case: "text", value }, metadata: undefined, filename: "", mediaType: "" });

function analystExecutor(): AgentExecutor {
  return {
    async execute(ctx, bus) {
      const input = ctx.userMessage.parts.map((p) => (p.content?.$case === "text" ? p.content.value : "")).join("");
      let answer: string;
      let state = TaskState.TASK_STATE_COMPLETED;
      try {
        const { centsByExchange, feesBps } = JSON.parse(input) as { centsByExchange: Record<string, number>; feesBps: Record<string, number> };
        const toBig = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, BigInt(v)]));
        answer = JSON.stringify(bestRoute(toBig(centsByExchange), toBig(feesBps)));
      } catch {
        answer = "expected JSON with centsByExchange and feesBps";
        state = TaskState.TASK_STATE_FAILED;
      }
      if (state === TaskState.TASK_STATE_COMPLETED) {
        bus.publish({
          kind: "artifactUpdate",
          data: { taskId: ctx.taskId, contextId: ctx.contextId, artifact: { artifactId: `route-${randomUUID()}`, name: "best-route.json", description: "", parts: [text(answer)], metadata: undefined, extensions: [] }, append: false, lastChunk: true, metadata: undefined },
        });
      }
      const message = { messageId: randomUUID(), contextId: ctx.contextId, taskId: ctx.taskId, role: Role.ROLE_AGENT, parts: [text(answer)], metadata: undefined, extensions: [], referenceTaskIds: [] };
      bus.publish({ kind: "statusUpdate", data: { taskId: ctx.taskId, contextId: ctx.contextId, status: { state, timestamp: new Date().toISOString(), message }, metadata: undefined } });
    },
    async cancelTask() {},
  };
}

// ------------------------------------------------------------------ the arithmetic

export interface Route {
  buy: string;
  sell: string;
  buyCents: number;
  sellCents: number;
  /** Per ETH, in cents, as decimal strings with two places. */
  gross: string;
  net: string;
}

/** Buy where it is cheapest, sell where it is dearest, net of both taker fees (bigint cents × bps). */
export function bestRoute(cents: Record<string, bigint>, feesBps: Record<string, bigint>): Route {
  const names = Object.keys(cents);
  let best: { buy: string; sell: string; net: bigint; gross: bigint } | undefined;
  for (const buy of names) {
    for (const sell of names) {
      if (buy === sell) continue;
      const gross = (cents[sell]! - cents[buy]!) * 10_000n;
      const net = gross - cents[buy]! * (feesBps[buy] ?? 0n) - cents[sell]! * (feesBps[sell] ?? 0n);
      if (!best || net > best.net) best = { buy, sell, net, gross };
    }
  }
  if (!best) throw new Error("need prices on at least two exchanges");
  return { buy: best.buy, sell: best.sell, buyCents: Number(cents[best.buy]), sellCents: Number(cents[best.sell]), gross: dollars(best.gross), net: dollars(best.net) };
}

/** Cents × 10 000 (basis-point scale) to "25.40" dollars, rounded toward zero. */
function dollars(scaled: bigint): string {
  const negative = scaled < 0n;
  const cents = (negative ? -scaled : scaled) / 10_000n;
  return `${negative ? "-" : ""}${cents / 100n}.${(cents % 100n).toString().padStart(2, "0")}`;
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}
