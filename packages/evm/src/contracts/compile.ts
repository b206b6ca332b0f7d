// Compiles the Solidity sources next to this file with solc-js and caches the artifacts.
// Used by scripts/build-contracts.ts (the root pretest/prestart hook) and lazily by loadArtifact.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Abi, Hex } from "viem";

export type Artifact = {
  contractName: string;
  abi: Abi;
  bytecode: Hex;
  deployedBytecode: Hex;
};

export const CONTRACTS_DIR = dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS_DIR = join(CONTRACTS_DIR, "artifacts");
const STAMP_FILE = join(ARTIFACTS_DIR, ".stamp");

const require = createRequire(import.meta.url);

// Cancun bytecode runs on every current chain (and anvil's default hardfork), unlike newer targets.
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
} as const;

/**
 * The payment-channel contracts run on every paid request's behalf (a deposit per channel, a claim
 * row per channel per claim), so they are compiled for runtime gas: the IR pipeline, tuned for
 * many runs. Measured with bench/channel.ts: -3.4k gas per deposit, -3k per claim row (solc 0.8,
 * on anvil). The pipeline is ~3x slower to compile, so only these files use it.
 */
const RUNTIME_GAS_SETTINGS = {
  optimizer: { enabled: true, runs: 1_000_000 },
  viaIR: true,
  evmVersion: "cancun",
} as const;
const RUNTIME_GAS_FILES: ReadonlySet<string> = new Set(["BatchSettlement.sol", "ERC3009DepositCollector.sol", "Permit2DepositCollector.sol"]);

function sourceFiles(): string[] {
  return readdirSync(CONTRACTS_DIR)
    .filter((f) => f.endsWith(".sol"))
    .sort();
}

function packageVersion(name: string): string {
  const pkg = JSON.parse(readFileSync(require.resolve(`${name}/package.json`), "utf8")) as { version: string };
  return pkg.version;
}

/** Hash of everything that determines the output; cheap (does not load the compiler). */
export function sourcesHash(): string {
  const h = createHash("sha256");
  h.update(`solc@${packageVersion("solc")}\n`);
  h.update(`@openzeppelin/contracts@${packageVersion("@openzeppelin/contracts")}\n`);
  h.update(JSON.stringify(SETTINGS));
  h.update(JSON.stringify({ RUNTIME_GAS_SETTINGS, files: [...RUNTIME_GAS_FILES] }));
  for (const file of sourceFiles()) {
    h.update(`\n${file}\n`);
    h.update(readFileSync(join(CONTRACTS_DIR, file)));
  }
  return h.digest("hex");
}

export function artifactsUpToDate(): boolean {
  if (!existsSync(STAMP_FILE)) return false;
  if (readFileSync(STAMP_FILE, "utf8").trim() !== sourcesHash()) return false;
  return sourceFiles().every((f) => existsSync(join(ARTIFACTS_DIR, `${f.slice(0, -4)}.json`)));
}

// Write-then-rename so concurrent builds (parallel test workers) never see a half-written file.
function writeAtomic(path: string, data: string): void {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

type SolcOutput = {
  errors?: { severity: string; formattedMessage: string }[];
  contracts?: Record<
    string,
    Record<string, { abi: Abi; evm: { bytecode: { object: string }; deployedBytecode: { object: string } } }>
  >;
};

type Solc = {
  compile(input: string, callbacks: { import(path: string): { contents: string } | { error: string } }): string;
  version(): string;
};

/**
 * Compiles every .sol file in the contracts directory unless the stamp says the artifacts are current.
 * Returns whether a compile happened. Throws with the compiler's messages on errors.
 */
export function buildContracts(opts: { force?: boolean } = {}): { compiled: boolean; contracts: string[] } {
  const files = sourceFiles();
  if (!opts.force && artifactsUpToDate()) {
    return { compiled: false, contracts: files.map((f) => f.slice(0, -4)) };
  }
  const hash = sourcesHash();
  const sources: Record<string, string> = {};
  const runtimeGasSources: Record<string, string> = {};
  for (const file of files) (RUNTIME_GAS_FILES.has(file) ? runtimeGasSources : sources)[file] = readFileSync(join(CONTRACTS_DIR, file), "utf8");
  const compiled = { ...compileSolidity(sources), ...compileSolidity(runtimeGasSources, RUNTIME_GAS_SETTINGS) };

  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const written: string[] = [];
  for (const artifact of Object.values(compiled)) {
    writeAtomic(join(ARTIFACTS_DIR, `${artifact.contractName}.json`), `${JSON.stringify(artifact, null, 2)}\n`);
    written.push(artifact.contractName);
  }
  writeAtomic(STAMP_FILE, `${hash}\n`);
  return { compiled: true, contracts: written };
}

/**
 * Compiles Solidity sources (file name → content) with the build's settings: every contract of
 * every given file, by name. Imports resolve to @openzeppelin in node_modules only. Also used by
 * tests for contracts that must never ship (hostile tokens, griefing wallets).
 */
export function compileSolidity(sources: Record<string, string>, settings: typeof SETTINGS | typeof RUNTIME_GAS_SETTINGS = SETTINGS): Record<string, Artifact> {
  const solc = require("solc") as Solc;
  const files = Object.keys(sources);
  const outputSelection: Record<string, Record<string, string[]>> = {};
  // Only the given files produce output; imported library code is only type-checked.
  for (const file of files) outputSelection[file] = { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] };
  const input = { language: "Solidity", sources: Object.fromEntries(files.map((f) => [f, { content: sources[f]! }])), settings: { ...settings, outputSelection } };
  const findImports = (path: string): { contents: string } | { error: string } => {
    if (!path.startsWith("@openzeppelin/")) return { error: `unresolvable import ${path}` };
    try {
      return { contents: readFileSync(require.resolve(path), "utf8") };
    } catch {
      return { error: `import not found in node_modules: ${path}` };
    }
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports })) as SolcOutput;
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  if (errors.length > 0) throw new Error(`solc ${solc.version()} failed:\n${errors.map((e) => e.formattedMessage).join("\n")}`);
  const out: Record<string, Artifact> = {};
  for (const file of files) {
    for (const [contractName, c] of Object.entries(output.contracts?.[file] ?? {})) {
      out[contractName] = { contractName, abi: c.abi, bytecode: `0x${c.evm.bytecode.object}`, deployedBytecode: `0x${c.evm.deployedBytecode.object}` };
    }
  }
  return out;
}
