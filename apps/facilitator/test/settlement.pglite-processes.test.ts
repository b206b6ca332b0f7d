/**
 * The facilitator as a real process on the embedded store (PGlite in a data directory, the
 * default deployment) and a real anvil that mines a block per second (so transactions sit in the
 * mempool for a while): SIGKILL right after the first transaction is written ahead, restart on the
 * same data directory (PGlite recovers the killed store itself), and every payment ends settled
 * exactly once: the ledger agrees with the chain (the transaction it names logs the payment's
 * AuthorizationUsed), payee balance up by exactly the sum, none lost, none doubled.
 *
 * A PGlite directory belongs to one process at a time, so the store is read only while no child
 * runs: the killed store through a copy (the child must do the crash recovery, not the test),
 * the final store after the second child has stopped.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { devAccount, startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import type { PublicClient } from "viem";
import { pgliteSql } from "../src/ledger/sql.ts";
import {
  authorizationUsed,
  chainOf,
  settle,
  settledIn,
  settleUntilFinal,
  localAssets,
  signPayments,
  spawnFacilitator,
  tokenBalance,
  waitReady,
  type Child,
  type Payment,
} from "./settlement-helpers.ts";

const keys = [devAccount(1), devAccount(8)];
let net: RunningLocalNetwork;
let chain: PublicClient;
const children: Child[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 4, blockTime: 1 });
  chain = chainOf(net);
}, 120_000);

afterAll(async () => {
  for (const c of children) if (c.proc.exitCode === null) c.proc.kill("SIGKILL");
  await Promise.all(children.map((c) => c.exited));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await net?.stop();
});

const tempDir = (name: string) => {
  const d = mkdtempSync(join(tmpdir(), `tollgate-${name}-`));
  dirs.push(d);
  return d;
};

function config(dataDir: string) {
  return {
    port: 0,
    logLevel: "warn",
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, batchSettler: net.batchSettler.address, assets: localAssets(net) }],
    privateKeys: keys.map((k) => k.privateKey),
    dataDir,
    settle: { leaseMs: 2000, waitMs: 300, pollMs: 30 },
    settlement: { maxWaitMs: 50, reconcileIntervalMs: 300, dropAfterMs: 3000 },
  };
}

async function start(dataDir: string, env: Record<string, string> = {}): Promise<Child> {
  const c = await spawnFacilitator(config(dataDir), env);
  children.push(c);
  return c;
}

/** Runs `query` on a PGlite data directory no process has open. */
async function readStore<T>(dataDir: string, query: string): Promise<T[]> {
  const sql = await pgliteSql(dataDir);
  try {
    return await sql.query<T>(query);
  } finally {
    await sql.close();
  }
}

async function waitForOutput(c: Child, pattern: RegExp, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(c.output())) {
    if (c.proc.exitCode !== null || Date.now() > deadline) throw new Error(`no ${pattern} from the facilitator:\n${c.output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const keyOf = (p: Payment) => `${net.network}|${net.usdc.address.toLowerCase()}|${p.from.toLowerCase()}|${p.nonce.toLowerCase()}`;

describe("facilitator process on PGlite (data directory)", () => {
  it("SIGKILL right after the first write-ahead, restart on the same data directory: every payment settled exactly once", async () => {
    const dataDir = tempDir("pglite-kill");
    // A fresh data directory takes seconds to create: sign meanwhile.
    const [first, payments] = await Promise.all([start(dataDir, { FACILITATOR_ANNOUNCE_WRITE_AHEAD: "1" }), signPayments(net, 36)]);
    const payeeBefore = await tokenBalance(chain, net, net.accounts.payee.address);
    const burst = payments.map((p) => settle(first.url, p.body).catch(() => undefined));
    // Kill as soon as the first transaction is in the write-ahead log (it is about to be broadcast).
    await waitForOutput(first, /WRITE_AHEAD/, 30_000);
    await new Promise((r) => setTimeout(r, 30));
    first.proc.kill("SIGKILL");
    await first.exited;
    await Promise.all(burst);

    // Killed mid-flight: some payments were sent and not yet final (read from a copy, so the
    // restarted facilitator still finds the store exactly as the kill left it).
    const copy = tempDir("pglite-kill-copy");
    cpSync(dataDir, copy, { recursive: true });
    const [state] = await readStore<{ in_doubt: number; settled: number }>(
      copy,
      `SELECT (SELECT count(*)::int FROM payments p WHERE status = 'pending' AND EXISTS (SELECT 1 FROM payment_transactions x WHERE x.payment_key = p.payment_key)) AS in_doubt,
              (SELECT count(*)::int FROM payments WHERE status = 'settled') AS settled`,
    );
    expect(state!.in_doubt).toBeGreaterThan(0);
    expect(state!.settled).toBeLessThan(payments.length);

    const second = await start(dataDir);
    await waitReady(second.url);
    const finals = await Promise.all(payments.map((p) => settleUntilFinal(second.url, p.body, 45_000)));
    expect(finals.filter((r) => !r?.success)).toEqual([]);
    // None doubled, none lost: the payee got exactly the sum, each authorization is used on chain.
    expect(await tokenBalance(chain, net, net.accounts.payee.address)).toBe(payeeBefore + payments.reduce((a, p) => a + p.amount, 0n));

    second.proc.kill("SIGTERM");
    expect(await second.exited).toBe(0);
    const rows = await readStore<{ payment_key: string; status: string; transaction_hash: string }>(dataDir, `SELECT payment_key, status, transaction_hash FROM payments`);
    const byKey = new Map(rows.map((r) => [r.payment_key, r]));
    expect(rows.length).toBe(payments.length);
    for (const [i, p] of payments.entries()) {
      const row = byKey.get(keyOf(p));
      expect(row?.status).toBe("settled");
      expect(row?.transaction_hash).toBe(finals[i].transaction);
      expect(await authorizationUsed(chain, net, p)).toBe(true);
      expect(await settledIn(chain, row!.transaction_hash as `0x${string}`, p)).toBe(true);
    }
  }, 150_000);
});
