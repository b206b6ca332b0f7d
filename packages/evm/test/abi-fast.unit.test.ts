import { describe, expect, it } from "vitest";
import { decodeFunctionResult, encodeAbiParameters, encodeFunctionData, getAddress, parseSignature, type Address, type Hex } from "viem";
import { batchSettlerAbi, eip3009Abi, multicall3Abi } from "../src/contracts/abi.ts";
import { decodeAggregate3, decodeBatchSettleKeys, decodeBoolResult, decodeUint256Result, encodeAggregate3, encodeTransferVrs } from "../src/exact/abi-fast.ts";

let seed = 42;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const hex = (bytes: number, mixed = false) => {
  let s = "";
  for (let i = 0; i < bytes * 2; i++) {
    const d = Math.floor(rand() * 16).toString(16);
    s += mixed && rand() < 0.5 ? d.toUpperCase() : d;
  }
  return `0x${s}` as Hex;
};

describe("hand-written ABI coders equal viem's", () => {
  it("BatchSettler settle(): token and each item's (from, nonce), as viem decodes them; anything else undefined", () => {
    for (let round = 0; round < 40; round++) {
      const n = Math.floor(rand() * 60);
      const items = Array.from({ length: n }, () => ({
        from: getAddress(hex(20)),
        to: getAddress(hex(20)),
        value: BigInt(hex(8)),
        validAfter: 0n,
        validBefore: BigInt(hex(4)),
        nonce: hex(32),
        // 65-byte signatures, and now and then another length (the bytes overload).
        signature: hex(rand() < 0.8 ? 65 : Math.floor(rand() * 130)),
      }));
      const token = getAddress(hex(20));
      const data = encodeFunctionData({ abi: batchSettlerAbi, functionName: "settle", args: [token, items] });
      const fast = decodeBatchSettleKeys(data);
      expect(fast).toEqual({ token: token.toLowerCase(), items: items.map((i) => ({ from: i.from.toLowerCase(), nonce: i.nonce.toLowerCase() })) });
    }
    const one = encodeFunctionData({ abi: batchSettlerAbi, functionName: "settle", args: [getAddress(hex(20)), [{ from: getAddress(hex(20)), to: getAddress(hex(20)), value: 1n, validAfter: 0n, validBefore: 2n, nonce: hex(32), signature: hex(65) }]] });
    expect(decodeBatchSettleKeys(one.slice(0, -64) as Hex)).toBeUndefined(); // truncated: the signature's words are gone, the offsets still fit
    expect(decodeBatchSettleKeys(`${one.slice(0, 10)}${"f".repeat(64)}${one.slice(74)}` as Hex)).toBeUndefined(); // token word is not an address
    expect(decodeBatchSettleKeys(`${one.slice(0, 74)}${"0".repeat(62)}ff${one.slice(138)}` as Hex)).toBeUndefined(); // array offset out of range
    expect(decodeBatchSettleKeys(encodeFunctionData({ abi: eip3009Abi, functionName: "balanceOf", args: [getAddress(hex(20))] }))).toBeUndefined();
  });


  it("aggregate3 calldata, including empty and odd-length call data", () => {
    for (let round = 0; round < 50; round++) {
      const n = Math.floor(rand() * 6);
      const calls = Array.from({ length: n }, () => ({ target: getAddress(hex(20)), callData: hex(Math.floor(rand() * 100)) }));
      const viem = encodeFunctionData({ abi: multicall3Abi, functionName: "aggregate3", args: [calls.map((c) => ({ ...c, allowFailure: true }))] });
      expect(encodeAggregate3(calls)).toBe(viem);
    }
  });

  it("aggregate3 results, and refuses what viem refuses", () => {
    for (let round = 0; round < 50; round++) {
      const n = Math.floor(rand() * 6);
      const results = Array.from({ length: n }, () => ({ success: rand() < 0.5, returnData: hex(Math.floor(rand() * 100)) }));
      const data = encodeAbiParameters([{ type: "tuple[]", components: [{ name: "success", type: "bool" }, { name: "returnData", type: "bytes" }] }], [results]);
      expect(decodeAggregate3(data)).toEqual(results);
      expect(decodeAggregate3(data)).toEqual(decodeFunctionResult({ abi: multicall3Abi, functionName: "aggregate3", data }).map((r) => ({ ...r })));
    }
    expect(() => decodeAggregate3("0x1234")).toThrow();
    expect(() => decodeAggregate3(`0x${"00".repeat(31)}20${"00".repeat(31)}05`)).toThrow();
  });

  it("transferWithAuthorization (v, r, s) calldata for every accepted v; refuses other v", () => {
    for (const vByte of ["00", "01", "1b", "1c"]) {
      for (let round = 0; round < 10; round++) {
        const auth = { from: getAddress(hex(20)), to: hex(20) as Address, value: BigInt(hex(8)), validAfter: BigInt(Math.floor(rand() * 1e9)), validBefore: BigInt(hex(32)), nonce: hex(32, true) };
        const signature = `${hex(64, true)}${vByte}` as Hex;
        const { r, s, v, yParity } = parseSignature(signature);
        const v8 = v !== undefined ? Number(v) : 27 + yParity;
        const viem = encodeFunctionData({ abi: eip3009Abi, functionName: "transferWithAuthorization", args: [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, v8, r, s] });
        expect(encodeTransferVrs(auth, signature)).toBe(viem);
      }
    }
    const auth = { from: hex(20) as Address, to: hex(20) as Address, value: 1n, validAfter: 0n, validBefore: 1n, nonce: hex(32) };
    expect(encodeTransferVrs(auth, `${hex(64)}02` as Hex)).toBeUndefined();
    expect(encodeTransferVrs({ ...auth, value: -1n }, `${hex(64)}1b` as Hex)).toBeUndefined();
  });

  it("uint256 and bool returns", () => {
    for (const data of [hex(32), `0x${"00".repeat(32)}` as Hex, `${hex(32)}${"ab".repeat(32)}` as Hex]) {
      expect(decodeUint256Result(data, "balanceOf")).toBe(decodeFunctionResult({ abi: eip3009Abi, functionName: "balanceOf", data }));
    }
    for (const data of [`0x${"00".repeat(32)}`, `0x${"00".repeat(31)}01`, `0x${"00".repeat(31)}01${"ff".repeat(32)}`] as Hex[]) {
      expect(decodeBoolResult(data, "authorizationState")).toBe(decodeFunctionResult({ abi: eip3009Abi, functionName: "authorizationState", data }));
    }
    expect(() => decodeBoolResult(`0x${"00".repeat(31)}02`, "authorizationState")).toThrow();
    expect(() => decodeUint256Result("0x12", "balanceOf")).toThrow();
  });
});
