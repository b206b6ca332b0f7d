// Facilitator benchmark: our facilitator service (@tollgate/facilitator with the EVM settlement
// engine) against a facilitator built from the official @x402/core + @x402/evm packages, both
// on ONE anvil in ONE run. Measures POST /verify and POST /settle per second at 1, 32 and 256
// concurrent clients, our settlement batching on and off, and gas per settled payment.
//
//   npx tsx bench/facilitator.ts                   defaults below; < 5 minutes on 2 cores
//   npx tsx bench/facilitator.ts --scale=0.25      a quarter of the requests per level
//   npx tsx bench/facilitator.ts --signers=4 --payers=64
//
// Method:
// - Every payload is signed BEFORE its phase is timed. /settle gets a unique authorization per
//   request (spread over many payers); /verify reuses a pool (verification consumes nothing).
// - Load: N workers on keep-alive node:http connections, a fixed request count per level. Only a
//   200 with isValid/success true counts; everything else is an error, counted and grouped.
// - The load generator runs on its own worker thread of this process (see load.ts), beside both
//   services and anvil: on a 2-core machine it competes with them for CPU (same handicap for both).
// - Gas per settlement: the gasUsed of every receipt sent by the phase's fee payer(s) in the
//   phase's block range, divided by the payments settled. Correctness: the payee's balance must
//   rise by exactly successes × amount in every settle phase.
// - Order: official first, then ours with batching, then ours without; each on its own fresh
//   fee-payer key(s) so account nonces never interfere, and each from the same chain state
//   (anvil evm_snapshot / evm_revert: the chain is reset to the post-setup block before each). Before each settle level, our service's
//   write-behind audit rows from the previous phase are drained (the official one keeps none).
// Prints a table (ours / theirs / ratio per cell); writes bench/results/facilitator.json.
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Address, Hex } from "viem";
import { privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import type { PaymentRequirements } from "@tollgate/core";
import { devAccount, startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { createSettlementEngine, exactEvmFacilitator, signExactEvmAuthorization } from "@tollgate/evm";
import { ConfigError, parseConfig, startFacilitator, type StartFacilitatorOptions } from "@tollgate/facilitator";
import { startOfficialFacilitator } from "./official.ts";
import { processCpuMs, runLoad, type LoadResult } from "./load.ts";
import { option, stopAfter } from "./options.ts";

const AMOUNT = "1000"; // 0.001 USDC: balances last for any run
const HARD_LIMIT_MS = 300_000;
const LEVELS = [1, 32, 256] as const;
// Requests per concurrency level: "large" for our facilitator, "small" for the slower ones (the
// official one, ours without batching); rates are per second either way, and at 256 clients
// every count is several rounds.
const VERIFY_REQUESTS = {
  large: { 1: 200, 32: 2000, 256: 4000 },
  small: { 1: 100, 32: 600, 256: 1280 },
} satisfies Record<string, Record<number, number>>;
const SETTLE_REQUESTS = {
  large: { 1: 50, 32: 500, 256: 2048 },
  small: { 1: 30, 32: 300, 256: 1024 },
} satisfies Record<string, Record<number, number>>;
type Side = keyof typeof VERIFY_REQUESTS;
const VERIFY_POOL = 512;


// ---------------------------------------------------------------- chain helpers

async function rpc<T>(url: string, method: string, params: unknown[] = []): Promise<T> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
  const body = (await res.json()) as { result?: T; error?: { message?: string } };
  if (body.error) throw new Error(`${method}: ${body.error.message ?? "error"}`);
  return body.result as T;
}

/** Many calls in JSON-RPC batches (anvil answers arrays). */
async function rpcMany<T>(url: string, calls: Array<{ method: string; params: unknown[] }>, chunk = 200): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < calls.length; i += chunk) {
    const slice = calls.slice(i, i + chunk).map((c, j) => ({ jsonrpc: "2.0", id: i + j, ...c }));
    const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(slice) });
    const answers = (await res.json()) as Array<{ id: number; result?: T; error?: { message?: string } }>;
    answers.sort((a, b) => a.id - b.id);
    for (const a of answers) {
      if (a.error) throw new Error(`batch rpc: ${a.error.message ?? "error"}`);
      out.push(a.result as T);
    }
  }
  return out;
}

const blockNumber = async (url: string) => Number(BigInt(await rpc<string>(url, "eth_blockNumber")));

async function tokenBalance(url: string, token: Address, who: Address): Promise<bigint> {
  const data = `0x70a08231${who.slice(2).toLowerCase().padStart(64, "0")}`; // balanceOf(address)
  return BigInt(await rpc<string>(url, "eth_call", [{ to: token, data }, "latest"]));
}

/** Waits until none of `signers` has a transaction in the pool (responses may precede the last receipt). */
async function waitIdle(url: string, signers: readonly Address[], timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await rpcMany<string>(
      url,
      signers.flatMap((s) => [
        { method: "eth_getTransactionCount", params: [s, "pending"] },
        { method: "eth_getTransactionCount", params: [s, "latest"] },
      ]),
    );
    let idle = true;
    for (let i = 0; i < counts.length; i += 2) if (counts[i] !== counts[i + 1]) idle = false;
    if (idle) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface GasSummary {
  transactions: number;
  gasUsed: number;
  reverted: number;
}

/** Gas of every receipt in blocks (from, to] sent by one of `signers`. */
async function gasSentBy(url: string, from: number, to: number, signers: readonly Address[]): Promise<GasSummary> {
  const wanted = new Set(signers.map((s) => s.toLowerCase()));
  const calls = [];
  for (let b = from + 1; b <= to; b++) calls.push({ method: "eth_getBlockReceipts", params: [`0x${b.toString(16)}`] });
  const blocks = await rpcMany<Array<{ from: string; gasUsed: string; status: string }> | null>(url, calls);
  const sum: GasSummary = { transactions: 0, gasUsed: 0, reverted: 0 };
  for (const receipts of blocks) {
    for (const r of receipts ?? []) {
      if (!wanted.has(r.from.toLowerCase())) continue;
      sum.transactions++;
      sum.gasUsed += Number(BigInt(r.gasUsed));
      if (r.status !== "0x1") sum.reverted++;
    }
  }
  return sum;
}

// ---------------------------------------------------------------- facilitators under test

export interface Target {
  name: string;
  url: string;
  signers: Address[];
  /** How our settlement engine was wired ("config" = the service's own config fields). */
  wiring?: string;
  /** Resolves when work left behind by the last phase (our write-behind audit rows) is done. */
  idle?(): Promise<void>;
  close(): Promise<void>;
}

async function fundSigners(url: string, keys: readonly Hex[]): Promise<Address[]> {
  const addresses = keys.map((k) => privateKeyToAccount(k).address);
  for (const a of addresses) await rpc(url, "anvil_setBalance", [a, "0x3635c9adc5dea00000"]); // 1000 ETH
  return addresses;
}

/**
 * Our service with `keys` as parallel fee payers. Uses the service's own `settlement` config
 * when it has one; otherwise wires the settlement engine in through `schemes` (same engine,
 * same service), and says so in the results.
 */
export async function startOurs(net: RunningLocalNetwork, keys: Hex[], batching: boolean, options: StartFacilitatorOptions = {}): Promise<Target> {
  const network = net.network;
  const asset = { address: net.usdc.address, name: net.usdc.name, version: net.usdc.version, decimals: net.usdc.decimals };
  const base = {
    port: 0,
    host: "127.0.0.1",
    networks: [{ network, rpcUrl: net.rpcUrl, assets: [asset] }],
    privateKeys: keys,
    logLevel: "silent" as const,
  };
  const signers = await fundSigners(net.rpcUrl, keys);
  const wired = {
    ...base,
    networks: [{ ...base.networks[0]!, batchSettler: net.batchSettler.address }],
    settlement: { batching },
  };
  let configWired = true;
  try {
    parseConfig(wired);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    configWired = false;
  }
  if (configWired) {
    const running = await startFacilitator(wired as Parameters<typeof startFacilitator>[0], options);
    return {
      name: `tollgate (batching ${batching ? "on" : "off"})`,
      url: running.url,
      signers,
      wiring: "config (networks[].batchSettler + settlement.batching)",
      idle: () => running.app.audit.drain(),
      close: running.close,
    };
  }
  const engine = createSettlementEngine({
    networks: [{ network, rpcUrl: net.rpcUrl, batchSettler: net.batchSettler.address }],
    signers: keys,
    batching,
    // The official harness polls receipts every 50 ms; same here so 1-client latency compares like for like.
    pollingIntervalMs: 50,
  });
  const scheme = exactEvmFacilitator({
    networks: [{ network, rpcUrl: net.rpcUrl, assets: [asset] }],
    signer: privateKeyToAccount(keys[0]!),
    submit: (call) => engine.submit(call),
  });
  const running = await startFacilitator(base, { ...options, schemes: [scheme] });
  return {
    name: `tollgate (batching ${batching ? "on" : "off"})`,
    url: running.url,
    signers,
    wiring: "engine via startFacilitator({ schemes }) (config has no settlement fields yet)",
    async close() {
      await running.close();
      await engine.close({ timeoutMs: 10_000 });
    },
    idle: () => running.app.audit.drain(),
  };
}

export async function startTheirs(net: RunningLocalNetwork, key: Hex): Promise<Target> {
  const signers = await fundSigners(net.rpcUrl, [key]);
  const f = await startOfficialFacilitator({ rpcUrl: net.rpcUrl, chainId: net.chainId, privateKey: key });
  return { name: "official (@x402/core + @x402/evm)", url: f.url, signers, close: () => f.close() };
}

// ---------------------------------------------------------------- payloads

export interface Signing {
  requirements: PaymentRequirements;
  payers: PrivateKeyAccount[];
  next: number;
}

/** `count` request bodies with fresh authorizations, round-robin over the payers. */
export async function signBodies(s: Signing, count: number): Promise<string[]> {
  const bodies: string[] = [];
  for (let i = 0; i < count; i++) {
    const account = s.payers[s.next++ % s.payers.length]!;
    const payload = await signExactEvmAuthorization(account, s.requirements);
    bodies.push(
      JSON.stringify({
        x402Version: 2,
        paymentPayload: { x402Version: 2, resource: { url: "http://bench.local/paid" }, accepted: s.requirements, payload },
        paymentRequirements: s.requirements,
      }),
    );
  }
  return bodies;
}


// ---------------------------------------------------------------- phases

/** Where the machine's CPU went during a settle level, per settled payment (Linux /proc; 10 ms ticks). */
export interface CpuSplit {
  /** µs of CPU per settlement: anvil (all its threads); this process minus the load generator's thread (the facilitator under test, its store thread and GC); the load generator. */
  perSettlementUs: { anvil: number | null; facilitator: number | null; loadGenerator: number | null; total: number | null };
  /** Share of the machine's cores busy over the level (all three together; 1 = every core all the time). */
  machineBusy: number | null;
}

export interface SettlePhase extends LoadResult {
  cpu: CpuSplit;
  gas: GasSummary & { perSettlement: number | null };
  payeeDelta: string;
  expectedDelta: string;
  balanceCorrect: boolean;
  chainIdle: boolean;
}

export async function verifyLevels(target: Target, pool: string[], scale: number, side: Side): Promise<Record<number, LoadResult>> {
  await runLoad({ url: target.url, path: "/verify", bodies: pool, requests: 50, concurrency: 8, success: "isValid" }); // warm-up
  const out: Record<number, LoadResult> = {};
  for (const c of LEVELS) {
    const requests = Math.max(c, Math.round(VERIFY_REQUESTS[side][c] * scale));
    out[c] = await runLoad({ url: target.url, path: "/verify", bodies: pool, requests, concurrency: c, success: "isValid" });
    log(`  ${target.name} verify @${c}: ${out[c].successesPerSecond}/s (${out[c].successes}/${requests} ok, ${out[c].errors} errors)`);
  }
  return out;
}

export async function settleLevels(net: RunningLocalNetwork, target: Target, signing: Signing, scale: number, side: Side): Promise<Record<number, SettlePhase>> {
  // Each level starts with nothing left over from the one before: the verify phases leave our
  // audit rows (written behind the answers) to the store, and a settle level would queue behind them.
  await target.idle?.();
  // Warm-up outside the measured block ranges (JIT, nonce managers, token-domain caches).
  await runLoad({ url: target.url, path: "/settle", bodies: await signBodies(signing, 4), concurrency: 2, success: "success" });
  await waitIdle(net.rpcUrl, target.signers);
  const payee = net.accounts.payee.address;
  const out: Record<number, SettlePhase> = {};
  for (const c of LEVELS) {
    const requests = Math.max(c, Math.round(SETTLE_REQUESTS[side][c] * scale));
    const bodies = await signBodies(signing, requests);
    await target.idle?.();
    const fromBlock = await blockNumber(net.rpcUrl);
    const before = await tokenBalance(net.rpcUrl, net.usdc.address, payee);
    const anvilCpu0 = processCpuMs(net.anvil.pid);
    const cpu0 = process.cpuUsage();
    const load = await runLoad({ url: target.url, path: "/settle", bodies, concurrency: c, success: "success" });
    const cpu = cpuSplit(load, process.cpuUsage(cpu0), anvilCpu0, processCpuMs(net.anvil.pid));
    const chainIdle = await waitIdle(net.rpcUrl, target.signers);
    const toBlock = await blockNumber(net.rpcUrl);
    const after = await tokenBalance(net.rpcUrl, net.usdc.address, payee);
    const gas = await gasSentBy(net.rpcUrl, fromBlock, toBlock, target.signers);
    const expected = BigInt(load.successes) * BigInt(AMOUNT);
    out[c] = {
      ...load,
      cpu,
      gas: { ...gas, perSettlement: load.successes > 0 ? Math.round(gas.gasUsed / load.successes) : null },
      payeeDelta: (after - before).toString(),
      expectedDelta: expected.toString(),
      balanceCorrect: after - before === expected,
      chainIdle,
    };
    log(
      `  ${target.name} settle @${c}: ${load.successesPerSecond}/s (${load.successes}/${requests} ok, ${load.errors} errors), ` +
        `${gas.transactions} tx, ${out[c].gas.perSettlement ?? "-"} gas/settlement, balance ${out[c].balanceCorrect ? "ok" : `WRONG (+${after - before}, expected +${expected})`}, ` +
        `CPU µs/settlement: facilitator ${cpu.perSettlementUs.facilitator ?? "-"}, anvil ${cpu.perSettlementUs.anvil ?? "-"}, load generator ${cpu.perSettlementUs.loadGenerator ?? "-"} (machine ${cpu.machineBusy === null ? "-" : `${Math.round(cpu.machineBusy * 100)}%`} busy)`,
    );
  }
  return out;
}

function cpuSplit(load: LoadResult, usage: NodeJS.CpuUsage, anvilBefore: number | undefined, anvilAfter: number | undefined): CpuSplit {
  const n = load.successes;
  const per = (ms: number | undefined) => (ms === undefined || n === 0 ? null : Math.round((ms * 1000) / n));
  const processMs = (usage.user + usage.system) / 1000;
  const anvilMs = anvilBefore !== undefined && anvilAfter !== undefined ? anvilAfter - anvilBefore : undefined;
  const generatorMs = load.generatorCpuMs;
  const facilitatorMs = generatorMs === undefined ? undefined : processMs - generatorMs;
  const totalMs = anvilMs === undefined ? undefined : processMs + anvilMs;
  return {
    perSettlementUs: { anvil: per(anvilMs), facilitator: per(facilitatorMs), loadGenerator: per(generatorMs), total: per(totalMs) },
    machineBusy: totalMs === undefined || load.seconds === 0 ? null : Math.round((totalMs / 1000 / load.seconds / cpus().length) * 100) / 100,
  };
}

function log(line: string): void {
  console.error(line);
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const scale = option("scale", 1);
  const signerCount = Math.round(option("signers", 4));
  const payerCount = Math.round(option("payers", 64));
  const started = performance.now();
  const cancelGuard = stopAfter(HARD_LIMIT_MS);

  const net = await startLocalNetwork({ payers: payerCount });
  const cleanups: Array<() => Promise<void>> = [() => net.stop()];
  try {
    const requirements: PaymentRequirements = {
      scheme: "exact",
      network: net.network,
      amount: AMOUNT,
      asset: net.usdc.address,
      payTo: net.accounts.payee.address,
      // Long enough that no pre-signed payload expires during the run.
      maxTimeoutSeconds: 3600,
      extra: { name: net.usdc.name, version: net.usdc.version },
    };
    const signing: Signing = { requirements, payers: net.accounts.payers.map((p) => privateKeyToAccount(p.privateKey)), next: 0 };
    const signStart = performance.now();
    const verifyPool = await signBodies(signing, VERIFY_POOL);
    const signMs = (performance.now() - signStart) / VERIFY_POOL;
    log(`bench: setup ${((performance.now() - started) / 1000).toFixed(1)}s, signing ${signMs.toFixed(2)} ms/payload (untimed)`);

    // Fee payers: mnemonic index 1 (devnet's facilitator) for theirs; fresh indexes for ours, one set per run.
    const theirKey = net.accounts.facilitator.privateKey;
    const ourKeys = (offset: number) => Array.from({ length: signerCount }, (_, i) => devAccount(offset + i).privateKey);

    // Every facilitator starts from the same chain state: anvil grows slower as blocks pile up
    // (thousands per run), so whoever ran later would pay for the others' blocks.
    let snapshot = await rpc<string>(net.rpcUrl, "evm_snapshot");
    const freshChain = async () => {
      await rpc(net.rpcUrl, "evm_revert", [snapshot]);
      snapshot = await rpc<string>(net.rpcUrl, "evm_snapshot"); // a revert consumes its snapshot
    };

    log("bench: official facilitator…");
    const theirs = await startTheirs(net, theirKey);
    cleanups.push(() => theirs.close());
    const theirVerify = await verifyLevels(theirs, verifyPool, scale, "small");
    const theirSettle = await settleLevels(net, theirs, signing, scale, "small");
    await theirs.close();

    await freshChain();
    log(`bench: tollgate facilitator, batching on (${signerCount} fee payers)…`);
    const oursOn = await startOurs(net, ourKeys(1000), true);
    log(`  settlement engine wiring: ${oursOn.wiring}`);
    cleanups.push(() => oursOn.close());
    const ourVerify = await verifyLevels(oursOn, verifyPool, scale, "large");
    const ourSettleOn = await settleLevels(net, oursOn, signing, scale, "large");
    await oursOn.close();

    await freshChain();
    log(`bench: tollgate facilitator, batching off (${signerCount} fee payers)…`);
    const oursOff = await startOurs(net, ourKeys(2000), false);
    cleanups.push(() => oursOff.close());
    const ourSettleOff = await settleLevels(net, oursOff, signing, scale, "small");
    await oursOff.close();

    // ---------------------------------------------------------------- table
    const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 100) / 100 : null);
    type Row = { metric: string; ours: number | null; theirs: number | null; ratio: number | null; errors: string };
    const rows: Row[] = [];
    const errs = (a: LoadResult, b: LoadResult) => `${a.errors}/${b.errors}`;
    for (const c of LEVELS) {
      const a = ourVerify[c]!;
      const b = theirVerify[c]!;
      rows.push({ metric: `/verify per s, ${c} clients`, ours: a.successesPerSecond, theirs: b.successesPerSecond, ratio: ratio(a.successesPerSecond, b.successesPerSecond), errors: errs(a, b) });
    }
    for (const [label, ours] of [
      ["batching on", ourSettleOn],
      ["batching off", ourSettleOff],
    ] as const) {
      for (const c of LEVELS) {
        const a = ours[c]!;
        const b = theirSettle[c]!;
        rows.push({ metric: `/settle per s, ${c} clients, ${label}`, ours: a.successesPerSecond, theirs: b.successesPerSecond, ratio: ratio(a.successesPerSecond, b.successesPerSecond), errors: errs(a, b) });
      }
    }
    const totalGas = (phases: Record<number, SettlePhase>) => {
      const gas = LEVELS.reduce((s, c) => s + phases[c]!.gas.gasUsed, 0);
      const ok = LEVELS.reduce((s, c) => s + phases[c]!.successes, 0);
      return ok > 0 ? Math.round(gas / ok) : null;
    };
    for (const [label, ours] of [
      ["batching on", ourSettleOn],
      ["batching off", ourSettleOff],
    ] as const) {
      for (const c of LEVELS) {
        const a = ours[c]!.gas.perSettlement;
        const b = theirSettle[c]!.gas.perSettlement;
        rows.push({ metric: `gas per settlement, ${c} clients, ${label}`, ours: a, theirs: b, ratio: a !== null && b !== null ? ratio(a, b) : null, errors: "" });
      }
      const a = totalGas(ours);
      const b = totalGas(theirSettle);
      rows.push({ metric: `gas per settlement, all levels, ${label}`, ours: a, theirs: b, ratio: a !== null && b !== null ? ratio(a, b) : null, errors: "" });
    }

    const table = [
      ["metric", "tollgate", "official", "ratio", "errors ours/theirs"],
      ...rows.map((r) => [r.metric, String(r.ours ?? "-"), String(r.theirs ?? "-"), r.ratio === null ? "-" : `${r.ratio}x`, r.errors]),
    ];
    const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
    console.log("load generator: a worker thread of the node process that runs both facilitators (anvil is a separate process); 2-core machine");
    for (const r of table) console.log(r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  "));

    const verify256 = ratio(ourVerify[256]!.successesPerSecond, theirVerify[256]!.successesPerSecond);
    const settle256 = ratio(ourSettleOn[256]!.successesPerSecond, theirSettle[256]!.successesPerSecond);
    const targets = {
      verifyAt256: { ratio: verify256, target: 10, met: verify256 !== null && verify256 >= 10 },
      settleAt256Batching: { ratio: settle256, target: 20, met: settle256 !== null && settle256 >= 20 },
    };
    console.log(`targets: /verify @256 ${verify256}x (>= 10x: ${targets.verifyAt256.met ? "met" : "MISSED"}); /settle @256 batching ${settle256}x (>= 20x: ${targets.settleAt256Batching.met ? "met" : "MISSED"})`);

    const settlePhases = [theirSettle, ourSettleOn, ourSettleOff].flatMap((p) => LEVELS.map((c) => p[c]!));
    const balancesOk = settlePhases.every((p) => p.balanceCorrect);
    console.log(`payee balance checks: ${balancesOk ? "all correct" : "MISMATCH (see json)"}`);

    const totalSeconds = Math.round((performance.now() - started) / 100) / 10;
    const result = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, loadavg: loadavg().map((x) => Math.round(x * 100) / 100) },
      config: {
        chain: "anvil (auto-mine), one instance for all runs, reset to the same post-setup snapshot before each facilitator",
        amount: AMOUNT,
        scale,
        requests: "per level: see each result's `requests` (official and ours without batching get fewer)",
        verifyPool: VERIFY_POOL,
        payers: payerCount,
        ourFeePayers: signerCount,
        theirFeePayers: 1,
        ourWiring: oursOn.wiring,
        loadGenerator: "closed loop, keep-alive node:http, on a worker thread of the process running both facilitators (shares the 2 cores with them and anvil)",
        signingMsPerPayload: Math.round(signMs * 100) / 100,
      },
      targets,
      rows,
      official: { verify: theirVerify, settle: theirSettle },
      tollgate: { verify: ourVerify, settleBatching: ourSettleOn, settleNoBatching: ourSettleOff },
      balancesCorrect: balancesOk,
      seconds: totalSeconds,
    };
    const out = join(dirname(fileURLToPath(import.meta.url)), "results", "facilitator.json");
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
    console.log(`total ${totalSeconds}s; wrote ${out}`);
    if (!balancesOk) process.exitCode = 1;
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    cancelGuard();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exitCode = 1;
  });
}
