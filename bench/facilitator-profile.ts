// One facilitator alone under /verify and /settle load, for profiling what bench/facilitator.ts
// measures (same start-up, same payloads, same load generator):
//
//   npx tsx --cpu-prof --cpu-prof-dir=/tmp/prof bench/facilitator-profile.ts --target=ours --clients=256 --verify=2000 --settle=500
//   npx tsx bench/cpuprofile-summary.ts /tmp/prof/<file>.cpuprofile
//
// --target=ours|ours-nobatch|theirs. Prints rates and, for ours, the /metrics batch-size lines and
// the ledger calls per request (count and awaited time per method). --ledger=no-verify-records
// is an experiment, not a configuration: recordVerify/recordEvent become no-ops, to show what the
// verify path costs without its two awaited writes.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { privateKeyToAccount } from "viem/accounts";
import type { PaymentRequirements } from "@tollgate/core";
import { devAccount, startLocalNetwork } from "@tollgate/devnet";
import { createLedger, type Ledger } from "@tollgate/facilitator";
import { signBodies, startOurs, startTheirs, type Signing } from "./facilitator.ts";
import { runLoad } from "./load.ts";

function arg(name: string, fallback: string): string {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : fallback;
}

/** The ledger with every method call counted and its awaited time summed. */
function countingLedger(ledger: Ledger, calls: Map<string, { n: number; ms: number }>, skipVerifyRecords: boolean): Ledger {
  return new Proxy(ledger, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== "function" || typeof prop !== "string") return value;
      return async (...args: unknown[]) => {
        if (skipVerifyRecords && (prop === "recordVerify" || prop === "recordEvent")) return undefined;
        const t0 = performance.now();
        try {
          return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        } finally {
          const c = calls.get(prop) ?? { n: 0, ms: 0 };
          c.n++;
          c.ms += performance.now() - t0;
          calls.set(prop, c);
        }
      };
    },
  });
}

/** --count-rpc: counts JSON-RPC methods sent through fetch (viem's http transport) during the settle phase. */
const rpcCounts = new Map<string, number>();
let countingRpc = false;
if (process.argv.includes("--count-rpc")) {
  const original = globalThis.fetch;
  globalThis.fetch = (input, init) => {
    if (countingRpc && typeof init?.body === "string" && init.body.includes('"jsonrpc"')) {
      const parsed = JSON.parse(init.body) as { method: string } | Array<{ method: string }>;
      for (const m of Array.isArray(parsed) ? parsed : [parsed]) rpcCounts.set(m.method, (rpcCounts.get(m.method) ?? 0) + 1);
      rpcCounts.set("(http requests)", (rpcCounts.get("(http requests)") ?? 0) + 1);
    }
    return original(input, init);
  };
}

async function main(): Promise<void> {
  const target = arg("target", "ours");
  const clients = Number(arg("clients", "256"));
  const verifyN = Number(arg("verify", "2000"));
  const settleN = Number(arg("settle", "500"));
  const signers = Number(arg("signers", "4"));
  const net = await startLocalNetwork({ payers: 32 });
  try {
    const requirements: PaymentRequirements = {
      scheme: "exact",
      network: net.network,
      amount: "1000",
      asset: net.usdc.address,
      payTo: net.accounts.payee.address,
      maxTimeoutSeconds: 3600,
      extra: { name: net.usdc.name, version: net.usdc.version },
    };
    const signing: Signing = { requirements, payers: net.accounts.payers.map((p) => privateKeyToAccount(p.privateKey)), next: 0 };
    const pool = await signBodies(signing, 256);
    const settleBodies = settleN > 0 ? await signBodies(signing, settleN) : [];
    const keys = Array.from({ length: signers }, (_, i) => devAccount(3000 + i).privateKey);
    const ledgerMode = arg("ledger", "real");
    const calls = new Map<string, { n: number; ms: number }>();
    // --store=pg: the ledger on PostgreSQL at 127.0.0.1:5432 (a fresh schema) instead of PGlite.
    const store = arg("store", "pglite");
    const ledger = target === "theirs" ? undefined : await createLedger(store === "pg" ? { databaseUrl: "postgres://postgres@127.0.0.1:5432/test", schema: `bench_${Date.now()}` } : {});
    const counted = ledger && countingLedger(ledger, calls, ledgerMode === "no-verify-records");
    if (process.argv.includes("--after-theirs")) {
      // The order bench/facilitator.ts uses: the official facilitator settles on this anvil first.
      const theirs = await startTheirs(net, net.accounts.facilitator.privateKey);
      const r = await runLoad({ url: theirs.url, path: "/settle", bodies: await signBodies(signing, 600), concurrency: 32, success: "success" });
      console.log(`(before: official settle @32 ${r.successesPerSecond}/s)`);
      await theirs.close();
      const c0 = process.cpuUsage();
      await new Promise((r) => setTimeout(r, 2000));
      const c = process.cpuUsage(c0);
      console.log(`(idle 2 s after closing it: ${((c.user + c.system) / 1000).toFixed(0)} ms CPU in this process)`);
    }
    const t =
      target === "theirs"
        ? await startTheirs(net, net.accounts.facilitator.privateKey)
        : await startOurs(net, keys, target !== "ours-nobatch", counted ? { ledger: counted } : {});
    const report = (what: string, requests: number) => {
      const parts = [...calls].map(([m, c]) => `${m} ${(c.n / requests).toFixed(2)}/req ${(c.ms / c.n).toFixed(1)}ms`);
      if (parts.length) console.log(`  ledger per ${what}: ${parts.join(", ")}`);
      calls.clear();
    };
    try {
      await runLoad({ url: t.url, path: "/verify", bodies: pool, requests: 50, concurrency: 8, success: "isValid" });
      calls.clear();
      if (verifyN > 0) {
        const v = await runLoad({ url: t.url, path: "/verify", bodies: pool, requests: verifyN, concurrency: clients, success: "isValid" });
        console.log(`${t.name} verify @${clients}: ${v.successesPerSecond}/s, p50 ${v.latencyMs.p50} ms, errors ${v.errors} ${JSON.stringify(v.errorKinds)}`);
        report("verify", verifyN);
      }
      if (settleN > 0) {
        // --profile=<file>: a CPU profile of the settle phase only (setup and signing excluded).
        const profileTo = arg("profile", "");
        const session = profileTo ? new Session() : undefined;
        const heap = process.argv.includes("--heap");
        if (session) {
          session.connect();
          if (heap) {
            await session.post("HeapProfiler.enable");
            await session.post("HeapProfiler.startSampling", { samplingInterval: 16384 });
          } else {
            await session.post("Profiler.enable");
            await session.post("Profiler.start");
          }
        }
        countingRpc = true;
        const s = await runLoad({ url: t.url, path: "/settle", bodies: settleBodies, concurrency: clients, success: "success" });
        if (session) {
          // --heap: a sampling allocation profile (bytes allocated per call site) instead of CPU.
          const { profile } = heap ? await session.post("HeapProfiler.stopSampling") : await session.post("Profiler.stop");
          writeFileSync(profileTo, JSON.stringify(profile));
          session.disconnect();
        }
        countingRpc = false;
        if (rpcCounts.size) console.log(`  rpc during settle: ${[...rpcCounts].map(([m, n]) => `${m} ${n}`).join(", ")}`);
        console.log(`${t.name} settle @${clients}: ${s.successesPerSecond}/s, p50 ${s.latencyMs.p50} ms, errors ${s.errors} ${JSON.stringify(s.errorKinds)}`);
        report("settle", settleN);
      }
      if (target !== "theirs") {
        const metrics = await (await fetch(`${t.url}/metrics`)).text().catch(() => "");
        for (const line of metrics.split("\n")) if (/batch_size_(sum|count)|settlement_transactions_total/.test(line)) console.log(line);
      }
    } finally {
      await t.close();
      await ledger?.close();
    }
  } finally {
    await net.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exitCode = 1;
});
