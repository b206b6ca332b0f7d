/**
 * `tollgate demo agents`: the agent economy on a local network, narrated, ending by itself.
 * Four specialist services (HTTP, MCP, A2A) list themselves in our facilitator's discovery
 * catalog through real payments; a generalist agent with a $0.10 budget gets a question, finds
 * them in the catalog, is refused the $5 one by its policy before anything is signed, pays the
 * three it needs per call, answers, and accounts for every cent — checked on chain.
 */
import { atomicToDecimal, createPaymentClient, discover, listResources, spendingPolicy, type PaymentClient, type SchemeClient } from "@tollgate/core";
import { startLocalNetwork, devAccount, mintTo } from "@tollgate/devnet";
import { exactEvmClient, exactEvmServer } from "@tollgate/evm";
import { startFacilitator } from "@tollgate/facilitator";
import { createPublicClient, erc20Abi, getAddress, http, type Address, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { callOffer, readOffer, type Offer, type PaidCall } from "../demo-agents/generalist.ts";
import { bestRoute, startSpecialists, type Route } from "../demo-agents/specialists.ts";

export interface AgentsDemoOptions {
  out?: (line: string) => void;
}

export interface AgentsDemoResult {
  question: string;
  answer: Route;
  paid: Array<{ service: string; transport: string; amount: bigint; payTo: string; transaction: string }>;
  refused: { service: string; reason: string; signedBefore: number; signedAfter: number };
  agent: { address: string; before: bigint; after: bigint };
}

const QUESTION = "Where is the best ETH arbitrage between the alpha, beta and gamma exchanges, net of fees?";

export async function demoAgents(options: AgentsDemoOptions = {}): Promise<AgentsDemoResult> {
  const out = options.out ?? ((l: string) => process.stdout.write(l + "\n"));
  const bold = !options.out && process.stdout.isTTY ? (s: string) => `\x1b[1m${s}\x1b[0m` : (s: string) => s;
  const step = (n: number, title: string) => out(`\n${bold(`${n}. ${title}`)}`);
  const cleanups: Array<() => Promise<void>> = [];
  try {
    out("Starting a local network: anvil, a USDC-like token, our facilitator with its discovery catalog…");
    const net = await startLocalNetwork({ payers: 2 });
    cleanups.push(() => net.stop());
    const { usdc, network } = net;
    const facilitator = await startFacilitator({
      port: 0,
      networks: [{ network, rpcUrl: net.rpcUrl, assets: [{ address: usdc.address, name: usdc.name, version: usdc.version, decimals: usdc.decimals }] }],
      privateKeys: [net.accounts.facilitator.privateKey],
      logLevel: "silent",
    });
    cleanups.push(() => facilitator.close());
    const chain = createPublicClient({ transport: http(net.rpcUrl) });
    const balanceOf = (owner: string) => chain.readContract({ address: usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [owner as Address] });

    // ------------------------------------------------------------------ 1. specialists
    step(1, "Four specialist services go live, each with its own price, payee and transport");
    const payees = [10, 11, 12, 13].map((i) => devAccount(i).address);
    const schemes = [exactEvmServer({ assets: [{ network, address: usdc.address, decimals: usdc.decimals, name: usdc.name, version: usdc.version, symbol: usdc.symbol }] })];
    const specialists = await startSpecialists({ facilitator: facilitator.url, schemes, network, payees });
    cleanups.push(() => specialists.close());
    for (const s of specialists.services) out(`   ${s.transport.padEnd(4)} ${s.name.padEnd(18)} ${s.price.padStart(6)}  ${s.url}  payee ${short(s.payTo)}`);

    // ------------------------------------------------------------------ 2. listings
    step(2, "Listings come from real payments: a first customer pays each service once");
    out("   Each 402 declares the service (bazaar: how to call it, an example, tags); the customer's");
    out("   payment echoes the declaration and the facilitator catalogs it once the payment settles.");
    const customerKey = devAccount(14).privateKey;
    await mintTo(net.rpcUrl, usdc.address, devAccount(14).address, 100_000_000n);
    const customer = payer(customerKey, { maxPerRequest: "$10", budget: "$20", network, usdc });
    for (const s of specialists.services) {
      const offer = firstOffer(s.url, s.transport);
      const call = await callOffer(offer, customer.client, offer.example);
      out(`   ${s.name.padEnd(18)} paid ${s.price.padStart(6)}  tx ${short(call.receipt?.transaction ?? "?")}`);
    }
    const listed = (await listResources(facilitator.url)).items;
    const missing = specialists.services.filter((s) => !listed.some((i) => i.resource === new URL(s.url).href));
    if (missing.length > 0) throw new Error(`not cataloged: ${missing.map((s) => s.name).join(", ")}`);
    out(`   GET /discovery/resources now lists all ${listed.length} services.`);

    // ------------------------------------------------------------------ 3. the task
    step(3, "A generalist agent gets a task, and a budget from its user");
    out(`   Task:   "${QUESTION}"`);
    out("   Policy: at most $0.05 per call, $0.10 in all, USD Coin on this network only");
    const agentKey = net.accounts.payers[0]!.privateKey as Hex;
    const agentAddress = privateKeyToAccount(agentKey).address;
    const agent = payer(agentKey, { maxPerRequest: "$0.05", budget: "$0.10", network, usdc });
    const before = await balanceOf(agentAddress);
    out(`   Wallet: ${agentAddress} holds ${usd(before, usdc.decimals)} USDC`);

    // ------------------------------------------------------------------ 4. discovery
    step(4, `The agent searches the facilitator's catalog: GET /discovery/search`);
    const found = (await discover(facilitator.url, { query: "eth exchanges prices fees arbitrage", network })).map(readOffer);
    for (const o of found) out(`   ${o.transport.padEnd(4)} ${o.name.padEnd(18)} ${priceOf(o).padStart(6)}  tags ${o.tags.join(", ")}`);
    const pick = (need: string) => found.filter((o) => o.tags.includes(need)).sort((a, b) => Number(b.tags.includes("premium")) - Number(a.tags.includes("premium")));

    // ------------------------------------------------------------------ 5. calls
    step(5, "It pays each specialist it needs, per call, within the policy");
    const calls: PaidCall[] = [];
    const prices = await callOffer(pick("prices")[0]!, agent.client, { pair: "ETH/USDC" });
    calls.push(prices);
    out(`   HTTP GET  ${prices.service}: ${JSON.stringify(prices.data)}`);
    const fees = await callOffer(pick("fees")[0]!, agent.client, { exchanges: ["alpha", "beta", "gamma"] });
    calls.push(fees);
    out(`   MCP  tool ${fees.service}: ${JSON.stringify(fees.data)}`);
    let refused: AgentsDemoResult["refused"] | undefined;
    let analysis: PaidCall | undefined;
    for (const candidate of pick("arbitrage")) {
      const signedBefore = agent.signed();
      try {
        analysis = await callOffer(candidate, agent.client, { centsByExchange: (prices.data as { cents: unknown }).cents, feesBps: (fees.data as { feesBps: unknown }).feesBps });
        calls.push(analysis);
        out(`   ${candidate.transport.padEnd(4)} task ${analysis.service}: ${JSON.stringify(analysis.data)}`);
        break;
      } catch (e) {
        const reason = e instanceof Error ? e.message : String(e);
        refused = { service: candidate.name, reason, signedBefore, signedAfter: agent.signed() };
        out(`   ✗ ${candidate.name} (${priceOf(candidate)}) refused by the policy before anything was signed: ${reason}`);
        out(`     signatures made for it: ${agent.signed() - signedBefore}. Next candidate…`);
      }
    }
    if (!analysis || !refused) throw new Error("the demo expected one refusal and one analysis");

    // ------------------------------------------------------------------ 6. answer
    const answer = analysis.data as Route;
    const check = bestRoute({ alpha: 301_050n, beta: 302_410n, gamma: 299_870n }, { alpha: 10n, beta: 15n, gamma: 20n });
    if (answer.buy !== check.buy || answer.net !== check.net) throw new Error("the analyst's answer does not add up");
    step(6, "The answer");
    out(`   Buy ETH on ${answer.buy} at $${cents(answer.buyCents)}, sell on ${answer.sell} at $${cents(answer.sellCents)}:`);
    out(`   $${answer.gross} per ETH before fees, $${answer.net} after both exchanges' fees.`);

    // ------------------------------------------------------------------ 7. accounts
    step(7, "What it paid, to whom — each transfer checked on chain");
    const paid: AgentsDemoResult["paid"] = [];
    for (const c of calls) {
      const tx = c.receipt?.transaction as Hex | undefined;
      if (!c.receipt?.success || !tx) throw new Error(`${c.service}: no settlement receipt`);
      const transfer = await transferOf(chain, tx, usdc.address, agentAddress);
      paid.push({ service: c.service, transport: c.transport, amount: transfer.amount, payTo: transfer.to, transaction: tx });
      out(`   ${c.transport.padEnd(4)} ${c.service.padEnd(18)} $${usd(transfer.amount, usdc.decimals).padStart(4)} → ${short(transfer.to)}  tx ${tx}`);
    }
    const after = await balanceOf(agentAddress);
    const total = paid.reduce((sum, p) => sum + p.amount, 0n);
    out(`   Total $${usd(total, usdc.decimals)} of the $0.10 budget; wallet ${usd(before, usdc.decimals)} → ${usd(after, usdc.decimals)} USDC`);
    if (before - after !== total) throw new Error("the wallet moved by more than the payments");
    out("\nDone: three services found in a catalog, three transports, three payments, one refusal with nothing signed.");
    return { question: QUESTION, answer, paid, refused, agent: { address: agentAddress, before, after } };
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  }
}

/** A paying client whose signatures are counted (to show a refusal signs nothing). */
function payer(key: Hex, o: { maxPerRequest: string; budget: string; network: `eip155:${number}`; usdc: { address: Address; decimals: number } }): { client: PaymentClient; signed: () => number } {
  const scheme = exactEvmClient({ account: privateKeyToAccount(key) });
  let signed = 0;
  const counting: SchemeClient = { ...scheme, createPayload: (...a) => (signed++, scheme.createPayload(...a)) };
  const policy = spendingPolicy({ maxPerRequest: o.maxPerRequest, budget: o.budget, networks: [o.network], usdAssets: [{ network: o.network, asset: o.usdc.address, decimals: o.usdc.decimals }] });
  return { client: createPaymentClient({ schemes: [counting], policy }), signed: () => signed };
}

/**
 * The first payment of a service: the customer knows its address (not yet in any catalog) and
 * reads how to call it from its 402, like any client; what the catalog would say is built here.
 */
function firstOffer(url: string, transport: "HTTP" | "MCP" | "A2A"): Offer {
  const examples: Record<string, Record<string, unknown>> = {
    HTTP: { pair: "ETH/USDC" },
    MCP: { exchanges: ["alpha", "beta", "gamma"] },
    A2A: { centsByExchange: { alpha: 301050, beta: 302410 }, feesBps: { alpha: 10, beta: 15 } },
  };
  const item = { resource: url, type: transport === "MCP" ? "mcp" : "http", x402Version: 2, accepts: [], lastUpdated: 0, tags: transport === "A2A" ? ["a2a"] : [] };
  const offer = readOffer(item);
  return { ...offer, name: url, example: examples[transport]!, ...(transport === "MCP" ? { toolName: "exchange_fees" } : {}) };
}

/** Atomic units of a 6-decimal USD coin as dollars with two places ("0.03"). */
function usd(amount: bigint, decimals: number): string {
  const [whole, fraction = ""] = atomicToDecimal(amount, decimals).split(".");
  return `${whole}.${fraction.padEnd(2, "0").slice(0, Math.max(2, fraction.replace(/0+$/, "").length))}`;
}

function priceOf(o: Offer): string {
  const a = o.item.accepts[0];
  return a ? `$${usd(BigInt(a.amount), 6)}` : "?";
}

async function transferOf(chain: ReturnType<typeof createPublicClient>, hash: Hex, token: Address, from: Address): Promise<{ amount: bigint; to: string }> {
  const receipt = await chain.getTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new Error(`${hash}: reverted`);
  // Transfer(address indexed from, address indexed to, uint256 value)
  const topic = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";
  const fromTopic = `0x${from.slice(2).toLowerCase().padStart(64, "0")}`;
  const log = receipt.logs.find((l) => l.address.toLowerCase() === token.toLowerCase() && l.topics[0] === topic && l.topics[1]?.toLowerCase() === fromTopic);
  if (!log) throw new Error(`${hash}: no transfer from ${from}`);
  return { amount: BigInt(log.data), to: getAddress(`0x${log.topics[2]!.slice(26)}`) };
}

function short(hex: string): string {
  return hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-4)}` : hex;
}

function cents(value: number): string {
  const c = BigInt(value);
  return `${(c / 100n).toLocaleString("en-US")}.${(c % 100n).toString().padStart(2, "0")}`;
}
