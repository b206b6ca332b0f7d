/**
 * Hand-written ABI encoders and decoders for the few fixed shapes on the verify hot path
 * (aggregate3, transferWithAuthorization with v/r/s, a uint256 or bool return). viem's generic
 * coder walks the ABI per call; these write the words directly. Each one produces exactly what
 * viem produces (tested against it), and anything outside the shape it knows falls back to
 * viem, so errors and edge cases stay viem's. Addresses must come checksummed or lowercase
 * (getAddress output): unlike viem, these do not re-check a mixed-case checksum.
 */
import { decodeFunctionResult, encodeFunctionData, toFunctionSelector, type Address, type Hex } from "viem";
import { eip3009Abi, multicall3Abi } from "../contracts/abi.ts";
import type { TransferAuthorization } from "./payload.ts";

const AGGREGATE3 = toFunctionSelector("aggregate3((address,bool,bytes)[])");
const TRANSFER_VRS = toFunctionSelector("transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)");
const UINT256_MAX = (1n << 256n) - 1n;
const HEX = /^0x[0-9a-fA-F]*$/;
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const BYTES32 = /^0x[0-9a-fA-F]{64}$/;
const ZEROS = "0".repeat(64);

const word = (n: number) => n.toString(16).padStart(64, "0");
const uint = (n: bigint) => n.toString(16).padStart(64, "0");

/** `aggregate3(calls)` with every call `allowFailure: true`. */
export function encodeAggregate3(calls: readonly { target: Address; callData: Hex }[]): Hex {
  let ok = true;
  for (const c of calls) if (!ADDRESS.test(c.target) || !HEX.test(c.callData) || c.callData.length % 2 !== 0) ok = false;
  if (!ok) {
    return encodeFunctionData({
      abi: multicall3Abi,
      functionName: "aggregate3",
      args: [calls.map(({ target, callData }) => ({ target, allowFailure: true, callData }))],
    });
  }
  const n = calls.length;
  const heads: string[] = new Array(n);
  const tails: string[] = new Array(n);
  let offset = n * 32;
  for (let i = 0; i < n; i++) {
    const { target, callData } = calls[i]!;
    const bytes = (callData.length - 2) / 2;
    const padded = Math.ceil(bytes / 32) * 64;
    const body = callData.slice(2);
    heads[i] = word(offset);
    tails[i] =
      "000000000000000000000000" + target.slice(2).toLowerCase() + word(1) + word(0x60) + word(bytes) + body + ZEROS.slice(0, padded - body.length);
    offset += 4 * 32 + padded / 2;
  }
  return `${AGGREGATE3}${word(0x20)}${word(n)}${heads.join("")}${tails.join("")}` as Hex;
}

/** The results of an aggregate3 eth_call. */
export function decodeAggregate3(data: Hex): { success: boolean; returnData: Hex }[] {
  const fast = tryDecodeAggregate3(data);
  if (fast) return fast;
  const decoded = decodeFunctionResult({ abi: multicall3Abi, functionName: "aggregate3", data });
  return decoded.map((r) => ({ success: r.success, returnData: r.returnData }));
}

/** Strict canonical-layout decoder; undefined when anything differs (viem then decides). */
function tryDecodeAggregate3(data: string): { success: boolean; returnData: Hex }[] | undefined {
  if (!HEX.test(data) || data.length % 64 !== 2) return undefined;
  const h = data.slice(2);
  const bytes = h.length / 2;
  const read = (at: number): number | undefined => {
    if (at < 0 || at + 32 > bytes) return undefined;
    const w = h.slice(at * 2, at * 2 + 64);
    if (!w.startsWith("0000000000000000000000000000000000000000000000")) return undefined; // < 2^72: sane sizes only
    return parseInt(w.slice(46), 16);
  };
  if (read(0) !== 0x20) return undefined;
  const n = read(0x20);
  if (n === undefined || 0x40 + n * 32 > bytes) return undefined;
  const base = 0x40;
  const out: { success: boolean; returnData: Hex }[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const rel = read(base + i * 32);
    if (rel === undefined) return undefined;
    const tuple = base + rel;
    const success = read(tuple);
    if (success !== 0 && success !== 1) return undefined;
    if (read(tuple + 32) !== 0x40) return undefined;
    const len = read(tuple + 64);
    if (len === undefined || tuple + 96 + len > bytes) return undefined;
    out[i] = { success: success === 1, returnData: `0x${h.slice((tuple + 96) * 2, (tuple + 96 + len) * 2)}` as Hex };
  }
  return out;
}

/** `transferWithAuthorization(from, to, value, validAfter, validBefore, nonce, v, r, s)` from a 65-byte signature. */
export function encodeTransferVrs(auth: TransferAuthorization, signature: Hex): Hex | undefined {
  if (signature.length !== 132 || !HEX.test(signature)) return undefined;
  if (!ADDRESS.test(auth.from) || !ADDRESS.test(auth.to) || !BYTES32.test(auth.nonce)) return undefined;
  for (const x of [auth.value, auth.validAfter, auth.validBefore]) if (x < 0n || x > UINT256_MAX) return undefined;
  const v = parseInt(signature.slice(130, 132), 16);
  // viem's parseSignature: 0/1 are y-parity, 27/28 are v; anything else it refuses.
  const v8 = v === 0 || v === 1 ? 27 + v : v === 27 || v === 28 ? v : undefined;
  if (v8 === undefined) return undefined;
  return `${TRANSFER_VRS}000000000000000000000000${auth.from.slice(2).toLowerCase()}000000000000000000000000${auth.to.slice(2).toLowerCase()}${uint(auth.value)}${uint(auth.validAfter)}${uint(auth.validBefore)}${auth.nonce.slice(2)}${word(v8)}${signature.slice(2, 130).toLowerCase()}` as Hex;
}

/** A `uint256` return (balanceOf), as viem's decodeFunctionResult would give it. */
export function decodeUint256Result(data: Hex, functionName: "balanceOf"): bigint {
  if (data.length >= 66 && HEX.test(data)) return BigInt(data.slice(0, 66));
  return decodeFunctionResult({ abi: eip3009Abi, functionName, data }) as bigint;
}

/** A `bool` return (authorizationState), as viem's decodeFunctionResult would give it. */
export function decodeBoolResult(data: Hex, functionName: "authorizationState"): boolean {
  if (data.length >= 66 && HEX.test(data)) {
    const w = data.slice(2, 66);
    if (w === ZEROS) return false;
    if (w === ZEROS.slice(1) + "1") return true;
  }
  return decodeFunctionResult({ abi: eip3009Abi, functionName, data }) as boolean;
}

const BATCH_SETTLE = toFunctionSelector("settle(address,(address,address,uint256,uint256,uint256,bytes32,bytes)[])");

/**
 * The token and each item's (from, nonce) of a BatchSettler `settle(token, items)` call: what
 * identifies the payments a signed transaction carries (the facilitator's write-ahead record).
 * Reads only the words it needs; undefined when the data is not such a call or any offset
 * points outside it (callers then use viem's decoder, which explains what is wrong).
 */
export function decodeBatchSettleKeys(data: Hex): { token: Address; items: Array<{ from: Address; nonce: Hex }> } | undefined {
  if (data.length < 10 + 64 * 3 || data.slice(0, 10).toLowerCase() !== BATCH_SETTLE || (data.length - 10) % 64 !== 0) return undefined;
  const words = (data.length - 10) / 64;
  const at = (i: number): string | undefined => (i >= 0 && i < words ? data.slice(10 + 64 * i, 74 + 64 * i) : undefined);
  const num = (i: number): number | undefined => {
    const w = at(i);
    if (w === undefined || !w.startsWith("0".repeat(48))) return undefined; // far beyond any calldata size
    const n = parseInt(w.slice(48), 16);
    return n % 32 === 0 ? n / 32 : undefined; // offsets are whole words in this layout
  };
  const address = (i: number): Address | undefined => {
    const w = at(i);
    return w !== undefined && w.startsWith("0".repeat(24)) ? (`0x${w.slice(24).toLowerCase()}` as Address) : undefined;
  };
  const token = address(0);
  const arrayAt = num(1);
  if (token === undefined || arrayAt === undefined) return undefined;
  const length = at(arrayAt);
  if (length === undefined || !length.startsWith("0".repeat(56))) return undefined;
  const n = parseInt(length, 16);
  const items: Array<{ from: Address; nonce: Hex }> = [];
  for (let k = 0; k < n; k++) {
    const rel = num(arrayAt + 1 + k);
    if (rel === undefined) return undefined;
    const tuple = arrayAt + 1 + rel;
    const from = address(tuple);
    const nonce = at(tuple + 5);
    // The signature (bytes, by offset from the tuple) must lie inside the data too.
    const signatureRel = num(tuple + 6);
    const signatureLength = signatureRel === undefined ? undefined : at(tuple + signatureRel);
    if (from === undefined || nonce === undefined || signatureLength === undefined || !signatureLength.startsWith("0".repeat(56))) return undefined;
    if (tuple + signatureRel! + 1 + Math.ceil(parseInt(signatureLength, 16) / 32) > words) return undefined;
    items.push({ from, nonce: `0x${nonce.toLowerCase()}` });
  }
  return { token, items };
}
