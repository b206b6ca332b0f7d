// What using several facilitators costs a resource server: sequential paid requests, same payer,
// same chain (anvil, instant mining), two of our facilitators, against three servers taking turns
// in blocks so background load hits them alike:
//   single   our hono server → one facilitator (a URL)
//   pool     our hono server → facilitatorPool([A, B]) (routing, breaker, affinity)
//   official the official @x402/express server → its list [A, B] (first that lists the kind)
// Reports each p50 and the pool's ratios, and the process CPU per payment over each server's runs.
//
//   npx tsx bench/pool.ts [--requests=60] [--block=10]
import { startLocalNetwork } from "@tollgate/devnet";
import { getPaymentReceipt } from "@tollgate/fetch";
import { facilitatorPool } from "@tollgate/server";
import { startOfficialServer } from "../test/support/official.ts";
import { startTollgateFacilitator, startTollgateServer, tollgateFetch } from "../test/support/tollgate.ts";
import { summarize } from "./official.ts";

const arg = (name: string, fallback: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback);
const REQUESTS = arg("requests", 60);
const BLOCK = arg("block", 10);

const net = await startLocalNetwork({ payers: 1 });
const [a, b] = await Promise.all([
  startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, privateKey: net.accounts.facilitator.privateKey }),
  startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, privateKey: net.accounts.deployer.privateKey }),
]);
const common = { network: net.network, usdc: net.usdc, payTo: net.accounts.payee.address, price: "10000", framework: "hono" as const, path: "/paid" };
const servers = {
  single: await startTollgateServer({ ...common, facilitatorUrl: a.url }),
  pool: await startTollgateServer({ ...common, facilitatorUrl: a.url, wrapFacilitator: () => poolOf() }),
  official: await startOfficialServer({ facilitatorUrl: a.url, moreFacilitatorUrls: [b.url], network: net.network, payTo: net.accounts.payee.address, asset: { address: net.usdc.address, name: net.usdc.name, version: net.usdc.version }, amount: "10000" }),
};

function poolOf() {
  return facilitatorPool({ facilitators: [a.url, b.url] });
}

const pay = tollgateFetch({ privateKey: net.accounts.payers[0]!.privateKey });
const samples: Record<keyof typeof servers, number[]> = { single: [], pool: [], official: [] };
const cpu: Record<keyof typeof servers, number> = { single: 0, pool: 0, official: 0 };

async function once(name: keyof typeof servers): Promise<void> {
  const startedCpu = process.cpuUsage();
  const started = performance.now();
  const res = await pay(servers[name].paidUrl);
  samples[name].push(performance.now() - started);
  const used = process.cpuUsage(startedCpu);
  cpu[name] += (used.user + used.system) / 1000;
  if (res.status !== 200 || !getPaymentReceipt(res)?.receipt?.success) throw new Error(`${name}: HTTP ${res.status}`);
}

for (const name of Object.keys(servers) as Array<keyof typeof servers>) for (let i = 0; i < 3; i++) await once(name); // warm up
for (const k of Object.keys(samples) as Array<keyof typeof servers>) (samples[k] = []), (cpu[k] = 0);
for (let done = 0; done < REQUESTS; done += BLOCK) for (const name of Object.keys(servers) as Array<keyof typeof servers>) for (let i = 0; i < BLOCK; i++) await once(name);

const p50 = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v).medianMs])) as Record<keyof typeof servers, number>;
console.log(JSON.stringify({
  requests: REQUESTS,
  p50Ms: p50,
  p95Ms: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v).p95Ms])),
  poolOverSingle: Math.round((p50.pool / p50.single) * 100) / 100,
  poolOverOfficial: Math.round((p50.pool / p50.official) * 100) / 100,
  cpuMsPerPayment: Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, Math.round((v / REQUESTS) * 100) / 100])),
  note: "cpu is this whole process (client, servers, both facilitators) per payment on that server",
}, null, 2));

for (const s of Object.values(servers)) await s.close();
await a.close();
await b.close();
await net.stop();
process.exit(0);
