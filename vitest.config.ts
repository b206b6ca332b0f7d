import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Tests run the TypeScript sources; what is published is the compiled dist/ (npm run build).
const source = (dir: string) => fileURLToPath(new URL(`./${dir}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: {
      "@tollgate/core": source("packages/core"),
      "@tollgate/evm": source("packages/evm"),
      "@tollgate/svm": source("packages/svm"),
      "@tollgate/server": source("packages/server"),
      "@tollgate/express": source("packages/express"),
      "@tollgate/hono": source("packages/hono"),
      "@tollgate/fetch": source("packages/fetch"),
      "@tollgate/fastify": source("packages/fastify"),
      "@tollgate/next": source("packages/next"),
      "@tollgate/axios": source("packages/axios"),
      "@tollgate/mcp": source("packages/mcp"),
      "@tollgate/a2a": source("packages/a2a"),
      "@tollgate/ai": source("packages/ai"),
      "@tollgate/devnet": source("packages/devnet"),
      "@tollgate/erc8004": source("packages/erc8004"),
      "@tollgate/mandates": source("packages/mandates"),
      "@tollgate/facilitator": source("apps/facilitator"),
    },
  },
  test: {
    include: ["packages/*/test/**/*.test.ts", "apps/*/test/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration suites each start their own anvil on a free port; two cores, so keep the pool small.
    pool: "forks",
    maxWorkers: 2,
  },
});
