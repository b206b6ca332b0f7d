// Metered streams on a real local chain (anvil with Permit2 and the upto proxy, a plain ERC-20,
// our facilitator service, a hono server, our paying fetch): "at most 5 cents for this stream".
// A stream stopped at its cap moves exactly delivered × price on chain and the client saw the
// running cost; a client that disconnects early is charged what was delivered; a zero-unit
// stream moves nothing (no transaction at all).
import { METERED_STREAM, readMeteredStream, type SettleResponse } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { erc20PermitAbi, PERMIT2_ADDRESS, uptoEvmClient, uptoEvmServer } from "@tollgate/evm";
import { startFacilitator } from "@tollgate/facilitator";
import { wrapFetch } from "@tollgate/fetch";
import { paymentMiddleware } from "@tollgate/hono";
import type { SettledEvent } from "@tollgate/server";
import { createWalletClient, http, maxUint256, type Address } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chainReader, meteredRoutes, serveTokenRoutes, tokenProducer, until, type StreamEnd } from "./support/metered.ts";

/** $0.05 of a 6-decimal token: the stream's cap. */
const CAP = 50_000n;
/** $0.0015 per token: 33 tokens fit (49 500), the 34th would pass the cap. */
const PER_TOKEN = 1_500n;

let chain: RunningLocalNetwork;
let closers: Array<() => Promise<void>> = [];
let apiUrl: string;
let paidFetch: typeof fetch;
let balance: (a: Address) => Promise<bigint>;
let blockNumber: () => Promise<bigint>;
let payer: Address;
let payee: Address;
const settled: SettledEvent[] = [];
const errors: unknown[] = [];
/** What the server's producer saw when its stream stopped, per request. */
const serverSide: StreamEnd[] = [];

const tokens = tokenProducer(serverSide);

beforeAll(async () => {
  chain = await startLocalNetwork({ payers: 1 });
  closers.push(() => chain.stop());
  const token = chain.plainToken;
  const reader = chainReader(chain.rpcUrl, token.address);
  ({ balance, blockNumber } = reader);
  const rpc = reader.rpc;

  const facilitator = await startFacilitator({
    port: 0,
    host: "127.0.0.1",
    networks: [{ network: chain.network, rpcUrl: chain.rpcUrl, assets: [{ address: token.address, name: token.name, version: token.version, decimals: token.decimals }] }],
    privateKeys: [chain.accounts.facilitator.privateKey],
    logLevel: "silent",
  });
  closers.push(() => facilitator.close());

  payee = chain.accounts.payee.address;
  const metered = { unit: "token", pricePerUnit: PER_TOKEN.toString() };
  const route = { scheme: "upto", price: { amount: CAP.toString(), asset: token.address }, network: chain.network, payTo: payee, metered, maxTimeoutSeconds: 120 } as const;
  const served = await serveTokenRoutes(
    paymentMiddleware({
      facilitator: facilitator.url,
      schemes: [uptoEvmServer({ assets: [{ network: chain.network, address: token.address, decimals: token.decimals, name: token.name, version: token.version, symbol: token.symbol }] })],
      routes: meteredRoutes(route),
      onSettled: (e) => void settled.push(e),
      onError: (e) => void errors.push(e),
      checkAtStart: false,
    }),
    tokens,
  );
  closers.push(() => served.close());
  apiUrl = served.url;

  // The payer approves Permit2 once; every payment after that is a signature.
  const account = privateKeyToAccount(chain.accounts.payers[0]!.privateKey);
  payer = account.address;
  const wallet = createWalletClient({ account, chain: { ...foundry, id: chain.chainId }, transport: http(chain.rpcUrl) });
  await rpc.waitForTransactionReceipt({ hash: await wallet.writeContract({ address: token.address, abi: erc20PermitAbi, functionName: "approve", args: [PERMIT2_ADDRESS, maxUint256] }) });
  paidFetch = wrapFetch(fetch, { schemes: [uptoEvmClient({ account })] }) as typeof fetch;
}, 120_000);

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => {});
  closers = [];
});


describe("metered streams on anvil", () => {
  it("the 402 advertises metered-stream; the upto maximum is the cap", async () => {
    const res = await fetch(`${apiUrl}/generate`);
    expect(res.status).toBe(402);
    const required = JSON.parse(Buffer.from(res.headers.get("PAYMENT-REQUIRED")!, "base64").toString()) as { accepts: Array<{ amount: string; scheme: string }>; extensions: Record<string, { info: unknown }> };
    expect(required.accepts[0]).toMatchObject({ scheme: "upto", amount: CAP.toString() });
    expect(required.extensions[METERED_STREAM]!.info).toMatchObject({ unit: "token", prices: [{ pricePerUnit: PER_TOKEN.toString() }] });
  });

  it("a stream stopped at its cap: the transfer on chain equals delivered × price, the client saw the running cost", async () => {
    const before = { payer: await balance(payer), payee: await balance(payee) };
    const res = await paidFetch(`${apiUrl}/generate`);
    expect(res.status).toBe(200);
    const costs: bigint[] = [];
    const messages: string[] = [];
    const result = await readMeteredStream(res, { onMessage: (m) => messages.push(m.data), onCost: (c) => costs.push(c.charged) });
    const expectedUnits = CAP / PER_TOKEN; // 33
    expect(result).toMatchObject({ stopped: "cap", capReached: true, success: true, delivered: expectedUnits, charged: expectedUnits * PER_TOKEN });
    expect(messages).toHaveLength(Number(expectedUnits));
    expect(messages.at(-1)).toBe(`token-${expectedUnits - 1n}`);
    // The running cost after every token: 1 500, 3 000, … 49 500.
    expect(costs).toEqual(Array.from({ length: Number(expectedUnits) }, (_, i) => BigInt(i + 1) * PER_TOKEN));
    const receipt = result.settlement as SettleResponse;
    expect(receipt.success).toBe(true);
    expect(receipt.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    const after = { payer: await balance(payer), payee: await balance(payee) };
    expect(before.payer - after.payer).toBe(49_500n);
    expect(after.payee - before.payee).toBe(49_500n);
    expect(errors).toEqual([]);
  }, 60_000);

  it("a client that disconnects early is charged what was delivered", async () => {
    const before = { payer: await balance(payer), payee: await balance(payee), settled: settled.length, server: serverSide.length };
    const res = await paidFetch(`${apiUrl}/slow`);
    expect(res.status).toBe(200);
    const stop = new AbortController();
    let seen = 0;
    const result = await readMeteredStream(res, { onMessage: () => void (++seen === 5 && stop.abort()) }, stop.signal);
    expect(result.stopped).toBeUndefined();
    expect(result.charged).toBe(5n * PER_TOKEN);
    await until(() => (settled.length > before.settled ? true : undefined), "the stream's settlement");
    const server = serverSide[before.server]!;
    // The server counts what it handed to the connection: what the client read, plus at most the one in flight.
    expect(server.delivered === 5n || server.delivered === 6n).toBe(true);
    const moved = before.payer - (await balance(payer));
    expect(moved).toBe(server.delivered * PER_TOKEN);
    expect((await balance(payee)) - before.payee).toBe(moved);
    expect(errors).toEqual([]);
  }, 60_000);

  it("a zero-unit stream moves nothing (no transaction)", async () => {
    const before = { payer: await balance(payer), block: await blockNumber() };
    const res = await paidFetch(`${apiUrl}/nothing`);
    const result = await readMeteredStream(res);
    expect(result).toMatchObject({ stopped: "done", success: true, delivered: 0n, charged: 0n, messages: 0 });
    expect(result.settlement?.transaction).toBe("");
    expect(await balance(payer)).toBe(before.payer);
    expect(await blockNumber()).toBe(before.block);
  }, 60_000);
});
