// Ceiling of this machine for bench/facilitator.ts: a hono/node-server endpoint that parses the JSON
// body and answers a fixed 200, driven by the same load generator in the same process.
//   npx tsx bench/noop-ceiling.ts
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { runLoad } from "./load.ts";
const app = new Hono();
app.post("/settle", async (c) => { JSON.parse(await c.req.text()); return c.json({ success: true, transaction: "0x" + "ab".repeat(32), network: "eip155:31337", payer: "0x" + "11".repeat(20) }); });
async function main() {
const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
await new Promise((r) => server.once("listening", r));
const port = (server.address() as { port: number }).port;
const body = JSON.stringify({ x402Version: 2, paymentPayload: { payload: { signature: "0x" + "ab".repeat(65), authorization: { from: "0x" + "11".repeat(20), nonce: "0x" + "22".repeat(32) } } }, paymentRequirements: { scheme: "exact", network: "eip155:31337" } });
for (const c of [1, 32, 256]) {
  const r = await runLoad({ url: `http://127.0.0.1:${port}`, path: "/settle", bodies: [body], requests: c === 1 ? 3000 : 20000, concurrency: c, success: null });
  console.log(`no-op @${c}: ${r.successesPerSecond}/s p50 ${r.latencyMs.p50} ms`);
}
server.close();
}
void main();
