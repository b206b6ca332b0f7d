/**
 * Protocol v1 compatibility: v1 names networks ("base-sepolia") where v2 uses CAIP-2, calls
 * the amount `maxAmountRequired`, and inlines the resource into each requirement. Internally
 * everything is v2; these functions convert at the edges.
 */
import type { Network } from "./caip2.ts";
import type {
  PaymentPayload,
  PaymentPayloadV1,
  PaymentRequirements,
  PaymentRequirementsV1,
  ResourceInfo,
  SettleResponse,
  SettleResponseV1,
} from "./types.ts";

/** The v1 network names of the reference implementation, and a few common EVM ones. */
export const V1_NETWORKS: Readonly<Record<string, Network>> = {
  base: "eip155:8453",
  "base-sepolia": "eip155:84532",
  ethereum: "eip155:1",
  sepolia: "eip155:11155111",
  optimism: "eip155:10",
  "optimism-sepolia": "eip155:11155420",
  arbitrum: "eip155:42161",
  "arbitrum-sepolia": "eip155:421614",
  polygon: "eip155:137",
  "polygon-amoy": "eip155:80002",
  avalanche: "eip155:43114",
  "avalanche-fuji": "eip155:43113",
  sei: "eip155:1329",
  "sei-testnet": "eip155:1328",
  iotex: "eip155:4689",
  abstract: "eip155:2741",
  "abstract-testnet": "eip155:11124",
  peaq: "eip155:3338",
  story: "eip155:1514",
  educhain: "eip155:41923",
  solana: "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp",
  "solana-devnet": "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
  // Local development chains (anvil/hardhat default chain id).
  anvil: "eip155:31337",
};

export type V1NetworkNames = Readonly<Record<string, Network>>;

export function v1NameToNetwork(name: string, names: V1NetworkNames = V1_NETWORKS): Network | undefined {
  return Object.hasOwn(names, name) ? names[name] : undefined;
}

export function networkToV1Name(network: string, names: V1NetworkNames = V1_NETWORKS): string | undefined {
  for (const [name, id] of Object.entries(names)) if (id === network) return name;
  return undefined;
}

export function requirementsFromV1(r: PaymentRequirementsV1, network: Network): PaymentRequirements {
  return {
    scheme: r.scheme,
    network,
    amount: r.maxAmountRequired,
    asset: r.asset,
    payTo: r.payTo,
    maxTimeoutSeconds: r.maxTimeoutSeconds,
    ...(r.extra ? { extra: r.extra } : {}),
  };
}

export function requirementsToV1(r: PaymentRequirements, v1Name: string, resource: ResourceInfo): PaymentRequirementsV1 {
  return {
    scheme: r.scheme,
    network: v1Name,
    maxAmountRequired: r.amount,
    resource: resource.url,
    description: resource.description ?? "",
    mimeType: resource.mimeType ?? "",
    payTo: r.payTo,
    maxTimeoutSeconds: r.maxTimeoutSeconds,
    asset: r.asset,
    extra: r.extra ?? null,
  };
}

/** A v1 payload seen as v2: `accepted` is the requirement it was made for. */
export function payloadFromV1(p: PaymentPayloadV1, accepted: PaymentRequirements): PaymentPayload {
  return { x402Version: 2, accepted, payload: p.payload };
}

export function settleResponseToV1(r: SettleResponse, v1Name: string): SettleResponseV1 {
  const out: SettleResponseV1 = { success: r.success, transaction: r.transaction, network: v1Name };
  if (r.errorReason) out.errorReason = r.errorReason;
  if (r.payer) out.payer = r.payer;
  // Kept so a v1 caller (our paywall on a v1 route) still sees a pending hash or a replay mark.
  if (r.extensions) out.extensions = r.extensions;
  return out;
}
