/**
 * Reputation where x402 meets ERC-8004:
 *   - `giveSettlementFeedback`: a resource server rates the facilitator that settled a payment
 *     (value, "settled", a latency bucket), the settlement transaction as proof;
 *   - `giveFeedbackForPayment`: a client rates the agent it paid, its payment as proof;
 *   - `reputableFacilitators`: registered facilitators whose on-chain summary from reviewers you
 *     trust reaches a minimum, ready for a facilitator pool;
 *   - `rankByReputation`: several services offering the same thing, best reputation first (the
 *     agent behind a service is the registered agent listing an endpoint that prefixes its URL).
 * Every file is a data: URI with its keccak256 on chain, so nothing needs hosting.
 */
import { parseEventLogs, type Address, type Hex, type PublicClient } from "viem";
import { identityRegistryAbi } from "./abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "./addresses.ts";
import { buildFeedbackFile, feedbackFileHash, type FeedbackFile } from "./feedback-proof.ts";
import { readAgent } from "./identity/read-agent.ts";
import { parseRegistrationFile } from "./registration-file.ts";
import { getReputationSummary } from "./reputation/get-reputation-summary.ts";
import { giveFeedback } from "./reputation/give-feedback.ts";
import { fromJsonDataUri, toJsonDataUri } from "./result.ts";
import type { Erc8004Clients, WriteResult } from "./write.ts";
import { findRegisteredFacilitators, type RegisteredFacilitator } from "./x402-facilitators.ts";

export interface PaymentFeedbackParams {
  agentId: bigint;
  /** Score as a decimal string ("100", "87.5"). */
  value: string;
  tag1?: string;
  tag2?: string;
  endpoint?: string;
  /** The payment: who paid whom, in which transaction (an x402 SettleResponse carries `transaction` and `payer`). */
  payment: { from: Address; to: Address; transaction: Hex };
  registries?: { identity?: Address; reputation?: Address };
}

/** Feedback whose file carries `proofOfPayment` for `payment`; sent by the wallet of `clients`. Returns the file too. */
export async function giveFeedbackForPayment(clients: Erc8004Clients, p: PaymentFeedbackParams): Promise<WriteResult<{ feedbackIndex: bigint; file: FeedbackFile }>> {
  const chainId = await clients.publicClient.getChainId();
  const [whole = "0", fraction = ""] = p.value.split(".");
  const file = buildFeedbackFile({
    chainId,
    identityRegistry: p.registries?.identity ?? ERC8004_MAINNET_ADDRESSES.identityRegistry,
    agentId: p.agentId,
    clientAddress: clients.walletClient.account.address,
    value: BigInt(`${whole}${fraction}`),
    valueDecimals: fraction.length,
    ...(p.tag1 !== undefined ? { tag1: p.tag1 } : {}),
    ...(p.tag2 !== undefined ? { tag2: p.tag2 } : {}),
    ...(p.endpoint !== undefined ? { endpoint: p.endpoint } : {}),
    proofOfPayment: { fromAddress: p.payment.from, toAddress: p.payment.to, chainId, txHash: p.payment.transaction },
  });
  const sent = await giveFeedback(clients, {
    agentId: p.agentId,
    value: p.value,
    ...(p.tag1 !== undefined ? { tag1: p.tag1 } : {}),
    ...(p.tag2 !== undefined ? { tag2: p.tag2 } : {}),
    ...(p.endpoint !== undefined ? { endpoint: p.endpoint } : {}),
    feedbackUri: toJsonDataUri(file),
    feedbackHash: feedbackFileHash(file),
    ...(p.registries?.reputation ? { registry: p.registries.reputation } : {}),
  });
  return sent.ok ? { ...sent, file } : sent;
}

/** A server's verdict on the facilitator that settled `payment`: 100, "settled", and how fast. */
export function giveSettlementFeedback(clients: Erc8004Clients, p: { agentId: bigint; latencyMs: number; endpoint?: string; payment: PaymentFeedbackParams["payment"]; registries?: PaymentFeedbackParams["registries"] }) {
  return giveFeedbackForPayment(clients, { ...p, value: "100", tag1: "settled", tag2: latencyBucket(p.latencyMs) });
}

/** "latency:<1s", "latency:<5s", "latency:>=5s": coarse, so summaries by tag mean something. */
export function latencyBucket(ms: number): string {
  return ms < 1_000 ? "latency:<1s" : ms < 5_000 ? "latency:<5s" : "latency:>=5s";
}

export interface ReputableFacilitator extends RegisteredFacilitator {
  /** On-chain average from the trusted reviewers (decimal string), and how many entries. */
  score: string;
  reviews: bigint;
}

/**
 * Registered facilitators whose on-chain summary, from `reviewers` only (choose them: anyone can
 * write feedback), is at least `minScore`; best first. Feed them to a facilitator pool as
 * `{ facilitator: f.url, name: f.name, reputation: Number(f.score) }`.
 */
export async function reputableFacilitators(publicClient: PublicClient, p: { reviewers: readonly Address[]; minScore: number; minReviews?: bigint; registries?: { identity?: Address; reputation?: Address } }): Promise<ReputableFacilitator[]> {
  const all = await findRegisteredFacilitators(publicClient, { ...(p.registries?.identity ? { registry: p.registries.identity } : {}) });
  const scored: ReputableFacilitator[] = [];
  for (const f of all) {
    const s = await getReputationSummary(publicClient, { agentId: f.agentId, clientAddresses: p.reviewers, ...(p.registries?.reputation ? { registry: p.registries.reputation } : {}) });
    if (s.count < (p.minReviews ?? 1n) || Number(s.decimal) < p.minScore) continue;
    scored.push({ ...f, score: s.decimal, reviews: s.count });
  }
  return scored.sort((a, b) => Number(b.score) - Number(a.score));
}

/**
 * Orders services offering the same thing by the reputation of the agent behind each (from
 * `reviewers` only); a service no registered agent lists, or without reviews, goes last.
 */
export async function rankByReputation<T extends { resource: string }>(
  publicClient: PublicClient,
  services: readonly T[],
  p: { reviewers: readonly Address[]; registries?: { identity?: Address; reputation?: Address } },
): Promise<Array<T & { agentId?: bigint; score?: string }>> {
  const agents = await agentEndpoints(publicClient, p.registries?.identity ?? ERC8004_MAINNET_ADDRESSES.identityRegistry);
  const ranked: Array<T & { agentId?: bigint; score?: string }> = [];
  for (const service of services) {
    const agent = agents.find((a) => a.endpoints.some((e) => service.resource.startsWith(e)));
    if (!agent) {
      ranked.push({ ...service });
      continue;
    }
    const s = await getReputationSummary(publicClient, { agentId: agent.agentId, clientAddresses: p.reviewers, ...(p.registries?.reputation ? { registry: p.registries.reputation } : {}) });
    ranked.push({ ...service, agentId: agent.agentId, ...(s.count > 0n ? { score: s.decimal } : {}) });
  }
  const key = (s: { score?: string }) => (s.score === undefined ? -Infinity : Number(s.score));
  return ranked.sort((a, b) => key(b) - key(a));
}

async function agentEndpoints(publicClient: PublicClient, registry: Address): Promise<Array<{ agentId: bigint; endpoints: string[] }>> {
  const logs = await publicClient.getLogs({ address: registry, fromBlock: 0n, toBlock: "latest" });
  const out: Array<{ agentId: bigint; endpoints: string[] }> = [];
  for (const e of parseEventLogs({ abi: identityRegistryAbi, eventName: "Registered", logs })) {
    const agent = await readAgent(publicClient, { agentId: e.args.agentId, registry });
    const json = agent.found ? fromJsonDataUri(agent.uri) : undefined;
    const file = json === undefined ? undefined : parseRegistrationFile(json);
    if (file?.ok && file.file.active) out.push({ agentId: e.args.agentId, endpoints: file.file.services.map((s) => s.endpoint).filter((x) => /^https?:\/\//.test(x)) });
  }
  return out;
}
