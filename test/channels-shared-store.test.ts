// Two instances of one resource server (express) behind one channel store in PostgreSQL
// (sqlChannelStore), our facilitator service, a real anvil chain: a payer's requests spread over
// both instances follow one cumulative total; the same voucher sent to both at once is served once;
// one claim over the shared store pays the payee exactly what was served.
import { createPaymentClient, httpFacilitatorClient, type FacilitatorClient, type PaymentRequired } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { BATCH_SETTLEMENT_ADDRESS, batchSettlementEvmClient, batchSettlementEvmServer } from "@tollgate/evm";
import type { RunningFacilitator } from "@tollgate/facilitator";
import { wrapFetch } from "@tollgate/fetch";
import { claimAndSettle, sqlChannelStore, type ChannelStore } from "@tollgate/server";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { createPublicClient, erc20Abi, http, type Address, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startChannelFacilitator } from "./support/channel-facilitator.ts";
import { startChannelServer, type ChannelServer } from "./support/channel-server.ts";

const PRICE = 1_000n;
const API_KEY = "shared-store-api-key-0123456789";
const DATABASE_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const table = `tollgate_channels_shared_${randomBytes(4).toString("hex")}`;

let net: RunningLocalNetwork;
let chain: PublicClient;
let service: RunningFacilitator;
const pools: pg.Pool[] = [];
let stores: ChannelStore[];
let instances: ChannelServer[];
/** Handler runs per instance, and a gate that holds the handlers while set. */
const ran = [0, 0];
let gate: Promise<void> | undefined;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 2 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  let facilitator: FacilitatorClient;
  ({ service, client: facilitator } = await startChannelFacilitator(net, { apiKeys: [API_KEY] }));
  // Each instance with its own connection pool, as two processes would have.
  stores = [0, 1].map(() => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
    pools.push(pool);
    return sqlChannelStore(pool, { table });
  });
  instances = await Promise.all(
    [0, 1].map((i) =>
      startChannelServer({
        facilitator,
        network: net.network,
        usdc: net.usdc,
        payTo: net.accounts.payee.address,
        amount: PRICE.toString(),
        store: stores[i]!,
        handler: async (path) => {
          if (path !== "/paid") return;
          ran[i]!++;
          if (gate) await gate;
        },
      }),
    ),
  );
}, 120_000);

afterAll(async () => {
  for (const s of instances ?? []) await s.close();
  await service?.close();
  await net?.stop();
  await pools[0]?.query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
  for (const p of pools) await p.end();
});

const usdc = (a: Address) => chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [a] });
const committed = async () => (await stores[0]!.list()).reduce((sum, r) => sum + BigInt(r.chargedCumulativeAmount), 0n);

describe("batch-settlement: two server instances, one channel store in PostgreSQL", () => {
  it("requests spread over both instances follow one cumulative total: every one served and charged once", async () => {
    const account = privateKeyToAccount(net.accounts.payers[0]!.privateKey);
    const pay = wrapFetch(fetch, { schemes: [batchSettlementEvmClient({ account, depositMultiplier: 20 })] });
    for (let i = 0; i < 10; i++) {
      const res = await pay(instances[i % 2]!.paidUrl);
      expect(res.status, `request ${i}`).toBe(200);
    }
    expect(ran).toEqual([5, 5]);
    expect(await committed()).toBe(10n * PRICE);
  }, 60_000);

  it("the same voucher sent to both instances at once is served by one; the other answers channel_busy, then the corrective 402", async () => {
    const account = privateKeyToAccount(net.accounts.payers[1]!.privateKey);
    const client = batchSettlementEvmClient({ account, depositMultiplier: 20 });
    const payments = createPaymentClient({ schemes: [client] });
    const requiredOf = async (url: string) => JSON.parse(Buffer.from((await fetch(url)).headers.get("PAYMENT-REQUIRED")!, "base64").toString()) as PaymentRequired;
    // Open the channel (the deposit) on the first instance.
    const opening = await payments.pay(await requiredOf(instances[0]!.paidUrl));
    const opened = await fetch(instances[0]!.paidUrl, { headers: { [opening.header.name]: opening.header.value } });
    expect(opened.status).toBe(200);
    await opening.observe?.({ status: 200, receipt: JSON.parse(Buffer.from(opened.headers.get("PAYMENT-RESPONSE")!, "base64").toString()) });
    const before = await committed();
    const runs = [...ran];

    const voucher = await payments.pay(await requiredOf(instances[0]!.paidUrl));
    let open!: () => void;
    gate = new Promise((r) => (open = r));
    const first = fetch(instances[0]!.paidUrl, { headers: { [voucher.header.name]: voucher.header.value } });
    // Wait until the first instance runs its handler (it holds the channel), then try the second.
    const deadline = Date.now() + 10_000;
    while (ran[0] === runs[0] && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const second = await fetch(instances[1]!.paidUrl, { headers: { [voucher.header.name]: voucher.header.value } });
    expect(second.status).toBe(402);
    expect(JSON.parse(Buffer.from(second.headers.get("PAYMENT-REQUIRED")!, "base64").toString()).error).toMatch(/^invalid_batch_settlement_evm_channel_busy/);
    gate = undefined;
    open();
    expect((await first).status).toBe(200);
    const replay = await fetch(instances[1]!.paidUrl, { headers: { [voucher.header.name]: voucher.header.value } });
    expect(replay.status).toBe(402);
    expect(JSON.parse(Buffer.from(replay.headers.get("PAYMENT-REQUIRED")!, "base64").toString()).error).toBe("invalid_batch_settlement_evm_cumulative_amount_mismatch");
    expect(ran[1]).toBe(runs[1]); // the second instance never ran the handler for it
    expect((await committed()) - before).toBe(PRICE);
  }, 60_000);

  it("one claim over the shared store pays the payee exactly what both instances served", async () => {
    const total = await committed();
    const payeeBefore = await usdc(net.accounts.payee.address);
    const escrowBefore = await usdc(BATCH_SETTLEMENT_ADDRESS);
    const results = await claimAndSettle({ store: stores[1]!, facilitator: httpFacilitatorClient({ url: service.url, headers: () => ({ Authorization: `Bearer ${API_KEY}` }) }), channels: batchSettlementEvmServer().channels });
    expect(results.map((g) => g.error)).toEqual([undefined]);
    expect(results[0]!.claimed).toBe(total.toString());
    expect((await usdc(net.accounts.payee.address)) - payeeBefore).toBe(total);
    expect(escrowBefore - (await usdc(BATCH_SETTLEMENT_ADDRESS))).toBe(total);
  }, 60_000);
});
