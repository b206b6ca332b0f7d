/**
 * secp256k1 public-key recovery for signature checks on the hot path of verify.
 *
 * libsecp256k1 (native.ts) is ~10x faster than pure JS; without its binding, recovery uses
 * @noble/curves (what viem uses). `recoverBackend` says which one is active.
 *
 * Both take the 32-byte digest and a 65-byte r‖s‖v signature and answer the signer's address,
 * or undefined when no key recovers. Neither judges malleability (high s): callers check
 * that first, identically for both backends.
 */
import { secp256k1 as nobleSecp256k1 } from "@noble/curves/secp256k1";
import { keccak256Bytes } from "./keccak.ts";
import { nativeSecp256k1 } from "./native.ts";
import type { Address } from "viem";

export type RecoverAddress = (digest: Uint8Array, signature: Uint8Array) => Address | undefined;

const native = nativeSecp256k1;

/** Recovery id 0/1 from v (0, 1, 27, 28); undefined otherwise. */
function recoveryId(v: number): number | undefined {
  if (v === 0 || v === 1) return v;
  if (v === 27 || v === 28) return v - 27;
  return undefined;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Lowercase address from a 65-byte uncompressed public key (0x04‖x‖y): last 20 bytes of keccak(x‖y). */
function addressOfPublicKey(uncompressed: Uint8Array): Address {
  const hash = keccak256Bytes(uncompressed.subarray(1));
  let out = "0x";
  for (let i = 12; i < 32; i++) out += HEX[hash[i]!];
  return out as Address;
}

function checkInputs(digest: Uint8Array, signature: Uint8Array): number | undefined {
  if (digest.length !== 32 || signature.length !== 65) return undefined;
  return recoveryId(signature[64]!);
}

/** libsecp256k1 (native); undefined when the binding did not load. */
export const recoverAddressNative: RecoverAddress | undefined = native
  ? (digest, signature) => {
      const recid = checkInputs(digest, signature);
      if (recid === undefined) return undefined;
      try {
        return addressOfPublicKey(native.ecdsaRecover(signature.subarray(0, 64), recid, digest, false));
      } catch {
        return undefined; // r is not an x coordinate on the curve, r or s out of range, ...
      }
    }
  : undefined;

/** @noble/curves (pure JS). */
export const recoverAddressJs: RecoverAddress = (digest, signature) => {
  const recid = checkInputs(digest, signature);
  if (recid === undefined) return undefined;
  try {
    const r = bytesToBigInt(signature.subarray(0, 32));
    const s = bytesToBigInt(signature.subarray(32, 64));
    const point = new nobleSecp256k1.Signature(r, s).addRecoveryBit(recid).recoverPublicKey(digest);
    return addressOfPublicKey(point.toRawBytes(false));
  } catch {
    return undefined;
  }
};

function bytesToBigInt(bytes: Uint8Array): bigint {
  let hex = "0x";
  for (const b of bytes) hex += HEX[b];
  return BigInt(hex);
}

/** Which implementation `recoverAddress` uses. */
export const recoverBackend: "native" | "js" = recoverAddressNative ? "native" : "js";

/** The fastest available recovery: signer address (lowercase) of `digest` under a 65-byte signature. */
export const recoverAddress: RecoverAddress = recoverAddressNative ?? recoverAddressJs;

/** Both backends by name (the JS one always; native when loaded), for benchmarks and equivalence tests. */
export const ecdsaRecoverers: { native: RecoverAddress | undefined; js: RecoverAddress } = { native: recoverAddressNative, js: recoverAddressJs };
