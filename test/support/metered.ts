// What the metered-stream tests share (upto and channel): a producer of numbered tokens that logs
// what the server delivered when its stream stopped, a hono app served on loopback, a wait, and
// readers of the chain (token balances, the block number).
import { serve, type ServerType } from "@hono/node-server";
import { meteredResponse, type MeteredProducer, type PaymentEnv } from "@tollgate/hono";
import { Hono, type MiddlewareHandler } from "hono";
import { createPublicClient, erc20Abi, http, type Address, type PublicClient } from "viem";
import type { Closable } from "./listen.ts";

/** A client of the local chain, `balance(a)` of `token`, and the block number (uncached). */
export function chainReader(rpcUrl: string, token: Address): { rpc: PublicClient; balance: (a: Address) => Promise<bigint>; blockNumber: () => Promise<bigint> } {
  const rpc = createPublicClient({ transport: http(rpcUrl), pollingInterval: 50 }) as PublicClient;
  return {
    rpc,
    balance: (a) => rpc.readContract({ address: token, abi: erc20Abi, functionName: "balanceOf", args: [a] }),
    blockNumber: () => rpc.getBlockNumber({ cacheTime: 0 }),
  };
}

export type StreamEnd = { delivered: bigint; charged: bigint };

/** `tokens(limit, delayMs)`: sends token-0, token-1, … until the meter refuses; each stop is pushed to `ends`. */
export function tokenProducer(ends: StreamEnd[]): (limit: number, delayMs?: number) => MeteredProducer {
  return (limit, delayMs = 0) =>
    async (meter) => {
      try {
        for (let i = 0; i < limit; i++) {
          if (!(await meter.send(`token-${i}`))) break;
          if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
        }
      } finally {
        ends.push({ delivered: meter.delivered, charged: meter.charged });
      }
    };
}

/** Serves a hono app on 127.0.0.1 (ephemeral port); close() drops keep-alive sockets too. */
export async function serveHono(app: Pick<Hono, "fetch">): Promise<Closable> {
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
    s.once("error", reject);
  });
  const address = server.address();
  return {
    url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  };
}

/** Polls `read` until it gives a value (or throws after `ms`). */
export async function until<T>(read: () => T | undefined | Promise<T | undefined>, what: string, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The metered routes both suites price alike: to the cap, 40 ms a token, and zero units. */
export function meteredRoutes<R>(route: R): Record<"GET /generate" | "GET /slow" | "GET /nothing", R> {
  return { "GET /generate": route, "GET /slow": route, "GET /nothing": route };
}

/** A hono app behind `paywall` answering meteredRoutes with `tokens`, served on loopback. */
export async function serveTokenRoutes(paywall: MiddlewareHandler<PaymentEnv>, tokens: ReturnType<typeof tokenProducer>): Promise<Closable> {
  const app = new Hono<PaymentEnv>();
  app.use(paywall);
  app.get("/generate", (c) => meteredResponse(c, tokens(1_000)));
  app.get("/slow", (c) => meteredResponse(c, tokens(1_000, 40)));
  app.get("/nothing", (c) => meteredResponse(c, tokens(0)));
  return serveHono(app);
}
