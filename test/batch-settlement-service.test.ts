// batch-settlement end to end on anvil: our client (wrapFetch) → our resource server (express,
// channel store on disk) → a facilitator (the official @x402/evm 2.27 facilitator face, in
// process). One deposit, a hundred vouchers, one claim and one settle; the corrective 402 and
// the client's recovery; a voucher below the cumulative refused; concurrent requests on one
// channel serialized; nothing served past the deposit; a failed handler charges nothing.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeBase64Json, httpFacilitatorClient, type FacilitatorClient, type PaymentRequired, type PaymentRequirements } from "@tollgate/core";
import { devAccount, startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import type { RunningFacilitator } from "@tollgate/facilitator";
import { BATCH_SETTLEMENT_ADDRESS, PERMIT2_ADDRESS, batchSettlementAbi, batchSettlementEvmClient, type BatchSettlementClient } from "@tollgate/evm";
import { getPaymentReceipt, wrapFetch } from "@tollgate/fetch";
import { claimAndSettle, fileChannelStore, settleChannelsEvery, type ChannelStore } from "@tollgate/server";
import { batchSettlementEvmServer } from "@tollgate/evm";
import { createPublicClient, createWalletClient, erc20Abi, http, maxUint256, type Hex, type PublicClient } from "viem";
import { foundry } from "viem/chains";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startChannelFacilitator } from "./support/channel-facilitator.ts";
import { startChannelServer, type ChannelServer } from "./support/channel-server.ts";
import { officialBatchFacilitator, type OfficialBatchFacilitator } from "./support/official-batch.ts";

const PRICE = 1_000n; // 0.001 USDC
let net: RunningLocalNetwork;
let chain: PublicClient;
let facilitator: OfficialBatchFacilitator;
let service: RunningFacilitator;
const dirs: string[] = [];
const servers: ChannelServer[] = [];
/** The stack the running describe uses. */
let facilitatorClient: FacilitatorClient;
let store: ChannelStore;
let server: ChannelServer;
let failNext = 0;
let holdNext: Promise<void> | undefined;
let running = 0;
let maxRunning = 0;

const handler = async () => {
  running++;
  maxRunning = Math.max(maxRunning, running);
  try {
    if (holdNext) await holdNext;
    if (failNext > 0) {
      failNext--;
      return 503;
    }
  } finally {
    running--;
  }
};

async function stack(client: FacilitatorClient): Promise<{ client: FacilitatorClient; store: ChannelStore; server: ChannelServer }> {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-channels-"));
  dirs.push(dir);
  const s = fileChannelStore(dir);
  const srv = await startChannelServer({ facilitator: client, network: net.network, usdc: net.usdc, payTo: net.accounts.payee.address, amount: PRICE.toString(), store: s, handler });
  servers.push(srv);
  return { client, store: s, server: srv };
}

const API_KEY = "channel-test-api-key-0123456789";

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 3 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  facilitator = officialBatchFacilitator({ rpcUrl: net.rpcUrl, chainId: net.chainId, privateKey: net.accounts.facilitator.privateKey, authorizerKey: net.accounts.deployer.privateKey });
  // Our facilitator service: its own relayer and a delegated receiver authorizer (another channel than the official one's).
  ({ service } = await startChannelFacilitator(net, { apiKeys: [API_KEY], tokens: [net.usdc, net.plainToken] }));
}, 60_000);

afterAll(async () => {
  for (const s of servers) await s.close();
  await service?.close();
  await net?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const stacks = {
  "official facilitator face": () => stack(facilitator.client),
  "our facilitator service": () => stack(httpFacilitatorClient({ url: service.url, headers: () => ({ Authorization: `Bearer ${API_KEY}` }) })),
};

function payer(i: number) {
  const account = privateKeyToAccount(net.accounts.payers[i]!.privateKey);
  const client = batchSettlementEvmClient({
    account,
    depositMultiplier: 10,
    reader: () => ({
      readChannel: async (channelId) => {
        const [balance, totalClaimed] = (await chain.readContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "channels", args: [channelId] })) as readonly [bigint, bigint];
        return { balance, totalClaimed };
      },
    }),
  });
  return { account, client, fetch: wrapFetch(fetch, { schemes: [client] }) };
}

async function usdc(address: Hex): Promise<bigint> {
  return chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [address] });
}

async function requirements(): Promise<PaymentRequirements> {
  const res = await fetch(server.paidUrl);
  const required = JSON.parse(Buffer.from(res.headers.get("PAYMENT-REQUIRED")!, "base64").toString()) as PaymentRequired;
  return required.accepts[0]!;
}

/** A payment header for hand-made payloads. */
function header(accepted: PaymentRequirements, payload: Record<string, unknown>): Record<string, string> {
  return { "PAYMENT-SIGNATURE": encodeBase64Json({ x402Version: 2, accepted, payload }) };
}

describe.each(Object.keys(stacks) as (keyof typeof stacks)[])("batch-settlement: our client → our server → %s", (kind) => {
  beforeAll(async () => {
    const s = await stacks[kind]();
    facilitatorClient = s.client;
    store = s.store;
    server = s.server;
  }, 60_000);

  it("one deposit, a hundred vouchers, one claim and one settle; balances move exactly", async () => {
    const { account, client, fetch: pay } = payer(0);
    const payee = net.accounts.payee.address;
    const before = { payer: await usdc(account.address), payee: await usdc(payee), escrow: await usdc(BATCH_SETTLEMENT_ADDRESS) };
    const startBlock = await chain.getBlockNumber({ cacheTime: 0 });
    let deposits = 0;
    for (let i = 0; i < 100; i++) {
      const res = await pay(server.paidUrl);
      expect(res.status).toBe(200);
      const receipt = getPaymentReceipt(res)?.receipt as { extra?: { chargedAmount?: string; channelState?: { chargedCumulativeAmount?: string } }; transaction: string; amount?: string } | undefined;
      expect(receipt?.extra?.chargedAmount).toBe(PRICE.toString());
      expect(receipt?.extra?.channelState?.chargedCumulativeAmount).toBe((PRICE * BigInt(i + 1)).toString());
      if (receipt?.transaction) deposits++;
      else expect(receipt?.amount).toBe("");
    }
    // depositMultiplier 10: a deposit every ten requests.
    expect(deposits).toBe(10);
    const r = await requirements();
    expect(client.channel(r)?.charged).toBe(PRICE * 100n);
    const afterRequests = await chain.getBlockNumber({ cacheTime: 0 });
    expect(afterRequests - startBlock).toBe(10n); // only the deposits went on chain

    const results = await claimAndSettle({ store, facilitator: facilitatorClient, channels: batchSettlementEvmServer().channels });
    expect(results).toHaveLength(1);
    expect(results[0]!.error).toBeUndefined();
    expect(results[0]!.claimed).toBe((PRICE * 100n).toString());
    expect(results[0]!.settled).toBe((PRICE * 100n).toString());
    const after = { payer: await usdc(account.address), payee: await usdc(payee), escrow: await usdc(BATCH_SETTLEMENT_ADDRESS) };
    expect(before.payer - after.payer).toBe(PRICE * 100n); // ten deposits of ten requests
    expect(after.payee - before.payee).toBe(PRICE * 100n);
    expect(after.escrow).toBe(before.escrow);
    const channelId = client.channel(r)!.channelId;
    const [balance, totalClaimed] = (await chain.readContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "channels", args: [channelId] })) as readonly [bigint, bigint];
    expect(balance).toBe(PRICE * 100n);
    expect(totalClaimed).toBe(PRICE * 100n);
  }, 120_000);

  it("a client that lost its state gets the corrective 402, checks the voucher shown is its own, and resumes", async () => {
    const first = payer(1);
    for (let i = 0; i < 3; i++) expect((await first.fetch(server.paidUrl)).status).toBe(200);
    const blocks = await chain.getBlockNumber({ cacheTime: 0 });
    // The same payer, no memory and no chain reader: it believes nothing was charged and nothing deposited.
    const amnesiac = batchSettlementEvmClient({ account: first.account, depositMultiplier: 10 });
    const pay = wrapFetch(fetch, { schemes: [amnesiac] });
    const res = await pay(server.paidUrl);
    expect(res.status).toBe(200);
    expect((getPaymentReceipt(res)?.receipt as { extra?: { channelState?: { chargedCumulativeAmount?: string } } }).extra?.channelState?.chargedCumulativeAmount).toBe((PRICE * 4n).toString());
    // Its stale deposit was refused by the cumulative check before anything reached the chain.
    expect(await chain.getBlockNumber({ cacheTime: 0 })).toBe(blocks);
    expect(amnesiac.channel(await requirements())?.charged).toBe(PRICE * 4n);
  }, 60_000);

  it("refuses a voucher below the cumulative amount (and one above it) without running the handler", async () => {
    const { account, fetch: pay, client } = payer(1);
    expect((await pay(server.paidUrl)).status).toBe(200);
    const r = await requirements();
    const channel = client.channel(r)!;
    const config = client.channelConfig(r);
    const ran = maxRunning;
    running = 0;
    for (const max of [channel.charged, channel.charged - PRICE, channel.charged + 2n * PRICE]) {
      const signature = await account.signTypedData({
        domain: { name: "x402 Batch Settlement", version: "1", chainId: net.chainId, verifyingContract: BATCH_SETTLEMENT_ADDRESS },
        types: { Voucher: [{ name: "channelId", type: "bytes32" }, { name: "maxClaimableAmount", type: "uint128" }] },
        primaryType: "Voucher",
        message: { channelId: channel.channelId, maxClaimableAmount: max },
      });
      const res = await fetch(server.paidUrl, { headers: header(r, { type: "voucher", channelConfig: config, voucher: { channelId: channel.channelId, maxClaimableAmount: max.toString(), signature } }) });
      expect(res.status).toBe(402);
      const required = JSON.parse(Buffer.from(res.headers.get("PAYMENT-REQUIRED")!, "base64").toString()) as PaymentRequired;
      expect(required.error).toBe("invalid_batch_settlement_evm_cumulative_amount_mismatch");
      const extra = required.accepts[0]!.extra as { channelState: { chargedCumulativeAmount: string }; voucherState: { signedMaxClaimable: string } };
      expect(extra.channelState.chargedCumulativeAmount).toBe(channel.charged.toString());
      expect(extra.voucherState.signedMaxClaimable).toBe(channel.charged.toString());
    }
    expect(maxRunning).toBe(ran);
  }, 60_000);

  it("serves one request per channel at a time: a concurrent one is answered channel_busy; our client's concurrent calls take turns", async () => {
    const { fetch: pay, client } = payer(2);
    expect((await pay(server.paidUrl)).status).toBe(200);
    let open!: () => void;
    holdNext = new Promise<void>((resolve) => (open = resolve));
    maxRunning = 0;
    const slow = pay(server.paidUrl);
    while (running === 0) await new Promise((r) => setTimeout(r, 5));
    const r = await requirements();
    // Our client makes a concurrent call on the channel wait for the slow one's answer ...
    const queued = pay(server.paidUrl);
    // ... while another client of the same channel (no turns shared) sends at once: busy.
    const other = payer(2).fetch;
    let busy: string | undefined;
    try {
      busy = await other(server.paidUrl).then(
        () => undefined,
        (e: { reason?: string }) => e.reason,
      );
    } finally {
      holdNext = undefined;
      open();
    }
    expect(busy).toMatch(/^invalid_batch_settlement_evm_channel_busy/);
    expect((await slow).status).toBe(200);
    expect((await queued).status).toBe(200);
    expect(maxRunning).toBe(1);
    // The busy one charged nothing: the next voucher follows the two served ones.
    expect((await pay(server.paidUrl)).status).toBe(200);
    expect(client.channel(r)?.charged).toBe(PRICE * 4n);
    const record = await store.get(client.channel(r)!.channelId);
    expect(record?.chargedCumulativeAmount).toBe((PRICE * 4n).toString());
  }, 60_000);

  it("a failed handler charges nothing; the next voucher follows the last charged one", async () => {
    const { fetch: pay, client } = payer(2);
    expect((await pay(server.paidUrl)).status).toBe(200);
    const r = await requirements();
    const before = client.channel(r)!.charged;
    failNext = 1;
    const failed = await pay(server.paidUrl).then(
      () => undefined,
      (e: { status?: number }) => e.status,
    );
    expect(failed).toBe(503);
    expect((await store.get(client.channel(r)!.channelId))?.chargedCumulativeAmount).toBe(before.toString());
    expect((await pay(server.paidUrl)).status).toBe(200);
    expect((await store.get(client.channel(r)!.channelId))?.chargedCumulativeAmount).toBe((before + PRICE).toString());
  }, 60_000);

  it("a failed handler on the deposit's request: the deposit stays counted, the next request is a voucher, not a second deposit", async () => {
    const account = privateKeyToAccount(net.accounts.payers[2]!.privateKey);
    const client = batchSettlementEvmClient({ account, depositMultiplier: 10, salt: `0x${"44".repeat(32)}` });
    const pay = wrapFetch(fetch, { schemes: [client] });
    const escrowBefore = await usdc(BATCH_SETTLEMENT_ADDRESS);
    failNext = 1;
    const failed = await pay(server.paidUrl).then(
      () => undefined,
      (e: { status?: number; receipt?: { transaction?: string } }) => e,
    );
    expect(failed?.status).toBe(503);
    expect(failed?.receipt?.transaction).toMatch(/^0x[0-9a-f]{64}$/); // the deposit's
    const r = await requirements();
    expect(client.channel(r)).toMatchObject({ balance: 10n * PRICE, charged: 0n });
    const blocks = await chain.getBlockNumber({ cacheTime: 0 });
    expect((await pay(server.paidUrl)).status).toBe(200);
    expect(await chain.getBlockNumber({ cacheTime: 0 })).toBe(blocks); // a voucher: no second deposit
    expect((await usdc(BATCH_SETTLEMENT_ADDRESS)) - escrowBefore).toBe(10n * PRICE);
    expect((await store.get(client.channel(r)!.channelId))?.chargedCumulativeAmount).toBe(PRICE.toString());
  }, 60_000);

  it("serves nothing past the deposit: a voucher above the channel balance is refused", async () => {
    // A payer that deposits exactly one request's worth.
    const account = privateKeyToAccount(net.accounts.payers[0]!.privateKey);
    const client = batchSettlementEvmClient({ account, depositMultiplier: 1, salt: `0x${"11".repeat(32)}` });
    const pay = wrapFetch(fetch, { schemes: [client] });
    expect((await pay(server.paidUrl)).status).toBe(200);
    const r = await requirements();
    const channel = client.channel(r)!;
    const max = channel.charged + PRICE; // the right cumulative, but past the balance
    const signature = await account.signTypedData({
      domain: { name: "x402 Batch Settlement", version: "1", chainId: net.chainId, verifyingContract: BATCH_SETTLEMENT_ADDRESS },
      types: { Voucher: [{ name: "channelId", type: "bytes32" }, { name: "maxClaimableAmount", type: "uint128" }] },
      primaryType: "Voucher",
      message: { channelId: channel.channelId, maxClaimableAmount: max },
    });
    const res = await fetch(server.paidUrl, { headers: header(r, { type: "voucher", channelConfig: client.channelConfig(r), voucher: { channelId: channel.channelId, maxClaimableAmount: max.toString(), signature } }) });
    expect(res.status).toBe(402);
    const required = JSON.parse(Buffer.from(res.headers.get("PAYMENT-REQUIRED")!, "base64").toString()) as PaymentRequired;
    expect(required.error).toMatch(/^invalid_batch_settlement_evm_cumulative_exceeds_balance/);
    // Our client tops up instead.
    expect((await pay(server.paidUrl)).status).toBe(200);
  }, 60_000);

  it("refuses a voucher signed by someone else", async () => {
    const { fetch: pay, client } = payer(2);
    expect((await pay(server.paidUrl)).status).toBe(200);
    const r = await requirements();
    const channel = client.channel(r)!;
    const stranger = privateKeyToAccount(`0x${"42".repeat(32)}`);
    const max = channel.charged + PRICE;
    const signature = await stranger.signTypedData({
      domain: { name: "x402 Batch Settlement", version: "1", chainId: net.chainId, verifyingContract: BATCH_SETTLEMENT_ADDRESS },
      types: { Voucher: [{ name: "channelId", type: "bytes32" }, { name: "maxClaimableAmount", type: "uint128" }] },
      primaryType: "Voucher",
      message: { channelId: channel.channelId, maxClaimableAmount: max },
    });
    const res = await fetch(server.paidUrl, { headers: header(r, { type: "voucher", channelConfig: client.channelConfig(r), voucher: { channelId: channel.channelId, maxClaimableAmount: max.toString(), signature } }) });
    expect(res.status).toBe(402);
    const required = JSON.parse(Buffer.from(res.headers.get("PAYMENT-REQUIRED")!, "base64").toString()) as PaymentRequired;
    expect(required.error).toMatch(/^invalid_batch_settlement_evm_voucher_signature/);
  }, 60_000);

  it("a Permit2 deposit (any ERC-20, no EIP-3009) opens a channel; vouchers follow; the claim pays the payee in that token", async () => {
    const plain = await startChannelServer({ facilitator: facilitatorClient, network: net.network, usdc: { ...net.plainToken, assetTransferMethod: "permit2" }, payTo: net.accounts.payee.address, amount: PRICE.toString(), store, handler });
    servers.push(plain);
    const account = privateKeyToAccount(net.accounts.payers[2]!.privateKey);
    const wallet = createWalletClient({ account, chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
    await chain.waitForTransactionReceipt({ hash: await wallet.writeContract({ address: net.plainToken.address, abi: erc20Abi, functionName: "approve", args: [PERMIT2_ADDRESS, maxUint256] }) });
    const client = batchSettlementEvmClient({ account, depositMultiplier: 10, salt: `0x${"55".repeat(32)}` });
    const pay = wrapFetch(fetch, { schemes: [client] });
    const plainOf = (a: Hex) => chain.readContract({ address: net.plainToken.address, abi: erc20Abi, functionName: "balanceOf", args: [a] });
    const payerBefore = await plainOf(account.address);
    const payeeBefore = await plainOf(net.accounts.payee.address);
    const kinds: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await pay(plain.paidUrl);
      expect(res.status, await res.clone().text()).toBe(200);
      kinds.push(getPaymentReceipt(res)?.receipt?.transaction ? "deposit" : "voucher");
    }
    expect(kinds).toEqual(["deposit", "voucher", "voucher"]);
    expect(payerBefore - (await plainOf(account.address))).toBe(10n * PRICE);
    const results = await claimAndSettle({ store, facilitator: facilitatorClient, channels: batchSettlementEvmServer().channels });
    const group = results.find((g) => g.token === net.plainToken.address.toLowerCase());
    expect(group?.error).toBeUndefined();
    expect(group?.claimed).toBe((3n * PRICE).toString());
    expect((await plainOf(net.accounts.payee.address)) - payeeBefore).toBe(3n * PRICE);
  }, 60_000);

  it("a cooperative refund returns unclaimed escrow at once (partial, then the rest) and claims what was charged; a sweep pays the payee", async () => {
    const account = privateKeyToAccount(net.accounts.payers[1]!.privateKey);
    const client = batchSettlementEvmClient({ account, depositMultiplier: 10, salt: `0x${"22".repeat(32)}` });
    const pay = wrapFetch(fetch, { schemes: [client] });
    for (let i = 0; i < 3; i++) expect((await pay(server.paidUrl)).status).toBe(200);
    const r = await requirements();
    const channelId = client.channel(r)!.channelId;
    const payerBefore = await usdc(account.address);
    const payeeBefore = await usdc(net.accounts.payee.address);
    const ran = maxRunning;

    const partial = await client.refund(server.paidUrl, { amount: 2n * PRICE });
    expect(partial.success).toBe(true);
    expect(partial.amount).toBe((2n * PRICE).toString());
    expect((await usdc(account.address)) - payerBefore).toBe(2n * PRICE);
    const rest = await client.refund(server.paidUrl);
    expect(rest.amount).toBe((5n * PRICE).toString());
    expect((await usdc(account.address)) - payerBefore).toBe(7n * PRICE);
    expect(maxRunning).toBe(ran); // the resource never ran for a refund
    const [balance, totalClaimed] = (await chain.readContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "channels", args: [channelId] })) as readonly [bigint, bigint];
    expect(balance).toBe(3n * PRICE);
    expect(totalClaimed).toBe(3n * PRICE);
    await expect(client.refund(server.paidUrl)).rejects.toThrow(/invalid_batch_settlement_evm_refund_no_balance/);

    const swept = await claimAndSettle({ store, facilitator: facilitatorClient, channels: batchSettlementEvmServer().channels });
    expect(swept.map((g) => g.error)).toEqual([undefined]);
    expect((await usdc(net.accounts.payee.address)) - payeeBefore).toBe(3n * PRICE);
    expect((await store.get(channelId))?.unswept).toBeUndefined();
  }, 60_000);

  it("settleChannelsEvery claims and sweeps on its own; once nothing is left, its passes send nothing", async () => {
    const account = privateKeyToAccount(net.accounts.payers[2]!.privateKey);
    const pay = wrapFetch(fetch, { schemes: [batchSettlementEvmClient({ account, depositMultiplier: 10, salt: `0x${"33".repeat(32)}` })] });
    for (let i = 0; i < 4; i++) expect((await pay(server.paidUrl)).status).toBe(200);
    const unclaimed = (await store.list()).filter((r) => r.token === net.usdc.address.toLowerCase()).reduce((sum, r) => sum + BigInt(r.chargedCumulativeAmount) - BigInt(r.totalClaimed), 0n);
    expect(unclaimed).toBeGreaterThanOrEqual(4n * PRICE);
    const payeeBefore = await usdc(net.accounts.payee.address);
    const loop = settleChannelsEvery({ store, facilitator: facilitatorClient, channels: batchSettlementEvmServer().channels, everyMs: 200, withdrawalsEveryMs: 200 });
    try {
      const deadline = Date.now() + 20_000;
      while ((await usdc(net.accounts.payee.address)) - payeeBefore < unclaimed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect((await usdc(net.accounts.payee.address)) - payeeBefore).toBe(unclaimed);
      for (const r of await store.list()) expect(BigInt(r.totalClaimed), r.channelId).toBe(BigInt(r.chargedCumulativeAmount));
      // Passes keep coming; with nothing to claim they send no transaction.
      await new Promise((r) => setTimeout(r, 300));
      const block = await chain.getBlockNumber({ cacheTime: 0 });
      await new Promise((r) => setTimeout(r, 600));
      expect(await chain.getBlockNumber({ cacheTime: 0 })).toBe(block);
    } finally {
      await loop.stop({ flush: true });
    }
  }, 60_000);
});


describe("batch-settlement: a server that holds its own receiver-authorizer key", () => {
  it("advertises its own authorizer, signs its claims and refunds; the facilitator will not claim or refund its channels unsigned", async () => {
    const authorizer = privateKeyToAccount(devAccount(12).privateKey);
    const face = batchSettlementEvmServer({ receiverAuthorizer: authorizer }).channels;
    const ours = httpFacilitatorClient({ url: service.url, headers: () => ({ Authorization: `Bearer ${API_KEY}` }) });
    const dir = mkdtempSync(join(tmpdir(), "tollgate-channels-"));
    dirs.push(dir);
    const own = fileChannelStore(dir);
    const srv = await startChannelServer({ facilitator: ours, network: net.network, usdc: net.usdc, payTo: net.accounts.payee.address, amount: PRICE.toString(), store: own, receiverAuthorizer: authorizer });
    servers.push(srv);
    const offer = (JSON.parse(Buffer.from((await fetch(srv.paidUrl)).headers.get("PAYMENT-REQUIRED")!, "base64").toString()) as PaymentRequired).accepts[0]!;
    expect(offer.extra?.receiverAuthorizer).toBe(authorizer.address); // not the facilitator's delegated one

    const account = privateKeyToAccount(net.accounts.payers[2]!.privateKey);
    const client = batchSettlementEvmClient({ account, depositMultiplier: 10, salt: `0x${"33".repeat(32)}` });
    const pay = wrapFetch(fetch, { schemes: [client] });
    for (let i = 0; i < 3; i++) expect((await pay(srv.paidUrl)).status).toBe(200);
    const channelId = client.channel(offer)!.channelId;
    const record = (await own.get(channelId))!;
    const onChain = async () => (await chain.readContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "channels", args: [channelId] })) as readonly [bigint, bigint];

    // Anyone with an API key asking the facilitator to claim or refund this channel unsigned: refused, nothing moves.
    const claimEntry = face.claimEntry({ channelConfig: record.channelConfig, signedMaxClaimable: BigInt(record.signedMaxClaimable), signature: record.signature, chargedCumulativeAmount: BigInt(record.chargedCumulativeAmount) });
    const unsigned = await ours.settle({ x402Version: 2, accepted: offer, payload: { type: "claim", claims: [claimEntry] } }, offer);
    expect(unsigned).toMatchObject({ success: false, errorReason: "invalid_batch_settlement_evm_authorizer_address_mismatch" });
    // The payer's own signed voucher as the refund's proof (what the delegated path accepts), no claim of the charges.
    const voucher = { channelId, maxClaimableAmount: record.signedMaxClaimable, signature: record.signature };
    const refund = await ours.settle({ x402Version: 2, accepted: offer, payload: { type: "refund", channelConfig: record.channelConfig, voucher, amount: (10n * PRICE).toString(), refundNonce: "0", claims: [] } }, offer);
    expect(refund).toMatchObject({ success: false, errorReason: "invalid_batch_settlement_evm_authorizer_address_mismatch" });
    expect(await onChain()).toEqual([10n * PRICE, 0n]);

    // The server's own claim (signed with its key) and sweep.
    const payeeBefore = await usdc(net.accounts.payee.address);
    const swept = await claimAndSettle({ store: own, facilitator: ours, channels: face });
    expect(swept.map((g) => g.error)).toEqual([undefined]);
    expect(await onChain()).toEqual([10n * PRICE, 3n * PRICE]);
    expect((await usdc(net.accounts.payee.address)) - payeeBefore).toBe(3n * PRICE);

    // A cooperative refund through the server: the server signs it, the rest goes back to the payer.
    const payerBefore = await usdc(account.address);
    const refunded = await client.refund(srv.paidUrl);
    expect(refunded.amount).toBe((7n * PRICE).toString());
    expect((await usdc(account.address)) - payerBefore).toBe(7n * PRICE);
    expect(await onChain()).toEqual([3n * PRICE, 3n * PRICE]);
  }, 60_000);
});


const CHILD = fileURLToPath(new URL("./support/channel-server-child.ts", import.meta.url));

/** Our channel server in its own process; resolves once it listens. */
async function spawnServer(dir: string, crash?: { crash: "handler" | "after-commit"; crashAt: number }): Promise<{ url: string; proc: ChildProcess; exited: Promise<unknown> }> {
  const config = {
    rpcUrl: net.rpcUrl,
    chainId: net.chainId,
    network: net.network,
    usdc: net.usdc,
    payTo: net.accounts.payee.address,
    amount: PRICE.toString(),
    dir,
    // Its own gas key: the in-test facilitator's nonces are not shared with the child's.
    facilitatorKey: net.accounts.payers[2]!.privateKey,
    authorizerKey: net.accounts.deployer.privateKey,
    ...crash,
  };
  const proc = spawn(process.execPath, ["--import", "tsx", CHILD], { env: { ...process.env, CHANNEL_SERVER_CONFIG: JSON.stringify(config) }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (out += d));
  const exited = new Promise((r) => proc.once("exit", r));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`channel server child did not start:\n${out.slice(-2000)}`)), 60_000);
    proc.stdout!.on("data", () => {
      const m = /LISTENING (\S+)/.exec(out);
      if (m) (clearTimeout(timer), resolve(m[1]!));
    });
    void exited.then((code) => (clearTimeout(timer), reject(new Error(`channel server child exited (${String(code)}):\n${out.slice(-2000)}`))));
  });
  return { url, proc, exited };
}

describe("batch-settlement: a server crash between serving and committing", () => {
  for (const crash of ["handler", "after-commit"] as const) {
    it(`crash ${crash === "handler" ? "while serving (before the commit)" : "after the commit, before the response"}: nothing lost, nothing charged twice`, async () => {
      const crashDir = mkdtempSync(join(tmpdir(), "tollgate-channels-crash-"));
      const account = privateKeyToAccount(net.accounts.payers[1]!.privateKey);
      const client = batchSettlementEvmClient({ account, depositMultiplier: 10, salt: crash === "handler" ? `0x${"aa".repeat(32)}` : `0x${"bb".repeat(32)}` });
      const pay = wrapFetch(fetch, { schemes: [client] });
      const children: ChildProcess[] = [];
      try {
        const first = await spawnServer(crashDir, { crash, crashAt: 3 });
        children.push(first.proc);
        let delivered = 0;
        for (let i = 0; i < 2; i++) if ((await pay(first.url)).status === 200) delivered++;
        const lost = await pay(first.url).then(
          () => "served",
          (e: { reason?: string }) => e.reason,
        );
        expect(lost).toBe("network_error"); // the process died with the third request
        await first.exited;

        const second = await spawnServer(crashDir);
        children.push(second.proc);
        const fileStore = fileChannelStore(crashDir);
        const r = (await (async () => {
          const res = await fetch(second.url);
          return (JSON.parse(Buffer.from(res.headers.get("PAYMENT-REQUIRED")!, "base64").toString()) as PaymentRequired).accepts[0]!;
        })());
        const channelId = client.channel(r)!.channelId;
        const committed = BigInt((await fileStore.get(channelId))!.chargedCumulativeAmount);
        // Served-but-not-committed is not charged; committed is not lost.
        expect(committed).toBe(crash === "handler" ? PRICE * 2n : PRICE * 3n);
        for (let i = 0; i < 3; i++) if ((await pay(second.url)).status === 200) delivered++;
        expect(delivered).toBe(5);
        const total = BigInt((await fileStore.get(channelId))!.chargedCumulativeAmount);
        expect(total).toBe(committed + PRICE * 3n);

        // Claim what the restarted server holds: exactly its charged total, once.
        const results = await claimAndSettle({ store: fileStore, facilitator: facilitator.client, channels: batchSettlementEvmServer().channels });
        expect(results.map((g) => g.error)).toEqual([undefined]);
        expect(results[0]!.claimed).toBe(total.toString());
        const [, totalClaimed] = (await chain.readContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "channels", args: [channelId as Hex] })) as readonly [bigint, bigint];
        expect(totalClaimed).toBe(total);
        // A second claim finds nothing left: nothing is charged twice.
        expect(await claimAndSettle({ store: fileStore, facilitator: facilitator.client, channels: batchSettlementEvmServer().channels })).toEqual([]);
      } finally {
        for (const c of children) c.kill("SIGTERM");
        rmSync(crashDir, { recursive: true, force: true });
      }
    }, 120_000);
  }
});

export type { BatchSettlementClient };
