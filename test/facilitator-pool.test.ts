// A resource server over two of our facilitators on one anvil chain, with a facility in front of
// the first one that loses `/settle` calls. Money safety of failover, with real parts:
//   - a settle the first facilitator never received moves to the second only once the chain
//     proves the authorization unused, and the payment settles once;
//   - a settle the first facilitator DID receive (its answer lost) is never sent to the second,
//     whatever the pool is told: the chain shows the authorization used, and it stays with the first.
import type { IncomingMessage, ServerResponse } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, erc20Abi, http, parseEventLogs, type Address, type Hex, type PublicClient } from "viem";
import { httpFacilitatorClient, type FacilitatorClient } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { eip3009Abi, exactEvmAuthorizationUnused, exactEvmSettlementOnChain } from "@tollgate/evm";
import { getPaymentReceipt } from "@tollgate/fetch";
import { facilitatorPool, type PoolEvent } from "@tollgate/server";
import { listen, type Closable } from "./support/listen.ts";
import { officialFetch, readPaymentResponse, startOfficialServer } from "./support/official.ts";
import { startTollgateFacilitator, startTollgateServer, tollgateFetch, type TollgateFacilitator, type TollgateServer } from "./support/tollgate.ts";

let net: RunningLocalNetwork;
let chain: PublicClient;
let first: TollgateFacilitator;
let second: TollgateFacilitator;
let front: Closable;
/** What the front does with /settle: pass it on, drop it unseen, or pass it on and lose the answer. */
let mode: "pass" | "drop" | "lose-answer" | "5xx" | "hang" = "pass";
const settles = { first: 0, second: 0 };

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 3 });
  chain = createPublicClient({ transport: http(net.rpcUrl) }) as PublicClient;
  [first, second] = await Promise.all([
    startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, privateKey: net.accounts.facilitator.privateKey }),
    startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, privateKey: net.accounts.deployer.privateKey }),
  ]);
  front = await listen((req, res) => void relay(req, res));
});

afterAll(async () => {
  await front?.close();
  await first?.close();
  await second?.close();
  await net?.stop();
});

async function relay(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const settle = req.url === "/settle";
  if (settle && mode === "drop") return void req.socket.destroy();
  if (settle && mode === "5xx") return void res.writeHead(502, { "content-type": "text/plain" }).end("bad gateway");
  if (settle && mode === "hang") return; // never answers: the client's timeout decides
  if (settle) settles.first++;
  const answer = await fetch(`${first.url}${req.url}`, { method: req.method, headers: { "content-type": "application/json" }, ...(req.method === "POST" ? { body: Buffer.concat(chunks) } : {}) });
  const text = await answer.text();
  if (settle && mode === "lose-answer") return void req.socket.destroy();
  res.writeHead(answer.status, { "content-type": "application/json" });
  res.end(text);
}

async function serverOverPool(events: PoolEvent[], withSettledProof = false): Promise<TollgateServer> {
  const direct = httpFacilitatorClient({ url: second.url });
  const viaFront = httpFacilitatorClient({ url: front.url, settleTimeoutMs: 1_000 });
  const countedSecond: FacilitatorClient = { ...direct, settle: (...a) => (settles.second++, direct.settle(...a)) };
  return startTollgateServer({
    facilitatorUrl: front.url,
    network: net.network,
    usdc: net.usdc,
    payTo: net.accounts.payee.address,
    price: "10000",
    framework: "hono",
    paywall: { settlementPollMs: 100, settlementTimeoutMs: 4_000 },
    wrapFacilitator: () =>
      facilitatorPool({
        facilitators: [
          { facilitator: viaFront, name: "first" },
          { facilitator: countedSecond, name: "second" },
        ],
        settleAttempts: 2,
        proveUnused: exactEvmAuthorizationUnused({ rpcUrls: { [net.network]: net.rpcUrl } }),
        ...(withSettledProof ? { proveSettled: exactEvmSettlementOnChain({ rpcUrls: { [net.network]: net.rpcUrl } }) } : {}),
        onEvent: (e) => events.push(e),
      }),
  });
}

const usedEvents = async (payer: Address) =>
  parseEventLogs({ abi: eip3009Abi, eventName: "AuthorizationUsed", logs: await chain.getLogs({ address: net.usdc.address, fromBlock: 0n, toBlock: "latest" }) }).filter(
    (e) => e.args.authorizer.toLowerCase() === payer.toLowerCase(),
  );
const balanceOf = (owner: Address) => chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [owner] });

describe("failover between real facilitators", () => {
  it("moves a settlement the first never received, once the chain proves it unused; it settles once", async () => {
    const events: PoolEvent[] = [];
    const server = await serverOverPool(events);
    try {
      const payer = net.accounts.payers[0]!;
      const before = await balanceOf(payer.address);
      mode = "drop";
      settles.first = settles.second = 0;
      const res = await tollgateFetch({ privateKey: payer.privateKey })(server.paidUrl);
      expect(res.status).toBe(200);
      const tx = getPaymentReceipt(res)!.receipt!.transaction as Hex;
      expect((await chain.getTransaction({ hash: tx })).from.toLowerCase()).toBe(second.address.toLowerCase());
      expect(events).toContainEqual({ kind: "settle-moved", from: "first", to: "second" });
      expect(settles.first).toBe(0);
      expect(await balanceOf(payer.address)).toBe(before - 10_000n);
      expect(await usedEvents(payer.address)).toHaveLength(1);
    } finally {
      mode = "pass";
      await server.close();
    }
  });

  it("never sends a settlement the first received to the second: it is used on chain, so it stays", async () => {
    const events: PoolEvent[] = [];
    const server = await serverOverPool(events);
    try {
      const payer = net.accounts.payers[1]!;
      const before = await balanceOf(payer.address);
      mode = "lose-answer";
      settles.first = settles.second = 0;
      // The answer was lost: the paywall cannot know whether it settled, so it serves nothing.
      await expect(tollgateFetch({ privateKey: payer.privateKey })(server.paidUrl)).rejects.toThrow(/facilitator is unavailable/);
      expect(settles.first).toBeGreaterThanOrEqual(2);
      expect(settles.second).toBe(0);
      expect(events.some((e) => e.kind === "settle-moved")).toBe(false);
      // The first facilitator settled it, once; nobody settled it twice.
      expect(await usedEvents(payer.address)).toHaveLength(1);
      expect(await balanceOf(payer.address)).toBe(before - 10_000n);
    } finally {
      mode = "pass";
      await server.close();
    }
  });

  it("serves a payment the silent facilitator did settle, reading the settlement from the chain (paid is served)", async () => {
    const events: PoolEvent[] = [];
    const server = await serverOverPool(events, true);
    try {
      const payer = net.accounts.payers[2]!;
      const before = await balanceOf(payer.address);
      mode = "lose-answer";
      settles.first = settles.second = 0;
      const res = await tollgateFetch({ privateKey: payer.privateKey })(server.paidUrl);
      expect(res.status).toBe(200);
      const tx = getPaymentReceipt(res)!.receipt!.transaction as Hex;
      expect((await chain.getTransaction({ hash: tx })).from.toLowerCase()).toBe(first.address.toLowerCase());
      expect(events).toContainEqual({ kind: "settled-on-chain", facilitator: "first", transaction: tx });
      expect(settles.second).toBe(0);
      expect(await usedEvents(payer.address)).toHaveLength(1);
      expect(await balanceOf(payer.address)).toBe(before - 10_000n);
    } finally {
      mode = "pass";
      await server.close();
    }
  });
});

describe("a facilitator answering 5xx, or hanging past the timeout", () => {
  it.each(["5xx", "hang"] as const)("%s on /settle before it saw the payment: moved with proof, settled once", async (failure) => {
    const events: PoolEvent[] = [];
    const server = await serverOverPool(events, true);
    try {
      const payer = net.accounts.payers[failure === "5xx" ? 0 : 1]!;
      const before = await balanceOf(payer.address);
      mode = failure;
      settles.second = 0;
      const res = await tollgateFetch({ privateKey: payer.privateKey })(server.paidUrl);
      expect(res.status).toBe(200);
      const tx = getPaymentReceipt(res)!.receipt!.transaction as Hex;
      expect((await chain.getTransaction({ hash: tx })).from.toLowerCase()).toBe(second.address.toLowerCase());
      expect(events).toContainEqual({ kind: "settle-moved", from: "first", to: "second" });
      expect(settles.second).toBe(1);
      expect(await balanceOf(payer.address)).toBe(before - 10_000n);
    } finally {
      mode = "pass";
      await server.close();
    }
  });
});

describe("the official @x402/core resource server over two of our facilitators", () => {
  it("accepts the list and settles payments from their client and ours, once each", async () => {
    const server = await startOfficialServer({
      facilitatorUrl: first.url,
      moreFacilitatorUrls: [second.url],
      network: net.network,
      payTo: net.accounts.payee.address,
      asset: { address: net.usdc.address, name: net.usdc.name, version: net.usdc.version },
      amount: "10000",
    });
    try {
      const payer = net.accounts.payers[0]!;
      const before = await balanceOf(payer.address);
      const theirs = await officialFetch({ privateKey: payer.privateKey })(server.paidUrl);
      expect(theirs.status).toBe(200);
      const ours = await tollgateFetch({ privateKey: payer.privateKey })(server.paidUrl);
      expect(ours.status).toBe(200);
      const txs = [readPaymentResponse(theirs)!.transaction, readPaymentResponse(ours)!.transaction];
      for (const tx of txs) expect((await chain.getTransactionReceipt({ hash: tx as Hex })).status).toBe("success");
      expect(await balanceOf(payer.address)).toBe(before - 20_000n);
    } finally {
      await server.close();
    }
  });
});
