import { startLocalNetwork } from "@tollgate/devnet";
import { startTollgateFacilitator, startTollgateServer, tollgateFetch } from "../test/support/tollgate.ts";
import { officialFetch, startOfficialStack } from "./official.ts";
import { measureThroughput } from "./paid-request.ts";
const which = process.argv[2];
const net = await startLocalNetwork({ payers: 32 });
let url: string, clients: (typeof fetch)[], close: () => Promise<void>;
if (which === "ours-concurrent") {
  const { startFacilitator } = await import("@tollgate/facilitator");
  const { exactEvmFacilitator } = await import("@tollgate/evm");
  const { createWalletClient, http, publicActions } = await import("viem");
  const { privateKeyToAccount, nonceManager } = await import("viem/accounts");
  const account = privateKeyToAccount(net.accounts.facilitator.privateKey, { nonceManager });
  const wallet = createWalletClient({ account, transport: http(net.rpcUrl), pollingInterval: 50 }).extend(publicActions);
  const scheme = exactEvmFacilitator({ networks: [{ network: net.network, rpcUrl: net.rpcUrl }], signer: privateKeyToAccount(net.accounts.facilitator.privateKey),
    submit: async (call) => { const hash = await wallet.sendTransaction({ to: call.asset, data: call.data, chain: null }); const r = await wallet.waitForTransactionReceipt({ hash }); return { transaction: hash, status: r.status }; } });
  const f = await startFacilitator({ port: 0, networks: [{ network: net.network, rpcUrl: net.rpcUrl }], privateKeys: [net.accounts.facilitator.privateKey], logLevel: "silent" }, { schemes: [scheme] });
  const s = await startTollgateServer({ facilitatorUrl: f.url, network: net.network, usdc: net.usdc, payTo: net.accounts.payee.address, price: "10000", framework: "hono" });
  url = s.paidUrl; clients = net.accounts.payers.map((p) => tollgateFetch({ privateKey: p.privateKey })); close = async () => { await s.close(); await f.close(); };
} else if (which === "ours" || which === "ours-noledger") {
  const { startFacilitator } = await import("@tollgate/facilitator");
  const nullLedger = { dialect: "pglite", schema: "public", ping: async () => {}, recordVerify: async () => {}, claim: async () => ({ claimed: true }), complete: async () => true, get: async () => undefined, findByIdentifier: async () => undefined, recordEvent: async () => {}, events: async () => [], close: async () => {} } as never;
  const f = which === "ours" ? await startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, privateKey: net.accounts.facilitator.privateKey })
    : await startFacilitator({ port: 0, networks: [{ network: net.network, rpcUrl: net.rpcUrl }], privateKeys: [net.accounts.facilitator.privateKey], logLevel: "silent" }, { ledger: nullLedger });
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
