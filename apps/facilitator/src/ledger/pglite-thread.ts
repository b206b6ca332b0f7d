/**
 * Embedded PGlite on its own worker thread (pglite-worker.js). PGlite runs each statement
 * synchronously in the thread that calls it; there, it runs in parallel with the service's
 * event loop, which only pays for handing messages over.
 *
 * Protocol: every request carries an id, answered once by `{ id, value }` or `{ id, error }`;
 * id 0 is the worker's "ready" (or its failure to open). A transaction is PGlite's own
 * `db.transaction()` in the worker: `begin` answers with the transaction's id once BEGIN ran, the
 * callback (on this thread) sends its statements tagged with that id, and `commit`/`rollback`
 * end it. Statements from outside the transaction queue behind it in PGlite's own mutex, as they
 * would in-process, so the worker needs no lock of its own.
 */
import { Worker } from "node:worker_threads";
import type { Sql, SqlExecutor } from "./sql.ts";

export interface PgliteThreadOptions {
  /**
   * How long close() waits for the statements and transactions already sent before it stops the
   * thread anyway (what is still unanswered then is rejected). Default 5000.
   */
  closeTimeoutMs?: number;
}

/** The worker-backed store; `worker` is exposed for tests (to kill it) and diagnostics. */
export interface PgliteThreadSql extends Sql {
  readonly worker: Worker;
}

type Reply = { id: number; value?: unknown; error?: undefined } | { id: number; error: SerializedError };
type SerializedError = Record<string, string | number | undefined> & { message: string };
type Request =
  | { op: "query"; text: string; params: readonly unknown[]; tx?: number }
  | { op: "exec"; text: string }
  | { op: "begin" }
  | { op: "commit" | "rollback"; tx: number }
  | { op: "close" };

/** The worker's error as an Error again, with its SQLSTATE `code`, `detail`, `constraint`... (see sqlState). */
function toError(e: SerializedError): Error {
  const { message, ...fields } = e;
  return Object.assign(new Error(message), fields);
}

export async function pgliteThreadSql(dataDir?: string, options: PgliteThreadOptions = {}): Promise<PgliteThreadSql> {
  const closeTimeoutMs = options.closeTimeoutMs ?? 5000;
  // execArgv []: the worker is plain JavaScript and needs none of the parent's loaders (tsx, vitest).
  const worker = new Worker(new URL("./pglite-worker.js", import.meta.url), { workerData: { dataDir }, execArgv: [] });
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  /** Set once close() starts: new top-level calls are refused, open transactions may finish. */
  let closed = false;
  /** Set when the thread is gone (closed or crashed): every call is refused with it. */
  let gone: Error | undefined;

  function goneWith(error: Error) {
    if (gone) return;
    gone = error;
    for (const p of pending.values()) p.reject(error);
    pending.clear();
  }

  const ready = new Promise<void>((resolve, reject) => pending.set(0, { resolve: () => resolve(), reject }));
  worker.on("message", (m: Reply) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.error) p.reject(toError(m.error));
    else p.resolve(m.value);
  });
  // An uncaught error in the worker ends it; "exit" follows and rejects what is pending.
  worker.on("error", (e) => goneWith(new Error(`PGlite worker failed: ${String(e?.message ?? e).split("\n")[0]}`)));
  // An answer that cannot be read: which call it was for is unknown, so nothing can be trusted.
  worker.on("messageerror", () => {
    goneWith(new Error("PGlite worker: an answer could not be read"));
    void worker.terminate();
  });
  worker.on("exit", (code) => goneWith(new Error(closed ? "PGlite store is closed" : `PGlite worker exited unexpectedly (code ${code})`)));

  /** `scoped`: part of a transaction already open, allowed while close() waits for it. */
  function call(request: Request, scoped = false): Promise<unknown> {
    if (gone) return Promise.reject(gone);
    if (closed && !scoped) return Promise.reject(new Error("PGlite store is closed"));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      try {
        worker.postMessage({ id, ...request });
      } catch (e) {
        pending.delete(id);
        // DataCloneError's message quotes the value: name the failure, not the parameter.
        reject(new Error(`PGlite worker: query parameters could not be sent (${e instanceof Error ? e.name : "error"})`));
      }
    });
  }

  try {
    await ready;
  } catch (e) {
    await worker.terminate();
    throw e;
  }

  let closing: Promise<void> | undefined;
  return {
    dialect: "pglite",
    worker,
    query: <T>(text: string, params: readonly unknown[] = []) => call({ op: "query", text, params }) as Promise<T[]>,
    async exec(text) {
      await call({ op: "exec", text });
    },
    async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
      const tx = (await call({ op: "begin" })) as number;
      let open = true;
      const executor: SqlExecutor = {
        query: <R>(text: string, params: readonly unknown[] = []) =>
          open ? (call({ op: "query", text, params, tx }, true) as Promise<R[]>) : Promise.reject(new Error("PGlite worker: transaction is closed")),
      };
      let result: T;
      try {
        result = await fn(executor);
      } catch (e) {
        open = false;
        await call({ op: "rollback", tx }, true).catch(() => {});
        throw e;
      }
      open = false;
      await call({ op: "commit", tx }, true);
      return result;
    },
    close() {
      closing ??= (async () => {
        closed = true;
        if (!gone) {
          let timer: ReturnType<typeof setTimeout> | undefined;
          const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, closeTimeoutMs)));
          // PGlite's close() in the worker first lets what was already sent finish.
          await Promise.race([call({ op: "close" }, true).catch(() => {}), timeout]);
          clearTimeout(timer);
        }
        goneWith(new Error("PGlite store closed before the statement finished"));
        await worker.terminate();
      })();
      return closing;
    },
  };
}
