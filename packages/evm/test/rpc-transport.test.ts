// rpcTransport (node:http keep-alive JSON-RPC for viem) against a real anvil, side by side with
// viem's http(): same results, same error classes/codes/data, real batching (counted by a small
// proxy in front of anvil), and clear errors for HTTP failures, closed ports and timeouts.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { startAnvil, devAccount, type AnvilInstance } from "@tollgate/devnet";
import { BaseError, createPublicClient, http, parseEther, type Hex, type PublicClient, type Transport } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rpcTransport, rpcTransportForUrl } from "../src/index.ts";

let anvil: AnvilInstance;
const servers: Server[] = [];
beforeAll(async () => {
  anvil = await startAnvil();
});
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  await anvil?.stop();
});

function client(transport: Transport): PublicClient {
  return createPublicClient({ transport }) as PublicClient;
}

async function listen(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<string> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handler(req, res, Buffer.concat(chunks).toString()));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A proxy in front of anvil that records every HTTP request's JSON-RPC body; can reverse batch answers. */
async function countingProxy(opts: { reverse?: boolean } = {}) {
  const seen: unknown[] = [];
  const target = new URL(anvil.rpcUrl);
  const url = await listen((_req, res, body) => {
    seen.push(JSON.parse(body));
    const up = request({ host: target.hostname, port: target.port, path: "/", method: "POST", headers: { "content-type": "application/json" } }, (ur) => {
      const chunks: Buffer[] = [];
      ur.on("data", (c: Buffer) => chunks.push(c));
      ur.on("end", () => {
        let text = Buffer.concat(chunks).toString();
        const json = JSON.parse(text) as unknown;
        if (opts.reverse && Array.isArray(json)) text = JSON.stringify(json.reverse());
        res.writeHead(ur.statusCode ?? 500, { "content-type": "application/json" }).end(text);
      });
    });
    up.end(body);
  });
  return { url, seen };
}

/** The error chain (class name, code, data, details) as callers see it. */
function chain(e: unknown) {
  const out: { name: string; code?: unknown; data?: unknown; details?: unknown; shortMessage?: unknown }[] = [];
  let cur = e as (Error & { code?: unknown; data?: unknown; details?: unknown; shortMessage?: unknown }) | undefined;
  for (let i = 0; cur && i < 8; i++, cur = cur.cause as typeof cur) {
    out.push({ name: cur.name, code: cur.code, data: cur.data, details: cur.details, shortMessage: cur.shortMessage });
  }
  return out;
}

async function caught(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

// Deployless eth_call code that reverts with 0xdeadbeef: PUSH4 deadbeef, MSTORE at 0, REVERT(28, 4).
const REVERTS_WITH_DATA: Hex = "0x63deadbeef6000526004601cfd";
// ... and one that returns 32 bytes holding 42.
const RETURNS_42: Hex = "0x602a60005260206000f3";

describe("rpcTransport on anvil, compared with viem http()", () => {
  it("answers chainId, getBalance, call, getBlock and a receipt like http()", async () => {
    const ours = client(rpcTransport(anvil.rpcUrl));
    const theirs = client(http(anvil.rpcUrl));
    const payer = privateKeyToAccount(devAccount(1).privateKey as Hex);

    expect(await ours.getChainId()).toBe(await theirs.getChainId());
    expect(await ours.getChainId()).toBe(31337);
    expect(await ours.getBalance({ address: payer.address })).toBe(await theirs.getBalance({ address: payer.address }));
    const call = await ours.call({ data: RETURNS_42 });
    expect(call).toEqual(await theirs.call({ data: RETURNS_42 }));
    expect(BigInt(call.data!)).toBe(42n);

    const nonce = await ours.getTransactionCount({ address: payer.address });
    const gasPrice = await ours.getGasPrice();
    const raw = await payer.signTransaction({ chainId: 31337, nonce, to: devAccount(2).address as Hex, value: parseEther("1"), gas: 21_000n, gasPrice: gasPrice * 2n });
    const hash = await ours.sendRawTransaction({ serializedTransaction: raw });
    const receipt = await ours.waitForTransactionReceipt({ hash, pollingInterval: 20 });
    expect(receipt.status).toBe("success");
    expect(receipt).toEqual(await theirs.getTransactionReceipt({ hash }));
    const block = await ours.getBlock({ blockNumber: receipt.blockNumber, includeTransactions: true });
    expect(block).toEqual(await theirs.getBlock({ blockNumber: receipt.blockNumber, includeTransactions: true }));
    expect(block.transactions.map((t) => t.hash)).toContain(hash);
  });

  it("surfaces a revert with data with the same error chain as http()", async () => {
    const ours = await caught(client(rpcTransport(anvil.rpcUrl, { retryCount: 0 })).call({ data: REVERTS_WITH_DATA }));
    const theirs = await caught(client(http(anvil.rpcUrl, { retryCount: 0 })).call({ data: REVERTS_WITH_DATA }));
    expect(chain(ours)).toEqual(chain(theirs));
    expect(chain(ours).some((e) => e.name === "RpcRequestError" && e.data === "0xdeadbeef")).toBe(true);
    // Same URL, same request: the whole message matches too.
    expect(ours.message).toBe(theirs.message);
  });

  it("surfaces nonce too low with the same error chain as http()", async () => {
    const ours = client(rpcTransport(anvil.rpcUrl, { retryCount: 0 }));
    const theirs = client(http(anvil.rpcUrl, { retryCount: 0 }));
    const payer = privateKeyToAccount(devAccount(3).privateKey as Hex);
    const gasPrice = (await ours.getGasPrice()) * 2n;
    const tx = (nonce: number) => payer.signTransaction({ chainId: 31337, nonce, to: payer.address, value: 1n, gas: 21_000n, gasPrice });
    const nonce = await ours.getTransactionCount({ address: payer.address });
    await ours.waitForTransactionReceipt({ hash: await ours.sendRawTransaction({ serializedTransaction: await tx(nonce) }), pollingInterval: 20 });
    const stale = await tx(nonce); // same nonce again, different signature is not needed: it is mined
    const a = await caught(ours.sendRawTransaction({ serializedTransaction: stale }));
    const b = await caught(theirs.sendRawTransaction({ serializedTransaction: stale }));
    expect(chain(a)).toEqual(chain(b));
    expect(a.constructor.name).toBe(b.constructor.name);
    expect(a.message).toBe(b.message);
    expect((a as BaseError).walk((e) => /nonce/i.test(String((e as { details?: string }).details)))).toBeTruthy();
    const rpc = (a as BaseError).walk((e) => e instanceof Error && e.name === "RpcRequestError") as { code?: number } | null;
    expect(typeof rpc?.code).toBe("number");
  });

  it("batches calls made together into one HTTP request and matches answers by id", async () => {
    // The proxy reverses batch answers: positional matching would hand out the wrong balances.
    const proxy = await countingProxy({ reverse: true });
    const ours = client(rpcTransport(proxy.url, { batch: { batchSize: 200 } }));
    const direct = client(http(anvil.rpcUrl));
    const addresses = Array.from({ length: 10 }, (_, i) => devAccount(i).address as Hex);
    const expected = await Promise.all(addresses.map((address) => direct.getBalance({ address })));
    const balances = await Promise.all(addresses.map((address) => ours.getBalance({ address })));
    expect(balances).toEqual(expected);
    expect(proxy.seen).toHaveLength(1);
    expect(Array.isArray(proxy.seen[0]) && proxy.seen[0].length).toBe(10);
    expect(new Set(expected).size).toBeGreaterThan(1); // the reversal is visible
  });

  it("splits by batchSize and gives each caller its own result or error", async () => {
    const proxy = await countingProxy();
    const ours = client(rpcTransport(proxy.url, { batch: { batchSize: 4 }, retryCount: 0 }));
    const calls = Array.from({ length: 10 }, (_, i) => (i === 5 ? ours.call({ data: REVERTS_WITH_DATA }) : ours.call({ data: RETURNS_42 })));
    const settled = await Promise.allSettled(calls);
    expect(proxy.seen.map((b) => (Array.isArray(b) ? b.length : 1))).toEqual([4, 4, 2]);
    settled.forEach((s, i) => {
      if (i === 5) {
        expect(s.status).toBe("rejected");
        expect(chain((s as PromiseRejectedResult).reason).some((e) => e.data === "0xdeadbeef")).toBe(true);
      } else {
        expect(s.status).toBe("fulfilled");
        expect(BigInt((s as PromiseFulfilledResult<{ data?: Hex }>).value.data!)).toBe(42n);
      }
    });
  });

  it("without batch, each call is its own request", async () => {
    const proxy = await countingProxy();
    const ours = client(rpcTransport(proxy.url));
    await Promise.all([ours.getChainId(), ours.getBlockNumber(), ours.getGasPrice()]);
    expect(proxy.seen).toHaveLength(3);
    expect(proxy.seen.every((b) => !Array.isArray(b))).toBe(true);
  });

  it("reaches anvil over ws:// through rpcTransportForUrl", async () => {
    const c = createPublicClient({ transport: rpcTransportForUrl(anvil.rpcUrl.replace(/^http/, "ws")) });
    try {
      expect(await c.getChainId()).toBe(31337);
    } finally {
      const socket = await (c.transport as { getRpcClient?: () => Promise<{ close(): void }> }).getRpcClient?.();
      socket?.close();
    }
  });
});

describe("rpcTransport failures", () => {
  it("a non-JSON HTTP 500 is an HttpRequestError with status and URL, without credentials; retries per retryCount", async () => {
    let hits = 0;
    let auth: string | undefined;
    const base = await listen((req, res) => {
      hits++;
      auth = req.headers.authorization;
      res.writeHead(500, { "content-type": "text/html" }).end("<h1>upstream exploded</h1>");
    });
    const url = base.replace("http://", "http://alice:s3cret@");
    const e = (await caught(client(rpcTransport(url, { retryCount: 2, retryDelay: 1 })).getChainId())) as BaseError;
    expect(hits).toBe(3); // 500 is retried by viem's policy, as with http()
    expect(auth).toBe(`Basic ${Buffer.from("alice:s3cret").toString("base64")}`);
    const http = e.walk((x) => x instanceof Error && x.name === "HttpRequestError") as { status?: number; url?: string } | null;
    expect(http?.status).toBe(500);
    expect(http?.url).toBe(`${base}/`);
    expect(e.message).toContain("Status: 500");
    expect(e.message).toContain("upstream exploded");
    expect(e.message).toContain(base);
    expect(e.message).not.toContain("s3cret");
    expect(e.message).not.toContain("alice");
  });

  it("a JSON-RPC error with a non-2xx status keeps its RPC error class and the status", async () => {
    const url = await listen((_req, res, body) => {
      const { id } = JSON.parse(body) as { id: number };
      res.writeHead(429, { "content-type": "application/json", "retry-after": "0" }).end(JSON.stringify({ jsonrpc: "2.0", id, error: { code: -32005, message: "slow down" } }));
    });
    const e = (await caught(client(rpcTransport(url, { retryCount: 0 })).getChainId())) as BaseError;
    expect(e.name).toBe("LimitExceededRpcError");
    const rpc = e.walk((x) => x instanceof Error && x.name === "RpcRequestError") as { status?: number; code?: number } | null;
    expect(rpc?.status).toBe(429);
    expect(rpc?.code).toBe(-32005);
  });

  it("a 200 that is not JSON is a clear HttpRequestError", async () => {
    const url = await listen((_req, res) => res.writeHead(200, { "content-type": "text/plain" }).end("hello"));
    const e = (await caught(client(rpcTransport(url, { retryCount: 0 })).getChainId())) as BaseError;
    expect(e.walk((x) => x instanceof Error && x.name === "HttpRequestError")).toBeTruthy();
    expect(e.message).toContain("not JSON");
  });

  it("a closed port is an HttpRequestError naming the URL", async () => {
    const url = await listen(() => {});
    const server = servers.pop()!;
    await new Promise((r) => server.close(r));
    const e = (await caught(client(rpcTransport(url, { retryCount: 0 })).getChainId())) as BaseError;
    expect(e.walk((x) => x instanceof Error && x.name === "HttpRequestError")).toBeTruthy();
    expect(e.message).toContain(url);
    expect(e.message).toMatch(/ECONNREFUSED/);
  });

  it("times out per request", async () => {
    const url = await listen(() => {}); // never answers
    const t0 = performance.now();
    const e = (await caught(client(rpcTransport(url, { retryCount: 0, timeout: 150 })).getChainId())) as BaseError;
    const ms = performance.now() - t0;
    expect(e.walk((x) => x instanceof Error && x.name === "TimeoutError")).toBeTruthy();
    expect(ms).toBeGreaterThanOrEqual(140);
    expect(ms).toBeLessThan(2_000);
  });

  it("resends once when the node dropped a kept-alive socket (reusedSocket ECONNRESET)", async () => {
    // Each socket serves one answer; a second request on it is cut off unanswered, as when the
    // node closes an idle keep-alive connection while our request is on its way.
    const served = new WeakSet<object>();
    let cut = 0;
    const url = await listen((req, res, body) => {
      if (served.has(req.socket)) {
        cut++;
        req.socket.destroy();
        return;
      }
      served.add(req.socket);
      const { id } = JSON.parse(body) as { id: number };
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id, result: "0x7a69" }));
    });
    const c = client(rpcTransport(url, { retryCount: 0 }));
    expect(await c.getChainId()).toBe(31337);
    expect(await c.request({ method: "eth_chainId" })).toBe("0x7a69");
    expect(cut).toBe(1);
  });

  it("an abort signal cancels the request with an AbortError", async () => {
    const url = await listen(() => {}); // never answers
    const c = client(rpcTransport(url, { retryCount: 0, timeout: 5_000 }));
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const t0 = performance.now();
    const e = await caught(c.request({ method: "eth_chainId" }, { signal: controller.signal }));
    expect(e.name).toBe("AbortError");
    expect(performance.now() - t0).toBeLessThan(2_000);
  });

  it("a batch of one that the node refuses as a whole: every caller gets the error", async () => {
    const url = await listen((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify([{ jsonrpc: "2.0", id: null, error: { code: -32600, message: "batch too big" } }])));
    const c = client(rpcTransport(url, { batch: true, retryCount: 0 }));
    const r = await Promise.allSettled([c.getChainId(), c.getBlockNumber({ cacheTime: 0 })]);
    for (const s of r) {
      expect(s.status).toBe("rejected");
      expect((s as PromiseRejectedResult).reason.name).toBe("InvalidRequestRpcError");
    }
  });

  it("refuses other URL schemes with a TypeError naming the scheme, not the credentials", () => {
    expect(() => rpcTransport("ftp://bob:hunter2@example.com")).toThrow(TypeError);
    expect(() => rpcTransport("ftp://bob:hunter2@example.com")).toThrow(/"ftp"/);
    expect(() => rpcTransport("wss://bob:hunter2@example.com")).toThrow(/"wss"/);
    try {
      rpcTransport("ftp://bob:hunter2@example.com");
    } catch (e) {
      expect(String((e as Error).message)).not.toContain("hunter2");
    }
    expect(() => rpcTransport("not a url")).toThrow(TypeError);
  });
});
