// `npm run build:contracts`: compile packages/evm/src/contracts/*.sol into src/contracts/artifacts/.
// Instant when the sources, compiler and OpenZeppelin versions are unchanged (hash stamp).
import { ARTIFACTS_DIR, artifactsUpToDate, buildContracts } from "../src/contracts/compile.ts";

const started = Date.now();
const force = process.argv.includes("--force");
try {
  // The first run in a checkout compiles with solc-js (a few seconds): say so before the pause.
  if (force || !artifactsUpToDate()) console.log("compiling the Solidity contracts with solc-js (first run only, a few seconds)…");
  const { compiled, contracts } = buildContracts({ force });
  if (compiled) {
    console.log(`compiled ${contracts.join(", ")} -> ${ARTIFACTS_DIR} in ${Date.now() - started} ms`);
  }
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
}
