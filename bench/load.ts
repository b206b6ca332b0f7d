// Closed-loop HTTP load generator for the facilitator benchmark: N workers, each with its own
// keep-alive connection, POST pre-serialized JSON bodies until a fixed number of requests is done.
// Plain node:http (no fetch): the generator shares the 2-core machine with the services under
// test, so its own cost per request should be as small as we can make it.
//
// By default the generator runs on its own worker thread (bench/load-worker.ts): clients are
// other machines in real life, and on the service's own event loop the generator's HTTP client
// work would be billed to whichever service is measured. It still shares the machine's 2 cores
// (same handicap for every service measured). `inProcess: true` runs it on the caller's thread.
import { readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { Worker } from "node:worker_threads";

export interface LoadOptions {
  /** Base URL, e.g. http://127.0.0.1:4020 */
  url: string;
  path: string;
  /** One body per request (bodies.length requests), or a pool reused round-robin (see `requests`). */
  bodies: readonly string[];
  /** Total requests; default bodies.length. More than bodies.length reuses bodies (verify only). */
  requests?: number;
  concurrency: number;
  /** A 200 counts as a success when this field of its JSON body is `true` (null: any 200). */
  success: "isValid" | "success" | null;
  /** Run on the caller's thread instead of a worker thread. */
  inProcess?: boolean;
  /** Per-request bound; default 120 s. */
  timeoutMs?: number;
}

export interface LoadResult {
  requests: number;
  successes: number;
  errors: number;
  /** Wall time from first send to last answer. */
  seconds: number;
  successesPerSecond: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  /** CPU time of the generator's own thread (Linux: /proc/thread-self), undefined elsewhere. */
  generatorCpuMs?: number;
  /** First few distinct failure descriptions (status + reason). */
  errorSamples: string[];
  /** Failure kinds with their counts. */
  errorKinds: Record<string, number>;
}

interface Reply {
  status: number;
  text: string;
}

function post(agent: Agent, target: URL, body: string, timeoutMs: number): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: "POST",
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]! * 10) / 10;
}

/** Why a reply is not a success, short enough to group on. */
function failureKind(reply: Reply): string {
  try {
    const body = JSON.parse(reply.text) as Record<string, unknown>;
    const reason = body.invalidReason ?? body.errorReason ?? body.error ?? "";
    return `${reply.status} ${String(reason).slice(0, 120)}`;
  } catch {
    return `${reply.status} ${reply.text.slice(0, 120)}`;
  }
}

export function runLoad(opts: LoadOptions): Promise<LoadResult> {
  if (opts.inProcess) return runLoadHere(opts);
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./load-worker.mjs", import.meta.url), { workerData: opts });
    worker.once("message", (result: LoadResult) => resolve(result));
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`load generator thread exited (${code}) without a result`)));
  });
}

function isSuccess(field: LoadOptions["success"], body: unknown): boolean {
  if (field === null) return true;
  return typeof body === "object" && body !== null && (body as Record<string, unknown>)[field] === true;
}

/** CPU milliseconds (user + system) from a /proc stat file (Linux; clock ticks of 10 ms); undefined elsewhere. */
export function statCpuMs(statPath: string): number | undefined {
  try {
    const fields = readFileSync(statPath, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

/** The calling thread's CPU time. */
export const threadCpuMs = () => statCpuMs("/proc/thread-self/stat");

/** Process `pid`'s CPU time, all its threads. */
export const processCpuMs = (pid: number | undefined) => (pid === undefined ? undefined : statCpuMs(`/proc/${pid}/stat`));

export async function runLoadHere(opts: LoadOptions): Promise<LoadResult> {
  const total = opts.requests ?? opts.bodies.length;
  if (opts.bodies.length === 0 || total < 1) throw new Error("runLoad: no bodies");
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const target = new URL(opts.path, opts.url);
  // One socket per worker, kept alive for the whole run (connection setup is not what we measure).
  const agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency, maxFreeSockets: opts.concurrency });
  const latencies: number[] = [];
  const errorKinds: Record<string, number> = {};
  let next = 0;
  let successes = 0;
  let errors = 0;

  const cpuAtStart = threadCpuMs();
  const started = performance.now();
  async function worker(): Promise<void> {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      const body = opts.bodies[i % opts.bodies.length]!;
      const t0 = performance.now();
      let kind: string | undefined;
      try {
        const reply = await post(agent, target, body, timeoutMs);
        if (reply.status === 200) {
          let parsed: unknown;
          try {
            parsed = JSON.parse(reply.text);
          } catch {
            parsed = undefined;
          }
          if (!isSuccess(opts.success, parsed)) kind = failureKind(reply);
        } else {
          kind = failureKind(reply);
        }
      } catch (e) {
        kind = `transport ${e instanceof Error ? e.message.slice(0, 120) : String(e)}`;
      }
      if (kind === undefined) {
        successes++;
        latencies.push(performance.now() - t0);
      } else {
        errors++;
        errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, total) }, () => worker()));
  const seconds = (performance.now() - started) / 1000;
  const cpuAtEnd = threadCpuMs();
  agent.destroy();

  latencies.sort((a, b) => a - b);
  return {
    requests: total,
    successes,
    errors,
    seconds: Math.round(seconds * 1000) / 1000,
    successesPerSecond: Math.round((successes / seconds) * 10) / 10,
    latencyMs: { p50: quantile(latencies, 0.5), p95: quantile(latencies, 0.95), p99: quantile(latencies, 0.99), max: quantile(latencies, 1) },
    ...(cpuAtStart !== undefined && cpuAtEnd !== undefined ? { generatorCpuMs: cpuAtEnd - cpuAtStart } : {}),
    errorSamples: Object.keys(errorKinds).slice(0, 5),
    errorKinds,
  };
}
