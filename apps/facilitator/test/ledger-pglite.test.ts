import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLedger, LATEST_MIGRATION } from "../src/ledger/ledger.ts";
import { pgliteSql, type Sql } from "../src/ledger/sql.ts";
import { idempotencySuite } from "./idempotency-suite.ts";

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
      expect(await ledger.complete(entry.key, "t2", { success: true, transaction: "0xt", network: "eip155:1" })).toBe(false);
      expect(await ledger.complete(entry.key, "t1", { success: true, transaction: "0xt", network: "eip155:1" })).toBe(true);
      expect(await ledger.get(entry.key)).toMatchObject({ status: "settled", transaction: "0xt", response: { success: true, transaction: "0xt", network: "eip155:1" } });
      await ledger.close();
      expect(LATEST_MIGRATION).toBeGreaterThanOrEqual(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
