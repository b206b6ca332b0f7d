// Micro-benchmark of the EVM settlement engine alone (no HTTP, no verify), in-process against one
// anvil (automine): settlements/second and latency per submit at 1, 32 and 256 concurrent callers,
// batching on and off, two fee-paying signers, the engine's default timing options.
//
//   npx tsx bench/settle-engine.ts [--scale=1] [--signers=2] [--payers=16] [--think=0] [--maxWaitMs=N]
//                                  [--layout=shared|per-signer] [--pick=fill|least-inflight] [--batching-only] [--json=path]
//
// --think=N: each caller waits a random 0..N ms before each submit (as verification and HTTP
// spread real arrivals out), instead of submitting back to back.
// --layout=per-signer: one engine per signer, as apps/facilitator does (signer leases), with a
// picker choosing the engine per call: "least-inflight" (fewest unmined transactions) or "fill"
// (an idle engine with nothing queued, else the one whose queue is filling).
//
// Every authorization is signed before its phase is timed. Each phase gets a fresh engine; a
// phase counts only settlements whose submit() resolved "success", and checks the payee's balance
// rose by exactly that much. Batch size = settled items / transactions sent.
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import type { PaymentRequirements } from "@tollgate/core";
import { devAccount, startLocalNetwork } from "@tollgate/devnet";
import { createSettlementEngine, eip3009Abi, signExactEvmAuthorization, type EngineStats, type SettlementCall, type SettlementEngine } from "@tollgate/evm";
import { createPublicClient, createTestClient, http, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { option } from "./options.ts";

const scale = option("scale", 1);
const signerCount = option("signers", 2);
const payerCount = option("payers", 16);
const thinkMs = option("think", 0, { allowZero: true });
const jsonPath = process.argv.find((a) => a.startsWith("--json="))?.slice(7);
const maxWaitArg = process.argv.find((a) => a.startsWith("--maxWaitMs="));
const maxWaitMs = maxWaitArg ? Number(maxWaitArg.slice(12)) : undefined;
const layout = process.argv.find((a) => a.startsWith("--layout="))?.slice(9) ?? "shared";
const pickPolicy = process.argv.find((a) => a.startsWith("--pick="))?.slice(7) ?? "fill";
const batchingModes = process.argv.includes("--batching-only") ? [true] : [true, false];
if (!["shared", "per-signer"].includes(layout)) throw new Error("--layout: shared or per-signer");
if (!["fill", "least-inflight"].includes(pickPolicy)) throw new Error("--pick: fill or least-inflight");
const MAX_BATCH = 50;

/** One engine per signer behind a picker, looking like one engine. */
function perSigner(engines: SettlementEngine[]): SettlementEngine {
  let turn = 0;
  const pick = (): SettlementEngine => {
    turn++;
    const all = engines.map((_, k) => engines[(turn + k) % engines.length]!);
    if (pickPolicy === "least-inflight") {
      let best = all[0]!;
      let bestLoad = Infinity;
      for (const e of all) {
        const load = e.stats().signers[0]!.inFlight;
        if (load < bestLoad) [best, bestLoad] = [e, load];
      }
      return best;
    }
    // "fill": an idle key sends at once; when all are busy, one queue fills (one large batch)
    // rather than every engine getting a few items.
    let fill: SettlementEngine | undefined;
    let fillQueued = -1;
    let least = all[0]!;
    let leastQueued = Infinity;
    for (const e of all) {
      const st = e.stats();
      if (st.queued === 0 && st.signers.every((x) => x.inFlight === 0)) return e;
      if (st.queued < MAX_BATCH && st.queued > fillQueued) [fill, fillQueued] = [e, st.queued];
      if (st.queued < leastQueued) [least, leastQueued] = [e, st.queued];
    }
    return fill ?? least;
  };
  return {
    submit: (call) => pick().submit(call),
    submitPermit2: (call) => pick().submitPermit2(call),
    waitFor: (tx, o) => engines[0]!.waitFor(tx, o),
    reconcile: (tx, o) => engines[0]!.reconcile(tx, o),
    stats(): EngineStats {
      const all = engines.map((e) => e.stats());
      return {
        transactions: all.reduce((a, b) => a + b.transactions, 0),
        replacements: all.reduce((a, b) => a + b.replacements, 0),
        items: all.reduce((a, b) => a + b.items, 0),
        queued: all.reduce((a, b) => a + b.queued, 0),
        signers: all.flatMap((x) => x.signers),
      };
    },
    close: async (o) => void (await Promise.all(engines.map((e) => e.close(o)))),
  };
}
const LEVELS = [1, 32, 256] as const;
const COUNTS: Record<number, number> = { 1: 40, 32: 480, 256: 1024 };

const net = await startLocalNetwork({ payers: payerCount });
const rows: Array<Record<string, unknown>> = [];
try {
  const client = createPublicClient({ transport: http(net.rpcUrl) });
  const requirements: PaymentRequirements = {
    scheme: "exact",
    network: net.network,
    amount: "1000",
    asset: net.usdc.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 3600,
    extra: { name: net.usdc.name, version: net.usdc.version },
  };
  const payers = net.accounts.payers.map((p) => privateKeyToAccount(p.privateKey));
  // Fee payers: dev accounts past the payers (given ETH below, untouched by the deploy).
  const signers = Array.from({ length: signerCount }, (_, i) => devAccount(3 + payerCount + i).privateKey as Hex);
  const test = createTestClient({ mode: "anvil", transport: http(net.rpcUrl) });
  for (const k of signers) await test.setBalance({ address: privateKeyToAccount(k).address, value: 10n ** 21n });
  const balance = () => client.readContract({ address: net.usdc.address, abi: eip3009Abi, functionName: "balanceOf", args: [net.accounts.payee.address] });

  async function sign(n: number): Promise<SettlementCall[]> {
    const out: SettlementCall[] = [];
    for (let i = 0; i < n; i++) {
      const p = await signExactEvmAuthorization(payers[i % payers.length]!, requirements);
      out.push({ network: net.network, asset: net.usdc.address, authorization: p.authorization, signature: p.signature });
    }
    return out;
  }

  console.log(
    `anvil ${net.rpcUrl}, ${signerCount} signers (${layout}${layout === "per-signer" ? `, pick ${pickPolicy}` : ""}), ${payerCount} payers, ` +
      `think ${thinkMs} ms, maxWaitMs ${maxWaitMs ?? "default"}, loadavg ${loadavg().map((l) => l.toFixed(1)).join(" ")}`,
  );
  for (const batching of batchingModes) {
    for (const concurrency of LEVELS) {
      const count = Math.max(concurrency, Math.round(COUNTS[concurrency]! * scale));
      const calls = await sign(count);
      const make = (keys: Hex[]) =>
        createSettlementEngine({
          networks: [{ network: net.network, rpcUrl: net.rpcUrl, batchSettler: net.batchSettler.address }],
          signers: keys,
          batching,
          maxBatchSize: MAX_BATCH,
          ...(maxWaitMs !== undefined ? { maxWaitMs } : {}),
        });
      const engine = layout === "shared" ? make(signers) : perSigner(signers.map((k) => make([k])));
      // Warm-up: nonce lookup, fee estimate, eth_simulateV1 support, chain detection.
      await engine.submit((await sign(1))[0]!);
      const warm = engine.stats();
      const before = await balance();
      const latencies: number[] = [];
      let failures = 0;
      let next = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < calls.length) {
            const call = calls[next++]!;
            if (thinkMs > 0) await new Promise((r) => setTimeout(r, Math.random() * thinkMs));
            const s = performance.now();
            try {
              const r = await engine.submit(call);
              if (r.status === "settled") latencies.push(performance.now() - s);
              else failures++;
            } catch {
              failures++;
            }
          }
        }),
      );
      const seconds = (performance.now() - t0) / 1000;
      const stats = engine.stats();
      await engine.close({ timeoutMs: 10_000 });
      const gained = (await balance()) - before;
      if (gained !== 1000n * BigInt(latencies.length)) throw new Error(`balance check: payee gained ${gained}, expected ${1000 * latencies.length}`);
      latencies.sort((a, b) => a - b);
      const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
      const transactions = stats.transactions - warm.transactions;
      const row = {
        batching,
        concurrency,
        settlements: latencies.length,
        failures,
        perSecond: Math.round(latencies.length / seconds),
        p50: Math.round(q(0.5)),
        p95: Math.round(q(0.95)),
        transactions,
        batchSize: Number((latencies.length / Math.max(1, transactions)).toFixed(1)),
        perSigner: stats.signers.map((x) => x.sent - (warm.signers.find((w) => w.address === x.address)?.sent ?? 0)),
      };
      rows.push(row);
      console.log(
        `batching ${batching ? "on " : "off"} c=${String(concurrency).padStart(3)}  ${String(row.perSecond).padStart(5)} settlements/s  ` +
          `p50 ${String(row.p50).padStart(5)} ms  p95 ${String(row.p95).padStart(5)} ms  ${transactions} tx, ${row.batchSize} per tx, ` +
          `per signer ${row.perSigner.join("/")}${failures ? `, ${failures} FAILED` : ""}`,
      );
    }
  }
  if (jsonPath) writeFileSync(jsonPath, JSON.stringify({ at: new Date().toISOString(), loadavg: loadavg(), rows }, null, 2));
} finally {
  await net.stop();
}
