import { identityRegistryAbi } from "../abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "../addresses.ts";
import { sendContractWrite, type Erc8004Clients, type WriteResult } from "../write.ts";

/** Points the agent at a new registration file (owner, operator or approved address only). */
export async function setAgentUri(
  clients: Erc8004Clients,
  params: { agentId: bigint; uri: string; registry?: `0x${string}` },
): Promise<WriteResult> {
  return sendContractWrite(clients, {
    address: params.registry ?? ERC8004_MAINNET_ADDRESSES.identityRegistry,
    abi: identityRegistryAbi,
    functionName: "setAgentURI",
    args: [params.agentId, params.uri],
  });
}
