// `npm run build:contracts`: compile packages/evm/src/contracts/*.sol into src/contracts/artifacts/.
// Instant when the sources, compiler and OpenZeppelin versions are unchanged (hash stamp).
import { ARTIFACTS_DIR, buildContracts } from "../src/contracts/compile.ts";

const started = Date.now();
const force = process.argv.includes("--force");
try {
  const { compiled, contracts } = buildContracts({ force });
  if (compiled) {
    console.log(`compiled ${contracts.join(", ")} -> ${ARTIFACTS_DIR} in ${Date.now() - started} ms`);
  }
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
}
