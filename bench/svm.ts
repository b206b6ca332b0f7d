// Solana `exact` facilitator throughput on one core: verifies/second and settlements/second
// against litesvm (real SVM + SPL Token program) in-process, and through the local JSON-RPC
// endpoint (same litesvm, HTTP on loopback, served by this same process: still one core).
// Each settlement is a full one: the static checks, the replay check, a simulation of the
// co-signed transaction, submission, and a status read that confirms it.
//
//   npx tsx bench/svm.ts [payloads=500] [concurrency=16]
//
// Prints a table and writes bench/results/svm.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import type { PaymentPayload, PaymentRequirements } from "@tollgate/core";
import { exactSvmClient, exactSvmFacilitator, setupLocalSolanaNetwork, startLocalSolana, type SolanaChain } from "@tollgate/svm";

const N = Number(process.argv[2] ?? 500);
const CONCURRENCY = Number(process.argv[3] ?? 16);

const local = await startLocalSolana();
try {
  const net = await setupLocalSolanaNetwork({ svm: local.svm, payerBalance: 1_000_000_000_000n });
  const requirements: PaymentRequirements = {
    scheme: "exact",
    network: net.network,
    amount: "10000",
    asset: net.mint,
    payTo: net.payee.address,
    maxTimeoutSeconds: 60,
    extra: { feePayer: net.feePayer.address },
  };
  const client = exactSvmClient({ signer: net.payer.signer, rpc: net.chain });
  async function sign(n: number): Promise<PaymentPayload[]> {
    const out: PaymentPayload[] = [];
    for (let i = 0; i < n; i++) out.push({ x402Version: 2, accepted: requirements, payload: await client.createPayload(requirements, { x402Version: 2 }) });
    return out;
  }

  let t0 = performance.now();
  const verifySet = await sign(N);
  console.log(`signed ${N} payment transactions in ${(performance.now() - t0).toFixed(0)} ms (client side, not measured below)`);

  /** Runs `op` over `items` with `concurrency` callers; returns ops/second and CPU microseconds per op. */
  async function measure<T>(items: readonly T[], concurrency: number, op: (item: T) => Promise<void>) {
    let next = 0;
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < items.length) await op(items[next++]!);
      }),
    );
    const ms = performance.now() - start;
    const cpu = process.cpuUsage(cpu0);
    return { opsPerSecond: Math.round((items.length / ms) * 1000), cpuMicrosPerOp: Math.round((cpu.user + cpu.system) / items.length), n: items.length, concurrency };
  }

  const results: Record<string, Record<string, Awaited<ReturnType<typeof measure>>>> = {};
  for (const [name, rpc] of [
    ["litesvm in-process", net.chain],
    ["local JSON-RPC (litesvm over HTTP)", local.url],
  ] as Array<[string, SolanaChain | string]>) {
    const facilitator = exactSvmFacilitator({ networks: [{ network: net.network, rpc, assets: [net.mint] }], feePayer: net.feePayer.signer, pollIntervalMs: 5 });
    // Warm-up: one settlement loads the token program into litesvm's cache (simulation alone
    // does not), as on any live validator; then one verify.
    const [warmSettle] = await sign(1);
    const settled = await facilitator.settle(warmSettle!, requirements);
    if (!settled.success) throw new Error(`warm-up settle failed: ${settled.errorReason} ${settled.errorMessage}`);
    const warm = await facilitator.verify(verifySet[0]!, requirements);
    if (!warm.isValid) throw new Error(`warm-up verify failed: ${warm.invalidReason} ${warm.invalidMessage}`);
    const r: (typeof results)[string] = {};
    for (const c of [1, CONCURRENCY]) {
      r[`verify c=${c}`] = await measure(verifySet, c, async (p) => {
        const v = await facilitator.verify(p, requirements);
        if (!v.isValid) throw new Error(`verify failed: ${v.invalidReason}`);
      });
    }
    for (const c of [1, CONCURRENCY]) {
      const settleSet = await sign(N);
      const payeeBefore = net.tokenBalance(net.payee.tokenAccount);
      r[`settle c=${c}`] = await measure(settleSet, c, async (p) => {
        const s = await facilitator.settle(p, requirements);
        if (!s.success) throw new Error(`settle failed: ${s.errorReason} ${s.errorMessage}`);
      });
      // Every settlement moved exactly the amount, once.
      const moved = net.tokenBalance(net.payee.tokenAccount) - payeeBefore;
      if (moved !== BigInt(N) * 10_000n) throw new Error(`settled ${N} payments but the payee received ${moved}`);
    }
    results[name] = r;
  }

  t0 = performance.now();
  console.log(`\nSolana exact facilitator, one process (one core), ${N} payments per row`);
  console.log(`${"chain".padEnd(38)} ${"operation".padEnd(14)} ${"ops/s".padStart(8)} ${"CPU µs/op".padStart(10)}`);
  for (const [name, r] of Object.entries(results)) {
    for (const [op, m] of Object.entries(r)) console.log(`${name.padEnd(38)} ${op.padEnd(14)} ${String(m.opsPerSecond).padStart(8)} ${String(m.cpuMicrosPerOp).padStart(10)}`);
  }
  mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
  const file = new URL("./results/svm.json", import.meta.url);
  writeFileSync(
    file,
    JSON.stringify(
      {
        benchmark: "svm exact facilitator verify/settle throughput",
        date: new Date().toISOString(),
        node: process.version,
        cpu: cpus()[0]?.model ?? "unknown",
        // Other processes share this machine: wall-clock rates fall with load; CPU µs/op does not.
        loadAverage1m: Number(loadavg()[0]!.toFixed(2)),
        payloadsPerRow: N,
        note: "one Node process (single thread); the JSON-RPC endpoint runs in the same process; settle = checks + replay check + simulation + submission + confirmation",
        results,
      },
      null,
      2,
    ) + "\n",
  );
  console.log(`\nwritten to bench/results/svm.json`);
} finally {
  await local.close();
}
