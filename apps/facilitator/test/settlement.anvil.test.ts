/**
 * The settlement engine behind /settle on a real anvil (BatchSettler deployed):
 * - 500 distinct concurrent payments, batching on, two fee payers: all settle, balances add up,
 *   far fewer transactions than payments, no nonce error;
 * - 150 with batching off: one transaction each, all settle;
 * - a receipt that does not come in time: /settle answers pending (the hash in our extension), the
 *   background finishes it, the next /settle hands out the success once, a later one is a duplicate;
 * - the RPC going away right after a send reached the chain (its answer lost), then coming back:
 *   nothing settled twice, nothing lost, the ledger agrees with the chain;
 * - a signer balance floor: /ready names the signer, /settle answers facilitator_not_ready, nothing sent.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { devAccount, startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import type { Address, PublicClient } from "viem";
import { createLedger, type Ledger } from "../src/ledger/ledger.ts";
import { startFacilitator, type RunningFacilitator } from "../src/start.ts";
import { authorizationUsed, chainOf, extensionTransaction, localAssets, rpcProxy, settle, settledIn, settleUntilFinal, signPayments, tokenBalance, type Payment } from "./settlement-helpers.ts";

let net: RunningLocalNetwork;
let chain: PublicClient;
/** One in-memory store for every facilitator of this file (each test uses its own payments). */
let ledger: Ledger;
const keys = [devAccount(1), devAccount(8)];
const running: RunningFacilitator[] = [];

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 4 });
  chain = chainOf(net);
  ledger = await createLedger();
}, 120_000);

afterAll(async () => {
  await Promise.all(running.map((r) => r.close()));
  await net?.stop();
  await ledger?.close();
});

function facilitator(overrides: Record<string, unknown> = {}, rpcUrl = net.rpcUrl, batchSettler: string | undefined = net.batchSettler.address) {
  return startFacilitator({
    port: 0,
    logLevel: "silent",
    networks: [{ network: net.network, rpcUrl, assets: localAssets(net), ...(batchSettler ? { batchSettler } : {}) }],
    privateKeys: keys.map((k) => k.privateKey),
    settle: { pollMs: 20, waitMs: 300 },
    ...overrides,
  }, { ledger }).then((f) => (running.push(f), f));
}

const txCount = (a: Address) => chain.getTransactionCount({ address: a });
const sentBy = async () => (await Promise.all(keys.map((k) => txCount(k.address)))).reduce((a, b) => a + b, 0);

async function expectAllSettledOnce(payments: Payment[], responses: any[], payeeBefore: bigint, service: RunningFacilitator) {
  expect(responses.filter((r) => !r.success)).toEqual([]);
  const total = payments.reduce((a, p) => a + p.amount, 0n);
  expect(await tokenBalance(chain, net, net.accounts.payee.address)).toBe(payeeBefore + total);
  for (const p of payments.slice(0, 50)) expect(await authorizationUsed(chain, net, p)).toBe(true);
  await expectRowsSettled(payments);
}

async function expectRowsSettled(payments: Payment[]) {
  const keys = payments.map((p) => `${net.network}|${net.usdc.address.toLowerCase()}|${p.from.toLowerCase()}|${p.nonce.toLowerCase()}`);
  const rows = await ledger.sql.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM ${ledger.schema}.payments WHERE payment_key = ANY($1::text[]) GROUP BY status`, [keys]);
  expect(rows).toEqual([{ status: "settled", n: payments.length }]);
}

describe("settlement engine behind /settle", () => {
  it("500 distinct concurrent payments, batching on: all settle, no nonce error, few transactions", async () => {
    const service = await facilitator({ settlement: { maxBatchSize: 100, maxWaitMs: 100 } });
    const payments = await signPayments(net, 500);
    const [payeeBefore, sentBefore] = [await tokenBalance(chain, net, net.accounts.payee.address), await sentBy()];
    const started = performance.now();
    const responses = (await Promise.all(payments.map((p) => settle(service.url, p.body)))).map((r) => r.json);
    const seconds = (performance.now() - started) / 1000;
    await expectAllSettledOnce(payments, responses, payeeBefore, service);
    const transactions = (await sentBy()) - sentBefore;
    console.log(`batching on: 500 payments settled in ${seconds.toFixed(2)} s (${(500 / seconds).toFixed(0)}/s) with ${transactions} transactions`);
    // Group commit: batch size follows the arrival rate (an idle signer sends at once), so on a loaded
    // machine batches are small; batched still means clearly fewer transactions than payments.
    expect(transactions).toBeLessThan(350);
    expect(service.settlement!.stats().transactions).toBe(transactions);
    // Both fee payers were used.
    expect(Object.values(service.settlement!.stats().perSigner).filter((n) => n > 0).length).toBe(2);
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    expect(metrics).toMatch(/tollgate_settle_batch_size_count\{network="eip155:31337"\} ([1-9][0-9]*)/);
    expect(metrics).toMatch(/tollgate_settlement_gas_per_payment_count\{network="eip155:31337"\} [1-9]/);
  }, 120_000);

  it("150 distinct concurrent payments, batching off: one transaction each, all settle", async () => {
    const service = await facilitator({ settlement: { batching: false } });
    const payments = await signPayments(net, 150, 1000);
    const [payeeBefore, sentBefore] = [await tokenBalance(chain, net, net.accounts.payee.address), await sentBy()];
    const started = performance.now();
    const responses = (await Promise.all(payments.map((p) => settle(service.url, p.body)))).map((r) => r.json);
    const seconds = (performance.now() - started) / 1000;
    await expectAllSettledOnce(payments, responses, payeeBefore, service);
    const transactions = (await sentBy()) - sentBefore;
    console.log(`batching off: 150 payments settled in ${seconds.toFixed(2)} s (${(150 / seconds).toFixed(0)}/s) with ${transactions} transactions`);
    expect(transactions).toBe(150);
  }, 120_000);

  it("a receipt that does not come in time: pending with the hash, finished in the background, then replayed", async () => {
    const service = await facilitator({ settlement: { receiptTimeoutMs: 300, reconcileIntervalMs: 100 } });
    const [p] = await signPayments(net, 1, 5000);
    const payeeBefore = await tokenBalance(chain, net, net.accounts.payee.address);
    await chain.request({ method: "evm_setAutomine" as never, params: [false] as never });
    try {
      const first = await settle(service.url, p!.body);
      expect(first.status).toBe(200);
      // Spec: a settle that did not settle has transaction ""; the hash is in our extension.
      expect(first.json).toMatchObject({ success: false, errorReason: "settlement_pending", transaction: "", extensions: { "tollgate-settlement": { status: "pending" } } });
      const hash = extensionTransaction(first.json);
      expect(hash).toMatch(/^0x[0-9a-f]{64}$/);
      const row = await service.ledger.get(`${net.network}|${net.usdc.address.toLowerCase()}|${p!.from.toLowerCase()}|${p!.nonce.toLowerCase()}`);
      expect(row).toMatchObject({ status: "pending", transaction: hash });
      // A duplicate meanwhile: still pending, same hash, nothing new sent.
      const dup = await settle(service.url, p!.body);
      expect(dup.json).toMatchObject({ success: false, errorReason: "settlement_pending" });
      expect(extensionTransaction(dup.json)).toBe(hash);
      await chain.request({ method: "evm_mine" as never, params: [] as never });
    } finally {
      await chain.request({ method: "evm_setAutomine" as never, params: [true] as never });
    }
    const final = await settleUntilFinal(service.url, p!.body, 10_000);
    expect(final).toMatchObject({ success: true, transaction: expect.any(String) });
    expect(await settledIn(chain, final.transaction, p!)).toBe(true);
    expect(await tokenBalance(chain, net, net.accounts.payee.address)).toBe(payeeBefore + p!.amount);
    // The success was handed out once; the same payload again buys nothing (no payment-identifier).
    const again = (await settle(service.url, p!.body)).json;
    expect(again).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: "" });
    expect(extensionTransaction(again)).toBe(final.transaction);
  }, 60_000);

  it("the RPC going away mid-settle (a send reached the chain, its answer was lost): no double settlement, correct end state", async () => {
    const proxy = await rpcProxy(net.rpcUrl);
    try {
      const service = await facilitator({ settlement: { maxWaitMs: 20, reconcileIntervalMs: 200, dropAfterMs: 2000 }, settle: { pollMs: 20, waitMs: 200 } }, proxy.url);
      const payments = await signPayments(net, 40, 6000);
      const payeeBefore = await tokenBalance(chain, net, net.accounts.payee.address);
      proxy.cutAfterNextSend();
      const firstRound = (await Promise.all(payments.map((p) => settle(service.url, p.body)))).map((r) => r.json);
      expect(proxy.down).toBe(true);
      // Some were cut off: pending (sent, answer lost) or failed before sending; none reported settled falsely.
      const pending = firstRound.filter((r) => r.errorReason === "settlement_pending");
      expect(pending.length).toBeGreaterThan(0);
      for (const r of firstRound.filter((r) => r.success)) expect(await chain.getTransactionReceipt({ hash: r.transaction })).toBeTruthy();
      setTimeout(() => proxy.restore(), 1000);
      const finals = await Promise.all(payments.map((p) => settleUntilFinal(service.url, p.body, 30_000)));
      expect(finals.filter((r) => !r.success)).toEqual([]);
      for (const [i, r] of finals.entries()) expect(await settledIn(chain, r.transaction, payments[i]!)).toBe(true);
      expect(await tokenBalance(chain, net, net.accounts.payee.address)).toBe(payeeBefore + payments.reduce((a, p) => a + p.amount, 0n));
      await expectRowsSettled(payments);
    } finally {
      await proxy.close();
    }
  }, 90_000);

  it("a signer under minSignerBalanceWei: /ready names it, /settle is refused with facilitator_not_ready, nothing sent", async () => {
    const service = await facilitator({ privateKeys: [keys[0]!.privateKey], minSignerBalanceWei: (10n ** 30n).toString() });
    const ready = await fetch(`${service.url}/ready`);
    expect(ready.status).toBe(503);
    const body = await ready.json();
    expect(body.checks[`signers:${net.network}`]).toContain(keys[0]!.address);
    const [p] = await signPayments(net, 1, 7000);
    const sentBefore = await txCount(keys[0]!.address);
    const r = await settle(service.url, p!.body);
    expect(r.json).toMatchObject({ success: false, errorReason: "facilitator_not_ready" });
    expect(await txCount(keys[0]!.address)).toBe(sentBefore);
    expect(await authorizationUsed(chain, net, p!)).toBe(false);
  }, 30_000);
});
