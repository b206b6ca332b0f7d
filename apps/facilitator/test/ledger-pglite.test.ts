import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLedger, LATEST_MIGRATION } from "../src/ledger/ledger.ts";
import { MIGRATIONS } from "../src/ledger/migrations.ts";
import { pgliteSql, type Sql } from "../src/ledger/sql.ts";
import { idempotencySuite } from "./idempotency-suite.ts";

const settled = (transaction: string) => ({ status: "settled" as const, transaction, response: { success: true, transaction, network: "eip155:1" as const } });

describe("ledger on PGlite (in memory)", () => {
  let sql: Sql;
  beforeAll(async () => {
    sql = await pgliteSql();
  });
  afterAll(async () => {
    await sql?.close();
  });
  // Both "instances" share the one embedded database, as processes share PostgreSQL.
  idempotencySuite(() => createLedger({ sql }));
});

describe("ledger on PGlite (data directory)", () => {
  it("migrates once, keeps rows across reopen, and stores amounts exactly", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tollgate-ledger-"));
    try {
      const big = ((1n << 256n) - 1n).toString(); // uint256 max survives the round trip
      const entry = { key: "eip155:1|0xa|0xb|0x01", network: "eip155:1", scheme: "exact", asset: "0xa", payer: "0xb", payee: "0xc", amount: big, nonce: "0x01", requestHash: "h1" };
      let ledger = await createLedger({ dataDir: dir });
      await ledger.recordVerify(entry, true);
      expect(await ledger.claim(entry, "t1", 60_000)).toEqual({ claimed: true });
      expect((await ledger.claim(entry, "t2", 60_000)).claimed).toBe(false);
      await ledger.close();

      ledger = await createLedger({ dataDir: dir }); // migrations are not re-applied
      const row = await ledger.get(entry.key);
      expect(row).toMatchObject({ status: "pending", amount: big, attempts: 1 });
      expect(await ledger.complete(entry.key, "t2", settled("0xt"))).toBe(false);
      expect(await ledger.complete(entry.key, "t1", settled("0xt"))).toBe(true);
      expect(await ledger.get(entry.key)).toMatchObject({ status: "settled", answered: true, transaction: "0xt", response: { success: true, transaction: "0xt", network: "eip155:1" } });
      await ledger.close();
      expect(LATEST_MIGRATION).toBeGreaterThanOrEqual(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("ledger migration 3 (answered successes)", () => {
  it("a store from before it: rows settled then count as answered (every copy got the success then)", async () => {
    const sql = await pgliteSql();
    try {
      await sql.exec("CREATE TABLE public.tollgate_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
      for (const m of MIGRATIONS.filter((x) => x.version <= 2)) {
        for (const statement of m.up("public").split(";").map((x) => x.trim()).filter(Boolean)) await sql.query(statement);
        await sql.query("INSERT INTO public.tollgate_migrations (version, name) VALUES ($1, $2)", [m.version, m.name]);
      }
      await sql.query(
        `INSERT INTO public.payments (payment_key, network, scheme, asset, payer, payee, amount, nonce, status, request_hash, response, settled_at)
         VALUES ('k-settled', 'eip155:1', 'exact', '0xa', '0xb', '0xc', 5, '0x1', 'settled', 'h', '{"success":true,"transaction":"0xt","network":"eip155:1"}', now()),
                ('k-failed', 'eip155:1', 'exact', '0xa', '0xb', '0xc', 5, '0x2', 'failed', 'h', NULL, NULL)`,
      );
      const ledger = await createLedger({ sql });
      expect(await ledger.get("k-settled")).toMatchObject({ status: "settled", answered: true });
      expect(await ledger.get("k-failed")).toMatchObject({ status: "failed", answered: false });
      expect(await ledger.answer("k-settled", "h")).toBeUndefined();
    } finally {
      await sql.close();
    }
  });
});

describe("ledger group commit (PGlite)", () => {
  const entry = (n: number, extra: Record<string, string> = {}) => ({
    key: `eip155:1|0xa|0xp${n}|0x${n}`, network: "eip155:1", scheme: "exact", asset: "0xa", payer: `0xp${n}`, payee: "0xc", amount: String(n), nonce: `0x${n}`, requestHash: `h${n}`, ...extra,
  });

  it("concurrent claims share one statement; a payment-identifier conflict inside the batch is told to its own caller only", async () => {
    const ledger = await createLedger();
    try {
      const a = entry(1, { payer: "0xsame", paymentIdentifier: "id-1" });
      const b = entry(2, { payer: "0xsame", paymentIdentifier: "id-1" }); // same payer and id, another authorization
      const plain = Array.from({ length: 20 }, (_, i) => entry(100 + i));
      const results = await Promise.all([a, b, ...plain].map((e, i) => ledger.claim(e, `tok${i}`, 60_000)));
      expect(results.slice(2).every((r) => r.claimed)).toBe(true);
      const [ra, rb] = results;
      expect([ra!.claimed, rb!.claimed].filter(Boolean)).toHaveLength(1);
      const loser = ra!.claimed ? rb! : ra!;
      expect(loser).toMatchObject({ claimed: false, identifierConflict: true });
      // Completes in one batch too: only the right token ends a row.
      const done = await Promise.all(plain.map((e, i) => ledger.complete(e.key, i % 2 === 0 ? `tok${i + 2}` : "wrong", settled(`0xt${i}`))));
      expect(done).toEqual(plain.map((_, i) => i % 2 === 0));
      expect(await ledger.get(plain[0]!.key)).toMatchObject({ status: "settled", transaction: "0xt0" });
      expect(await ledger.get(plain[1]!.key)).toMatchObject({ status: "pending" });
    } finally {
      await ledger.close();
    }
  });

  it("audit rows in bulk: verifications never overwrite, events keep their order", async () => {
    const ledger = await createLedger();
    try {
      const e = entry(7);
      await ledger.claim(e, "t", 60_000);
      await ledger.recordVerifies([{ entry: e, valid: false, reason: "x" }, { entry: entry(8), valid: true }, { entry: entry(8), valid: false }]);
      expect(await ledger.get(e.key)).toMatchObject({ status: "pending" });
      expect(await ledger.get(entry(8).key)).toMatchObject({ status: "verified" });
      await ledger.recordEvents(["a", "b", "c"].map((outcome) => ({ kind: "verify" as const, key: e.key, network: "eip155:1", outcome })));
      expect((await ledger.events(e.key)).map((x) => x.outcome)).toEqual(["a", "b", "c"]);
    } finally {
      await ledger.close();
    }
  });
});
