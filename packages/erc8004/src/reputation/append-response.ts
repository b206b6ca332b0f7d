import { zeroHash, type Address, type Hex } from "viem";
import { reputationRegistryAbi } from "../abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "../addresses.ts";
import { sendContractWrite, type Erc8004Clients, type WriteResult } from "../write.ts";

/** Appends a response (refund proof, rebuttal, spam tag...) to a client's feedback; anyone may. */
export async function appendResponse(
  clients: Erc8004Clients,
  params: { agentId: bigint; clientAddress: Address; feedbackIndex: bigint; responseUri: string; responseHash?: Hex; registry?: Address },
): Promise<WriteResult> {
  return sendContractWrite(clients, {
    address: params.registry ?? ERC8004_MAINNET_ADDRESSES.reputationRegistry,
    abi: reputationRegistryAbi,
    functionName: "appendResponse",
    args: [params.agentId, params.clientAddress, params.feedbackIndex, params.responseUri, params.responseHash ?? zeroHash],
  });
}
