// x402 on ERC-8004, on a real local chain: facilitators register and are found from the chain;
// feedback carries a real payment as proof; only trusted reviewers count; services are ranked by
// the reputation of the agent behind them.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, createTestClient, createWalletClient, erc20Abi, http, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { devAccount, startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import {
  buildRegistrationFile,
  deployErc8004,
  findRegisteredFacilitators,
  giveFeedback,
  giveFeedbackForPayment,
  giveSettlementFeedback,
  latencyBucket,
  rankByReputation,
  registerAgent,
  registerFacilitator,
  reputableFacilitators,
  setAgentUri,
  summarizeProvenFeedback,
  toJsonDataUri,
} from "../src/index.ts";

let net: RunningLocalNetwork;
let chain: PublicClient;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 2 });
  chain = createPublicClient({ transport: http(net.rpcUrl) }) as PublicClient;
  await deployErc8004({ rpcUrl: net.rpcUrl });
  const test = createTestClient({ mode: "anvil", transport: http(net.rpcUrl) });
  for (const i of [30, 31, 32, 33, 34]) await test.setBalance({ address: devAccount(i).address, value: 10n ** 19n });
});
afterAll(async () => {
  await net?.stop();
});

const clientsOf = (key: Hex) => ({
  publicClient: chain,
  walletClient: createWalletClient({ account: privateKeyToAccount(key), transport: http(net.rpcUrl), chain: { id: net.chainId, name: "devnet", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [net.rpcUrl] } } } }),
});

/** A real USDC transfer from a payer to `to`: the transaction a proof points at. */
async function pay(fromKey: Hex, to: `0x${string}`): Promise<Hex> {
  const { walletClient } = clientsOf(fromKey);
  const hash = await walletClient.writeContract({ address: net.usdc.address, abi: erc20Abi, functionName: "transfer", args: [to, 10_000n] });
  await chain.waitForTransactionReceipt({ hash });
  return hash;
}

describe("x402 reputation on ERC-8004", () => {
  it("registers facilitators, binds their fee payers, and lists only those from the chain", async () => {
    const feePayer = privateKeyToAccount(devAccount(30).privateKey);
    const r = await registerFacilitator(clientsOf(devAccount(31).privateKey), { url: "https://f1.example.com", name: "f1", networks: [net.network], schemes: ["exact"], feePayer });
    expect(r.ok).toBe(true);
    // Another agent that is not a facilitator is not listed.
    const other = await registerAgent(clientsOf(devAccount(32).privateKey), { uri: toJsonDataUri({ hello: "not a registration file" }) });
    expect(other.ok).toBe(true);
    const found = await findRegisteredFacilitators(chain);
    expect(found).toEqual([expect.objectContaining({ url: "https://f1.example.com", name: "f1", wallet: feePayer.address, owner: devAccount(31).address, networks: [net.network], schemes: ["exact"], active: true })]);
  });

  it("feedback for a payment carries a proof that verifies; a settlement proof names its sender", async () => {
    const reviewer = clientsOf(net.accounts.payers[0]!.privateKey);
    const [f1] = await findRegisteredFacilitators(chain);
    const tx = await pay(net.accounts.payers[0]!.privateKey, net.accounts.payee.address);
    const r = await giveFeedbackForPayment(reviewer, { agentId: f1!.agentId, value: "87.5", tag1: "quality", payment: { from: net.accounts.payers[0]!.address, to: net.accounts.payee.address, transaction: tx } });
    if (!r.ok) throw new Error(r.reason);
    expect(r.file.proofOfPayment).toMatchObject({ txHash: tx, fromAddress: net.accounts.payers[0]!.address });
    const summary = await summarizeProvenFeedback(chain, [r.file], { asset: net.usdc.address });
    expect(summary).toMatchObject({ proven: 1, unproven: 0, decimal: "87.5" });
    // As settlement feedback, the transaction must have been sent by the facilitator's fee payer: a payer's own transfer is not.
    const asSettlement = await summarizeProvenFeedback(chain, [r.file], { asset: net.usdc.address, settledBy: f1!.wallet! });
    expect(asSettlement.proven).toBe(0);
    expect(asSettlement.rejected[0]?.reason).toMatch(/was sent by/);
    expect(latencyBucket(10)).toBe("latency:<1s");
    expect(latencyBucket(7_000)).toBe("latency:>=5s");
  });

  it("keeps facilitators with reputation from trusted reviewers only, and ranks services by it", async () => {
    const [f1] = await findRegisteredFacilitators(chain);
    const trusted = clientsOf(devAccount(33).privateKey);
    const stranger = clientsOf(devAccount(34).privateKey);
    const tx = await pay(net.accounts.payers[1]!.privateKey, net.accounts.payee.address);
    const s = await giveSettlementFeedback(trusted, { agentId: f1!.agentId, latencyMs: 300, payment: { from: net.accounts.payers[1]!.address, to: net.accounts.payee.address, transaction: tx } });
    if (!s.ok) throw new Error(s.reason);
    expect(s.file).toMatchObject({ tag1: "settled", tag2: "latency:<1s", value: 100 });
    // A stranger's 0 does not count when it is not a chosen reviewer.
    await giveFeedback(stranger, { agentId: f1!.agentId, value: "0" });
    expect((await reputableFacilitators(chain, { reviewers: [devAccount(33).address], minScore: 90 })).map((f) => f.name)).toEqual(["f1"]);
    expect(await reputableFacilitators(chain, { reviewers: [devAccount(34).address], minScore: 90 })).toEqual([]);

    // Two services doing the same thing: the one whose agent has the better reviews first; an unknown one last.
    const good = await registerAgent(clientsOf(devAccount(31).privateKey));
    const poor = await registerAgent(clientsOf(devAccount(32).privateKey));
    if (!good.ok || !poor.ok) throw new Error("register failed");
    for (const [agent, key, endpoint] of [[good.agentId, 31, "https://good.example.com"], [poor.agentId, 32, "https://poor.example.com"]] as const) {
      const file = buildRegistrationFile({ name: endpoint, description: "", services: [{ name: "web", endpoint }], x402Support: true, registrations: [{ agentId: agent, chainId: net.chainId }] });
      expect((await setAgentUri(clientsOf(devAccount(key).privateKey), { agentId: agent, uri: toJsonDataUri(file) })).ok).toBe(true);
    }
    await giveFeedback(trusted, { agentId: good.agentId, value: "95" });
    await giveFeedback(trusted, { agentId: poor.agentId, value: "40" });
    const ranked = await rankByReputation(chain, [{ resource: "https://unknown.example.com/x" }, { resource: "https://poor.example.com/quote" }, { resource: "https://good.example.com/quote?x=1" }], { reviewers: [devAccount(33).address] });
    expect(ranked.map((r) => [r.resource, r.score])).toEqual([
      ["https://good.example.com/quote?x=1", "95"],
      ["https://poor.example.com/quote", "40"],
      ["https://unknown.example.com/x", undefined],
    ]);
  });
});
