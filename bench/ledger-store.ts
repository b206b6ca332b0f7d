// The ledger's settle-path writes alone (claim, write-ahead transaction, sent, complete, audit
// event) for 4096 payments, in groups as the settlement engine produces them:
//
//   npx tsx bench/ledger-store.ts [mem|inproc|pg] [group size, default 16] [concurrent streams, default 1]
//
// mem = PGlite on its worker thread (the default store), inproc = PGlite on the calling thread,
// pg = PostgreSQL at 127.0.0.1:5432 (a fresh schema). Prints wall time and CPU per payment, and
// the main thread's own CPU and event-loop utilization: what the store costs the thread that
// answers HTTP. Figures are noisy on a 2-core machine; repeat runs.
import { performance } from "node:perf_hooks";
import { createLedger, pgliteSql, type Ledger, type PaymentEntry } from "@tollgate/facilitator";
import { statCpuMs } from "./load.ts";

const mode = process.argv[2] ?? "mem";
const N = 4096;
const B = Number(process.argv[3] ?? 16);
let ledger: Ledger;
if (mode === "mem") ledger = await createLedger();
else if (mode === "inproc") ledger = await createLedger({ sql: await pgliteSql(undefined, { thread: false }) });
else if (mode === "pg") ledger = await createLedger({ databaseUrl: "postgres://postgres@127.0.0.1:5432/test", schema: `bench_${Date.now()}` });
else throw new Error(`mode: expected mem, inproc or pg, got ${mode}`);
const entries: PaymentEntry[] = Array.from({ length: N }, (_, i) => ({ key: `k${i}-${Math.random()}`, network: "eip155:31337", scheme: "exact", asset: "0xabc", payer: "0xpayer" + (i % 64), payee: "0xpayee", amount: "1000", nonce: "0x" + i.toString(16).padStart(64, "0"), requestHash: "h" + i }));
// Main thread only (process.cpuUsage() counts the PGlite worker too): /proc/self/task/<pid>/stat, clock ticks (10 ms).
const mainCpuUs = () => (statCpuMs(`/proc/self/task/${process.pid}/stat`) ?? NaN) * 1000;
const main0 = mainCpuUs(); const elu0 = performance.eventLoopUtilization();
const cpu0 = process.cpuUsage(); const t0 = performance.now();
// Optional 3rd argument: that many independent streams at once (concurrent clients), default 1.
const S = Number(process.argv[4] ?? 1);
await Promise.all(Array.from({ length: S }, async (_, s) => {
for (let i = s * B; i < N; i += B * S) {
  const chunk = entries.slice(i, i + B);
  await Promise.all(chunk.map((e) => ledger.claim(e, "tok", 60000)));
  await ledger.recordTransaction({ keys: chunk.map((e) => e.key), hash: "0xh" + i, network: "eip155:31337", signer: "0xs", nonce: i });
  await Promise.all(chunk.map((e) => ledger.complete(e.key, "tok", { status: "settled", transaction: "0xh" + i, response: { success: true, transaction: "0xh" + i, network: "eip155:31337", payer: e.payer } })));
  await ledger.recordEvents(chunk.map((e) => ({ kind: "settle" as const, key: e.key, network: e.network, payer: e.payer, outcome: "success", transaction: "0xh" + i })));
}
}));
const ms = performance.now() - t0; const cpu = process.cpuUsage(cpu0); const mainCpu = mainCpuUs() - main0; const elu = performance.eventLoopUtilization(elu0);
console.log(`${mode} batch ${B} streams ${S}: ${(ms / N * 1000).toFixed(0)} µs wall/payment, ${((cpu.user + cpu.system) / N).toFixed(0)} µs cpu/payment (this process), ${(mainCpu / N).toFixed(0)} µs main-thread cpu/payment, ELU ${(elu.utilization * 100).toFixed(0)}% (${(elu.active / N * 1000).toFixed(0)} µs active/payment)`);
await ledger.close();
