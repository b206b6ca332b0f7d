import type { Address } from "viem";
import { identityRegistryAbi } from "../abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "../addresses.ts";
import { sendContractWrite, type Erc8004Clients, type WriteResult } from "../write.ts";

/** Clears the agent's verified wallet (owner or operator only). */
export async function unsetAgentWallet(clients: Erc8004Clients, params: { agentId: bigint; registry?: Address }): Promise<WriteResult> {
  return sendContractWrite(clients, {
    address: params.registry ?? ERC8004_MAINNET_ADDRESSES.identityRegistry,
    abi: identityRegistryAbi,
    functionName: "unsetAgentWallet",
    args: [params.agentId],
  });
}
