import type { Hex } from "viem";
import { identityRegistryAbi } from "../abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "../addresses.ts";
import { sendContractWrite, type Erc8004Clients, type WriteResult } from "../write.ts";
import { metadataBytes } from "./register-agent.ts";

/** Stores one metadata entry (a string as UTF-8, or raw bytes). The key "agentWallet" is refused. */
export async function setAgentMetadata(
  clients: Erc8004Clients,
  params: { agentId: bigint; key: string; value: string | { hex: Hex }; registry?: `0x${string}` },
): Promise<WriteResult> {
  return sendContractWrite(clients, {
    address: params.registry ?? ERC8004_MAINNET_ADDRESSES.identityRegistry,
    abi: identityRegistryAbi,
    functionName: "setMetadata",
    args: [params.agentId, params.key, metadataBytes(params.value)],
  });
}
