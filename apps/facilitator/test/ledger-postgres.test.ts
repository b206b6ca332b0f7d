/**
 * The same settle-once suite on a real PostgreSQL server, in a schema created for this run
 * and dropped after. Skipped (saying why) only when no server answers.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { createLedger } from "../src/ledger/ledger.ts";
import { idempotencySuite } from "./idempotency-suite.ts";

const DATABASE_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const schema = `tollgate_test_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;

async function reachable(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
    return undefined;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await client.end().catch(() => {});
  }
}

const unreachable = await reachable();
if (unreachable) console.warn(`skipping PostgreSQL ledger tests: ${DATABASE_URL.replace(/\/\/[^@]*@/, "//***@")} unreachable (${unreachable})`);

describe.skipIf(Boolean(unreachable))("ledger on PostgreSQL", () => {
  beforeAll(async () => {
    // Two processes migrating at once must not trip over each other.
    const ledgers = await Promise.all([createLedger({ databaseUrl: DATABASE_URL, schema }), createLedger({ databaseUrl: DATABASE_URL, schema })]);
    await Promise.all(ledgers.map((l) => l.close()));
  });
  afterAll(async () => {
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });

  it("created its tables in the run's own schema", async () => {
    const ledger = await createLedger({ databaseUrl: DATABASE_URL, schema });
    await ledger.ping();
    expect(ledger.dialect).toBe("postgres");
    await ledger.close();
  });

  idempotencySuite(() => createLedger({ databaseUrl: DATABASE_URL, schema }));
});
