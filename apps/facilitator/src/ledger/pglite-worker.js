/**
 * The PGlite worker thread: owns one embedded database and runs the statements the main thread
 * sends it (see pglite-thread.ts for the other side and the message protocol).
 *
 * Why a thread: PGlite executes every statement synchronously in the calling thread (a WASM
 * PostgreSQL), hundreds of microseconds even for one row. Here it runs beside HTTP handling,
 * verification and the settlement engine instead of in their event loop.
 *
 * Why plain JavaScript: Node 20 cannot load .ts in a worker thread, and vitest does not
 * transform worker files; a .js file loads as is under node, tsx and vitest alike. It is
 * deliberately not typechecked (no allowJs); the JSDoc types are for readers and editors.
 *
 * Ordering and exclusion are PGlite's own: every top-level query/exec/transaction goes through
 * its transaction mutex in arrival order, so a statement from outside an open transaction waits
 * until that transaction ends, exactly as it does in-process.
 */
import { parentPort, workerData } from "node:worker_threads";
import { PGlite } from "@electric-sql/pglite";

/**
 * @typedef {{ id: number, op: "query", text: string, params?: unknown[], tx?: number }
 *   | { id: number, op: "exec", text: string, tx?: number }
 *   | { id: number, op: "begin" }
 *   | { id: number, op: "commit" | "rollback", tx: number }
 *   | { id: number, op: "close" }} Request
 * @typedef {{ id: number, value?: unknown } | { id: number, error: SerializedError }} Reply
 * @typedef {Record<string, string | number | undefined> & { message: string }} SerializedError
 * @typedef {{ tx: import("@electric-sql/pglite").Transaction, end: (how: "commit" | "rollback", replyId: number) => void, ending: boolean }} OpenTransaction
 */

if (!parentPort) throw new Error("pglite-worker.js runs as a worker thread (see pglite-thread.ts)");
const port = parentPort;

/**
 * What a PostgreSQL error says, as node-postgres and PGlite both expose it. Not PGlite's own
 * `query`/`params`/`queryOptions`: parameters are payment data and have no place in errors.
 */
const ERROR_FIELDS = ["name", "severity", "code", "detail", "hint", "position", "internalPosition", "internalQuery", "where", "schema", "table", "column", "dataType", "constraint", "file", "line", "routine"];

/** @param {unknown} e @returns {SerializedError} */
function serializeError(e) {
  if (!(e instanceof Error)) return { message: String(e) };
  /** @type {SerializedError} */
  const out = { message: e.message };
  for (const field of ERROR_FIELDS) {
    const value = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (e))[field];
    if (typeof value === "string" || typeof value === "number") out[field] = value;
  }
  return out;
}

/** @param {number} id @param {unknown} value */
function ok(id, value) {
  try {
    port.postMessage({ id, value });
  } catch (e) {
    // A value that cannot be cloned (PGlite's rows always can): answer with an error, not silence.
    fail(id, new Error(`PGlite worker: result could not be sent (${e instanceof Error ? e.name : "error"})`));
  }
}

/** @param {number} id @param {unknown} e */
function fail(id, e) {
  port.postMessage({ id, error: serializeError(e) });
}

/** Thrown inside PGlite's transaction callback to make it roll back; never reaches the main thread. */
const ROLLBACK = Symbol("rollback");

/** Open transactions by the id of their `begin` request. @type {Map<number, OpenTransaction>} */
const transactions = new Map();

/** @type {PGlite | undefined} */
let db;

/** @param {number} id */
function begin(id) {
  /** @type {(how: "commit" | "rollback") => void} */
  let finish = () => {};
  /** @type {Promise<"commit" | "rollback">} */
  const ended = new Promise((resolve) => (finish = resolve));
  let endId = -1;
  let started = false;
  /** @type {PGlite} */ (db)
    .transaction(async (tx) => {
      started = true;
      transactions.set(id, { tx, ending: false, end: (how, replyId) => ((endId = replyId), finish(how)) });
      ok(id, id);
      // The main thread runs the callback and sends its statements; this waits for its verdict.
      if ((await ended) === "rollback") throw ROLLBACK;
    })
    .then(
      () => ok(endId, undefined),
      (e) => {
        if (!started) fail(id, e); // BEGIN itself failed (closed database)
        else if (e === ROLLBACK) ok(endId, undefined);
        else fail(endId, e); // COMMIT failed (e.g. 25P02, the transaction had aborted): rolled back
      },
    )
    .finally(() => transactions.delete(id));
}

/** @param {number | undefined} txId */
function executor(txId) {
  if (txId === undefined) return /** @type {PGlite} */ (db);
  const open = transactions.get(txId);
  if (!open || open.ending) throw new Error("PGlite worker: transaction is closed");
  return open.tx;
}

/** @param {Request} m */
async function handle(m) {
  switch (m.op) {
    case "query":
      return (await executor(m.tx).query(m.text, m.params)).rows;
    case "exec":
      await executor(m.tx).exec(m.text);
      return undefined;
    case "close":
      // PGlite's close() waits for the statements and transactions already queued.
      await /** @type {PGlite} */ (db).close();
      return undefined;
    default:
      throw new Error(`PGlite worker: unknown request ${JSON.stringify(/** @type {{ op: unknown }} */ (m).op)}`);
  }
}

port.on("message", (/** @type {Request} */ m) => {
  if (m.op === "begin") return begin(m.id);
  if (m.op === "commit" || m.op === "rollback") {
    const open = transactions.get(m.tx);
    if (!open || open.ending) return fail(m.id, new Error("PGlite worker: transaction is closed"));
    open.ending = true;
    return open.end(m.op, m.id);
  }
  handle(m).then(
    (value) => ok(m.id, value),
    (e) => fail(m.id, e),
  );
});

/** @type {{ dataDir?: string }} */
const { dataDir } = workerData ?? {};
try {
  db = await PGlite.create(dataDir);
  port.postMessage({ id: 0, value: "ready" });
} catch (e) {
  port.postMessage({ id: 0, error: serializeError(e) });
}
