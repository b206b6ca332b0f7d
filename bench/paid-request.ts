// Measurement primitives for paid requests, stack-agnostic: a "stack" is only a paying fetch
// and a URL, so ours and the official one are timed by the same code.
import { readPaymentResponse, summarize, type LatencySummary } from "./official.ts";

/** One paid request (402 round trip + signed retry + verify + settle); throws unless 200 with a successful receipt. */
export async function paidRequest(pay: typeof fetch, url: string): Promise<number> {
  const start = performance.now();
  const res = await pay(url);
  await res.arrayBuffer();
  const elapsed = performance.now() - start;
  const receipt = readPaymentResponse(res);
  if (res.status !== 200 || !receipt?.success) {
    throw new Error(`paid request failed: HTTP ${res.status}, receipt ${JSON.stringify(receipt)}`);
  }
  return elapsed;
}

export interface LatencyTarget {
  name: string;
  pay: typeof fetch;
  url: string;
}

/**
 * Sequential latency at one client. Targets take turns in blocks of `block` requests, so a
 * change in background load over the run hits each target alike instead of whichever ran last.
 */
export async function measureLatency(targets: readonly LatencyTarget[], opts: { requests: number; warmup: number; block: number }): Promise<Record<string, LatencySummary>> {
  for (const t of targets) for (let i = 0; i < opts.warmup; i++) await paidRequest(t.pay, t.url);
  const samples: Record<string, number[]> = Object.fromEntries(targets.map((t) => [t.name, []]));
  for (let done = 0; done < opts.requests; done += opts.block) {
    const n = Math.min(opts.block, opts.requests - done);
    for (const t of targets) for (let i = 0; i < n; i++) samples[t.name]!.push(await paidRequest(t.pay, t.url));
  }
  return Object.fromEntries(targets.map((t) => [t.name, summarize(samples[t.name]!)]));
}

export interface ThroughputResult {
  clients: number;
  requests: number;
  failures: number;
  seconds: number;
  requestsPerSecond: number;
  /** Latency of each request under this load. */
  latency: LatencySummary;
  firstFailure?: string;
  /** Each successful request's latency (ms), to combine rounds. */
  samples: number[];
}

/**
 * `requests` paid requests spread over `clients.length` concurrent clients (each its own payer,
 * so authorizations and balances never collide), each client sending its share back to back.
 */
export async function measureThroughput(clients: readonly (typeof fetch)[], url: string, requests: number): Promise<ThroughputResult> {
  const perClient = Math.ceil(requests / clients.length);
  const samples: number[] = [];
  let failures = 0;
  let firstFailure: string | undefined;
  const start = performance.now();
  await Promise.all(
    clients.map(async (pay, c) => {
      const mine = Math.max(0, Math.min(perClient, requests - c * perClient));
      for (let i = 0; i < mine; i++) {
        try {
          samples.push(await paidRequest(pay, url));
        } catch (e) {
          failures++;
          firstFailure ??= e instanceof Error ? e.message : String(e);
        }
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const ok = samples.length;
  return {
    clients: clients.length,
    requests,
    failures,
    seconds: Math.round(seconds * 100) / 100,
    requestsPerSecond: Math.round((ok / seconds) * 10) / 10,
    latency: summarize(ok ? samples : [0]),
    ...(firstFailure ? { firstFailure } : {}),
    samples,
  };
}
