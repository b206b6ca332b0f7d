import { zeroHash, type Address, type Hex } from "viem";
import { validationRegistryAbi } from "../abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "../addresses.ts";
import { sendContractWrite, type Erc8004Clients, type WriteResult } from "../write.ts";

export type RespondValidationParams = {
  requestHash: Hex;
  /** 0 (failed) ... 100 (passed); intermediate values for soft or progressive verdicts. */
  response: number;
  responseUri?: string;
  responseHash?: Hex;
  tag?: string;
  registry?: Address;
};

/** The requested validator's verdict; may be sent again to update it. */
export async function respondValidation(clients: Erc8004Clients, p: RespondValidationParams): Promise<WriteResult> {
  if (!Number.isInteger(p.response) || p.response < 0 || p.response > 100) {
    return { ok: false, reason: "ResponseOutOfRange", detail: `response must be an integer 0..100, got ${p.response}` };
  }
  return sendContractWrite(clients, {
    address: p.registry ?? ERC8004_MAINNET_ADDRESSES.validationRegistry,
    abi: validationRegistryAbi,
    functionName: "validationResponse",
    args: [p.requestHash, p.response, p.responseUri ?? "", p.responseHash ?? zeroHash, p.tag ?? ""],
  });
}
