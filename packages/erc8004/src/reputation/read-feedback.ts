import { BaseError, ContractFunctionRevertedError, type Address, type PublicClient } from "viem";
import { reputationRegistryAbi } from "../abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "../addresses.ts";
import { formatFixedPoint } from "../value.ts";

export type FeedbackRecord = {
  value: bigint;
  valueDecimals: number;
  /** The value as a decimal string, e.g. "99.77". */
  decimal: string;
  tag1: string;
  tag2: string;
  isRevoked: boolean;
};

/** One stored feedback entry; `{ found: false }` when the index does not exist. */
export async function readFeedback(
  publicClient: PublicClient,
  params: { agentId: bigint; clientAddress: Address; feedbackIndex: bigint; registry?: Address },
): Promise<({ found: true } & FeedbackRecord) | { found: false }> {
  try {
    const [value, valueDecimals, tag1, tag2, isRevoked] = await publicClient.readContract({
      address: params.registry ?? ERC8004_MAINNET_ADDRESSES.reputationRegistry,
      abi: reputationRegistryAbi,
      functionName: "readFeedback",
      args: [params.agentId, params.clientAddress, params.feedbackIndex],
    });
    return { found: true, value, valueDecimals, decimal: formatFixedPoint(value, valueDecimals), tag1, tag2, isRevoked };
  } catch (error) {
    if (error instanceof BaseError && error.walk((e) => e instanceof ContractFunctionRevertedError)) return { found: false };
    throw error;
  }
}
