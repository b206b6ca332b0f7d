import { BaseError, ContractFunctionRevertedError, type Address, type PublicClient } from "viem";
import { identityRegistryAbi } from "../abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "../addresses.ts";
import { getAgentWallet } from "./get-agent-wallet.ts";

export type AgentRecord = { agentId: bigint; owner: Address; uri: string; wallet: Address | undefined };

/** Owner, registration URI and verified wallet of an agent; `{ found: false }` for an unknown id. */
export async function readAgent(
  publicClient: PublicClient,
  params: { agentId: bigint; registry?: `0x${string}` },
): Promise<({ found: true } & AgentRecord) | { found: false; agentId: bigint }> {
  const address = params.registry ?? ERC8004_MAINNET_ADDRESSES.identityRegistry;
  let owner: Address;
  try {
    owner = await publicClient.readContract({ address, abi: identityRegistryAbi, functionName: "ownerOf", args: [params.agentId] });
  } catch (error) {
    const reverted = error instanceof BaseError && error.walk((e) => e instanceof ContractFunctionRevertedError);
    if (reverted) return { found: false, agentId: params.agentId };
    throw error;
  }
  const [uri, wallet] = await Promise.all([
    publicClient.readContract({ address, abi: identityRegistryAbi, functionName: "tokenURI", args: [params.agentId] }),
    getAgentWallet(publicClient, { agentId: params.agentId, registry: address }),
  ]);
  return { found: true, agentId: params.agentId, owner, uri, wallet };
}
