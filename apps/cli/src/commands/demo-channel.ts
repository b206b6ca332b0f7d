/**
 * `tollgate demo channel`: use first, pay later (`batch-settlement`). An agent opens a payment
 * channel with one deposit, then pays a hundred requests with cumulative vouchers that the API
 * checks off-chain and serves at once; the API's operator then claims every voucher and sweeps
 * the money to the payee in two transactions. Balances before and after, and the number of
 * on-chain transactions, are read from the chain. Ends by itself.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ServerType } from "@hono/node-server";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { createPublicClient, http, type Address, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { httpFacilitatorClient, type FacilitatorClient } from "@tollgate/core";
import { devAccount, startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { BATCH_SETTLEMENT_ADDRESS, batchSettlementAbi, batchSettlementEvmClient, batchSettlementEvmServer, eip3009Abi } from "@tollgate/evm";
import { startFacilitator } from "@tollgate/facilitator";
import { getPaymentReceipt, wrapFetch } from "@tollgate/fetch";
import { paymentMiddleware } from "@tollgate/hono";
import { claimAndSettle, fileChannelStore } from "@tollgate/server";

export interface ChannelDemoOptions {
  out?: (line: string) => void;
  /** Paid requests. Default 100. */
  requests?: number;
}

export interface ChannelDemoResult {
  requests: number;
  /** Transactions the whole run put on chain (deposit, claim, settle). */
  transactions: number;
  deposits: number;
  charged: bigint;
  before: Balances;
  after: Balances;
  claimTransactions: string[];
  settleTransaction: string;
}

export interface Balances {
  payer: bigint;
  payee: bigint;
  escrow: bigint;
}

const API_KEY = "demo-channel-api-key-not-secret";

export async function demoChannel(options: ChannelDemoOptions = {}): Promise<ChannelDemoResult> {
  const out = options.out ?? ((l: string) => process.stdout.write(l + "\n"));
  const bold = !options.out && process.stdout.isTTY ? (s: string) => `\x1b[1m${s}\x1b[0m` : (s: string) => s;
  const step = (n: number, title: string) => out(`\n${bold(`${n}. ${title}`)}`);
  const total = options.requests ?? 100;
  const cleanups: Array<() => Promise<void>> = [];
  const dir = mkdtempSync(join(tmpdir(), "tollgate-demo-channel-"));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  try {
    out("Starting a local network: anvil, a USDC-like token, the x402 batch-settlement contract and its deposit collectors…");
    const net = await startLocalNetwork({ payers: 1 });
    cleanups.push(() => net.stop());
    const chain = createPublicClient({ transport: http(net.rpcUrl) }) as PublicClient;
    const facilitator = await startFacilitator({
      port: 0,
      host: "127.0.0.1",
      networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [{ address: net.usdc.address, name: net.usdc.name, version: net.usdc.version, decimals: net.usdc.decimals }] }],
      privateKeys: [net.accounts.facilitator.privateKey],
      apiKeys: [API_KEY],
      batchSettlement: { relayerKey: devAccount(7).privateKey, receiverAuthorizerKey: devAccount(8).privateKey },
      logLevel: "silent",
    });
    cleanups.push(() => facilitator.close());
    const client = httpFacilitatorClient({ url: facilitator.url, headers: () => ({ Authorization: `Bearer ${API_KEY}` }) });
    out(`   contract ${BATCH_SETTLEMENT_ADDRESS}   facilitator ${facilitator.url}`);

    step(1, `An API prices GET /answer at $0.001 with batch-settlement; its channel store is on disk (${dir})`);
    const store = fileChannelStore(dir);
    const api = await startApi(net, client, store);
    cleanups.push(api.close);
    out(`   ${api.url}/answer   payee ${net.accounts.payee.address}`);

    const payer = net.accounts.payers[0]!;
    const account = privateKeyToAccount(payer.privateKey);
    const before = await balances(chain, net, payer.address);
    step(2, "Balances before");
    printBalances(out, before);

    step(3, `An agent pays ${total} requests: one deposit opens the channel, then a voucher per request`);
    const agent = batchSettlementEvmClient({ account, depositMultiplier: total });
    const pay = wrapFetch(fetch, { schemes: [agent] });
    const firstBlock = await chain.getBlockNumber({ cacheTime: 0 });
    let deposits = 0;
    let charged = 0n;
    for (let i = 1; i <= total; i++) {
      const res = await pay(`${api.url}/answer`);
      if (res.status !== 200) throw new Error(`request ${i}: HTTP ${res.status}`);
      const receipt = getPaymentReceipt(res)?.receipt as { transaction: string; amount?: string; extra?: { chargedAmount?: string; channelState?: { chargedCumulativeAmount?: string; balance?: string } } } | undefined;
      const state = receipt?.extra?.channelState;
      if (!state?.chargedCumulativeAmount) throw new Error(`request ${i}: no channel state in the receipt`);
      charged = BigInt(state.chargedCumulativeAmount);
      if (receipt!.transaction) deposits++;
      if (i <= 3 || i === total || receipt!.transaction) {
        const how = receipt!.transaction ? `deposit ${receipt!.amount} in tx ${short(receipt!.transaction)}` : "voucher, checked off-chain";
        out(`   request ${String(i).padStart(3)}  200  charged ${receipt!.extra!.chargedAmount}  cumulative ${state.chargedCumulativeAmount.padStart(6)}  ${how}`);
      } else if (i === 4) out("   …");
    }
    const afterRequests = await chain.getBlockNumber({ cacheTime: 0 });
    out(`   ${total} responses served; transactions on chain meanwhile: ${await transactionsBetween(chain, firstBlock, afterRequests)}`);

    step(4, "The operator claims every voucher and sweeps the money to the payee");
    const results = await claimAndSettle({ store, facilitator: client, channels: batchSettlementEvmServer().channels });
    const group = results[0];
    if (!group || group.error || !group.settleTransaction) throw new Error(`claim and settle failed: ${group?.error ?? "nothing to claim"}`);
    out(`   claim   ${group.channels} channel(s), ${group.claimed} claimed   tx ${short(group.claimTransactions[0]!)}`);
    out(`   settle  ${group.settled} moved to the payee            tx ${short(group.settleTransaction)}`);

    const after = await balances(chain, net, payer.address);
    const transactions = await transactionsBetween(chain, firstBlock, await chain.getBlockNumber({ cacheTime: 0 }));
    step(5, "Balances after");
    printBalances(out, after);
    const [channelBalance, totalClaimed] = (await chain.readContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "channels", args: [agent.channel((await requirementsOf(api.url)))!.channelId] })) as readonly [bigint, bigint];
    out(`   channel: deposited ${channelBalance}, claimed ${totalClaimed}, refundable to the agent ${channelBalance - totalClaimed}`);
    if (after.payee - before.payee !== charged || totalClaimed !== charged) throw new Error("the payee did not receive exactly what was charged");
    out(`\n${bold(`${total} paid requests, ${transactions} on-chain transactions`)} (${deposits} deposit${deposits === 1 ? "" : "s"}, ${group.claimTransactions.length} claim, 1 settle); \`exact\` would have sent ${total}.`);
    return { requests: total, transactions, deposits, charged, before, after, claimTransactions: group.claimTransactions, settleTransaction: group.settleTransaction };
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  }
}

async function startApi(net: RunningLocalNetwork, facilitator: FacilitatorClient, store: ReturnType<typeof fileChannelStore>): Promise<{ url: string; close: () => Promise<void> }> {
  const usdc = net.usdc;
  const app = new Hono();
  app.use(
    paymentMiddleware({
      facilitator,
      schemes: [batchSettlementEvmServer({ assets: [{ network: net.network, address: usdc.address, decimals: usdc.decimals, name: usdc.name, version: usdc.version, symbol: usdc.symbol }] })],
      routes: { "GET /answer": { scheme: "batch-settlement", price: "$0.001", network: net.network, payTo: net.accounts.payee.address, description: "An answer" } },
      channels: { store },
      checkAtStart: false,
    }),
  );
  app.get("/answer", (c) => c.json({ answer: 42 }));
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
    s.once("error", reject);
  });
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

async function requirementsOf(url: string) {
  const res = await fetch(`${url}/answer`);
  return JSON.parse(Buffer.from(res.headers.get("PAYMENT-REQUIRED")!, "base64").toString()).accepts[0];
}

async function balances(chain: PublicClient, net: RunningLocalNetwork, payer: Address): Promise<Balances> {
  const of = (owner: Address) => chain.readContract({ address: net.usdc.address, abi: eip3009Abi, functionName: "balanceOf", args: [owner] });
  return { payer: await of(payer), payee: await of(net.accounts.payee.address), escrow: await of(BATCH_SETTLEMENT_ADDRESS) };
}

function printBalances(out: (l: string) => void, b: Balances): void {
  out(`   agent ${usd(b.payer).padStart(14)}   payee ${usd(b.payee).padStart(14)}   channel escrow ${usd(b.escrow).padStart(10)}`);
}

/** Transactions in blocks (from, to]: anvil mines one block per transaction. */
async function transactionsBetween(chain: PublicClient, from: bigint, to: bigint): Promise<number> {
  let n = 0;
  for (let b = from + 1n; b <= to; b++) n += await chain.getBlockTransactionCount({ blockNumber: b });
  return n;
}

function usd(atomic: bigint): string {
  const whole = atomic / 1_000_000n;
  const frac = (atomic % 1_000_000n).toString().padStart(6, "0");
  return `$${whole}.${frac}`;
}

function short(hex: string): string {
  return `${hex.slice(0, 10)}…${hex.slice(-4)}`;
}

export type { Hex };
