// Contract artifacts (compiled by scripts/build-contracts.ts) and the typed ABI fragments code calls.
// In a checkout the Solidity sources sit next to this file and stale artifacts are recompiled; an
// installed package ships only the artifacts (dist/contracts/artifacts) and never loads solc.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ARTIFACTS_DIR, CONTRACTS_DIR, artifactsUpToDate, buildContracts, type Artifact } from "./compile.ts";

export type { Artifact } from "./compile.ts";
export { buildContracts } from "./compile.ts";

export type ContractName =
  | "TollgateUSD"
  | "BatchSettler"
  | "Multicall3"
  | "AgentIdentityRegistry"
  | "AgentReputationRegistry"
  | "AgentValidationRegistry"
  | "Permit2"
  | "ExactPermit2Proxy"
  | "UptoPermit2Proxy"
  | "PlainToken"
  | "BatchSettlement"
  | "ERC3009DepositCollector"
  | "Permit2DepositCollector";

const cache = new Map<string, Artifact>();
let checked = false;

/** Reads a compiled artifact; compiles first (synchronously) when artifacts are missing or stale. */
export function loadArtifact(name: ContractName): Artifact {
  const hit = cache.get(name);
  if (hit) return hit;
  if (!checked) {
    const sources = readdirSync(CONTRACTS_DIR).some((f) => f.endsWith(".sol"));
    if (sources && !artifactsUpToDate()) buildContracts();
    checked = true;
  }
  const path = join(ARTIFACTS_DIR, `${name}.json`);
  if (!existsSync(path)) throw new Error(`no artifact for contract ${name} in ${ARTIFACTS_DIR}`);
  const artifact = JSON.parse(readFileSync(path, "utf8")) as Artifact;
  cache.set(name, artifact);
  return artifact;
}

export * from "./abi.ts";
export * from "./permit2-abi.ts";
export * from "./batch-settlement-abi.ts";
