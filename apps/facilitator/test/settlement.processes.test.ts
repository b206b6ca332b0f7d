/**
 * Facilitators as real processes on one PostgreSQL (a schema per test, dropped after) and a real
 * anvil that mines a block per second (so transactions sit in the mempool for a while):
 * - SIGKILL mid-batch, restart on the same store: every payment ends settled exactly once, the
 *   ledger agrees with the chain (the transaction it names logs the payment's AuthorizationUsed),
 *   payee balance up by exactly the sum;
 * - two processes sharing the store and the same keys, under distinct payments plus duplicate
 *   payloads sent to both: signer leases split the keys, every payment settles once, no nonce error.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { devAccount, startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import type { PublicClient } from "viem";
import {
  authorizationUsed,
  chainOf,
  settle,
  settledIn,
  settleUntilFinal,
  extensionTransaction,
  localAssets,
  signPayments,
  spawnFacilitator,
  tokenBalance,
  waitReady,
  type Child,
  type Payment,
} from "./settlement-helpers.ts";

const DATABASE_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const run = `tollgate_proc_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
const keys = [devAccount(1), devAccount(8)];

const db = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3000 });
const unreachable = await db.connect().then(
  () => undefined,
  (e: Error) => e.message,
);
if (unreachable) console.warn(`skipping facilitator process tests: PostgreSQL unreachable (${unreachable})`);
let net: RunningLocalNetwork;
let chain: PublicClient;
const children: Child[] = [];
const schemas: string[] = [];

beforeAll(async () => {
  if (unreachable) return;
  net = await startLocalNetwork({ payers: 4, blockTime: 1 });
  chain = chainOf(net);
}, 120_000);

afterAll(async () => {
  for (const c of children) if (c.proc.exitCode === null) c.proc.kill("SIGKILL");
  await Promise.all(children.map((c) => c.exited));
  if (!unreachable) for (const s of schemas) await db.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`).catch(() => {});
  await db.end().catch(() => {});
  await net?.stop();
});

function config(schema: string, extra: Record<string, unknown> = {}) {
  return {
    port: 0,
    logLevel: "warn",
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, batchSettler: net.batchSettler.address, assets: localAssets(net) }],
    privateKeys: keys.map((k) => k.privateKey),
    databaseUrl: DATABASE_URL,
    databaseSchema: schema,
    signerLeaseMs: 2000,
    settle: { leaseMs: 2000, waitMs: 300, pollMs: 30 },
    settlement: { maxWaitMs: 50, reconcileIntervalMs: 300, dropAfterMs: 3000 },
    ...extra,
  };
}

async function start(cfg: Record<string, unknown>): Promise<Child> {
  const c = await spawnFacilitator(cfg);
  children.push(c);
  return c;
}

const keyOf = (p: Payment) => `${net.network}|${net.usdc.address.toLowerCase()}|${p.from.toLowerCase()}|${p.nonce.toLowerCase()}`;

async function expectLedgerMatchesChain(schema: string, payments: Payment[], finals: any[], payeeBefore: bigint, logs = "") {
  const unsettled = payments.filter((_, i) => !finals[i]?.success).map(keyOf);
  if (unsettled.length > 0) {
    // Say what the ledger holds for each payment that did not settle: the test's failure message is the diagnosis.
    const held = await db.query(
      `SELECT p.payment_key, p.status, p.reason, p.reverted_at, p.attempts, p.claim_token IS NOT NULL AS claimed, p.lease_until < now() AS lease_over,
              (SELECT json_agg(json_build_object('hash', x.transaction_hash, 'signer', x.signer, 'nonce', x.tx_nonce, 'sent', x.sent, 'outcome', x.outcome, 'at', x.created_at) ORDER BY x.created_at)
                 FROM ${schema}.payment_transactions x WHERE x.payment_key = p.payment_key) AS transactions
         FROM ${schema}.payments p WHERE p.payment_key = ANY($1::text[])`,
      [unsettled],
    );
    const mentions = logs.split("\n").filter((l) => unsettled.some((k) => l.includes(k.split("|")[3]!)) || /reconciler|nonce/.test(l));
    expect.fail(`${unsettled.length} payment(s) did not settle:\n${JSON.stringify(held.rows, null, 1)}\nfinal answers: ${JSON.stringify(finals.filter((r) => !r?.success))}\nlog:\n${mentions.slice(-60).join("\n")}`);
  }
  expect(await tokenBalance(chain, net, net.accounts.payee.address)).toBe(payeeBefore + payments.reduce((a, p) => a + p.amount, 0n));
  const rows = (await db.query(`SELECT payment_key, status, transaction_hash FROM ${schema}.payments`)).rows as Array<{ payment_key: string; status: string; transaction_hash: string }>;
  const byKey = new Map(rows.map((r) => [r.payment_key, r]));
  expect(rows.length).toBe(payments.length);
  for (const [i, p] of payments.entries()) {
    const row = byKey.get(keyOf(p));
    expect(row?.status).toBe("settled");
    expect(row?.transaction_hash).toBe(finals[i].transaction);
    expect(await authorizationUsed(chain, net, p)).toBe(true);
    expect(await settledIn(chain, finals[i].transaction, p)).toBe(true);
  }
}

describe.skipIf(Boolean(unreachable))("facilitator processes on PostgreSQL", () => {
  it("SIGKILL mid-batch, restart on the same store: every payment settled exactly once", async () => {
    const schema = `${run}_kill`;
    schemas.push(schema);
    const first = await start(config(schema));
    const payments = await signPayments(net, 60);
    const payeeBefore = await tokenBalance(chain, net, net.accounts.payee.address);
    const burst = payments.map((p) => settle(first.url, p.body).catch(() => undefined));
    // Kill as soon as the first transaction is in the write-ahead log (it is about to be broadcast).
    const deadline = Date.now() + 30_000;
    for (;;) {
      const { rows } = await db.query(`SELECT count(*)::int AS n FROM ${schema}.payment_transactions`).catch(() => ({ rows: [{ n: 0 }] }));
      if (rows[0].n > 0) break;
      if (Date.now() > deadline) throw new Error(`no transaction was ever sent:\n${first.output().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 30));
    first.proc.kill("SIGKILL");
    await first.exited;
    await Promise.all(burst);
    const { rows: state } = await db.query(
      `SELECT (SELECT count(*)::int FROM ${schema}.payments p WHERE status = 'pending' AND EXISTS (SELECT 1 FROM ${schema}.payment_transactions x WHERE x.payment_key = p.payment_key)) AS in_doubt,
              (SELECT count(*)::int FROM ${schema}.payments WHERE status = 'settled') AS settled`,
    );
    // Killed mid-flight: some payments were sent and not yet final.
    expect(state[0].in_doubt).toBeGreaterThan(0);
    expect(state[0].settled).toBeLessThan(payments.length);

    const second = await start(config(schema, { logLevel: "info" }));
    await waitReady(second.url);
    // A payment whose transaction was signed but never sent before the kill is finished by the
    // reconciler only after its nonce is filled and seen consumed (dropAfterMs twice), then
    // settles on the next retry: under a loaded machine that chain takes well over 45 s.
    const finals = await Promise.all(payments.map((p) => settleUntilFinal(second.url, p.body, 100_000)));
    await expectLedgerMatchesChain(schema, payments, finals, payeeBefore, second.output());
  }, 180_000);

  it("two processes, same keys, one store: leases split the signers, every payment settles once, no nonce error", async () => {
    const schema = `${run}_two`;
    schemas.push(schema);
    const cfg = config(schema, { signerLeaseMs: 5000, settle: { leaseMs: 30_000, waitMs: 30_000, pollMs: 30 } });
    const [a, b] = await Promise.all([start(cfg), start(cfg)]);
    await Promise.all([waitReady(a!.url), waitReady(b!.url)]);
    const leases = (await db.query(`SELECT holder, signer FROM ${schema}.signer_leases`)).rows as Array<{ holder: string; signer: string }>;
    expect(leases.length).toBe(2);
    expect(new Set(leases.map((l) => l.holder)).size).toBe(2);

    const payments = await signPayments(net, 120, 3000);
    const payeeBefore = await tokenBalance(chain, net, net.accounts.payee.address);
    // Every payment to one process; every third also to the other at the same time.
    const requests = payments.map((p, i) => {
      const mine = i % 2 === 0 ? a! : b!;
      const other = i % 2 === 0 ? b! : a!;
      return Promise.all([settle(mine.url, p.body), ...(i % 3 === 0 ? [settle(other.url, p.body)] : [])]);
    });
    const answers = await Promise.all(requests);
    const storeErrors = (c: Child) => c.output().split("\n").filter((l) => /store|settlement result/.test(l) && /"level":(50|40)/.test(l)).slice(0, 5).join("\n");
    // One payment, one success: the copy sent to the other process at the same time gets a
    // duplicate (or pending while the first is unresolved), naming the same transaction if any.
    const successes = answers.map((group) => group.map((r) => r.json).filter((j) => j.success));
    expect(successes.filter((s) => s.length !== 1).length, `store errors:\n${storeErrors(a!)}\n${storeErrors(b!)}`).toBe(0);
    for (const [i, group] of answers.entries()) {
      for (const r of group.filter((x) => !x.json.success)) {
        expect(["duplicate_settlement", "settlement_pending"]).toContain(r.json.errorReason);
        const named = extensionTransaction(r.json);
        if (named) expect(named).toBe(successes[i]![0].transaction);
      }
    }
    await expectLedgerMatchesChain(schema, payments, successes.map((s) => s[0]), payeeBefore);
    // Both signers sent, and only as many transactions as the ledger knows of.
    const sent = (await db.query(`SELECT signer, count(DISTINCT transaction_hash)::int AS n FROM ${schema}.payment_transactions GROUP BY signer`)).rows;
    expect(sent.length).toBe(2);
    for (const c of [a!, b!]) expect(c.output()).not.toMatch(/nonce too (low|high)|replacement transaction underpriced|already known/i);
  }, 120_000);
});
