// Official x402 stack for benchmarks: the same starters as the interop tests (re-exported, not
// duplicated) plus a whole-stack starter and a sequential latency probe.
//
// Run directly for the baseline number of one paid request through their stack on anvil:
//   npx tsx bench/official.ts [requests=20]
import { pathToFileURL } from "node:url";
import type { Address, Hex } from "viem";
import { startLocalNetwork } from "@tollgate/devnet";
import {
  officialFetch,
  readPaymentResponse,
  startOfficialFacilitator,
  startOfficialServer,
  type OfficialFacilitator,
  type OfficialServer,
} from "../test/support/official.ts";

export * from "../test/support/official.ts";

export interface OfficialStackOptions {
  rpcUrl: string;
  chainId: number;
  network: string;
  facilitatorKey: Hex;
  payTo: Address;
  asset: { address: Address; name: string; version: string };
  amount: string;
  path?: string;
}

export interface OfficialStack {
  facilitator: OfficialFacilitator;
  server: OfficialServer;
  close(): Promise<void>;
}

/** Their facilitator and their express server, wired together (facilitator first: the server reads /supported). */
export async function startOfficialStack(opts: OfficialStackOptions): Promise<OfficialStack> {
  const facilitator = await startOfficialFacilitator({
    rpcUrl: opts.rpcUrl,
    chainId: opts.chainId,
    privateKey: opts.facilitatorKey,
  });
  try {
    const server = await startOfficialServer({
      facilitatorUrl: facilitator.url,
      network: opts.network,
      payTo: opts.payTo,
      asset: opts.asset,
      amount: opts.amount,
      ...(opts.path !== undefined && { path: opts.path }),
    });
    return {
      facilitator,
      server,
      async close() {
        await server.close();
        await facilitator.close();
      },
    };
  } catch (error) {
    await facilitator.close();
    throw error;
  }
}

export interface LatencySummary {
  count: number;
  medianMs: number;
  p95Ms: number;
  p99Ms: number;
  minMs: number;
  maxMs: number;
  meanMs: number;
}

export function summarize(samplesMs: readonly number[]): LatencySummary {
  if (samplesMs.length === 0) throw new Error("summarize: no samples");
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  const mid = sorted.length / 2;
  const median = sorted.length % 2 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    count: sorted.length,
    medianMs: round(median),
    p95Ms: round(at(0.95)),
    p99Ms: round(at(0.99)),
    minMs: round(sorted[0]!),
    maxMs: round(sorted[sorted.length - 1]!),
    meanMs: round(sorted.reduce((s, x) => s + x, 0) / sorted.length),
  };
}

/**
 * Times `requests` sequential paid requests (402 round trip + signed retry + verify + settle with
 * receipt wait). Each must come back 200 with a successful PAYMENT-RESPONSE, or this throws.
 */
export async function timeSequentialPaidRequests(opts: {
  url: string;
  fetch: typeof fetch;
  requests: number;
  warmup?: number;
}): Promise<LatencySummary> {
  const once = async (): Promise<number> => {
    const start = performance.now();
    const res = await opts.fetch(opts.url);
    await res.arrayBuffer();
    const elapsed = performance.now() - start;
    const settle = readPaymentResponse(res);
    if (res.status !== 200 || !settle?.success) {
      throw new Error(`paid request failed: HTTP ${res.status}, settle ${JSON.stringify(settle)}`);
    }
    return elapsed;
  };
  for (let i = 0; i < (opts.warmup ?? 1); i++) await once();
  const samples: number[] = [];
  for (let i = 0; i < opts.requests; i++) samples.push(await once());
  return summarize(samples);
}

async function main(): Promise<void> {
  const requests = Number(process.argv[2] ?? 20);
  if (!Number.isInteger(requests) || requests < 1) throw new Error(`requests must be a positive integer, got ${process.argv[2]}`);
  const net = await startLocalNetwork();
  let stack: OfficialStack | undefined;
  try {
    stack = await startOfficialStack({
      rpcUrl: net.rpcUrl,
      chainId: net.chainId,
      network: net.network,
      facilitatorKey: net.accounts.facilitator.privateKey,
      payTo: net.accounts.payee.address,
      asset: { address: net.usdc.address, name: net.usdc.name, version: net.usdc.version },
      amount: "10000",
    });
    const payer = net.accounts.payers[0];
    if (!payer) throw new Error("devnet has no funded payer");
    const summary = await timeSequentialPaidRequests({
      url: stack.server.paidUrl,
      fetch: officialFetch({ privateKey: payer.privateKey }),
      requests,
    });
    console.log(JSON.stringify({ stack: "official client -> official server -> official facilitator (anvil)", ...summary }));
  } finally {
    await stack?.close();
    await net.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
