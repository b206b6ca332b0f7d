/**
 * EIP-712 digest of an EIP-3009 `TransferWithAuthorization`, computed directly: the domain
 * separator is hashed once per (chain, token, name, version) and cached; per message only the
 * fixed 7-word struct and the final 0x1901 envelope are hashed. Equal to viem's
 * `hashTypedData` for the same domain and message (tested), at a fraction of the cost.
 */
import { keccak256Bytes } from "../crypto/keccak.ts";
import { hashDomain, hexToBytes, keccak256, toHex, type Address, type Hex } from "viem";
import type { TransferAuthorization } from "./payload.ts";

export interface Eip712TokenDomain {
  name: string;
  version: string;
  chainId: number;
  verifyingContract: Address;
}

const TRANSFER_WITH_AUTHORIZATION_TYPEHASH = hexToBytes(
  keccak256(toHex("TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)")),
);

const domainTypes = {
  EIP712Domain: [
    { name: "name", type: "string" },
    { name: "version", type: "string" },
    { name: "chainId", type: "uint256" },
    { name: "verifyingContract", type: "address" },
  ],
} as const;

// name/version come from requirements (outside input), so the cache is bounded.
const MAX_CACHED_DOMAINS = 1024;
const separators = new Map<string, { bytes: Uint8Array; hex: Hex }>();

/** The token's EIP-712 domain separator (cached). */
export function domainSeparator(domain: Eip712TokenDomain): { bytes: Uint8Array; hex: Hex } {
  const key = `${domain.chainId}|${domain.verifyingContract.toLowerCase()}|${domain.name.length}:${domain.name}|${domain.version}`;
  let hit = separators.get(key);
  if (!hit) {
    const hex = hashDomain({ domain: { ...domain, chainId: BigInt(domain.chainId) }, types: domainTypes });
    hit = { bytes: hexToBytes(hex), hex };
    if (separators.size >= MAX_CACHED_DOMAINS) separators.clear();
    separators.set(key, hit);
  }
  return hit;
}

/** keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(TransferWithAuthorization)). */
export function transferAuthorizationDigest(separator: Uint8Array, auth: TransferAuthorization): Uint8Array {
  const struct = new Uint8Array(7 * 32);
  struct.set(TRANSFER_WITH_AUTHORIZATION_TYPEHASH, 0);
  writeHex(struct, 32 + 12, auth.from, 40);
  writeHex(struct, 64 + 12, auth.to, 40);
  writeUint256(struct, 96, auth.value);
  writeUint256(struct, 128, auth.validAfter);
  writeUint256(struct, 160, auth.validBefore);
  writeHex(struct, 192, auth.nonce, 64);
  const envelope = new Uint8Array(66);
  envelope[0] = 0x19;
  envelope[1] = 0x01;
  envelope.set(separator, 2);
  envelope.set(keccak256Bytes(struct), 34);
  return keccak256Bytes(envelope);
}

/** Writes `digits` hex digits of a 0x-string (already validated) at `offset`. */
function writeHex(out: Uint8Array, offset: number, hex: string, digits: number) {
  if (hex.length !== digits + 2) throw new Error(`expected ${digits / 2} bytes of hex`);
  for (let i = 0; i < digits / 2; i++) {
    const byte = parseInt(hex.substr(2 + 2 * i, 2), 16);
    if (Number.isNaN(byte)) throw new Error("invalid hex");
    out[offset + i] = byte;
  }
}

const UINT256_MAX = (1n << 256n) - 1n;

function writeUint256(out: Uint8Array, offset: number, value: bigint) {
  if (value < 0n || value > UINT256_MAX) throw new Error("uint256 out of range");
  writeHex(out, offset, "0x" + value.toString(16).padStart(64, "0"), 64);
}
