// Metered streams on a payment channel (batch-settlement) on anvil: "at most 5 cents for this
// stream", paid with a voucher instead of an on-chain settlement per stream. The voucher signs the
// cap; the channel commits exactly delivered × price; the next stream's voucher follows what was
// committed (the client resynchronizes through the corrective 402, since the receipt travels in the
// stream); one claim moves the sum of what every stream delivered, and nothing more.
import { METERED_STREAM, readMeteredStream, type FacilitatorClient } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { BATCH_SETTLEMENT_ADDRESS, batchSettlementEvmClient, batchSettlementEvmServer } from "@tollgate/evm";
import { wrapFetch } from "@tollgate/fetch";
import { paymentMiddleware } from "@tollgate/hono";
import { claimAndSettle, memoryChannelStore } from "@tollgate/server";
import type { Address } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startChannelFacilitator } from "./support/channel-facilitator.ts";
import { chainReader, meteredRoutes, serveTokenRoutes, tokenProducer, until, type StreamEnd } from "./support/metered.ts";

/** $0.05 of USDC: one stream's cap, the price each voucher signs. */
const CAP = 50_000n;
/** $0.0015 per token: 33 tokens fit (49 500), the 34th would pass the cap. */
const PER_TOKEN = 1_500n;
const API_KEY = "metered-channel-api-key-0123456789";

let chain: RunningLocalNetwork;
const closers: Array<() => Promise<void>> = [];
let apiUrl: string;
let paidFetch: typeof fetch;
let balance: (a: Address) => Promise<bigint>;
let blockNumber: () => Promise<bigint>;
let payer: Address;
let payee: Address;
const store = memoryChannelStore();
const channels = batchSettlementEvmServer({ assets: [] });
let facilitator: FacilitatorClient;
const errors: unknown[] = [];
const serverSide: StreamEnd[] = [];

const tokens = tokenProducer(serverSide);

beforeAll(async () => {
  chain = await startLocalNetwork({ payers: 1 });
  closers.push(() => chain.stop());
  const usdc = chain.usdc;
  ({ balance, blockNumber } = chainReader(chain.rpcUrl, usdc.address));

  const started = await startChannelFacilitator(chain, { apiKeys: [API_KEY], feePayerKey: chain.accounts.facilitator.privateKey });
  closers.push(() => started.service.close());
  facilitator = started.client;

  payee = chain.accounts.payee.address;
  const route = {
    scheme: "batch-settlement",
    price: { amount: CAP.toString(), asset: usdc.address },
    network: chain.network,
    payTo: payee,
    metered: { unit: "token", pricePerUnit: PER_TOKEN.toString() },
    maxTimeoutSeconds: 120,
  } as const;
  const served = await serveTokenRoutes(
    paymentMiddleware({
      facilitator,
      schemes: [batchSettlementEvmServer({ assets: [{ network: chain.network, address: usdc.address, decimals: usdc.decimals, name: usdc.name, version: usdc.version, symbol: "USDC" }] })],
      routes: meteredRoutes(route),
      channels: { store },
      onError: (e) => void errors.push(e),
      checkAtStart: false,
    }),
    tokens,
  );
  closers.push(() => served.close());
  apiUrl = served.url;

  const account = privateKeyToAccount(chain.accounts.payers[0]!.privateKey);
  payer = account.address;
  // Deposits cover four caps; each stream's voucher signs one more cap on top of what was committed.
  paidFetch = wrapFetch(fetch, { schemes: [batchSettlementEvmClient({ account, depositMultiplier: 4 })] }) as typeof fetch;
}, 120_000);

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
});

const committed = async () => BigInt((await store.list())[0]?.chargedCumulativeAmount ?? "0");


describe("metered streams on a channel (batch-settlement), on anvil", () => {
  it("the 402 advertises metered-stream on the channel option; its price is the stream's cap", async () => {
    const res = await fetch(`${apiUrl}/generate`);
    expect(res.status).toBe(402);
    const required = JSON.parse(Buffer.from(res.headers.get("PAYMENT-REQUIRED")!, "base64").toString()) as { accepts: Array<{ amount: string; scheme: string }>; extensions: Record<string, { info: unknown }> };
    expect(required.accepts[0]).toMatchObject({ scheme: "batch-settlement", amount: CAP.toString() });
    expect(required.extensions[METERED_STREAM]!.info).toMatchObject({ unit: "token", prices: [{ scheme: "batch-settlement", pricePerUnit: PER_TOKEN.toString() }] });
  });

  it("a stream stopped at its cap commits delivered × price on the channel; only the deposit touched the chain", async () => {
    const before = { payer: await balance(payer), escrow: await balance(BATCH_SETTLEMENT_ADDRESS) };
    const res = await paidFetch(`${apiUrl}/generate`);
    expect(res.status).toBe(200);
    const costs: bigint[] = [];
    const result = await readMeteredStream(res, { onCost: (c) => costs.push(c.charged) });
    const units = CAP / PER_TOKEN; // 33
    expect(result).toMatchObject({ stopped: "cap", capReached: true, success: true, delivered: units, charged: units * PER_TOKEN });
    expect(costs).toEqual(Array.from({ length: Number(units) }, (_, i) => BigInt(i + 1) * PER_TOKEN));
    // The in-band receipt: the channel's charged total, no transaction for the stream itself.
    expect(result.settlement?.extra).toMatchObject({ chargedAmount: (units * PER_TOKEN).toString(), channelState: { chargedCumulativeAmount: (units * PER_TOKEN).toString() } });
    expect(await committed()).toBe(49_500n);
    // The deposit (four caps) went into escrow; nothing was paid out yet.
    expect(before.payer - (await balance(payer))).toBe(4n * CAP);
    expect((await balance(BATCH_SETTLEMENT_ADDRESS)) - before.escrow).toBe(4n * CAP);
    expect(errors).toEqual([]);
  }, 60_000);

  it("the next stream follows the committed total; a client that leaves early is charged what was delivered", async () => {
    const base = await committed();
    const block = await blockNumber();
    const streams = serverSide.length;
    const res = await paidFetch(`${apiUrl}/slow`);
    expect(res.status).toBe(200);
    const stop = new AbortController();
    let seen = 0;
    const result = await readMeteredStream(res, { onMessage: () => void (++seen === 5 && stop.abort()) }, stop.signal);
    expect(result.charged).toBe(5n * PER_TOKEN);
    const server = await until(async () => serverSide[streams], "the stream's end");
    const total = await until(async () => ((await committed()) > base ? await committed() : undefined), "the channel's commit");
    // What the server handed to the connection: what the client read, plus at most the one in flight.
    expect(server.delivered === 5n || server.delivered === 6n).toBe(true);
    expect(total - base).toBe(server.delivered * PER_TOKEN);
    expect(await blockNumber()).toBe(block); // vouchers only: no transaction
  }, 60_000);

  it("a zero-unit stream commits nothing", async () => {
    const base = await committed();
    const result = await readMeteredStream(await paidFetch(`${apiUrl}/nothing`));
    expect(result).toMatchObject({ stopped: "done", success: true, delivered: 0n, charged: 0n });
    expect(await committed()).toBe(base);
  }, 60_000);

  it("one claim moves exactly what the streams delivered to the payee; the rest stays the payer's", async () => {
    const total = await committed();
    const before = await balance(payee);
    const [group] = await claimAndSettle({ store, facilitator, channels: channels.channels });
    expect(group?.error).toBeUndefined();
    expect(group?.claimed).toBe(total.toString());
    expect((await balance(payee)) - before).toBe(total);
    expect(await balance(BATCH_SETTLEMENT_ADDRESS)).toBe(4n * CAP - total);
    expect(errors).toEqual([]);
  }, 60_000);
});
