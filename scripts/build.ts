// `npm run build`: compiles every package to dist/ (ESM JavaScript + .d.ts, tsc -b with project
// references, in dependency order) and copies what tsc does not emit: the compiled contract
// artifacts, so an installed @tollgate/evm never needs solc.
//
// Why tsc and not a bundler: the output mirrors the sources file for file, the declarations are
// exactly what the type checker sees, and it is the compiler the repository already runs.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildContracts } from "../packages/evm/src/contracts/compile.ts";
import { buildPaywall } from "../packages/server/scripts/build-paywall.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const started = Date.now();
const clean = process.argv.includes("--clean");
const projects = [
  "apps/cli/tsconfig.build.json",
  "packages/express/tsconfig.build.json",
  "packages/fastify/tsconfig.build.json",
  "packages/next/tsconfig.build.json",
  "packages/axios/tsconfig.build.json",
  "packages/mcp/tsconfig.build.json",
  "packages/a2a/tsconfig.build.json",
  "packages/ai/tsconfig.build.json",
  "packages/erc8004/tsconfig.build.json",
  "packages/mandates/tsconfig.build.json",
];

if (clean) for (const dir of [...readdirSync(join(root, "packages")).map((d) => `packages/${d}`), "apps/cli", "apps/facilitator"]) rmSync(join(root, dir, "dist"), { recursive: true, force: true });

const { compiled } = buildContracts();
if (compiled) console.log("compiled the Solidity contracts");
// The paywall page's wallet script is bundled into a source module before tsc compiles it.
if (await buildPaywall()) console.log("bundled the paywall wallet script");

const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
try {
  execFileSync(process.execPath, [tsc, "-b", ...projects], { cwd: root, stdio: "inherit" });
} catch {
  console.error("build: tsc reported errors (above)");
  process.exit(1);
}

const artifacts = join(root, "packages/evm/src/contracts/artifacts");
const shipped = join(root, "packages/evm/dist/contracts/artifacts");
rmSync(shipped, { recursive: true, force: true });
mkdirSync(shipped, { recursive: true });
for (const f of readdirSync(artifacts)) if (f.endsWith(".json")) cpSync(join(artifacts, f), join(shipped, f));
if (!existsSync(join(shipped, "TollgateUSD.json"))) throw new Error("build: contract artifacts missing after compile");

console.log(`built ${projects.length} project trees into dist/ in ${((Date.now() - started) / 1000).toFixed(1)} s`);
