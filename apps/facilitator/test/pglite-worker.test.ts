/**
 * PGlite on its worker thread (pglite-thread.ts + pglite-worker.js): the same answers and errors
 * as in-process PGlite, PGlite's transaction exclusion across the thread boundary, and a clean
 * end (close, crash, process exit).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createLedger } from "../src/ledger/ledger.ts";
import { pgliteThreadSql } from "../src/ledger/pglite-thread.ts";
import { pgliteSql, sqlState, type Sql } from "../src/ledger/sql.ts";
import { idempotencySuite } from "./idempotency-suite.ts";

const settled = async (p: Promise<unknown>) => {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((r) => setTimeout(r, 100));
  return done;
};

describe("PGlite worker store", () => {
  let sql: Sql;
  let inproc: Sql;
  beforeAll(async () => {
    [sql, inproc] = await Promise.all([pgliteSql(), pgliteSql(undefined, { thread: false })]);
    for (const s of [sql, inproc]) await s.exec("CREATE TABLE items (k text PRIMARY KEY, amount numeric(78,0) NOT NULL, at timestamptz, ok boolean, n int)");
  });
  afterAll(async () => {
    await Promise.all([sql?.close(), inproc?.close()]);
  });

  it("round-trips parameters and rows with the types in-process PGlite gives", async () => {
    const at = new Date("2025-01-02T03:04:05.678Z");
    const big = ((1n << 256n) - 1n).toString();
    const text = `SELECT $1::text[] AS texts, $2::numeric[] AS amounts, $3::timestamptz AS at, $4::bool AS ok, $5::int AS n,
      $6::text AS nothing, 7::int8 AS big, '{"a":[1,"x"]}'::jsonb AS doc, now() AS now, $2::numeric[] = ARRAY[1, $7::numeric] AS same`;
    const params = [["a", "b'c", "é"], ["1", big], at, true, 42, null, big];
    const rows = await sql.query<Record<string, unknown>>(text, params);
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(row).toMatchObject({ texts: ["a", "b'c", "é"], amounts: ["1", big], at, ok: true, n: 42, nothing: null, doc: { a: [1, "x"] }, same: true });
    expect(row.at).toBeInstanceOf(Date);
    expect(row.now).toBeInstanceOf(Date);
    const [expected] = await inproc.query<Record<string, unknown>>(text, params);
    expect({ ...row, now: null }).toEqual({ ...expected, now: null });
    expect(typeof row.big).toBe(typeof expected!.big);

    await sql.query("INSERT INTO items (k, amount, at, ok, n) SELECT * FROM unnest($1::text[], $2::numeric[], $3::timestamptz[], $4::bool[], $5::int[])", [
      ["x1", "x2"],
      [big, "0"],
      [at, at],
      [true, false],
      [1, 2],
    ]);
    expect(await sql.query("SELECT k, amount::text AS amount, at, ok, n FROM items WHERE k = ANY($1::text[]) ORDER BY k", [["x1", "x2"]])).toEqual([
      { k: "x1", amount: big, at, ok: true, n: 1 },
      { k: "x2", amount: "0", at, ok: false, n: 2 },
    ]);
  });

  it("a unique violation arrives as an Error with its SQLSTATE and details, without the parameters", async () => {
    await sql.query("INSERT INTO items (k, amount) VALUES ($1, $2)", ["dup", "5"]);
    const e = await sql.query("INSERT INTO items (k, amount) VALUES ($1, $2)", ["dup", "123456789"]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Error);
    expect(sqlState(e)).toBe("23505");
    expect(e).toMatchObject({ message: 'duplicate key value violates unique constraint "items_pkey"', code: "23505", constraint: "items_pkey", table: "items", severity: "ERROR" });
    expect((e as { detail?: string }).detail).toMatch(/already exists/);
    expect(e).not.toHaveProperty("params");
    expect(e).not.toHaveProperty("query");
    expect(JSON.stringify(e) + (e as Error).message).not.toContain("123456789");
    // Syntax errors and the like too; the store stays usable afterwards.
    expect(sqlState(await sql.query("SELEC 1").catch((x: unknown) => x))).toBe("42601");
    expect(await sql.query("SELECT 1 AS one")).toEqual([{ one: 1 }]);
  });

  it("a parameter that cannot cross the thread is refused without quoting it", async () => {
    const secretish = () => "0xdeadbeef-function-body";
    const e = await sql.query("SELECT $1::text", [secretish]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Error);
    expect((e as Error).message).toMatch(/could not be sent/);
    expect((e as Error).message).not.toContain("deadbeef");
    expect(await sql.query("SELECT 2 AS two")).toEqual([{ two: 2 }]);
  });

  it("transaction: commits what fn wrote and returns its value", async () => {
    const result = await sql.transaction(async (tx) => {
      await tx.query("INSERT INTO items (k, amount) VALUES ($1, $2)", ["c1", "1"]);
      await Promise.all([tx.query("INSERT INTO items (k, amount) VALUES ($1, $2)", ["c2", "2"]), tx.query("INSERT INTO items (k, amount) VALUES ($1, $2)", ["c3", "3"])]);
      return (await tx.query<{ n: number }>("SELECT count(*)::int AS n FROM items WHERE k LIKE 'c%'"))[0]!.n;
    });
    expect(result).toBe(3);
    expect(await sql.query("SELECT k FROM items WHERE k LIKE 'c%' ORDER BY k")).toEqual([{ k: "c1" }, { k: "c2" }, { k: "c3" }]);
  });

  it("transaction: an error inside fn rolls everything back and is rethrown as is", async () => {
    await sql.query("INSERT INTO items (k, amount) VALUES ('dup', 1) ON CONFLICT DO NOTHING");
    const boom = new Error("boom");
    await expect(
      sql.transaction(async (tx) => {
        await tx.query("INSERT INTO items (k, amount) VALUES ($1, $2)", ["r1", "1"]);
        throw boom;
      }),
    ).rejects.toBe(boom);
    // A statement failing inside: rolled back too, and its SQLSTATE survives.
    const e = await sql
      .transaction(async (tx) => {
        await tx.query("INSERT INTO items (k, amount) VALUES ($1, $2)", ["r2", "1"]);
        await tx.query("INSERT INTO items (k, amount) VALUES ($1, $2)", ["dup", "1"]);
      })
      .catch((x: unknown) => x);
    expect(sqlState(e)).toBe("23505");
    // Swallowing the failure and returning: COMMIT finds the transaction aborted (PGlite's 25P02).
    const aborted = await sql
      .transaction(async (tx) => {
        await tx.query("INSERT INTO items (k, amount) VALUES ($1, $2)", ["r3", "1"]);
        await tx.query("INSERT INTO items (k, amount) VALUES ($1, $2)", ["dup", "1"]).catch(() => {});
      })
      .catch((x: unknown) => x);
    expect(sqlState(aborted)).toBe("25P02");
    expect(await sql.query("SELECT k FROM items WHERE k LIKE 'r%'")).toEqual([]);
    // The executor is dead once its transaction ended.
    let leaked: { query: Sql["query"] } | undefined;
    await sql.transaction(async (tx) => {
      leaked = tx;
    });
    await expect(leaked!.query("SELECT 1")).rejects.toThrow(/transaction is closed/);
  });

  it("statements from outside a transaction wait until it ends", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let outside!: Promise<Array<{ n: number }>>;
    let outsideTx!: Promise<unknown>;
    const inside = sql.transaction(async (tx) => {
      await tx.query("INSERT INTO items (k, amount) VALUES ($1, $2)", ["w1", "1"]);
      outside = sql.query<{ n: number }>("SELECT count(*)::int AS n FROM items WHERE k LIKE 'w%'");
      outsideTx = sql.transaction((t2) => t2.query("INSERT INTO items (k, amount) VALUES ($1, $2)", ["w3", "3"]));
      expect(await settled(outside)).toBe(false);
      await gate;
      await tx.query("INSERT INTO items (k, amount) VALUES ($1, $2)", ["w2", "2"]);
      return "done";
    });
    await new Promise((r) => setTimeout(r, 150));
    expect(await settled(outsideTx)).toBe(false);
    release();
    expect(await inside).toBe("done");
    // It ran after COMMIT: it sees both rows of the transaction (and not the second transaction's, queued behind it).
    expect(await outside).toEqual([{ n: 2 }]);
    await outsideTx;
    expect(await sql.query("SELECT count(*)::int AS n FROM items WHERE k LIKE 'w%'")).toEqual([{ n: 3 }]);
  });

  it("idle for a while, the thread still answers (it stays referenced)", async () => {
    await new Promise((r) => setTimeout(r, 200));
    expect(await sql.query("SELECT 3 AS three")).toEqual([{ three: 3 }]);
  });
});

describe("PGlite worker lifecycle", () => {
  it("a data directory persists across close and reopen", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tollgate-pglite-worker-"));
    try {
      let sql = await pgliteSql(dir);
      await sql.exec("CREATE TABLE kept (k text PRIMARY KEY, at timestamptz NOT NULL)");
      const at = new Date("2030-05-06T07:08:09.123Z");
      await sql.transaction((tx) => tx.query("INSERT INTO kept VALUES ($1, $2)", ["one", at]));
      await sql.close();
      sql = await pgliteSql(dir);
      expect(await sql.query("SELECT k, at FROM kept")).toEqual([{ k: "one", at }]);
      await sql.close();
      // And the in-process escape hatch reads the same directory.
      const inproc = await pgliteSql(dir, { thread: false });
      expect(await inproc.query("SELECT k FROM kept")).toEqual([{ k: "one" }]);
      await inproc.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("close lets what was already sent finish, then refuses every call", async () => {
    const sql = await pgliteSql();
    const sent = Array.from({ length: 20 }, (_, i) => sql.query<{ i: number }>("SELECT $1::int AS i", [i]));
    const closing = sql.close();
    await expect(sql.query("SELECT 1")).rejects.toThrow(/PGlite store is closed/);
    expect((await Promise.all(sent)).map((r) => r[0]!.i)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    await closing;
    await expect(sql.query("SELECT 1")).rejects.toThrow(/closed/);
    await expect(sql.exec("SELECT 1")).rejects.toThrow(/closed/);
    await expect(sql.transaction(async () => 1)).rejects.toThrow(/closed/);
    await sql.close(); // twice is fine
  });

  it("close waits for an open transaction to finish (it commits)", async () => {
    const sql = await pgliteSql();
    await sql.exec("CREATE TABLE t (k text)");
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let began!: () => void;
    const inTx = new Promise<void>((r) => (began = r));
    const tx = sql.transaction(async (t) => {
      began();
      await gate;
      await t.query("INSERT INTO t VALUES ($1)", ["late"]);
      return (await t.query<{ n: number }>("SELECT count(*)::int AS n FROM t"))[0]!.n;
    });
    await inTx;
    const closing = sql.close();
    expect(await settled(closing)).toBe(false);
    release();
    expect(await tx).toBe(1);
    await closing;
  });

  it("close gives up on a transaction that never ends: what is pending rejects clearly", async () => {
    const sql = await pgliteThreadSql(undefined, { closeTimeoutMs: 300 });
    let began!: () => void;
    const inTx = new Promise<void>((r) => (began = r));
    let stuckTx!: { query: Sql["query"] };
    const never = sql.transaction(async (t) => {
      stuckTx = t;
      began();
      await new Promise(() => {}); // a callback that hangs
    });
    void never;
    await inTx;
    // Queued behind the transaction in the worker (expectation attached now: it rejects during close).
    const waiting = expect(sql.query("SELECT 1")).rejects.toThrow(/PGlite store closed before the statement finished/);
    const t0 = Date.now();
    await sql.close();
    expect(Date.now() - t0).toBeLessThan(5000);
    await waiting;
    await expect(stuckTx.query("SELECT 1")).rejects.toThrow(/closed/);
    await expect(sql.query("SELECT 1")).rejects.toThrow(/closed/);
  });

  it("a dead worker fails every pending and later call, and the ledger's ping with it", async () => {
    const sql = await pgliteThreadSql();
    const ledger = await createLedger({ sql });
    await ledger.ping();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const tx = sql.transaction(async (t) => {
      await gate;
      return t.query("SELECT 1");
    });
    const queued = sql.query("SELECT 1");
    await sql.worker.terminate(); // as if the thread crashed
    release();
    await expect(queued).rejects.toThrow(/PGlite worker exited unexpectedly/);
    await expect(tx).rejects.toThrow(/PGlite worker exited unexpectedly/);
    await expect(sql.query("SELECT 1")).rejects.toThrow(/PGlite worker exited unexpectedly/);
    await expect(ledger.ping()).rejects.toThrow(/PGlite worker exited unexpectedly/);
    await sql.close(); // still resolves
  });

  it("an unreadable data directory fails the open with PGlite's error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tollgate-pglite-bad-"));
    try {
      writeFileSync(join(dir, "PG_VERSION"), "not a version\n");
      const e = await pgliteSql(dir).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(Error);
      expect((e as Error).message).toMatch(/PGlite/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps the process alive while open and lets it exit once closed", async () => {
    const root = fileURLToPath(new URL("../../../", import.meta.url));
    const dir = mkdtempSync(join(tmpdir(), "tollgate-pglite-exit-"));
    const sqlModule = fileURLToPath(new URL("../src/ledger/sql.ts", import.meta.url));
    try {
      // Opened, queried, nothing else scheduled: only the worker holds the process open.
      const script = join(dir, "child.mts");
      writeFileSync(
        script,
        `import { pgliteSql } from ${JSON.stringify(sqlModule)};
         const sql = await pgliteSql();
         console.log("rows", JSON.stringify(await sql.query("SELECT 1 AS one")));
         if (process.argv[2] === "close") { await sql.close(); console.log("closed"); }`,
      );
      const run = (arg: string, waitMs: number) =>
        new Promise<{ exited: boolean; out: string }>((resolve) => {
          // node --import tsx, not the tsx CLI: one process, so SIGKILL ends it (the CLI's child would survive).
          const child = spawn(process.execPath, ["--import", "tsx", script, arg], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
          let out = "";
          let timer: ReturnType<typeof setTimeout> | undefined;
          child.stdout.on("data", (d: Buffer) => {
            out += d.toString();
            // Measured from the first answer: from then on nothing but the worker runs.
            if (out.includes("rows") && !timer) timer = setTimeout(() => (child.kill("SIGKILL"), resolve({ exited: false, out })), waitMs);
          });
          child.on("exit", () => (clearTimeout(timer), resolve({ exited: true, out })));
        });
      const [closed, open] = await Promise.all([run("close", 15_000), run("keep", 1500)]);
      expect(closed).toEqual({ exited: true, out: 'rows [{"one":1}]\nclosed\n' });
      expect(open).toEqual({ exited: false, out: 'rows [{"one":1}]\n' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("ledger on in-process PGlite (thread: false)", () => {
  let sql: Sql;
  beforeAll(async () => {
    sql = await pgliteSql(undefined, { thread: false });
  });
  afterAll(async () => {
    await sql?.close();
  });
  idempotencySuite(() => createLedger({ sql }));
});
