// Where a paid request's time goes, per facilitator: the same client (ours) and server (ours,
// hono) in front of our facilitator and of the official one, timing the server's /verify and
// /settle calls and counting the JSON-RPC calls each facilitator makes (through a counting
// proxy in front of anvil) and the ledger statements ours runs (and the time awaited on them).
//
//   npx tsx bench/profile.ts [requests=30]
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { startLocalNetwork } from "@tollgate/devnet";
import type { FacilitatorClient } from "@tollgate/core";
import { createLedger, pgliteSql, type Sql, type SqlExecutor } from "@tollgate/facilitator";
import { startTollgateFacilitator, startTollgateServer, tollgateFetch } from "../test/support/tollgate.ts";
import { startOfficialFacilitator, summarize } from "./official.ts";
import { paidRequest } from "./paid-request.ts";

/** JSON-RPC proxy that counts methods per tag (the tag is the URL path the caller was given). */
async function countingProxy(target: string) {
  const counts: Record<string, Record<string, number>> = {};
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const tag = (req.url ?? "/").slice(1) || "untagged";
    try {
      const parsed = JSON.parse(body.toString()) as { method: string } | { method: string }[];
      const byTag = (counts[tag] ??= {});
      for (const m of Array.isArray(parsed) ? parsed : [parsed]) byTag[m.method] = (byTag[m.method] ?? 0) + 1;
    } catch {
      // not JSON: forward anyway
    }
    const upstream = await fetch(target, { method: "POST", headers: { "content-type": "application/json" }, body });
    res.writeHead(upstream.status, { "content-type": "application/json" });
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, counts, reset: () => Object.keys(counts).forEach((k) => delete counts[k]), close: () => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections(); }) };
}

/** The in-memory PGlite store, counting statements and the time spent awaiting them. */
async function countingSql() {
  const base = await pgliteSql();
  const stats = { statements: 0, ms: 0, reset() { this.statements = 0; this.ms = 0; } };
  const counted = (x: SqlExecutor): SqlExecutor => ({
    async query<T>(text: string, params?: readonly unknown[]) {
      const t = performance.now();
      try {
        return await x.query<T>(text, params);
      } finally {
        stats.statements++;
        stats.ms += performance.now() - t;
      }
    },
  });
  const sql: Sql = { ...counted(base), dialect: base.dialect, exec: (t) => base.exec(t), transaction: (fn) => base.transaction((tx) => fn(counted(tx))), close: () => base.close() };
  return { sql, stats };
}

function timed(into: { verify: number[]; settle: number[] }) {
  return (client: FacilitatorClient): FacilitatorClient => ({
    supported: () => client.supported(),
    verify: async (p, r) => {
      const t = performance.now();
      try {
        return await client.verify(p, r);
      } finally {
        into.verify.push(performance.now() - t);
      }
    },
    settle: async (p, r) => {
      const t = performance.now();
      try {
        return await client.settle(p, r);
      } finally {
        into.settle.push(performance.now() - t);
      }
    },
  });
}

const requests = Number(process.argv[2] ?? 30);
const net = await startLocalNetwork({ payers: 1 });
const proxy = await countingProxy(net.rpcUrl);
const store = await countingSql();
const ledger = await createLedger({ sql: store.sql });
const ours = await startTollgateFacilitator({ ledger, rpcUrl: `${proxy.url}/ours`, network: net.network, usdc: net.usdc, privateKey: net.accounts.facilitator.privateKey });
const theirs = await startOfficialFacilitator({ rpcUrl: `${proxy.url}/theirs`, chainId: net.chainId, privateKey: net.accounts.deployer.privateKey });
const times = { ours: { verify: [] as number[], settle: [] as number[] }, theirs: { verify: [] as number[], settle: [] as number[] } };
const common = { network: net.network, usdc: net.usdc, payTo: net.accounts.payee.address, price: "10000", framework: "hono" as const };
const servers = {
  ours: await startTollgateServer({ ...common, facilitatorUrl: ours.url, wrapFacilitator: timed(times.ours) }),
  theirs: await startTollgateServer({ ...common, facilitatorUrl: theirs.url, wrapFacilitator: timed(times.theirs) }),
};
const pay = tollgateFetch({ privateKey: net.accounts.payers[0]!.privateKey });
try {
  for (const name of ["ours", "theirs"] as const) for (let i = 0; i < 3; i++) await paidRequest(pay, servers[name].paidUrl);
  for (const t of Object.values(times)) (t.verify.length = 0), (t.settle.length = 0);
  proxy.reset();
  store.stats.reset();
  const total = { ours: [] as number[], theirs: [] as number[] };
  for (let i = 0; i < requests; i++) for (const name of ["ours", "theirs"] as const) total[name].push(await paidRequest(pay, servers[name].paidUrl));
  for (const name of ["ours", "theirs"] as const) {
    const perRequest = Object.fromEntries(Object.entries(proxy.counts[name] ?? {}).map(([m, n]) => [m, Math.round((n / requests) * 100) / 100]));
    console.log(
      JSON.stringify({
        facilitator: name,
        totalMs: summarize(total[name]).medianMs,
        verifyMs: summarize(times[name].verify).medianMs,
        settleMs: summarize(times[name].settle).medianMs,
        rpcPerRequest: perRequest,
        ...(name === "ours" ? { ledgerStatementsPerRequest: store.stats.statements / requests, ledgerAwaitedMsPerRequest: Math.round((store.stats.ms / requests) * 100) / 100 } : {}),
      }),
    );
  }
} finally {
  await servers.ours.close();
  await servers.theirs.close();
  await ours.close();
  await theirs.close();
  await ledger.close();
  await store.sql.close();
  await proxy.close();
  await net.stop();
}
