/**
 * `tsx apps/facilitator/src/main.ts [config.json]`: runs the facilitator from a config file
 * (or CONFIG_FILE) plus environment, until SIGINT/SIGTERM, then shuts down gracefully.
 */
import { ConfigError, loadConfig } from "./config.ts";
import { startFacilitator } from "./start.ts";

async function main() {
  const file = process.argv[2] ?? process.env.CONFIG_FILE;
  const config = loadConfig({ env: process.env, ...(file ? { file } : {}) });
  const running = await startFacilitator(config);
  let stopping = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      running.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    });
  }
}

main().catch((e) => {
  // Config errors are written for people and carry no secret; anything else gets its first line only.
  const message = e instanceof ConfigError ? e.message : String((e as Error)?.message ?? e).split("\n")[0];
  process.stderr.write(`tollgate facilitator: ${message}\n`);
  process.exit(1);
});
