// batch-settlement: the OFFICIAL @x402/evm 2.27 client and resource-server modules against OUR
// facilitator service (HTTP, ledger in PGlite) and OUR contracts on anvil: deposit, vouchers served
// at once, the server's channel manager claiming and settling through us, and a cooperative refund
// we sign as the delegated receiver authorizer. Then the official facilitator module on our
// contracts (the remaining pairing; part B pairs our client and server with theirs).
import express from "express";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { BATCH_SETTLEMENT_ADDRESS, PERMIT2_ADDRESS, batchSettlementAbi } from "@tollgate/evm";
import { createPublicClient, createTestClient, createWalletClient, erc20Abi, http, publicActions, type Address, type Hex, type PublicClient } from "viem";
import { generatePrivateKey, nonceManager, privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { x402Facilitator } from "@x402/core/facilitator";
import { HTTPFacilitatorClient } from "@x402/core/server";
import type { Network as OfficialNetwork } from "@x402/core/types";
import { toFacilitatorEvmSigner } from "@x402/evm";
import { BatchSettlementEvmScheme as OfficialFacilitatorScheme } from "@x402/evm/batch-settlement/facilitator";
import { BatchSettlementEvmScheme as OfficialServerScheme } from "@x402/evm/batch-settlement/server";
import { BatchSettlementEvmScheme as OfficialClientScheme } from "@x402/evm/batch-settlement/client";
import { paymentMiddlewareFromHTTPServer, x402HTTPResourceServer, x402ResourceServer } from "@x402/express";
import { decodePaymentResponseHeader, wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { startFacilitator, type RunningFacilitator } from "../apps/facilitator/src/start.ts";
import { localChain, serveApp } from "./support/official.ts";
import type { Closable } from "./support/listen.ts";

const PRICE = 1_000n;
// A delegated receiver authorizer is only served behind API keys (it signs refunds).
const API_KEY = "interop-api-key-0123456789";
let net: RunningLocalNetwork;
let chain: PublicClient;
let ours: RunningFacilitator;
const closables: Closable[] = [];

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 3 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  const relayerKey = generatePrivateKey();
  await createTestClient({ mode: "anvil", chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) }).setBalance({ address: privateKeyToAccount(relayerKey).address, value: 10n ** 20n });
  ours = await startFacilitator({
    port: 0,
    logLevel: "silent",
    // Both tokens the tests deposit (USDC by EIP-3009, the plain ERC-20 by Permit2): channels are served only in listed assets.
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [net.usdc, net.plainToken].map((t) => ({ address: t.address, name: t.name, version: t.version, decimals: t.decimals })) }],
    privateKeys: [net.accounts.facilitator.privateKey],
    apiKeys: [API_KEY],
    batchSettlement: { relayerKey, receiverAuthorizerKey: generatePrivateKey(), receiptTimeoutMs: 20_000 },
  });
}, 120_000);

afterAll(async () => {
  for (const c of closables.reverse()) await c.close().catch(() => {});
  await ours?.close();
  await net?.stop();
});

const usdc = (a: Address) => chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [a] });
const onChain = async (id: Hex) => (await chain.readContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "channels", args: [id] })) as readonly [bigint, bigint];

/** Their express resource server with their batch-settlement server scheme on GET /paid. */
async function officialServer(facilitatorUrl: string, payTo: Address, apiKey?: string, asset?: { address: Address; extra: Record<string, unknown> }) {
  const network = net.network as OfficialNetwork;
  const scheme = new OfficialServerScheme(payTo);
  const auth: Record<string, string> = apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
  const facilitator = new HTTPFacilitatorClient({ url: facilitatorUrl, createAuthHeaders: async () => ({ verify: auth, settle: auth, supported: auth }) });
  const resourceServer = new x402ResourceServer(facilitator).register(network, scheme);
  const httpServer = new x402HTTPResourceServer(resourceServer, {
    "GET /paid": {
      accepts: { scheme: "batch-settlement", network, payTo, price: { amount: PRICE.toString(), asset: asset?.address ?? net.usdc.address, extra: asset?.extra ?? { name: net.usdc.name, version: net.usdc.version } } },
      description: "official batch-settlement route",
      mimeType: "application/json",
    },
  });
  await httpServer.initialize();
  const app = express();
  let served = 0;
  app.use(paymentMiddlewareFromHTTPServer(httpServer, undefined, undefined, false));
  app.get("/paid", (_req, res) => void res.json({ n: ++served }));
  const s = await serveApp(app);
  closables.push(s);
  return { url: `${s.url}/paid`, manager: scheme.createChannelManager(facilitator, network, asset?.address ?? net.usdc.address), served: () => served };
}

/** Their client (fetch) with their batch-settlement client scheme. */
function officialClient(privateKey: Hex) {
  const account = privateKeyToAccount(privateKey);
  const reader = createWalletClient({ account, chain: localChain(net.chainId, net.rpcUrl), transport: http(net.rpcUrl) }).extend(publicActions);
  const signer = {
    address: account.address,
    signTypedData: (args: Parameters<typeof account.signTypedData>[0]) => account.signTypedData(args),
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    readContract: (args: any) => reader.readContract({ ...args, args: args.args ?? [] }),
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const scheme = new OfficialClientScheme(signer as any);
  const client = new x402Client().register("eip155:*", scheme).setSpendControls({ allowedAssets: true });
  return { fetch: wrapFetchWithPayment(fetch, client) as typeof fetch, scheme, address: account.address };
}

async function payRequests(pay: typeof fetch, url: string, n: number) {
  const receipts: Array<Record<string, any>> = [];
  for (let i = 0; i < n; i++) {
    const res = await pay(url);
    // on a refusal, the message names the reason the 402 carries
    expect(res.status, `request ${i}: ${Buffer.from(res.headers.get("PAYMENT-REQUIRED") ?? "", "base64").toString().slice(0, 300)}`).toBe(200);
    await res.json();
    const header = res.headers.get("PAYMENT-RESPONSE");
    expect(header).toBeTruthy();
    receipts.push(decodePaymentResponseHeader(header!) as Record<string, any>);
  }
  return receipts;
}

describe("official client + official server → our facilitator service", () => {
  it("deposits once, serves vouchers at once, claims and settles through us, and refunds the rest", async () => {
    const server = await officialServer(ours.url, net.accounts.payee.address, API_KEY);
    const client = officialClient(net.accounts.payers[0]!.privateKey);
    const payerBefore = await usdc(client.address);
    const receipts = await payRequests(client.fetch, server.url, 5);
    expect(server.served()).toBe(5);
    // the first request deposited (a transaction), the rest were vouchers (none)
    expect(receipts[0]!.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    for (const r of receipts.slice(1)) expect(r.transaction).toBe("");
    const channelId = receipts[0]!.extra.channelState.channelId as Hex;
    const [balance, claimedBefore] = await onChain(channelId);
    expect(claimedBefore).toBe(0n);
    expect(await usdc(client.address)).toBe(payerBefore - balance);

    // our ledger mirrors the channel the deposit opened
    const [row] = await ours.ledger.sql.query<{ balance: string }>(`SELECT balance FROM ${ours.ledger.schema}.batch_channels WHERE channel_id = $1`, [channelId.toLowerCase()]);
    expect(String(row!.balance)).toBe(balance.toString());

    // a second payer's channel on the same server: both are claimed in ONE transaction
    const other = officialClient(net.accounts.payers[2]!.privateKey);
    const otherReceipts = await payRequests(other.fetch, server.url, 2);
    const otherId = otherReceipts[0]!.extra.channelState.channelId as Hex;
    expect(otherId).not.toBe(channelId);

    const payeeBefore = await usdc(net.accounts.payee.address);
    const result = await server.manager.claimAndSettle();
    expect(result.claims).toEqual([expect.objectContaining({ vouchers: 2 })]);
    expect(result.settle?.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect((await onChain(channelId))[1]).toBe(5n * PRICE);
    expect((await onChain(otherId))[1]).toBe(2n * PRICE);
    expect(await usdc(net.accounts.payee.address)).toBe(payeeBefore + 7n * PRICE);

    // cooperative refund: their client asks their server, which completes the payload; we sign as the
    // delegated receiver authorizer and relay claim + refund in one transaction
    const refund = await client.scheme.refund(server.url);
    expect(refund.success, JSON.stringify(refund)).toBe(true);
    expect(BigInt(refund.amount!)).toBe(balance - 5n * PRICE);
    expect(await usdc(client.address)).toBe(payerBefore - 5n * PRICE);
    expect(server.served()).toBe(7); // the refund never reached the paid handler
  });
});

describe("official client + official server → our facilitator service, Permit2 deposits", () => {
  it("deposits a plain ERC-20 through our Permit2 collector and claims it", async () => {
    const token = net.plainToken;
    const server = await officialServer(ours.url, net.accounts.payee.address, API_KEY, { address: token.address, extra: { name: token.name, version: token.version, assetTransferMethod: "permit2" } });
    const key = net.accounts.payers[1]!.privateKey;
    // the payer approved Permit2 once, as a real payer would (no gas-sponsoring extension here)
    const payerWallet = createWalletClient({ account: privateKeyToAccount(key), chain: localChain(net.chainId, net.rpcUrl), transport: http(net.rpcUrl) });
    await chain.waitForTransactionReceipt({ hash: await payerWallet.writeContract({ address: token.address, abi: erc20Abi, functionName: "approve", args: [PERMIT2_ADDRESS, 10n ** 30n] }) });
    const client = officialClient(key);
    const receipts = await payRequests(client.fetch, server.url, 3);
    const channelId = receipts[0]!.extra.channelState.channelId as Hex;
    expect((await onChain(channelId))[0]).toBeGreaterThanOrEqual(3n * PRICE);
    await server.manager.claimAndSettle();
    expect((await onChain(channelId))[1]).toBe(3n * PRICE);
  });
});

describe("official client + official server + official facilitator → our contracts", () => {
  it("their whole stack runs unchanged on our x402BatchSettlement and collectors", async () => {
    const account = privateKeyToAccount(net.accounts.deployer.privateKey, { nonceManager });
    const wallet = createWalletClient({ account, chain: localChain(net.chainId, net.rpcUrl), transport: http(net.rpcUrl), pollingInterval: 50 }).extend(publicActions);
    const signer = toFacilitatorEvmSigner({
      address: account.address,
      getCode: (args) => wallet.getCode(args),
      readContract: (args) => wallet.readContract({ ...args, args: args.args ?? [] }),
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      verifyTypedData: (args) => wallet.verifyTypedData(args as any),
      writeContract: (args) => wallet.writeContract({ ...args, args: args.args ?? [] }),
      sendTransaction: (args) => wallet.sendTransaction(args),
      waitForTransactionReceipt: (args) => wallet.waitForTransactionReceipt(args),
    });
    const theirs = new x402Facilitator().register(net.network as OfficialNetwork, new OfficialFacilitatorScheme(signer, privateKeyToAccount(generatePrivateKey())));
    const app = express();
    app.use(express.json({ limit: "1mb" }));
    app.post("/verify", async (req, res) => void res.json(await theirs.verify(req.body.paymentPayload, req.body.paymentRequirements)));
    app.post("/settle", async (req, res) => void res.json(await theirs.settle(req.body.paymentPayload, req.body.paymentRequirements)));
    app.get("/supported", (_req, res) => void res.json(theirs.getSupported()));
    const f = await serveApp(app);
    closables.push(f);

    const server = await officialServer(f.url, net.accounts.payee.address);
    const client = officialClient(net.accounts.payers[1]!.privateKey);
    const receipts = await payRequests(client.fetch, server.url, 3);
    const channelId = receipts[0]!.extra.channelState.channelId as Hex;
    const payeeBefore = await usdc(net.accounts.payee.address);
    await server.manager.claimAndSettle();
    expect((await onChain(channelId))[1]).toBe(3n * PRICE);
    expect(await usdc(net.accounts.payee.address)).toBe(payeeBefore + 3n * PRICE);
  });
});
