// Discovery served (bazaar), on one anvil chain with real payments: resource servers declare
// themselves in their 402, clients echo the declaration in the payment, our facilitator catalogs
// it once the payment settles, and anyone lists and searches the catalog. Both directions with
// the official stack: their server's declaration lands in our catalog; their bazaar client reads it.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { HTTPFacilitatorClient } from "@x402/core/server";
import { declareDiscoveryExtension, withBazaar } from "@x402/extensions/bazaar";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { decodeExtensionResponses, discover, EXTENSION_RESPONSES_HEADER, listResources, searchResources, type Network } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { exactEvmClient, exactEvmServer } from "@tollgate/evm";
import { createMcpPaywall, getPaymentReceipt, wrapMcpClient } from "@tollgate/mcp";
import { officialFetch, startOfficialServer, type OfficialServer } from "./support/official.ts";
import { startTollgateFacilitator, startTollgateServer, tollgateFetch, type TollgateFacilitator, type TollgateServer } from "./support/tollgate.ts";

let net: RunningLocalNetwork;
let facilitator: TollgateFacilitator;
let weather: TollgateServer;
let official: OfficialServer;
const warnings: string[] = [];
const extensionHeaders: Array<string | null> = [];

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 4 });
  facilitator = await startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, privateKey: net.accounts.facilitator.privateKey });
  weather = await startTollgateServer({
    facilitatorUrl: facilitator.url,
    network: net.network,
    usdc: net.usdc,
    payTo: net.accounts.payee.address,
    price: "10000",
    framework: "express",
    path: "/weather",
    onWarning: (m) => warnings.push(m),
    wrapFacilitator: (client) => ({
      ...client,
      // What the facilitator said about the listing is not part of the settle response: read it from the wire.
      settle: async (...a) => {
        const r = await fetch(`${facilitator.url}/settle`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ x402Version: 2, paymentPayload: a[0], paymentRequirements: a[1] }) });
        extensionHeaders.push(r.headers.get(EXTENSION_RESPONSES_HEADER));
        return (await r.json()) as Awaited<ReturnType<typeof client.settle>>;
      },
    }),
    route: {
      serviceName: "Weather Oracle",
      tags: ["weather", "forecast"],
      discovery: { queryParams: { city: "Lisbon" }, queryParamsSchema: { properties: { city: { type: "string" } }, required: ["city"] }, output: { example: { city: "Lisbon", celsius: 21 } } },
    },
  });
  official = await startOfficialServer({
    facilitatorUrl: facilitator.url,
    network: net.network,
    payTo: net.accounts.payee.address,
    asset: { address: net.usdc.address, name: net.usdc.name, version: net.usdc.version },
    amount: "20000",
    path: "/quotes",
    extensions: declareDiscoveryExtension({ input: { symbol: "ETH" }, inputSchema: { properties: { symbol: { type: "string" } }, required: ["symbol"] }, output: { example: { symbol: "ETH", usd: 3000 } } }),
    resourceMeta: { serviceName: "Exchange Quotes", tags: ["prices", "exchange"] },
  });
});

afterAll(async () => {
  await official?.close();
  await weather?.close();
  await facilitator?.close();
  await net?.stop();
});

describe("discovery: declared, paid, cataloged, found", () => {
  it("a paid request to a declared route puts the route in the catalog, with the spec's fields", async () => {
    const pay = tollgateFetch({ privateKey: net.accounts.payers[0]!.privateKey });
    const unpaid = await fetch(`${weather.url}/weather?city=Porto`);
    expect(unpaid.status).toBe(402);
    const required = JSON.parse(Buffer.from(unpaid.headers.get("PAYMENT-REQUIRED")!, "base64").toString("utf8"));
    expect(required.resource).toMatchObject({ serviceName: "Weather Oracle", tags: ["weather", "forecast"] });
    expect(required.extensions.bazaar.info.input).toEqual({ type: "http", method: "GET", queryParams: { city: "Lisbon" } });
    expect(required.extensions.bazaar.schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");

    // Nothing is listed before a payment settled.
    expect((await listResources(facilitator.url)).items.filter((i) => i.resource.endsWith("/weather"))).toEqual([]);

    const res = await pay(`${weather.url}/weather?city=Porto`);
    expect(res.status).toBe(200);
    const listed = await listResources(facilitator.url, { type: "http" });
    const item = listed.items.find((i) => i.resource === `${weather.url}/weather`);
    expect(item).toBeDefined();
    expect(item).toMatchObject({ type: "http", x402Version: 2, serviceName: "Weather Oracle", tags: ["weather", "forecast"], description: "Tollgate paid route" });
    expect(item!.accepts).toHaveLength(1);
    expect(item!.accepts[0]).toMatchObject({ scheme: "exact", network: net.network, amount: "10000", payTo: net.accounts.payee.address });
    expect(typeof item!.lastUpdated).toBe("number");
    expect(Math.abs(item!.lastUpdated - Date.now() / 1000)).toBeLessThan(120);
    expect((item!.extensions as { bazaar: { info: unknown } }).bazaar.info).toEqual({
      input: { type: "http", method: "GET", queryParams: { city: "Lisbon" } },
      output: { type: "json", example: { city: "Lisbon", celsius: 21 } },
    });
    // The facilitator told the server: cataloged.
    expect(decodeExtensionResponses(extensionHeaders.at(-1))).toEqual({ bazaar: { status: "success" } });
    expect(warnings.filter((w) => w.includes("catalog"))).toEqual([]);
  });

  it("filters, pages and searches the catalog", async () => {
    const byPayee = await listResources(facilitator.url, { payTo: net.accounts.payee.address.toLowerCase() });
    expect(byPayee.items.some((i) => i.resource.endsWith("/weather"))).toBe(true);
    expect((await listResources(facilitator.url, { payTo: net.accounts.payers[3]!.address })).items).toEqual([]);
    expect((await listResources(facilitator.url, { network: "eip155:1" })).items).toEqual([]);
    expect((await listResources(facilitator.url, { type: "mcp", network: net.network })).items.every((i) => i.type === "mcp")).toBe(true);
    const found = await searchResources(facilitator.url, { query: "forecast for a city" });
    expect(found.resources[0]?.resource).toBe(`${weather.url}/weather`);
    expect((await searchResources(facilitator.url, { query: "zzzunknownzzz" })).resources).toEqual([]);
    expect((await discover(facilitator.url, { query: "weather" })).map((r) => r.serviceName)).toContain("Weather Oracle");
  });

  it("treats hostile parameters as data: no injection, no wildcard, no 500", async () => {
    for (const path of [
      `/discovery/resources?payTo=${encodeURIComponent("' OR ''='")}`,
      `/discovery/resources?type=${encodeURIComponent("http' --")}&network=${encodeURIComponent("eip155:1); DROP TABLE x; --")}`,
      `/discovery/search?query=${encodeURIComponent("%")}`,
      `/discovery/search?query=${encodeURIComponent("_ \\ %% __")}`,
      `/discovery/search?query=${encodeURIComponent("'; SELECT 1=1; --")}`,
    ]) {
      const r = await fetch(`${facilitator.url}${path}`);
      expect(r.status, path).toBe(200);
      const body = (await r.json()) as { items?: unknown[]; resources?: unknown[] };
      expect(body.items ?? body.resources, path).toEqual([]);
    }
    const long = await fetch(`${facilitator.url}/discovery/search?query=${"a".repeat(600)}`);
    expect(long.status).toBe(400);
    // Still listing after all that.
    expect((await listResources(facilitator.url)).items.length).toBeGreaterThan(0);
  });

  it("answers a bad query parameter with 400 naming it", async () => {
    for (const [path, field] of [
      ["/discovery/resources?limit=0", "limit"],
      ["/discovery/resources?limit=101", "limit"],
      ["/discovery/resources?offset=-1", "offset"],
      ["/discovery/search", "query"],
      ["/discovery/search?query=x&cursor=%%%", "cursor"],
    ] as const) {
      const r = await fetch(`${facilitator.url}${path}`);
      expect(r.status, path).toBe(400);
      expect(((await r.json()) as { error: string }).error.startsWith(`${field}:`), path).toBe(true);
    }
  });

  it("a paid MCP tool is cataloged under (server URL, tool name) with its input schema", async () => {
    const mcpUrl = "https://tools.example.com/mcp";
    const paywall = createMcpPaywall({
      facilitator: facilitator.url,
      resourceUrl: mcpUrl,
      schemes: [exactEvmServer({ assets: [{ network: net.network as Network, address: net.usdc.address, decimals: net.usdc.decimals, name: net.usdc.name, version: net.usdc.version, symbol: "USDC" }] })],
    });
    const tool = paywall.tool(
      "arbitrage_scan",
      { price: "$0.03", network: net.network as Network, payTo: net.accounts.payee.address, description: "Finds price gaps between exchanges", inputSchema: { pair: z.string() }, discovery: { example: { pair: "ETH/USDC" } } },
      ({ pair }) => ({ content: [{ type: "text", text: `no gap for ${pair}` }] }),
    );
    const server = new McpServer({ name: "arb", version: "0.0.0" });
    tool.register(server);
    const [a, b] = InMemoryTransport.createLinkedPair();
    await server.connect(a);
    const client = new Client({ name: "agent", version: "0.0.0" });
    await client.connect(b);
    try {
      const result = await wrapMcpClient(client, { schemes: [exactEvmClient({ account: privateKeyToAccount(net.accounts.payers[1]!.privateKey) })] }).callTool({ name: "arbitrage_scan", arguments: { pair: "ETH/USDC" } });
      expect(getPaymentReceipt(result)?.receipt?.success).toBe(true);
    } finally {
      await client.close();
      await server.close();
    }
    const items = (await listResources(facilitator.url, { type: "mcp" })).items;
    expect(items).toHaveLength(1);
    expect(items[0]!.resource).toBe(mcpUrl);
    const input = (items[0]!.extensions as { bazaar: { info: { input: Record<string, unknown> } } }).bazaar.info.input;
    expect(input).toMatchObject({ type: "mcp", toolName: "arbitrage_scan", description: "Finds price gaps between exchanges", example: { pair: "ETH/USDC" } });
    expect(input.inputSchema).toMatchObject({ type: "object", properties: { pair: { type: "string" } }, required: ["pair"] });
    expect((await searchResources(facilitator.url, { query: "arbitrage exchanges" })).resources.map((r) => r.resource)).toContain(mcpUrl);
  });
});

describe("discovery interop with @x402/extensions", () => {
  it("the official server's declaration, paid by the official client, is cataloged by our facilitator", async () => {
    const pay = officialFetch({ privateKey: net.accounts.payers[2]!.privateKey });
    const res = await pay(`${official.url}/quotes?symbol=BTC`);
    expect(res.status).toBe(200);
    const item = (await listResources(facilitator.url)).items.find((i) => i.resource === `${official.url}/quotes`);
    expect(item).toBeDefined();
    expect(item).toMatchObject({ type: "http", serviceName: "Exchange Quotes", tags: ["prices", "exchange"] });
    expect(item!.accepts[0]).toMatchObject({ amount: "20000", payTo: net.accounts.payee.address });
    expect((item!.extensions as { bazaar: { info: { input: unknown } } }).bazaar.info.input).toMatchObject({ type: "http", method: "GET", queryParams: { symbol: "ETH" } });
  });

  it("the official bazaar client lists and searches our catalog", async () => {
    const client = withBazaar(new HTTPFacilitatorClient({ url: facilitator.url }));
    const listed = await client.extensions.bazaar.listResources({ type: "http", limit: 10 });
    expect(listed.x402Version).toBe(2);
    expect(listed.items.map((i) => i.resource)).toEqual(expect.arrayContaining([`${weather.url}/weather`, `${official.url}/quotes`]));
    expect(listed.pagination).toMatchObject({ limit: 10, offset: 0, total: listed.items.length });
    const page = await client.extensions.bazaar.listResources({ limit: 1, offset: 1 });
    expect(page.items).toHaveLength(1);
    const found = await client.extensions.bazaar.search({ query: "exchange prices" });
    expect(found.resources[0]?.resource).toBe(`${official.url}/quotes`);
    expect(found.pagination).toMatchObject({ cursor: null });
  });
});
