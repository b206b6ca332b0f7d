// Paid MCP tools on a real local chain: anvil with our USD Coin (@tollgate/devnet), our
// facilitator service over HTTP (real ledger, real settlement), the exact EVM scheme on both
// sides, and a Streamable HTTP MCP server. The money must move exactly once per result.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { createPublicClient, erc20Abi, http, type Address, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { Network } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { exactEvmClient, exactEvmServer } from "@tollgate/evm";
import {
  createMcpPaywall,
  getPaymentReceipt,
  PAYMENT_META_KEY,
  PaymentRefusedError,
  readPaymentRequired,
  spendingPolicy,
  wrapMcpClient,
  type PaidTool,
} from "@tollgate/mcp";
import { startTollgateFacilitator, type TollgateFacilitator } from "../../../test/support/tollgate.ts";

const PRICE = 10_000n; // $0.01 in 6-decimal USD Coin

let net: RunningLocalNetwork;
let chain: PublicClient;
let facilitator: TollgateFacilitator;
let httpServer: Server;
let mcpUrl: URL;
let runs = 0;
const clients: Client[] = [];

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 3 });
  chain = createPublicClient({ transport: http(net.rpcUrl) });
  facilitator = await startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, privateKey: net.accounts.facilitator.privateKey });
  const usdc = net.usdc;
  const paywall = createMcpPaywall({
    facilitator: facilitator.url,
    schemes: [exactEvmServer({ assets: [{ network: net.network as Network, address: usdc.address, decimals: usdc.decimals, name: usdc.name, version: usdc.version, symbol: "USDC" }] })],
  });
  await paywall.ready();
  const tool: PaidTool = paywall.tool(
    "financial_analysis",
    { price: "$0.01", network: net.network as Network, payTo: net.accounts.payee.address, description: "Advanced financial analysis tool", mimeType: "application/json", inputSchema: { ticker: z.string() } },
    ({ ticker }) => {
      runs++;
      return { content: [{ type: "text", text: `Financial analysis for ${ticker}` }] };
    },
  );
  // Stateless Streamable HTTP: a server per request, one paywall for all.
  httpServer = createServer((req, res) => {
    const server = new McpServer({ name: "chain-demo", version: "0.0.0" });
    tool.register(server);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => void server.close());
    void server.connect(transport).then(() => transport.handleRequest(req, res));
  });
  await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  mcpUrl = new URL(`http://127.0.0.1:${(httpServer.address() as AddressInfo).port}/mcp`);
});

afterAll(async () => {
  for (const c of clients) await c.close();
  httpServer?.closeAllConnections();
  await new Promise<void>((resolve) => (httpServer ? httpServer.close(() => resolve()) : resolve()));
  await facilitator?.close();
  await net?.stop();
});

async function connect(): Promise<Client> {
  const client = new Client({ name: "chain-agent", version: "0.0.0" });
  await client.connect(new StreamableHTTPClientTransport(mcpUrl));
  clients.push(client);
  return client;
}

const balanceOf = (owner: Address) => chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [owner] });

function payerFor(i: number, maxPerRequest = "$0.05") {
  const key = net.accounts.payers[i]!;
  const scheme = exactEvmClient({ account: privateKeyToAccount(key.privateKey) });
  let signed = 0;
  const counting = { ...scheme, createPayload: (...a: Parameters<typeof scheme.createPayload>) => (signed++, scheme.createPayload(...a)) };
  const policy = spendingPolicy({ maxPerRequest, budget: "$1", networks: [net.network], usdAssets: [{ network: net.network, asset: net.usdc.address, decimals: net.usdc.decimals }] });
  return { address: key.address, schemes: [counting], policy, signed: () => signed };
}

describe("paid MCP tool on a local chain (anvil, our facilitator, exact EVM)", () => {
  it("settles the price on chain, once, and a replay of the same payment gets no second output", async () => {
    const client = await connect();
    const payer = payerFor(0);
    const payee = net.accounts.payee.address;
    const before = { payer: await balanceOf(payer.address), payee: await balanceOf(payee) };
    const runsBefore = runs;

    const result = await wrapMcpClient(client, payer).callTool({ name: "financial_analysis", arguments: { ticker: "AAPL" } });
    expect(result.content).toEqual([{ type: "text", text: "Financial analysis for AAPL" }]);
    const info = getPaymentReceipt(result)!;
    expect(info.receipt).toMatchObject({ success: true, network: net.network });
    expect(info.receipt!.payer!.toLowerCase()).toBe(payer.address.toLowerCase());
    const tx = await chain.getTransactionReceipt({ hash: info.receipt!.transaction as Hex });
    expect(tx.status).toBe("success");
    expect(await balanceOf(payer.address)).toBe(before.payer - PRICE);
    expect(await balanceOf(payee)).toBe(before.payee + PRICE);
    expect(payer.policy.spent().usd).toBe("0.01");

    const replay = (await client.callTool({ name: "financial_analysis", arguments: { ticker: "MSFT" }, _meta: { [PAYMENT_META_KEY]: info.payload } })) as CallToolResult;
    expect(replay.isError).toBe(true);
    expect(readPaymentRequired(replay)).toMatchObject({ resource: { url: "mcp://tool/financial_analysis" } });
    expect(JSON.stringify(replay)).not.toContain("Financial analysis for MSFT");
    expect(await balanceOf(payer.address)).toBe(before.payer - PRICE);
    // Our facilitator sees the nonce used on chain at /verify: the tool does not even run again.
    expect((readPaymentRequired(replay) as { error: string }).error).toMatch(/^invalid_exact_evm_nonce_already_used/);
    expect(runs - runsBefore).toBe(1);
  });

  it("serves concurrent copies of one signed payment once, and moves the money once", async () => {
    const client = await connect();
    const payer = payerFor(1);
    const before = await balanceOf(payer.address);
    const runsBefore = runs;
    const offer = readPaymentRequired(await client.callTool({ name: "financial_analysis", arguments: { ticker: "AAPL" } })) as { accepts: Parameters<ReturnType<typeof exactEvmClient>["createPayload"]>[0][]; resource: { url: string } };
    const accepted = offer.accepts[0]!;
    const inner = await payer.schemes[0]!.createPayload(accepted, { x402Version: 2 });
    const payment = { x402Version: 2, resource: offer.resource, accepted, payload: inner };
    const results = (await Promise.all(
      [1, 2, 3].map(() => client.callTool({ name: "financial_analysis", arguments: { ticker: "AAPL" }, _meta: { [PAYMENT_META_KEY]: payment } })),
    )) as CallToolResult[];
    expect(results.filter((r) => !r.isError)).toHaveLength(1);
    for (const r of results.filter((x) => x.isError)) expect(JSON.stringify(r)).not.toContain("Financial analysis for AAPL");
    expect(await balanceOf(payer.address)).toBe(before - PRICE);
    expect(runs - runsBefore).toBe(1);
  });

  it("refuses a price over the policy before anything is signed, and nothing moves", async () => {
    const client = await connect();
    const payer = payerFor(2, "$0.001");
    const before = await balanceOf(payer.address);
    await expect(wrapMcpClient(client, payer).callTool({ name: "financial_analysis", arguments: { ticker: "AAPL" } })).rejects.toBeInstanceOf(PaymentRefusedError);
    expect(payer.signed()).toBe(0);
    expect(await balanceOf(payer.address)).toBe(before);
  });
});
