/**
 * The `exact` EVM payload (EIP-3009 asset transfer method) and its runtime schema.
 * On the wire every number is a decimal string; the nonce is 32 bytes of hex.
 */
import { isAtomic, parseWith, type ParseResult } from "@tollgate/core";
import { isAddress, type Address, type Hex } from "viem";
import { z } from "zod";

export interface ExactEvmAuthorization {
  from: Address;
  to: Address;
  /** Atomic units, decimal string. */
  value: string;
  /** Unix seconds, decimal string. */
  validAfter: string;
  /** Unix seconds, decimal string. */
  validBefore: string;
  /** 32 random bytes, 0x-hex. */
  nonce: Hex;
}

export interface ExactEvmPayload {
  signature: Hex;
  authorization: ExactEvmAuthorization;
}

/** The message as signed (numbers as bigint). */
export interface TransferAuthorization {
  from: Address;
  to: Address;
  value: bigint;
  validAfter: bigint;
  validBefore: bigint;
  nonce: Hex;
}

const address = z.string().refine((v) => isAddress(v, { strict: false }), "expected a 0x-prefixed 20-byte address");
const uint = z.string().refine(isAtomic, "expected a non-negative integer string (at most uint256)");
const nonce = z.string().regex(/^0x[0-9a-fA-F]{64}$/, "expected 0x followed by 32 bytes of hex");
// 65 bytes for an ECDSA signature; longer for ERC-1271 / ERC-6492 smart-wallet signatures.
const signature = z
  .string()
  .regex(/^0x([0-9a-fA-F]{2})*$/, "expected 0x-prefixed hex bytes")
  .refine((v) => v.length >= 2 + 130, "expected at least 65 bytes")
  .refine((v) => v.length <= 2 + 2 * 8192, "is too long (more than 8192 bytes)");

export const exactEvmPayloadSchema = z.looseObject({
  signature,
  authorization: z.looseObject({
    from: address,
    to: address,
    value: uint,
    validAfter: uint,
    validBefore: uint,
    nonce,
  }),
});

/** Validates an untrusted `payload`; errors name the field, e.g. `paymentPayload.payload.authorization.value: ...`. */
export function parseExactEvmPayload(value: unknown, root = "paymentPayload.payload"): ParseResult<ExactEvmPayload> {
  return parseWith<ExactEvmPayload>(exactEvmPayloadSchema, value, root);
}

/** The message as signed, from the wire form (decimal strings) or numbers already parsed. */
export function toTransferAuthorization(a: { from: Address; to: Address; value: bigint | string; validAfter: bigint | string; validBefore: bigint | string; nonce: Hex }): TransferAuthorization {
  return {
    from: a.from,
    to: a.to,
    value: BigInt(a.value),
    validAfter: BigInt(a.validAfter),
    validBefore: BigInt(a.validBefore),
    nonce: a.nonce,
  };
}
