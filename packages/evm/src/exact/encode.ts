/**
 * The one encoder of the EIP-3009 `transferWithAuthorization` call, used by every path that
 * puts an authorization on chain or simulates it: the exact scheme's dry run, its built-in
 * broadcast, the settlement engine's single sends and its BatchSettler batches.
 *
 * Why one: an ECDSA signature may carry its recovery id as v = 0/1 (y-parity) or 27/28. The
 * (v, r, s) overload takes v as a number, so either form can be mapped; the `bytes` overload
 * (which BatchSettler calls) hands the raw 65 bytes to the token, whose ecrecover accepts only
 * 27/28. Three encoders that each decided this on their own let a v = 0/1 signature pass verify
 * and the single path but fail inside every batch. Here v is normalized once, for every path.
 */
import { encodeFunctionData, type Address, type Hex } from "viem";
import { batchSettlerAbi, eip3009Abi } from "../contracts/abi.ts";
import { encodeTransferVrs } from "./abi-fast.ts";
import { toTransferAuthorization } from "./payload.ts";

/** An authorization with numbers as bigint or decimal strings (the wire form). */
export interface AuthorizationFields {
  from: Address;
  to: Address;
  value: bigint | string;
  validAfter: bigint | string;
  validBefore: bigint | string;
  nonce: Hex;
}

export interface EncodeOptions {
  /**
   * False for a contract-wallet (ERC-1271) signature: it goes through the `bytes` overload
   * untouched (the wallet decides what its bytes mean). Default: ECDSA when 65 bytes long.
   */
  ecdsa?: boolean;
}

/**
 * A 65-byte ECDSA signature with v as 27/28: what the token's ecrecover (and OpenZeppelin's
 * ECDSA) accept. v = 0/1 is y-parity (EIP-2098 style wallets, some signers): 27 + parity.
 * Other lengths, and v values that are neither, are returned as they are (verify refuses them).
 */
export function normalizeSignature(signature: Hex): Hex {
  if (signature.length !== 132) return signature;
  const v = signature.slice(130, 132);
  if (v === "00") return `${signature.slice(0, 130)}1b` as Hex;
  if (v === "01") return `${signature.slice(0, 130)}1c` as Hex;
  return signature;
}

function isEcdsa(signature: Hex, options: EncodeOptions | undefined): boolean {
  return options?.ecdsa ?? signature.length === 132;
}


/**
 * Calldata of `transferWithAuthorization` on the token: the (v, r, s) overload for ECDSA
 * signatures (every USDC version has it; v normalized), the `bytes` overload otherwise.
 * Addresses must be checksummed or lower-case (the fast path does not re-check a checksum).
 */
export function encodeTransferWithAuthorization(authorization: AuthorizationFields, signature: Hex, options?: EncodeOptions): Hex {
  const auth = toTransferAuthorization(authorization);
  if (isEcdsa(signature, options)) {
    // Hand-written (tested equal to viem's); undefined only for input viem would refuse too.
    const fast = encodeTransferVrs(auth, signature);
    if (fast) return fast;
    const sig = normalizeSignature(signature);
    const v = parseInt(sig.slice(130, 132), 16);
    const r = `0x${sig.slice(2, 66)}` as Hex;
    const s = `0x${sig.slice(66, 130)}` as Hex;
    return encodeFunctionData({
      abi: eip3009Abi,
      functionName: "transferWithAuthorization",
      args: [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, v, r, s],
    });
  }
  return encodeFunctionData({
    abi: eip3009Abi,
    functionName: "transferWithAuthorization",
    args: [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, signature],
  });
}

/** One item of `BatchSettler.settle`: the settler calls the token's `bytes` overload, so v is normalized here. */
export function batchSettleItem(authorization: AuthorizationFields, signature: Hex, options?: EncodeOptions) {
  const auth = toTransferAuthorization(authorization);
  return { ...auth, signature: isEcdsa(signature, options) ? normalizeSignature(signature) : signature };
}

/** Calldata of `BatchSettler.settle(token, items)`. */
export function encodeBatchSettle(token: Address, items: ReadonlyArray<{ authorization: AuthorizationFields; signature: Hex; ecdsa?: boolean }>): Hex {
  return encodeFunctionData({
    abi: batchSettlerAbi,
    functionName: "settle",
    args: [token, items.map((i) => batchSettleItem(i.authorization, i.signature, i.ecdsa === undefined ? undefined : { ecdsa: i.ecdsa }))],
  });
}
