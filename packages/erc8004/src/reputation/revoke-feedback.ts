import type { Address } from "viem";
import { reputationRegistryAbi } from "../abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "../addresses.ts";
import { sendContractWrite, type Erc8004Clients, type WriteResult } from "../write.ts";

/** Revokes the wallet account's own feedback `feedbackIndex` about `agentId`. */
export async function revokeFeedback(
  clients: Erc8004Clients,
  params: { agentId: bigint; feedbackIndex: bigint; registry?: Address },
): Promise<WriteResult> {
  return sendContractWrite(clients, {
    address: params.registry ?? ERC8004_MAINNET_ADDRESSES.reputationRegistry,
    abi: reputationRegistryAbi,
    functionName: "revokeFeedback",
    args: [params.agentId, params.feedbackIndex],
  });
}
