import type { Address, PublicClient } from "viem";
import { reputationRegistryAbi } from "../abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "../addresses.ts";
import { formatFixedPoint } from "../value.ts";

export type ReputationSummary = { count: bigint; value: bigint; valueDecimals: number; decimal: string };

/**
 * The registry's on-chain average of live feedback from `clientAddresses` (required: choose the
 * clients you trust, e.g. those with proven payments) matching the optional tags.
 */
export async function getReputationSummary(
  publicClient: PublicClient,
  params: { agentId: bigint; clientAddresses: readonly Address[]; tag1?: string; tag2?: string; registry?: Address },
): Promise<ReputationSummary> {
  if (params.clientAddresses.length === 0) throw new Error("getReputationSummary: clientAddresses must not be empty");
  const [count, value, valueDecimals] = await publicClient.readContract({
    address: params.registry ?? ERC8004_MAINNET_ADDRESSES.reputationRegistry,
    abi: reputationRegistryAbi,
    functionName: "getSummary",
    args: [params.agentId, params.clientAddresses, params.tag1 ?? "", params.tag2 ?? ""],
  });
  return { count, value, valueDecimals, decimal: formatFixedPoint(value, valueDecimals) };
}
