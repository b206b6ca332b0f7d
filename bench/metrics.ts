// Micro-benchmark of the facilitator's per-request metrics path: our hand-written registry
// (apps/facilitator/src/metrics.ts) against prom-client, same metrics, same labels, same buckets.
// Per request the facilitator does one histogram observe (latency, label `result`), one counter
// inc (labels `result`, `reason`) and a gauge inc/dec (settlements pending). Also times one scrape.
//
//   npx tsx bench/metrics.ts [ops=1000000] [rounds=5] [--prom-client=<dir of an installed prom-client>]
//
// prom-client is resolved from the workspace, else from --prom-client (e.g. installed elsewhere with
// `npm install prom-client --prefix /tmp/pc` to measure it without adding a dependency).
import { createRequire } from "node:module";
import { join } from "node:path";
import { createRegistry, LATENCY_BUCKETS } from "../apps/facilitator/src/metrics.ts";

const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const OPS = Number(args[0] ?? 1_000_000);
const ROUNDS = Number(args[1] ?? 5);
const promDir = process.argv.find((a) => a.startsWith("--prom-client="))?.slice("--prom-client=".length);

/** The slice of prom-client's API used here (typed locally: prom-client is not a dependency). */
interface PromMetric {
  inc(labels?: Record<string, string>, value?: number): void;
  dec(labels?: Record<string, string>, value?: number): void;
  observe(labels: Record<string, string>, value: number): void;
}
interface PromClient {
  version?: string;
  Registry: new () => { metrics(): Promise<string> };
  Counter: new (config: Record<string, unknown>) => PromMetric;
  Gauge: new (config: Record<string, unknown>) => PromMetric;
  Histogram: new (config: Record<string, unknown>) => PromMetric;
}
function loadPromClient(): PromClient | undefined {
  const require = createRequire(import.meta.url);
  for (const id of [promDir ? join(promDir, "index.js") : undefined, "prom-client"]) {
    if (!id) continue;
    try {
      return require(id) as PromClient;
    } catch {
      // try the next
    }
  }
  return undefined;
}

/** The label values a busy facilitator sees: a few results and reasons, mostly the happy path. */
const RESULTS = ["success", "success", "success", "failure"] as const;
const REASONS = ["", "", "", "invalid_exact_evm_nonce_already_used"] as const;
const latencies = Array.from({ length: 1024 }, (_, i) => 0.0005 + ((i * 7919) % 1000) / 10_000);

interface Subject {
  observe(value: number, result: string): void;
  inc(result: string, reason: string): void;
  pendingInc(): void;
  pendingDec(): void;
  render(): Promise<string>;
}

function ours(): Subject {
  const registry = createRegistry();
  const h = registry.histogram("tollgate_settle_duration_seconds", "Time to answer /settle", LATENCY_BUCKETS);
  const c = registry.counter("tollgate_settle_total", "Settlements by result and reason");
  const g = registry.gauge("tollgate_settlements_pending", "Settlements running in this process");
  return {
    observe: (v, result) => h.observe(v, { result }),
    inc: (result, reason) => c.inc({ result, reason }),
    pendingInc: () => g.inc(),
    pendingDec: () => g.dec(),
    render: () => registry.render(),
  };
}

function prom(pc: PromClient): Subject {
  const registry = new pc.Registry();
  const h = new pc.Histogram({ name: "tollgate_settle_duration_seconds", help: "Time to answer /settle", labelNames: ["result"], buckets: [...LATENCY_BUCKETS], registers: [registry] });
  const c = new pc.Counter({ name: "tollgate_settle_total", help: "Settlements by result and reason", labelNames: ["result", "reason"], registers: [registry] });
  const g = new pc.Gauge({ name: "tollgate_settlements_pending", help: "Settlements running in this process", registers: [registry] });
  return {
    observe: (v, result) => h.observe({ result }, v),
    inc: (result, reason) => c.inc({ result, reason }),
    pendingInc: () => g.inc(),
    pendingDec: () => g.dec(),
    render: () => registry.metrics(),
  };
}

type Op = (s: Subject, i: number) => void;
const OPS_MEASURED: Record<string, Op> = {
  observe: (s, i) => s.observe(latencies[i & 1023]!, RESULTS[i & 3]!),
  "inc(2 labels)": (s, i) => s.inc(RESULTS[i & 3]!, REASONS[i & 3]!),
  "gauge inc+dec": (s) => {
    s.pendingInc();
    s.pendingDec();
  },
  "per request": (s, i) => {
    s.pendingInc();
    s.observe(latencies[i & 1023]!, RESULTS[i & 3]!);
    s.inc(RESULTS[i & 3]!, REASONS[i & 3]!);
    s.pendingDec();
  },
};

function round(s: Subject, op: Op): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < OPS; i++) op(s, i);
  return Number(process.hrtime.bigint() - t0) / OPS;
}

/**
 * ns/op for each subject, rounds interleaved (A, B, A, B, ...) so background load hits both
 * alike; one warm-up round each. Min is the least-disturbed round, median the typical one.
 */
function compare(subjects: Subject[], op: Op): { min: number; median: number }[] {
  const samples = subjects.map(() => [] as number[]);
  for (let r = 0; r <= ROUNDS; r++) {
    subjects.forEach((s, k) => {
      const ns = round(s, op);
      if (r > 0) samples[k]!.push(ns);
    });
  }
  return samples.map((xs) => {
    xs.sort((a, b) => a - b);
    return { min: xs[0]!, median: xs[Math.floor(xs.length / 2)]! };
  });
}

async function scrapeMicros(s: Subject): Promise<{ micros: number; bytes: number }> {
  const scrapes = 2000;
  let bytes = 0;
  const t0 = performance.now();
  for (let i = 0; i < scrapes; i++) bytes = (await s.render()).length;
  return { micros: ((performance.now() - t0) * 1000) / scrapes, bytes };
}

const pc = loadPromClient();
const names = ["ours"];
const subjects = [ours()];
if (pc) {
  names.push("prom-client");
  subjects.push(prom(pc));
} else console.log("prom-client not found (pass --prom-client=<dir>): measuring ours only");

console.log(`node ${process.version}, ${OPS} ops per round, ${ROUNDS} rounds interleaved; ns/op as min / median`);
const results = Object.entries(OPS_MEASURED).map(([label, op]) => ({ label, r: compare(subjects, op) }));
console.log(["impl", ...results.map((x) => x.label), "scrape µs (bytes)"].join("\t"));
for (const [k, name] of names.entries()) {
  const scrape = await scrapeMicros(subjects[k]!);
  console.log([name, ...results.map((x) => `${x.r[k]!.min.toFixed(0)} / ${x.r[k]!.median.toFixed(0)}`), `${scrape.micros.toFixed(0)} (${scrape.bytes})`].join("\t"));
}
if (pc) {
  const req = results.find((x) => x.label === "per request")!.r;
  console.log(`prom-client / ours, per request: min ${(req[1]!.min / req[0]!.min).toFixed(2)}x, median ${(req[1]!.median / req[0]!.median).toFixed(2)}x`);
}
