import { startLocalNetwork } from "@tollgate/devnet";
import { startTollgateFacilitator, startTollgateServer, tollgateFetch } from "../test/support/tollgate.ts";
import { officialFetch, startOfficialStack } from "./official.ts";
import { measureThroughput } from "./paid-request.ts";
const which = process.argv[2];
const net = await startLocalNetwork({ payers: 32 });
let url: string, clients: (typeof fetch)[], close: () => Promise<void>;
if (which === "ours") {
  const f = await startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, privateKey: net.accounts.facilitator.privateKey });
  const s = await startTollgateServer({ facilitatorUrl: f.url, network: net.network, usdc: net.usdc, payTo: net.accounts.payee.address, price: "10000", framework: "hono" });
  url = s.paidUrl; clients = net.accounts.payers.map((p) => tollgateFetch({ privateKey: p.privateKey })); close = async () => { await s.close(); await f.close(); };
} else {
  const st = await startOfficialStack({ rpcUrl: net.rpcUrl, chainId: net.chainId, network: net.network, facilitatorKey: net.accounts.deployer.privateKey, payTo: net.accounts.payee.address, asset: net.usdc, amount: "10000" });
  url = st.server.paidUrl; clients = net.accounts.payers.map((p) => officialFetch({ privateKey: p.privateKey })); close = st.close;
}
await measureThroughput(clients, url, 64);
const cpu0 = process.cpuUsage();
const r = await measureThroughput(clients, url, 320);
const cpu = process.cpuUsage(cpu0);
const { samples: _s, ...rest } = r;
console.log(which, JSON.stringify(rest), "node cpu ms/request:", ((cpu.user + cpu.system) / 1000 / 320).toFixed(2));
await close(); await net.stop();
