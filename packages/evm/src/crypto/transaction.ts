/**
 * EIP-1559 transaction serialization (type 0x02, RLP) straight into a Buffer. The settlement
 * engine serializes twice per batch (unsigned for the hash, signed for the wire) over calldata
 * of tens of kilobytes; viem's serializer goes through hex strings and costs more than the
 * signature itself. Only what the engine sends is handled here (no access list, no blobs);
 * `serializeEip1559` answers undefined for anything else and callers use viem's serializer.
 */
import type { Hex, TransactionSerializable } from "viem";
import type { DigestSignature } from "./sign.ts";

/** Minimal big-endian bytes of a non-negative integer (0 → empty, as RLP wants). */
function intBytes(value: bigint | number): Buffer {
  const v = BigInt(value);
  if (v < 0n) throw new RangeError("transaction field: negative integer");
  if (v === 0n) return Buffer.alloc(0);
  let hex = v.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return Buffer.from(hex, "hex");
}

function hexField(hex: Hex): Buffer {
  return Buffer.from(hex.length % 2 ? `0${hex.slice(2)}` : hex.slice(2), "hex");
}

/** A hex quantity (r, s) as an integer: leading zero bytes dropped. */
function trimmed(hex: Hex): Buffer {
  const b = hexField(hex);
  let i = 0;
  while (i < b.length && b[i] === 0) i++;
  return b.subarray(i);
}

function lengthPrefix(length: number, short: number, long: number): Buffer {
  if (length <= 55) return Buffer.from([short + length]);
  const len = intBytes(length);
  return Buffer.concat([Buffer.from([long + len.length]), len]);
}

function rlpBytes(b: Buffer): Buffer[] {
  if (b.length === 1 && b[0]! < 0x80) return [b];
  return [lengthPrefix(b.length, 0x80, 0xb7), b];
}

/** Type-2 serialization, unsigned or signed; undefined when the transaction is not a plain EIP-1559 call. */
export function serializeEip1559(tx: TransactionSerializable, signature?: DigestSignature): Buffer | undefined {
  if (tx.type !== "eip1559" || tx.chainId === undefined || tx.nonce === undefined || tx.gas === undefined || !tx.to) return undefined;
  if ((tx.accessList && tx.accessList.length > 0) || "authorizationList" in tx || "blobs" in tx || "sidecars" in tx) return undefined;
  if (tx.maxFeePerGas === undefined || tx.maxPriorityFeePerGas === undefined) return undefined;
  const fields: Buffer[] = [
    intBytes(tx.chainId),
    intBytes(tx.nonce),
    intBytes(tx.maxPriorityFeePerGas),
    intBytes(tx.maxFeePerGas),
    intBytes(tx.gas),
    hexField(tx.to),
    intBytes(tx.value ?? 0n),
    tx.data ? hexField(tx.data) : Buffer.alloc(0),
  ];
  // The access list is an empty RLP list, not an empty string: encoded by hand below.
  const parts = fields.flatMap(rlpBytes);
  parts.push(Buffer.from([0xc0]));
  if (signature) parts.push(...rlpBytes(intBytes(signature.yParity)), ...rlpBytes(trimmed(signature.r)), ...rlpBytes(trimmed(signature.s)));
  const payload = parts.reduce((n, p) => n + p.length, 0);
  return Buffer.concat([Buffer.from([0x02]), lengthPrefix(payload, 0xc0, 0xf7), ...parts]);
}
