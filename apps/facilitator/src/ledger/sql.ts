/**
 * The little SQL surface the ledger needs, implemented twice: embedded PGlite (a data
 * directory, or memory) for one process, and a PostgreSQL pool for several processes that
 * must agree on which of them settles a payment.
 */
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { pgliteThreadSql, type PgliteThreadOptions } from "./pglite-thread.ts";

export interface SqlExecutor {
  query<T = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<T[]>;
}

export interface Sql extends SqlExecutor {
  readonly dialect: "pglite" | "postgres";
  /** Runs several statements without parameters (migrations). */
  exec(text: string): Promise<void>;
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** A PostgreSQL error's SQLSTATE (`23505` = unique violation), from either driver. */
export function sqlState(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

export interface PgliteOptions extends PgliteThreadOptions {
  /**
   * Run PGlite on its own worker thread (default true). PGlite executes each statement
   * synchronously in the calling thread; `false` runs it in this thread as before (an escape
   * hatch: no thread, but every statement blocks the event loop while it runs).
   */
  thread?: boolean;
}

/** Embedded PostgreSQL. `dataDir` persists; without it the database lives in memory. */
export async function pgliteSql(dataDir?: string, options: PgliteOptions = {}): Promise<Sql> {
  if (options.thread ?? true) return pgliteThreadSql(dataDir, options);
  const db = await PGlite.create(dataDir);
  return {
    dialect: "pglite",
    async query<T>(text: string, params: readonly unknown[] = []) {
      return (await db.query<T>(text, params as unknown[])).rows;
    },
    async exec(text) {
      await db.exec(text);
    },
    transaction(fn) {
      return db.transaction((tx) =>
        fn({
          query: async <T>(text: string, params: readonly unknown[] = []) => (await tx.query<T>(text, params as unknown[])).rows,
        }),
      );
    },
    close: () => db.close(),
  };
}

export interface PostgresOptions {
  connectionString: string;
  /** Pool size (default 10). */
  max?: number;
}

export function postgresSql(options: PostgresOptions): Sql {
  const pool = new pg.Pool({ connectionString: options.connectionString, max: options.max ?? 10, connectionTimeoutMillis: 10_000 });
  // An idle client's error (server restart) must not crash the process; the next query reports it.
  pool.on("error", () => {});
  return {
    dialect: "postgres",
    async query<T>(text: string, params: readonly unknown[] = []) {
      return (await pool.query(text, params as unknown[])).rows as T[];
    },
    async exec(text) {
      await pool.query(text);
    },
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query("BEGIN");
        const result = await fn({ query: async <T>(text: string, params: readonly unknown[] = []) => (await client.query(text, params as unknown[])).rows as T[] });
        await client.query("COMMIT");
        return result;
      } catch (e) {
        await client.query("ROLLBACK").catch(() => {});
        throw e;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}
