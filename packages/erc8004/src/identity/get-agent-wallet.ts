import { zeroAddress, type Address, type PublicClient } from "viem";
import { identityRegistryAbi } from "../abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "../addresses.ts";

/** The agent's verified payout wallet, or undefined when unset (or cleared by a transfer). */
export async function getAgentWallet(
  publicClient: PublicClient,
  params: { agentId: bigint; registry?: `0x${string}` },
): Promise<Address | undefined> {
  const wallet = await publicClient.readContract({
    address: params.registry ?? ERC8004_MAINNET_ADDRESSES.identityRegistry,
    abi: identityRegistryAbi,
    functionName: "getAgentWallet",
    args: [params.agentId],
  });
  return wallet === zeroAddress ? undefined : wallet;
}
