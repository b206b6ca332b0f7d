/**
 * keccak-256 of bytes. js-sha3 is ~3x faster than @noble/hashes on the short inputs of the
 * verify hot path (EIP-712 struct, envelope, public key); noble stays as the fallback.
 */
import { createRequire } from "node:module";
import { keccak_256 } from "@noble/hashes/sha3";

type JsSha3 = typeof import("js-sha3");

function loadJsSha3(): JsSha3["keccak256"] | undefined {
  try {
    const k = (createRequire(import.meta.url)("js-sha3") as JsSha3).keccak256;
    return typeof k?.arrayBuffer === "function" ? k : undefined;
  } catch {
    return undefined;
  }
}

const jsSha3 = loadJsSha3();

export const keccak256Bytes: (data: Uint8Array) => Uint8Array = jsSha3 ? (data) => new Uint8Array(jsSha3.arrayBuffer(data)) : (data) => keccak_256(data);
