/**
 * The one encoder of the x402 upto Permit2 proxy calls: `settle(permit, amount, owner, witness,
 * signature)` and `settleWithPermit` (eip2612GasSponsoring). The dry run (for the signed maximum)
 * and the settlement (for the charge) both go through here.
 */
import { encodeFunctionData, type Hex } from "viem";
import { uptoPermit2ProxyAbi } from "../contracts/permit2-abi.ts";
import { normalizeSignature } from "../exact/encode.ts";
import { permit2612Tuple, type Eip2612Permit } from "../exact/permit2-encode.ts";
import type { Permit2Authorization } from "../exact/permit2-payload.ts";

function settleArgs(a: Permit2Authorization, signature: Hex, amount: bigint) {
  const facilitator = a.witness.facilitator;
  if (!facilitator) throw new Error("permit2Authorization.witness.facilitator: required by the upto scheme");
  return [
    { permitted: { token: a.permitted.token, amount: BigInt(a.permitted.amount) }, nonce: BigInt(a.nonce), deadline: BigInt(a.deadline) },
    amount,
    a.from,
    { to: a.witness.to, facilitator, validAfter: BigInt(a.witness.validAfter) },
    normalizeSignature(signature),
  ] as const;
}

/** Calldata settling `amount` (≤ permitted.amount) of `a`: `settleWithPermit` when an EIP-2612 permit rides along. */
export function encodeUptoSettle(a: Permit2Authorization, signature: Hex, amount: bigint, permit?: Eip2612Permit): Hex {
  if (!permit) return encodeFunctionData({ abi: uptoPermit2ProxyAbi, functionName: "settle", args: settleArgs(a, signature, amount) });
  return encodeFunctionData({ abi: uptoPermit2ProxyAbi, functionName: "settleWithPermit", args: [permit2612Tuple(permit), ...settleArgs(a, signature, amount)] });
}
