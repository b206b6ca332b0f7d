// CPU per JSON-RPC call against a local anvil: viem's http() (undici fetch), viem custom() over
// node:http, our rpcTransport (packages/evm/src/rpc), a bare node:http call; single calls at
// concurrency 8 and 64-call batches.
//
//   REPS=3 npx tsx bench/rpc-transport.ts
import { createPublicClient, http, custom } from "viem";
import { Agent, request } from "node:http";
import { startAnvil } from "@tollgate/devnet";
import { rpcTransport } from "@tollgate/evm";
const anvil = await startAnvil();
const url = anvil.rpcUrl;
const agent = new Agent({ keepAlive: true, maxSockets: 16 });
const u = new URL(url);
let id = 0;
function raw(method: string, params: unknown[]): Promise<unknown> {
  const body = JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params });
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: u.hostname, port: u.port, path: "/", method: "POST", headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => { const j = JSON.parse(Buffer.concat(chunks).toString()); j.error ? reject(j.error) : resolve(j.result); });
    });
    req.on("error", reject);
    req.end(body);
  });
}
const viemC = createPublicClient({ transport: http(url) });
const fastC = createPublicClient({ transport: custom({ request: ({ method, params }) => raw(method, params as unknown[]) }) });
async function time(label: string, f: () => Promise<unknown>, n = 2000, conc = 8) {
  for (let i = 0; i < 200; i++) await f();
  const c0 = process.cpuUsage(); const t0 = performance.now();
  let k = 0;
  await Promise.all(Array.from({ length: conc }, async () => { while (k++ < n) await f(); }));
  const ms = performance.now() - t0; const c = process.cpuUsage(c0);
  console.log(label.padEnd(30), (ms / n * 1000).toFixed(0).padStart(6), "µs wall", ((c.user + c.system) / n).toFixed(0).padStart(6), "µs cpu");
}
const oursC = createPublicClient({ transport: rpcTransport(url) });
const viemB = createPublicClient({ transport: http(url, { batch: true }) });
const oursB = createPublicClient({ transport: rpcTransport(url, { batch: true }) });
const addr = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
/** 64 getBalance calls in one tick (one batch), timed per call. */
const burst = (c: typeof viemB) => () => Promise.all(Array.from({ length: 64 }, () => c.request({ method: "eth_getBalance", params: [addr, "latest"] } as any, { dedupe: false })));
const reps = Number(process.env.REPS ?? 3);
for (let r = 0; r < reps; r++) {
  console.log(`-- run ${r + 1}/${reps} (2-core machine: noisy)`);
  await time("viem http", () => viemC.request({ method: "eth_chainId" } as any, { dedupe: false }));
  await time("viem custom(node:http)", () => fastC.request({ method: "eth_chainId" } as any, { dedupe: false }));
  await time("rpcTransport", () => oursC.request({ method: "eth_chainId" } as any, { dedupe: false }));
  await time("raw node:http", () => raw("eth_chainId", []));
  // per-call figures: n bursts of 64 calls, divided by 64
  await timeBurst("viem http batch (64/tick)", burst(viemB));
  await timeBurst("rpcTransport batch (64/tick)", burst(oursB));
}
async function timeBurst(label: string, f: () => Promise<unknown>, n = 100) {
  for (let i = 0; i < 20; i++) await f();
  const c0 = process.cpuUsage(); const t0 = performance.now();
  for (let i = 0; i < n; i++) await f();
  const ms = performance.now() - t0; const c = process.cpuUsage(c0);
  console.log(label.padEnd(30), (ms / n / 64 * 1000).toFixed(1).padStart(6), "µs wall/call", ((c.user + c.system) / n / 64).toFixed(1).padStart(6), "µs cpu/call");
}
await anvil.stop();
