import { describe, expect, it } from "vitest";
import type { Abi } from "viem";
import { formatAbiItem } from "viem/utils";
import { MULTICALL3_ADDRESS, batchSettlerAbi, buildContracts, eip3009Abi, loadArtifact, multicall3Abi } from "../src/index.ts";

// Canonical text of each item (types, indexed flags, mutability). pure and view are equivalent to callers.
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

describe("contract artifacts", () => {
  it("are cached: a second build with unchanged sources does not recompile", () => {
    buildContracts();
    expect(buildContracts().compiled).toBe(false);
  });

  it("have creation and runtime bytecode", () => {
    for (const name of ["TollgateUSD", "BatchSettler", "Multicall3"] as const) {
      const a = loadArtifact(name);
      expect(a.contractName).toBe(name);
      expect(a.bytecode).toMatch(/^0x[0-9a-f]{200,}$/);
      expect(a.deployedBytecode).toMatch(/^0x[0-9a-f]{200,}$/);
    }
  });

  it("hand-written ABI fragments match the compiled ABIs exactly", () => {
    const token = signatures(loadArtifact("TollgateUSD").abi);
    for (const sig of signatures(eip3009Abi as unknown as Abi)) {
      // OZ ERC20 errors live in the compiled ABI too, so everything must be present.
      expect(token, sig).toContain(sig);
    }
    const settler = signatures(loadArtifact("BatchSettler").abi);
    for (const sig of signatures(batchSettlerAbi as unknown as Abi)) expect(settler, sig).toContain(sig);
    const multicall = signatures(loadArtifact("Multicall3").abi);
    for (const sig of signatures(multicall3Abi as unknown as Abi)) expect(multicall, sig).toContain(sig);
  });

  it("Multicall3 exposes the full canonical interface", () => {
    const names = new Set(loadArtifact("Multicall3").abi.flatMap((i) => (i.type === "function" ? [i.name] : [])));
    for (const fn of ["aggregate", "aggregate3", "aggregate3Value", "tryAggregate", "tryBlockAndAggregate", "blockAndAggregate", "getBlockHash", "getBlockNumber", "getCurrentBlockCoinbase", "getCurrentBlockDifficulty", "getCurrentBlockGasLimit", "getCurrentBlockTimestamp", "getEthBalance", "getLastBlockHash", "getBasefee", "getChainId"]) {
      expect(names, fn).toContain(fn);
    }
    expect(MULTICALL3_ADDRESS).toBe("0xcA11bde05977b3631167028862bE2a173976CA11");
  });
});
