// paidFetchTool on a real local chain: anvil with our USD Coin (@tollgate/devnet), our
// facilitator service over HTTP (real ledger, real settlement), the exact EVM scheme on both
// sides, a hono paid route; the agent is the AI SDK's generateText driven by its mock model.
// The money moves exactly once, by exactly the price; an over-price route signs nothing.
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { generateText, stepCountIs } from "ai";
import { Hono } from "hono";
import { createPublicClient, erc20Abi, http, type Address, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { paidFetchTool, spendingPolicy, type PaidFetchResult } from "@tollgate/ai";
import type { Network } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { exactEvmClient, exactEvmServer } from "@tollgate/evm";
import { paymentMiddleware } from "@tollgate/hono";
import { startTollgateFacilitator, type TollgateFacilitator } from "../../../test/support/tollgate.ts";
import { scriptedModel, toolResultsIn } from "./support/model.ts";

const PRICE = 10_000n; // $0.01 in 6-decimal USD Coin

let net: RunningLocalNetwork;
let chain: PublicClient;
let facilitator: TollgateFacilitator;
let server: ReturnType<typeof serve>;
let base: string;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 1 });
  chain = createPublicClient({ transport: http(net.rpcUrl) });
  facilitator = await startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, privateKey: net.accounts.facilitator.privateKey });
  const usdc = net.usdc;
  const network = net.network as Network;
  const app = new Hono();
  app.use(
    paymentMiddleware({
      facilitator: facilitator.url,
      schemes: [exactEvmServer({ assets: [{ network, address: usdc.address, decimals: usdc.decimals, name: usdc.name, version: usdc.version, symbol: "USDC" }] })],
      routes: {
        "GET /quote": { price: "$0.01", network, payTo: net.accounts.payee.address },
        "GET /report": { price: "$2", network, payTo: net.accounts.payee.address },
      },
    }),
  );
  app.get("/quote", (c) => c.json({ pair: "ETH/USDC", bid: 3000.5 }));
  app.get("/report", (c) => c.json({ report: "never served" }));
  server = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  (server as unknown as { closeAllConnections?: () => void } | undefined)?.closeAllConnections?.();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await facilitator?.close();
  await net?.stop();
});

const balanceOf = (owner: Address) => chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [owner] });

describe("paidFetchTool on a local chain (anvil, our facilitator, exact EVM)", () => {
  it("an agent pays a route once, moving exactly the price, and is refused an over-price one before signing", async () => {
    const key = net.accounts.payers[0]!;
    const scheme = exactEvmClient({ account: privateKeyToAccount(key.privateKey) });
    let signed = 0;
    const counting = { ...scheme, createPayload: (...a: Parameters<typeof scheme.createPayload>) => (signed++, scheme.createPayload(...a)) };
    const usdAssets = [{ network: net.network, asset: net.usdc.address, decimals: net.usdc.decimals }];
    const policy = spendingPolicy({ maxPerRequest: "$0.05", budget: "$1", networks: [net.network], usdAssets });
    const payee = net.accounts.payee.address;
    const before = { payer: await balanceOf(key.address), payee: await balanceOf(payee) };

    const model = scriptedModel([
      { toolCalls: [{ toolName: "paidFetch", input: { url: `${base}/quote` } }] },
      { toolCalls: [{ toolName: "paidFetch", input: { url: `${base}/report` } }] },
      (prompt) => {
        const [quote, report] = toolResultsIn(prompt) as PaidFetchResult[];
        return { text: `quote ${quote?.outcome}, report ${report?.outcome}` };
      },
    ]);
    const result = await generateText({ model, tools: { paidFetch: paidFetchTool({ schemes: [counting], policy }, { usdAssets }) }, stopWhen: stepCountIs(5), prompt: "Best ETH quote?" });
    expect(result.text).toBe("quote response, report refused");

    const quote = result.steps[0]!.toolResults[0]!.output as PaidFetchResult;
    expect(quote).toMatchObject({ outcome: "response", status: 200, body: JSON.stringify({ pair: "ETH/USDC", bid: 3000.5 }), paid: { amountUsd: "0.01", network: net.network, settled: true } });
    const tx = quote.outcome === "response" ? (quote.paid!.transaction as Hex) : ("0x" as Hex);
    expect((await chain.getTransactionReceipt({ hash: tx })).status).toBe("success");
    expect(await balanceOf(key.address)).toBe(before.payer - PRICE);
    expect(await balanceOf(payee)).toBe(before.payee + PRICE);
    expect(policy.spent().usd).toBe("0.01");

    expect(result.steps[1]!.toolResults[0]!.output).toMatchObject({ outcome: "refused", paid: false, code: "max_per_request", price: { amountUsd: "2" } });
    expect(signed).toBe(1);
    expect(await balanceOf(key.address)).toBe(before.payer - PRICE);
  });
});
