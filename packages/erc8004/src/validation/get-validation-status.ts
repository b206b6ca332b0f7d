import { BaseError, ContractFunctionRevertedError, type Address, type Hex, type PublicClient } from "viem";
import { validationRegistryAbi } from "../abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "../addresses.ts";

export type ValidationStatus = {
  requestHash: Hex;
  validator: Address;
  agentId: bigint;
  /** 0..100; 0 also while unanswered (check `lastUpdate` against the request, or the events). */
  response: number;
  responseHash: Hex;
  tag: string;
  /** Unix seconds of the request or of the latest response. */
  lastUpdate: bigint;
};

/** The state of one validation request; `{ found: false }` for a hash never requested. */
export async function getValidationStatus(
  publicClient: PublicClient,
  params: { requestHash: Hex; registry?: Address },
): Promise<({ found: true } & ValidationStatus) | { found: false; requestHash: Hex }> {
  try {
    const [validator, agentId, response, responseHash, tag, lastUpdate] = await publicClient.readContract({
      address: params.registry ?? ERC8004_MAINNET_ADDRESSES.validationRegistry,
      abi: validationRegistryAbi,
      functionName: "getValidationStatus",
      args: [params.requestHash],
    });
    return { found: true, requestHash: params.requestHash, validator, agentId, response, responseHash, tag, lastUpdate };
  } catch (error) {
    if (error instanceof BaseError && error.walk((e) => e instanceof ContractFunctionRevertedError)) return { found: false, requestHash: params.requestHash };
    throw error;
  }
}
