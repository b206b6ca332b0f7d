/**
 * secp256k1 signing for the fee payer's own transactions: the settlement engine signs one
 * transaction per batch, over calldata that grows with the batch (tens of kilobytes), on the
 * same thread that answers /settle. viem's local account hashes with @noble/hashes and signs
 * with @noble/curves; libsecp256k1 and js-sha3 do the same work several times faster.
 *
 * Signatures are identical either way: both sides use RFC 6979 deterministic nonces and
 * low-s normalization, so a transaction signed here is byte-for-byte the one viem would sign
 * (the tests compare them).
 */
import { secp256k1 as nobleSecp256k1 } from "@noble/curves/secp256k1";
import { serializeTransaction, type Hex, type LocalAccount, type TransactionSerializable } from "viem";
import { privateKeyToAccount, toAccount } from "viem/accounts";
import { keccak256Bytes } from "./keccak.ts";
import { nativeSecp256k1 } from "./native.ts";
import { serializeEip1559 } from "./transaction.ts";

export interface DigestSignature {
  r: Hex;
  s: Hex;
  yParity: 0 | 1;
}

const native = nativeSecp256k1;

const hexOf = (bytes: Uint8Array): Hex => `0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")}`;

/** Signs a 32-byte digest: libsecp256k1 when its binding loads, @noble/curves otherwise. */
export const signDigest: (digest: Uint8Array, privateKey: Uint8Array) => DigestSignature = native
  ? (digest, privateKey) => {
      const { signature, recid } = native.ecdsaSign(digest, privateKey);
      return { r: hexOf(signature.subarray(0, 32)), s: hexOf(signature.subarray(32, 64)), yParity: recid === 1 ? 1 : 0 };
    }
  : (digest, privateKey) => {
      const sig = nobleSecp256k1.sign(digest, privateKey, { lowS: true });
      return { r: `0x${sig.r.toString(16).padStart(64, "0")}`, s: `0x${sig.s.toString(16).padStart(64, "0")}`, yParity: sig.recovery === 1 ? 1 : 0 };
    };

/** Which implementation `signDigest` uses. */
export const signBackend: "native" | "js" = native ? "native" : "js";

/** Bytes of a 0x-prefixed hex string (Buffer's native decoder; the input is our own serializer's output). */
export function hexBytes(hex: Hex): Uint8Array {
  return Buffer.from(hex.slice(2), "hex");
}

/** keccak-256 of a hex string, as hex (a transaction hash from its serialized bytes). */
export function keccak256Hex(hex: Hex): Hex {
  return hexOf(keccak256Bytes(hexBytes(hex)));
}

/**
 * A viem local account for a fee payer whose key we hold: transactions are signed through
 * `signDigest`; messages and typed data go to viem's own account (not on any hot path).
 * The key stays in this closure; the returned object does not expose it.
 */
export function fastLocalAccount(privateKey: Hex): LocalAccount {
  const base = privateKeyToAccount(privateKey);
  const key = hexBytes(privateKey);
  return toAccount({
    address: base.address,
    signMessage: (args) => base.signMessage(args),
    signTypedData: (args) => base.signTypedData(args as Parameters<typeof base.signTypedData>[0]),
    signAuthorization: base.signAuthorization,
    async signTransaction(transaction, options) {
      const tx = transaction as TransactionSerializable;
      // The engine's own transactions (plain EIP-1559 calls): serialized on Buffers, no hex round trips.
      const unsignedBytes = options?.serializer ? undefined : serializeEip1559(tx);
      if (unsignedBytes) return hexOf(serializeEip1559(tx, signDigest(keccak256Bytes(unsignedBytes), key))!);
      const serializer = options?.serializer ?? serializeTransaction;
      // The same steps as viem's signTransaction: hash the unsigned serialization, sign, re-serialize.
      const unsigned = await serializer(transaction as TransactionSerializable);
      const signature = signDigest(keccak256Bytes(hexBytes(unsigned)), key);
      return serializer(transaction as TransactionSerializable, signature);
    },
  }) as LocalAccount;
}
