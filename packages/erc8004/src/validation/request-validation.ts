import { keccak256, toBytes, type Address, type Hex } from "viem";
import { validationRegistryAbi } from "../abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "../addresses.ts";
import { sendContractWrite, type Erc8004Clients, type WriteResult } from "../write.ts";

export type RequestValidationParams = {
  agentId: bigint;
  validator: Address;
  /** Where the validator finds what to check (inputs, outputs, traces). */
  requestUri: string;
  /** Commitment to the request payload; default keccak256 of the UTF-8 `requestUri`. Must be unused. */
  requestHash?: Hex;
  registry?: Address;
};

/** Asks `validator` to validate the agent's work; sent by the agent's owner or operator. */
export async function requestValidation(clients: Erc8004Clients, p: RequestValidationParams): Promise<WriteResult<{ requestHash: Hex }>> {
  const requestHash = p.requestHash ?? keccak256(toBytes(p.requestUri));
  const sent = await sendContractWrite(clients, {
    address: p.registry ?? ERC8004_MAINNET_ADDRESSES.validationRegistry,
    abi: validationRegistryAbi,
    functionName: "validationRequest",
    args: [p.validator, p.agentId, p.requestUri, requestHash],
  });
  return sent.ok ? { ...sent, requestHash } : sent;
}
