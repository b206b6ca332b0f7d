/**
 * The payments ledger: one row per authorization (its unique key), an event per verify and
 * settle. The row is also the settlement lock and the record of what was handed out: whoever
 * claims it (claim.ts) runs the settlement; a success is answered once (complete.ts); everyone
 * else is told from the row. That is what keeps a payload settled fifty times at once, or by
 * three processes sharing PostgreSQL, down to one transfer and one response.
 *
 * Modules: migrations.ts (schema), rows.ts (row shape), claim.ts (the settle-once decision),
 * complete.ts (results and answers), chain-log.ts (write-ahead transactions, reconciler),
 * audit-rows.ts (verifications and events).
 */
import { recordEvents, recordVerifies, eventsOf } from "./audit-rows.ts";
import { createChainLog } from "./chain-log.ts";
import { createClaim } from "./claim.ts";
import { answerSettled, createComplete } from "./complete.ts";
import { migrate } from "./migrations.ts";
import { getOne, tablesIn } from "./rows.ts";
import { pgliteSql, postgresSql, type Sql } from "./sql.ts";
import type { Ledger, LedgerOptions } from "./types.ts";

export { LATEST_MIGRATION } from "./migrations.ts";
export type {
  ClaimResult,
  Ledger,
  LedgerEvent,
  LedgerOptions,
  PaymentEntry,
  PaymentRecord,
  PaymentStatus,
  PaymentTransaction,
  SettlementResult,
  TransactionOutcomeState,
  VerifyRecord,
} from "./types.ts";

/** Opens the store, runs pending migrations (serialized across processes), returns the ledger. */
export async function createLedger(options: LedgerOptions = {}): Promise<Ledger> {
  const schema = options.schema ?? "public";
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new TypeError(`ledger schema: ${JSON.stringify(schema)} is not a plain lowercase identifier`);
  const sql = options.sql ?? (options.databaseUrl ? postgresSql({ connectionString: options.databaseUrl }) : await pgliteSql(options.dataDir));
  try {
    await migrate(sql, schema);
  } catch (e) {
    if (!options.sql) await sql.close().catch(() => {});
    throw e;
  }
  return ledgerOver(sql, schema, !options.sql);
}

function ledgerOver(sql: Sql, schema: string, ownsSql: boolean): Ledger {
  const tables = tablesIn(schema);
  return {
    dialect: sql.dialect,
    schema,
    sql,
    async ping() {
      await sql.query(`SELECT 1 FROM ${tables.t} LIMIT 1`);
    },
    recordVerify: (entry, valid, reason) => recordVerifies(sql, tables, [{ entry, valid, ...(reason !== undefined ? { reason } : {}) }]),
    recordVerifies: (records) => recordVerifies(sql, tables, records),
    claim: createClaim(sql, tables),
    complete: createComplete(sql, tables),
    answer: (key, requestHash) => answerSettled(sql, tables, key, requestHash),
    get: (key) => getOne(sql, tables.t, key),
    recordEvent: (e) => recordEvents(sql, tables, [e]),
    recordEvents: (events) => recordEvents(sql, tables, events),
    events: (key) => eventsOf(sql, tables, key),
    ...createChainLog(sql, tables),
    // A connection passed in belongs to the caller.
    close: async () => {
      if (ownsSql) await sql.close();
    },
  };
}
