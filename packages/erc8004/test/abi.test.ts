// Our registries must answer to the ERC-8004 v2.0.0 interface: every function, event and error in
// the package's hand-written ABIs (written from the reference interface) exists in the compiled
// contracts with the same types, indexed flags and mutability (pure ~ view).
import { loadArtifact } from "@tollgate/evm";
import { toEventSelector, toFunctionSelector, type Abi, type AbiEvent, type AbiFunction } from "viem";
import { formatAbiItem } from "viem/utils";
import { describe, expect, it } from "vitest";
import { identityRegistryAbi, reputationRegistryAbi, validationRegistryAbi } from "../src/index.ts";
import { formatFixedPoint, parseFixedPoint } from "../src/value.ts";

function signatures(abi: Abi): Set<string> {
  const out = new Set<string>();
  for (const item of abi) {
    if (item.type !== "function" && item.type !== "event" && item.type !== "error") continue;
    const mutability = item.type === "function" ? `:${item.stateMutability === "pure" ? "view" : item.stateMutability}` : "";
    const indexed = item.type === "event" ? `:${JSON.stringify(item.inputs.map((i) => !!i.indexed))}` : "";
    out.add(`${formatAbiItem(item)}${mutability}${indexed}`);
  }
  return out;
}

describe("registry ABIs", () => {
  it("the compiled contracts contain every item of the ERC-8004 ABIs", () => {
    for (const [name, abi] of [
      ["AgentIdentityRegistry", identityRegistryAbi],
      ["AgentReputationRegistry", reputationRegistryAbi],
      ["AgentValidationRegistry", validationRegistryAbi],
    ] as const) {
      const compiled = signatures(loadArtifact(name).abi);
      for (const sig of signatures(abi as unknown as Abi)) {
        // ERC721NonexistentToken reaches reputation/validation callers bubbled up from the identity registry.
        if (name !== "AgentIdentityRegistry" && sig.startsWith("ERC721")) continue;
        expect(compiled, `${name}: ${sig}`).toContain(sig);
      }
    }
  });

  it("keeps the reference selectors and event topics", () => {
    // The reference's Solidity signatures, written out by hand, against the items of our ABIs.
    const fn = (abi: Abi, name: string, inputs: number) => abi.find((i): i is AbiFunction => i.type === "function" && i.name === name && i.inputs.length === inputs)!;
    const ev = (abi: Abi, name: string) => abi.find((i): i is AbiEvent => i.type === "event" && i.name === name)!;
    expect(toFunctionSelector(fn(identityRegistryAbi, "register", 2))).toBe(toFunctionSelector("register(string,(string,bytes)[])"));
    expect(toFunctionSelector(fn(identityRegistryAbi, "setAgentWallet", 4))).toBe(toFunctionSelector("setAgentWallet(uint256,address,uint256,bytes)"));
    expect(toFunctionSelector(fn(reputationRegistryAbi, "giveFeedback", 8))).toBe(toFunctionSelector("giveFeedback(uint256,int128,uint8,string,string,string,string,bytes32)"));
    expect(toEventSelector(ev(reputationRegistryAbi, "NewFeedback"))).toBe(toEventSelector("NewFeedback(uint256,address,uint64,int128,uint8,string,string,string,string,string,bytes32)"));
    expect(toEventSelector(ev(identityRegistryAbi, "MetadataSet"))).toBe(toEventSelector("MetadataSet(uint256,string,string,bytes)"));
    expect(toEventSelector(ev(validationRegistryAbi, "ValidationResponse"))).toBe(toEventSelector("ValidationResponse(address,uint256,bytes32,uint8,string,bytes32,string)"));
  });
});

describe("fixed-point values", () => {
  it("round-trips decimal strings without floats", () => {
    expect(parseFixedPoint("99.77")).toEqual({ value: 9977n, valueDecimals: 2 });
    expect(parseFixedPoint("-3.2")).toEqual({ value: -32n, valueDecimals: 1 });
    expect(parseFixedPoint("560")).toEqual({ value: 560n, valueDecimals: 0 });
    expect(formatFixedPoint(5n, 3)).toBe("0.005");
    expect(formatFixedPoint(-32n, 1)).toBe("-3.2");
    expect(formatFixedPoint(9977n, 2)).toBe("99.77");
    expect(() => parseFixedPoint("1e5")).toThrow(/decimal/);
    expect(() => parseFixedPoint(`0.${"1".repeat(19)}`)).toThrow(/18/);
  });
});
