/**
 * `tollgate demo network`: many facilitators, one network. Three facilitators (each its own fee
 * payer and operator) register in the ERC-8004 identity registry; a resource server lists them
 * from the chain and uses all of them through one pool; payments flow; one facilitator is
 * stopped mid-run and payments go on through the others; then every payment is checked on chain
 * (settled exactly once), the server leaves feedback carrying each settlement transaction as
 * proof, and each facilitator's reputation is printed. Ends by itself.
 */
import type { ServerType } from "@hono/node-server";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { createPublicClient, createTestClient, createWalletClient, getAddress, http, parseEventLogs, type Address, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { createPaymentClient, type SettleResponse } from "@tollgate/core";
import { devAccount, startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import {
  buildFeedbackFile,
  deployErc8004,
  findRegisteredFacilitators,
  getReputationSummary,
  giveFeedback,
  giveSettlementFeedback,
  registerFacilitator,
  reputableFacilitators,
  summarizeProvenFeedback,
  type DeployedErc8004,
  type FeedbackFile,
  type RegisteredFacilitator,
} from "@tollgate/erc8004";
import { eip3009Abi, exactEvmAuthorizationUnused, exactEvmClient, exactEvmServer } from "@tollgate/evm";
import { startFacilitator, type RunningFacilitator } from "@tollgate/facilitator";
import { getPaymentReceipt, wrapFetch } from "@tollgate/fetch";
import { paymentMiddleware } from "@tollgate/hono";
import { facilitatorPool, type FacilitatorPool, type PoolEvent } from "@tollgate/server";

export interface NetworkDemoOptions {
  out?: (line: string) => void;
  /** Payments in all (the facilitator is stopped after a third of them). Default 9. */
  payments?: number;
}

export interface NetworkDemoResult {
  payments: Array<{ payer: string; transaction: string; settledBy: string }>;
  stopped: string;
  /** Per facilitator: payments it settled, feedback summary (proven only). */
  facilitators: Array<{ name: string; agentId: bigint; settled: number; proven: number; score: string }>;
}

const PRICE = 10_000n; // $0.01

export async function demoNetwork(options: NetworkDemoOptions = {}): Promise<NetworkDemoResult> {
  const out = options.out ?? ((l: string) => process.stdout.write(l + "\n"));
  const bold = !options.out && process.stdout.isTTY ? (s: string) => `\x1b[1m${s}\x1b[0m` : (s: string) => s;
  const step = (n: number, title: string) => out(`\n${bold(`${n}. ${title}`)}`);
  const total = options.payments ?? 9;
  const cleanups: Array<() => Promise<void>> = [];
  try {
    out("Starting a local network: anvil, a USDC-like token, the ERC-8004 registries at their public addresses…");
    const net = await startLocalNetwork({ payers: 3 });
    cleanups.push(() => net.stop());
    const chain = createPublicClient({ transport: http(net.rpcUrl) }) as PublicClient;
    const registries = await deployErc8004({ rpcUrl: net.rpcUrl });
    out(`   identity ${registries.identityRegistry}  reputation ${registries.reputationRegistry}`);

    step(1, "Three facilitators start, each with its own fee payer, and register as agents");
    const nodes = await startNodes(net, 3, cleanups);
    for (const node of nodes) {
      const r = await registerFacilitator(walletFor(net, node.operator), { url: node.running.url, name: node.name, networks: [net.network], schemes: ["exact"], feePayer: privateKeyToAccount(node.feePayer) });
      if (!r.ok) throw new Error(`${node.name}: registration failed: ${r.reason}`);
      node.agentId = r.agentId;
      out(`   ${node.name.padEnd(14)} agent #${r.agentId}  ${node.running.url}  fee payer ${short(privateKeyToAccount(node.feePayer).address)} (bound as its verified wallet)`);
    }

    step(2, "A resource server lists the registered facilitators from the chain and uses all of them");
    const listed = await findRegisteredFacilitators(chain);
    for (const f of listed) out(`   found agent #${f.agentId} ${f.name}: ${f.url} settles ${f.schemes.join(", ")} on ${f.networks.join(", ")}`);
    const server = await startPaidServer(net, listed, out);
    cleanups.push(server.close);

    step(3, `${total} payments flow; after ${Math.floor(total / 3)}, one facilitator is stopped`);
    const payments: NetworkDemoResult["payments"] = [];
    const payeeBefore = await balanceOf(chain, net, net.accounts.payee.address);
    let stopped = "";
    for (let i = 0; i < total; i++) {
      if (i === Math.floor(total / 3)) {
        // The one the pool would pick next (healthy, fastest so far): its failure is felt at once.
        const next = [...server.pool.status()].filter((f) => f.state === "closed").sort((a, b) => (a.latencyMs ?? 0) - (b.latencyMs ?? 0))[0]!;
        const victim = nodes.find((n) => n.name === next.name)!;
        await victim.running.close();
        stopped = victim.name;
        out(`   ✗ ${victim.name} stopped: the pool's first choice now (it had settled ${settledBy(payments, victim)} of ${i})`);
      }
      const payer = net.accounts.payers[i % net.accounts.payers.length]!;
      const receipt = await pay(server.url, payer.privateKey);
      const sender = getAddress((await chain.getTransaction({ hash: receipt.transaction as Hex })).from);
      const by = nodes.find((n) => n.feePayerAddress === sender)?.name ?? "?";
      payments.push({ payer: payer.address, transaction: receipt.transaction, settledBy: by });
      out(`   payment ${String(i + 1).padStart(2)}  ${short(payer.address)} → $0.01  settled by ${by.padEnd(14)} tx ${receipt.transaction}`);
    }
    out(`   pool: ${server.pool.status().map((s) => `${s.name} ${s.state}`).join(", ")}`);

    step(4, "Every payment settled exactly once, checked on chain");
    await checkOnChain(chain, net, payments, payeeBefore, out);

    step(5, "The server leaves feedback for each facilitator, with the settlement transaction as proof");
    const files = await leaveFeedback(net, registries, nodes, payments, stopped, out);

    step(6, "Reputation: on-chain summaries, and what proven feedback says");
    const facilitators = [];
    for (const node of nodes) {
      const onChain = await getReputationSummary(chain, { agentId: node.agentId, clientAddresses: [devAccount(26).address] });
      // Proven: the facilitator's own fee payer sent the settlement, paying this server's payee.
      const proven = await summarizeProvenFeedback(chain, files.get(node.name) ?? [], { asset: net.usdc.address, payTo: net.accounts.payee.address, settledBy: node.feePayerAddress });
      facilitators.push({ name: node.name, agentId: node.agentId, settled: settledBy(payments, node), proven: proven.proven, score: proven.decimal });
      out(`   ${node.name.padEnd(14)} settled ${String(settledBy(payments, node)).padStart(2)}   on-chain: ${onChain.count} entries, average ${onChain.decimal.padStart(3)}   proven: ${proven.proven} of ${proven.proven + proven.unproven}, score ${proven.decimal}`);
    }
    const trusted = await reputableFacilitators(chain, { reviewers: [devAccount(26).address], minScore: 50 });
    out(`   A server asking for "registered facilitators with reputation ≥ 50 from reviewers I trust" now gets: ${trusted.map((f) => `${f.name} (${f.score}, ${f.reviews} reviews)`).join(", ")}`);
    out("\nDone: three facilitators, one stopped mid-run, no payment lost or settled twice, reputation backed by payments.");
    return { payments, stopped, facilitators };
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  }
}

interface Node {
  name: string;
  feePayer: Hex;
  feePayerAddress: Address;
  operator: Hex;
  running: RunningFacilitator;
  agentId: bigint;
}

async function startNodes(net: RunningLocalNetwork, count: number, cleanups: Array<() => Promise<void>>): Promise<Node[]> {
  const test = createTestClient({ mode: "anvil", transport: http(net.rpcUrl) });
  const names = ["north-node", "south-node", "east-node"];
  const nodes: Node[] = [];
  for (let i = 0; i < count; i++) {
    const feePayer = devAccount(20 + i).privateKey;
    const operator = devAccount(23 + i).privateKey;
    for (const key of [feePayer, operator]) await test.setBalance({ address: privateKeyToAccount(key).address, value: 10n ** 19n });
    const running = await startFacilitator({
      port: 0,
      host: "127.0.0.1",
      networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [{ address: net.usdc.address, name: net.usdc.name, version: net.usdc.version, decimals: net.usdc.decimals }] }],
      privateKeys: [feePayer],
      logLevel: "silent",
    });
    cleanups.push(() => running.close());
    nodes.push({ name: names[i] ?? `node-${i + 1}`, feePayer, feePayerAddress: privateKeyToAccount(feePayer).address, operator, running, agentId: -1n });
  }
  return nodes;
}

function walletFor(net: RunningLocalNetwork, key: Hex) {
  const account = privateKeyToAccount(key);
  return {
    publicClient: createPublicClient({ transport: http(net.rpcUrl) }) as PublicClient,
    walletClient: createWalletClient({ account, transport: http(net.rpcUrl), chain: { id: net.chainId, name: "devnet", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [net.rpcUrl] } } } }),
  };
}

/** Settlement latency per transaction, as the pool measured it (for the feedback's latency tag). */
const latency = new Map<string, number>();

async function startPaidServer(net: RunningLocalNetwork, listed: RegisteredFacilitator[], out: (l: string) => void): Promise<{ url: string; pool: FacilitatorPool; close: () => Promise<void> }> {
  const pool = facilitatorPool({
    facilitators: listed.map((f) => ({ facilitator: f.url, name: f.name })),
    // A settlement moves to another facilitator only with the chain's word that it is unused.
    proveUnused: exactEvmAuthorizationUnused({ rpcUrls: { [net.network]: net.rpcUrl } }),
    settleAttempts: 2,
    breaker: { failures: 2, cooldownMs: 60_000 },
    onEvent: (e) => {
      if (e.kind === "settled") return void latency.set(e.transaction, e.ms);
      out(`     pool: ${describePoolEvent(e)}`);
    },
  });
  const usdc = net.usdc;
  const app = new Hono();
  app.use(
    paymentMiddleware({
      facilitator: pool,
      schemes: [exactEvmServer({ assets: [{ network: net.network, address: usdc.address, decimals: usdc.decimals, name: usdc.name, version: usdc.version, symbol: usdc.symbol }] })],
      routes: { "GET /quote": { price: "$0.01", network: net.network, payTo: net.accounts.payee.address, description: "A quote" } },
      settlementPollMs: 200,
      checkAtStart: false,
    }),
  );
  app.get("/quote", (c) => c.json({ pair: "ETH/USDC", cents: 301050 }));
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
    s.once("error", reject);
  });
  const port = (server.address() as { port: number }).port;
  const close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return { url: `http://127.0.0.1:${port}`, pool, close };
}

async function pay(serverUrl: string, key: Hex): Promise<SettleResponse> {
  const paying = wrapFetch(fetch, { client: createPaymentClient({ schemes: [exactEvmClient({ account: privateKeyToAccount(key) })] }) });
  const res = await paying(`${serverUrl}/quote`);
  if (res.status !== 200) throw new Error(`payment answered HTTP ${res.status}`);
  const receipt = getPaymentReceipt(res)?.receipt;
  if (!receipt?.success) throw new Error("no settlement receipt");
  return receipt;
}

function settledBy(payments: NetworkDemoResult["payments"], node: { name: string }): number {
  return payments.filter((p) => p.settledBy === node.name).length;
}

/** One AuthorizationUsed per payment in the token's whole history, one transfer each, the payee up by exactly the total. */
function balanceOf(chain: PublicClient, net: RunningLocalNetwork, owner: Address): Promise<bigint> {
  return chain.readContract({ address: net.usdc.address, abi: eip3009Abi, functionName: "balanceOf", args: [owner] });
}

async function checkOnChain(chain: PublicClient, net: RunningLocalNetwork, payments: NetworkDemoResult["payments"], payeeBefore: bigint, out: (l: string) => void): Promise<void> {
  const logs = await chain.getLogs({ address: net.usdc.address, fromBlock: 0n, toBlock: "latest" });
  const used = parseEventLogs({ abi: eip3009Abi, eventName: "AuthorizationUsed", logs });
  for (const p of payments) {
    const receipt = await chain.getTransactionReceipt({ hash: p.transaction as Hex });
    const mine = parseEventLogs({ abi: eip3009Abi, eventName: "AuthorizationUsed", logs: receipt.logs }).filter((e) => getAddress(e.args.authorizer) === getAddress(p.payer));
    if (receipt.status !== "success" || mine.length !== 1) throw new Error(`${p.transaction}: expected one authorization of ${p.payer}, found ${mine.length}`);
    const everywhere = used.filter((e) => e.args.nonce === mine[0]!.args.nonce && getAddress(e.args.authorizer) === getAddress(p.payer));
    if (everywhere.length !== 1) throw new Error(`authorization ${mine[0]!.args.nonce} used ${everywhere.length} times`);
  }
  const received = (await balanceOf(chain, net, net.accounts.payee.address)) - payeeBefore;
  out(`   ${payments.length} payments, ${payments.length} distinct authorizations, each used exactly once in the token's whole history`);
  out(`   the payee received ${received} atomic units = ${payments.length} × ${PRICE}`);
  if (received !== BigInt(payments.length) * PRICE) throw new Error("the payee did not receive exactly the payments");
}

async function leaveFeedback(net: RunningLocalNetwork, registries: DeployedErc8004, nodes: Node[], payments: NetworkDemoResult["payments"], stopped: string, out: (l: string) => void): Promise<Map<string, FeedbackFile[]>> {
  const reviewer = devAccount(26);
  await createTestClient({ mode: "anvil", transport: http(net.rpcUrl) }).setBalance({ address: reviewer.address, value: 10n ** 19n });
  const clients = walletFor(net, reviewer.privateKey);
  const files = new Map<string, FeedbackFile[]>();
  const keep = (node: Node, file: FeedbackFile) => void files.set(node.name, [...(files.get(node.name) ?? []), file]);
  for (const p of payments) {
    const node = nodes.find((n) => n.name === p.settledBy)!;
    const r = await giveSettlementFeedback(clients, { agentId: node.agentId, latencyMs: latency.get(p.transaction) ?? 0, endpoint: node.running.url, payment: { from: p.payer as Address, to: net.accounts.payee.address, transaction: p.transaction as Hex } });
    if (!r.ok) throw new Error(`feedback for ${node.name}: ${r.reason}`);
    keep(node, r.file);
  }
  const down = nodes.find((n) => n.name === stopped);
  if (down) {
    // What the server saw of the stopped one: no settlement to show, so no proof.
    const r = await giveFeedback(clients, { agentId: down.agentId, value: "0", tag1: "unreachable", endpoint: down.running.url });
    if (!r.ok) throw new Error(`feedback for ${down.name}: ${r.reason}`);
    keep(down, buildFeedbackFile({ chainId: net.chainId, identityRegistry: registries.identityRegistry, agentId: down.agentId, clientAddress: reviewer.address, value: 0n, valueDecimals: 0, tag1: "unreachable" }));
  }
  out(`   ${payments.length} entries "settled" (100, tagged with the settlement's latency), each file with proofOfPayment {fromAddress, toAddress, chainId, txHash}`);
  if (down) out(`   1 entry "unreachable" (0) for ${down.name}, without proof: it counts for nothing unless proven`);
  return files;
}

function describePoolEvent(e: Exclude<PoolEvent, { kind: "settled" }>): string {
  switch (e.kind) {
    case "failover":
      return `${e.endpoint} failed over from ${e.from} (${e.error})`;
    case "breaker-open":
      return `breaker open for ${e.facilitator}`;
    case "settle-moved":
      return `settlement moved ${e.from} → ${e.to} (authorization proven unused)`;
    case "settled-on-chain":
      return `${e.facilitator} went silent; its settlement ${e.transaction} read from the chain`;
  }
}

function short(hex: string): string {
  return `${hex.slice(0, 8)}…${hex.slice(-4)}`;
}
