// batch-settlement interop with the OFFICIAL @x402/evm 2.27 modules on one anvil chain, in every
// pairing with a resource server: their client → our server (their facilitator face), our client
// → their server (their facilitator over HTTP). Vouchers must be served at once, charged
// cumulatively, and the money must move exactly once when the server claims and settles.
import { httpFacilitatorClient } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import type { RunningFacilitator } from "@tollgate/facilitator";
import { BATCH_SETTLEMENT_ADDRESS, batchSettlementAbi, batchSettlementEvmClient, batchSettlementEvmServer, channelIdOf } from "@tollgate/evm";
import { getPaymentReceipt, wrapFetch } from "@tollgate/fetch";
import { claimAndSettle, memoryChannelStore } from "@tollgate/server";
import { createPublicClient, erc20Abi, http, type Address, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startChannelFacilitator } from "./support/channel-facilitator.ts";
import { startChannelServer } from "./support/channel-server.ts";
import type { Closable } from "./support/listen.ts";
import { officialBatchClient, officialBatchFacilitator, officialBatchFetch, serveOfficialBatchFacilitator, startOfficialBatchServer, type OfficialBatchFacilitator } from "./support/official-batch.ts";

const PRICE = 2_000n;
let net: RunningLocalNetwork;
let chain: PublicClient;
let facilitator: OfficialBatchFacilitator;
const closables: Closable[] = [];

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 3 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  facilitator = officialBatchFacilitator({ rpcUrl: net.rpcUrl, chainId: net.chainId, privateKey: net.accounts.facilitator.privateKey, authorizerKey: net.accounts.deployer.privateKey });
}, 60_000);

afterAll(async () => {
  for (const c of closables) await c.close();
  await net?.stop();
});

const usdc = (a: Address) => chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [a] });
const onChain = async (id: `0x${string}`) => (await chain.readContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "channels", args: [id] })) as readonly [bigint, bigint];

describe("batch-settlement interop", () => {
  it("their client → our server: deposit, vouchers, one claim and settle", async () => {
    const store = memoryChannelStore();
    const server = await startChannelServer({ facilitator: facilitator.client, network: net.network, usdc: net.usdc, payTo: net.accounts.payee.address, amount: PRICE.toString(), store });
    closables.push(server);
    const pay = officialBatchFetch({ privateKey: net.accounts.payers[0]!.privateKey, rpcUrl: net.rpcUrl, chainId: net.chainId });
    const payeeBefore = await usdc(net.accounts.payee.address);
    for (let i = 1; i <= 12; i++) {
      const res = await pay(server.paidUrl);
      expect(res.status, await res.clone().text()).toBe(200);
      const receipt = JSON.parse(Buffer.from(res.headers.get("PAYMENT-RESPONSE")!, "base64").toString()) as { extra: { chargedAmount: string; channelState: { chargedCumulativeAmount: string } } };
      expect(receipt.extra.chargedAmount).toBe(PRICE.toString());
      expect(receipt.extra.channelState.chargedCumulativeAmount).toBe((PRICE * BigInt(i)).toString());
    }
    // Their client with no memory: our corrective 402 (channelState + voucherState) resyncs it.
    const fresh = officialBatchFetch({ privateKey: net.accounts.payers[0]!.privateKey, rpcUrl: net.rpcUrl, chainId: net.chainId });
    const again = await fresh(server.paidUrl);
    expect(again.status, await again.clone().text()).toBe(200);
    const [record] = await store.list();
    expect(record!.chargedCumulativeAmount).toBe((PRICE * 13n).toString());
    const results = await claimAndSettle({ store, facilitator: facilitator.client, channels: batchSettlementEvmServer().channels });
    expect(results.map((r) => r.error)).toEqual([undefined]);
    expect(results[0]!.settled).toBe((PRICE * 13n).toString());
    expect((await usdc(net.accounts.payee.address)) - payeeBefore).toBe(PRICE * 13n);
    expect((await onChain(record!.channelId as `0x${string}`))[1]).toBe(PRICE * 13n);
  }, 120_000);

  it("our client → their server: deposit, vouchers; their claim and settle move exactly what was charged", async () => {
    const http = await serveOfficialBatchFacilitator(facilitator);
    closables.push(http);
    const theirs = await startOfficialBatchServer({ facilitatorUrl: http.url, network: net.network, payTo: net.accounts.payers[0]!.address, asset: { address: net.usdc.address, name: net.usdc.name, version: net.usdc.version }, amount: PRICE.toString() });
    closables.push(theirs);
    const account = privateKeyToAccount(net.accounts.payers[1]!.privateKey);
    const client = batchSettlementEvmClient({ account });
    const pay = wrapFetch(fetch, { schemes: [client] });
    for (let i = 1; i <= 12; i++) {
      const res = await pay(theirs.paidUrl);
      expect(res.status, await res.clone().text()).toBe(200);
      const receipt = getPaymentReceipt(res)?.receipt as { extra?: { channelState?: { chargedCumulativeAmount?: string } } } | undefined;
      expect(receipt?.extra?.channelState?.chargedCumulativeAmount).toBe((PRICE * BigInt(i)).toString());
    }
    // Our client with no memory: their corrective 402 resyncs it (after checking the voucher is its own).
    const amnesiac = batchSettlementEvmClient({ account });
    const again = await wrapFetch(fetch, { schemes: [amnesiac] })(theirs.paidUrl);
    expect(again.status, await again.clone().text()).toBe(200);
    const r = JSON.parse(Buffer.from((await fetch(theirs.paidUrl)).headers.get("PAYMENT-REQUIRED")!, "base64").toString()).accepts[0];
    const channelId = channelIdOf(client.channelConfig(r), net.chainId);
    const receiverBefore = await usdc(net.accounts.payers[0]!.address);
    // Their channel manager claims and settles what their server charged.
    const { BatchSettlementChannelManager } = await import("@x402/evm/batch-settlement/server");
    const { HTTPFacilitatorClient } = await import("@x402/core/server");
    const manager = new BatchSettlementChannelManager({ scheme: theirs.scheme, facilitator: new HTTPFacilitatorClient({ url: http.url }), receiver: net.accounts.payers[0]!.address, token: net.usdc.address, network: net.network } as never);
    await manager.claim();
    await manager.settle();
    expect((await onChain(channelId))[1]).toBe(PRICE * 13n);
    expect((await usdc(net.accounts.payers[0]!.address)) - receiverBefore).toBe(PRICE * 13n);
  }, 120_000);
});

describe("batch-settlement interop: cooperative refunds", () => {
  it("their client asks our server for a refund; our client asks theirs", async () => {
    const store = memoryChannelStore();
    const ours = await startChannelServer({ facilitator: facilitator.client, network: net.network, usdc: net.usdc, payTo: net.accounts.payee.address, amount: PRICE.toString(), store });
    closables.push(ours);
    const them = officialBatchClient({ privateKey: net.accounts.payers[2]!.privateKey, rpcUrl: net.rpcUrl, chainId: net.chainId });
    for (let i = 0; i < 2; i++) expect((await them.fetch(ours.paidUrl)).status).toBe(200);
    const theirPayer = net.accounts.payers[2]!.address;
    const before = await usdc(theirPayer);
    const refunded = await them.scheme.refund(ours.paidUrl);
    expect(refunded.success).toBe(true);
    // Their client deposits 5 × the price: 3 × the price comes back.
    expect((await usdc(theirPayer)) - before).toBe(3n * PRICE);

    const http = await serveOfficialBatchFacilitator(facilitator);
    closables.push(http);
    const theirs = await startOfficialBatchServer({ facilitatorUrl: http.url, network: net.network, payTo: net.accounts.payee.address, asset: { address: net.usdc.address, name: net.usdc.name, version: net.usdc.version }, amount: PRICE.toString() });
    closables.push(theirs);
    const account = privateKeyToAccount(net.accounts.payers[1]!.privateKey);
    const client = batchSettlementEvmClient({ account, depositMultiplier: 10, salt: `0x${"33".repeat(32)}` });
    const pay = wrapFetch(fetch, { schemes: [client] });
    for (let i = 0; i < 2; i++) expect((await pay(theirs.paidUrl)).status).toBe(200);
    const ourBefore = await usdc(account.address);
    const receipt = await client.refund(theirs.paidUrl);
    expect(receipt.success).toBe(true);
    expect((await usdc(account.address)) - ourBefore).toBe(8n * PRICE);
  }, 120_000);
});

describe("batch-settlement interop through our facilitator service", () => {
  const API_KEY = "interop-channel-api-key-0123456789";
  let service: RunningFacilitator;
  beforeAll(async () => {
    ({ service } = await startChannelFacilitator(net, { apiKeys: [API_KEY] }));
    closables.push(service);
  }, 60_000);

  it("their client → our server → our facilitator", async () => {
    const store = memoryChannelStore();
    const facilitatorClient = httpFacilitatorClient({ url: service.url, headers: () => ({ Authorization: `Bearer ${API_KEY}` }) });
    const server = await startChannelServer({ facilitator: facilitatorClient, network: net.network, usdc: net.usdc, payTo: net.accounts.payee.address, amount: PRICE.toString(), store });
    closables.push(server);
    const them = officialBatchClient({ privateKey: net.accounts.payers[2]!.privateKey, rpcUrl: net.rpcUrl, chainId: net.chainId });
    for (let i = 0; i < 7; i++) {
      const res = await them.fetch(server.paidUrl);
      expect(res.status, await res.clone().text()).toBe(200);
    }
    const payeeBefore = await usdc(net.accounts.payee.address);
    const results = await claimAndSettle({ store, facilitator: facilitatorClient, channels: batchSettlementEvmServer().channels });
    expect(results.map((r) => r.error)).toEqual([undefined]);
    expect(results[0]!.claimed).toBe((7n * PRICE).toString());
    // The sweep moves everything claimed for this receiver (earlier tests' refunds claimed some too).
    expect((await usdc(net.accounts.payee.address)) - payeeBefore).toBe(BigInt(results[0]!.settled!));
    expect(BigInt(results[0]!.settled!) >= 7n * PRICE).toBe(true);
  }, 120_000);

  it("our client → their server → our facilitator", async () => {
    const theirs = await startOfficialBatchServer({ facilitatorUrl: service.url, apiKey: API_KEY, network: net.network, payTo: net.accounts.payee.address, asset: { address: net.usdc.address, name: net.usdc.name, version: net.usdc.version }, amount: PRICE.toString() });
    closables.push(theirs);
    const account = privateKeyToAccount(net.accounts.payers[1]!.privateKey);
    const client = batchSettlementEvmClient({ account, salt: `0x${"44".repeat(32)}` });
    const pay = wrapFetch(fetch, { schemes: [client] });
    for (let i = 1; i <= 7; i++) {
      const res = await pay(theirs.paidUrl);
      expect(res.status, await res.clone().text()).toBe(200);
    }
    const r = JSON.parse(Buffer.from((await fetch(theirs.paidUrl)).headers.get("PAYMENT-REQUIRED")!, "base64").toString()).accepts[0];
    expect(client.channel(r)?.charged).toBe(7n * PRICE);
  }, 120_000);
});
