// Paid-request benchmark: our stack (our fetch → our hono server → our facilitator service)
// against the official x402 stack (@x402/fetch → @x402/express → their facilitator), both on
// ONE anvil chain in one run, so the chain and the machine are the same for both.
//
//   npm run bench                       defaults below; < 3 minutes
//   npm run bench -- --latency=50 --throughput=320 --clients=16 --warmup=3
//
// Latency: sequential paid requests at one client (the two stacks take turns in blocks).
// Throughput: a fixed number of paid requests over N concurrent clients, each its own funded
// payer; four rounds in alternating (ABBA) order. Every request must be 200 with a successful receipt.
// Prints a table; writes bench/results/latest.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { startLocalNetwork } from "@tollgate/devnet";
import { startTollgateFacilitator, startTollgateServer, tollgateFetch } from "../test/support/tollgate.ts";
import { officialFetch, startOfficialStack, summarize, type LatencySummary } from "./official.ts";
import { measureLatency, measureThroughput, type ThroughputResult } from "./paid-request.ts";
import { option, stopAfter } from "./options.ts";

const AMOUNT = "10000"; // 0.01 USDC
const HARD_LIMIT_MS = 170_000;


interface StackThroughput {
  requestsPerSecond: number;
  requests: number;
  failures: number;
  seconds: number;
  latency: LatencySummary;
  firstFailure?: string;
}

function combine(rounds: ThroughputResult[]): StackThroughput {
  const seconds = rounds.reduce((s, r) => s + r.seconds, 0);
  const ok = rounds.reduce((s, r) => s + r.samples.length, 0);
  const failures = rounds.reduce((s, r) => s + r.failures, 0);
  const firstFailure = rounds.find((r) => r.firstFailure)?.firstFailure;
  return {
    requestsPerSecond: Math.round((ok / seconds) * 10) / 10,
    requests: rounds.reduce((s, r) => s + r.requests, 0),
    failures,
    seconds: Math.round(seconds * 100) / 100,
    latency: summarize(ok ? rounds.flatMap((r) => r.samples) : [0]),
    ...(firstFailure ? { firstFailure } : {}),
  };
}

async function main(): Promise<void> {
  const latencyRequests = option("latency", 100, { integer: true });
  const warmup = option("warmup", 5, { integer: true });
  const throughputRequests = option("throughput", 640, { integer: true });
  const clientCount = option("clients", 32, { integer: true });
  const started = performance.now();
  const cancelGuard = stopAfter(HARD_LIMIT_MS);

  const net = await startLocalNetwork({ payers: clientCount });
  const cleanups: Array<() => Promise<void>> = [() => net.stop()];
  try {
    const payTo = net.accounts.payee.address;
    // Separate fee payers: the two facilitators never share an account nonce.
    const ours = await startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, privateKey: net.accounts.facilitator.privateKey });
    cleanups.push(() => ours.close());
    const ourServer = await startTollgateServer({ facilitatorUrl: ours.url, network: net.network, usdc: net.usdc, payTo, price: AMOUNT, framework: "hono" });
    cleanups.push(() => ourServer.close());
    const theirs = await startOfficialStack({
      rpcUrl: net.rpcUrl,
      chainId: net.chainId,
      network: net.network,
      facilitatorKey: net.accounts.deployer.privateKey,
      payTo,
      asset: { address: net.usdc.address, name: net.usdc.name, version: net.usdc.version },
      amount: AMOUNT,
    });
    cleanups.push(() => theirs.close());
    const setupSeconds = (performance.now() - started) / 1000;

    const payers = net.accounts.payers;
    const stacks = {
      tollgate: { url: ourServer.paidUrl, clients: payers.map((p) => tollgateFetch({ privateKey: p.privateKey })) },
      official: { url: theirs.server.paidUrl, clients: payers.map((p) => officialFetch({ privateKey: p.privateKey })) },
    };

    console.error(`bench: setup ${setupSeconds.toFixed(1)}s; latency ${latencyRequests} sequential requests per stack (warm-up ${warmup})…`);
    const latency = await measureLatency(
      [
        { name: "tollgate", pay: stacks.tollgate.clients[0]!, url: stacks.tollgate.url },
        { name: "official", pay: stacks.official.clients[0]!, url: stacks.official.url },
      ],
      { requests: latencyRequests, warmup, block: 10 },
    );

    console.error(`bench: throughput ${throughputRequests} requests per stack over ${clientCount} concurrent clients…`);
    // Four rounds in ABBA order: background load that drifts over the run hits both stacks alike.
    const ROUNDS = 4;
    const rounds: Record<"tollgate" | "official", ThroughputResult[]> = { tollgate: [], official: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? (["tollgate", "official"] as const) : (["official", "tollgate"] as const);
      const requests = Math.floor(throughputRequests / ROUNDS) + (r < throughputRequests % ROUNDS ? 1 : 0);
      for (const name of order) rounds[name].push(await measureThroughput(stacks[name].clients, stacks[name].url, requests));
    }
    const throughput = { tollgate: combine(rounds.tollgate), official: combine(rounds.official) };

    const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
    const rows: [string, number, number, string][] = [
      ["latency p50 (ms), 1 client", latency.tollgate!.medianMs, latency.official!.medianMs, "lower is better"],
      ["latency p99 (ms), 1 client", latency.tollgate!.p99Ms, latency.official!.p99Ms, "lower is better"],
      [`throughput (req/s), ${clientCount} clients`, throughput.tollgate.requestsPerSecond, throughput.official.requestsPerSecond, "higher is better"],
      [`latency p50 (ms), ${clientCount} clients`, throughput.tollgate.latency.medianMs, throughput.official.latency.medianMs, "lower is better"],
      [`latency p99 (ms), ${clientCount} clients`, throughput.tollgate.latency.p99Ms, throughput.official.latency.p99Ms, "lower is better"],
    ];
    const table = [
      ["metric", "tollgate", "official", "tollgate/official", ""],
      ...rows.map(([m, a, b, note]) => [m, String(a), String(b), `${ratio(a, b)}x`, note]),
    ];
    const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
    for (const r of table) console.log(r.map((c, i) => (i === 0 || i === 4 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));
    const failures = throughput.tollgate.failures + throughput.official.failures;
    if (failures > 0) console.log(`failures: tollgate ${throughput.tollgate.failures} (${throughput.tollgate.firstFailure ?? "-"}), official ${throughput.official.failures} (${throughput.official.firstFailure ?? "-"})`);

    const totalSeconds = Math.round((performance.now() - started) / 100) / 10;
    const result = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, loadavg: loadavg().map((x) => Math.round(x * 100) / 100) },
      config: { chain: "anvil (auto-mine)", amount: AMOUNT, latencyRequests, warmup, throughputRequests, clients: clientCount },
      stacks: {
        tollgate: "@tollgate/fetch → @tollgate/hono → @tollgate/facilitator (PGlite in memory)",
        official: "@x402/fetch → @x402/express → @x402/core facilitator (their example)",
      },
      latency,
      throughput,
      ratios: Object.fromEntries(rows.map(([m, a, b]) => [m, ratio(a, b)])),
      seconds: { setup: Math.round(setupSeconds * 10) / 10, total: totalSeconds },
    };
    const out = join(dirname(fileURLToPath(import.meta.url)), "results", "latest.json");
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
    console.log(`total ${totalSeconds}s; wrote ${out}`);
    if (failures > 0) process.exitCode = 1;
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    cancelGuard();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
