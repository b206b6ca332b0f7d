import type { Address, PublicClient } from "viem";
import { reputationRegistryAbi } from "../abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "../addresses.ts";

/** Every address that ever gave feedback about the agent, in first-feedback order. */
export async function getClients(publicClient: PublicClient, params: { agentId: bigint; registry?: Address }): Promise<readonly Address[]> {
  return publicClient.readContract({
    address: params.registry ?? ERC8004_MAINNET_ADDRESSES.reputationRegistry,
    abi: reputationRegistryAbi,
    functionName: "getClients",
    args: [params.agentId],
  });
}
