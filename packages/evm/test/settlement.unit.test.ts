// Receipt polling period picked from the chain, against stub nodes (no chain needed).
import { describe, expect, it } from "vitest";
import { createPublicClient, custom, toHex, type PublicClient } from "viem";
import { detectPollingInterval } from "../src/settlement/index.ts";

/** A node with `chainId`, a client version, and blocks `blockSeconds` apart up to block `head`. */
function stubNode(opts: { chainId: number; version?: string; blockSeconds: number; head: number }) {
  const methods: string[] = [];
  const block = (n: number) => ({
    number: toHex(n),
    timestamp: toHex(1_700_000_000 + n * opts.blockSeconds),
    hash: toHex(n, { size: 32 }),
    parentHash: toHex(Math.max(0, n - 1), { size: 32 }),
    transactions: [],
    logsBloom: toHex(0, { size: 256 }),
    gasLimit: "0x1c9c380",
    gasUsed: "0x0",
    baseFeePerGas: "0x1",
    difficulty: "0x0",
    extraData: "0x",
    miner: "0x0000000000000000000000000000000000000000",
    size: "0x0",
    uncles: [],
  });
  const client = createPublicClient({
    transport: custom({
      async request({ method, params }: { method: string; params?: unknown[] }) {
        methods.push(method);
        if (method === "eth_chainId") return toHex(opts.chainId);
        if (method === "web3_clientVersion") {
          if (opts.version === undefined) throw new Error("method not found");
          return opts.version;
        }
        if (method === "eth_getBlockByNumber") {
          const tag = params?.[0];
          return block(tag === "latest" ? opts.head : Number(tag));
        }
        throw new Error(`unexpected ${method}`);
      },
    }),
  }) as PublicClient;
  return { client, methods };
}

describe("detectPollingInterval", () => {
  it("polls fast on local dev chains, by chain id or client version", async () => {
    expect(await detectPollingInterval(stubNode({ chainId: 31337, blockSeconds: 12, head: 100 }).client)).toBe(10);
    expect(await detectPollingInterval(stubNode({ chainId: 1337, blockSeconds: 12, head: 100 }).client)).toBe(10);
    const anvilFork = stubNode({ chainId: 8453, version: "anvil/v1.3.0", blockSeconds: 2, head: 100 });
    expect(await detectPollingInterval(anvilFork.client)).toBe(10);
    expect(anvilFork.methods).not.toContain("eth_getBlockByNumber");
  });

  it("elsewhere a quarter of the observed block time, within [50 ms, 1 s]", async () => {
    expect(await detectPollingInterval(stubNode({ chainId: 8453, version: "Geth/v1.14", blockSeconds: 2, head: 1000 }).client)).toBe(500);
    expect(await detectPollingInterval(stubNode({ chainId: 1, version: "Geth/v1.14", blockSeconds: 12, head: 1000 }).client)).toBe(1000);
    // Sub-second blocks (timestamps in whole seconds: 20 blocks in 0 s) hit the floor.
    expect(await detectPollingInterval(stubNode({ chainId: 42161, blockSeconds: 0, head: 1000 }).client)).toBe(50);
    // A node without web3_clientVersion is judged by its blocks; a chain at genesis gets a middle value.
    expect(await detectPollingInterval(stubNode({ chainId: 10, blockSeconds: 2, head: 5 }).client)).toBe(500);
    expect(await detectPollingInterval(stubNode({ chainId: 10, blockSeconds: 2, head: 0 }).client)).toBe(100);
  });
});
