import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { createBudgetStore, issueOpenMandate } from "../src/index.ts";
import { NETWORK, PAYEE, T0, testKeys, USDC } from "./helpers.ts";

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "tollgate-wallet-procs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("one mandate, two agent processes", () => {
  it("never spends past the daily budget together, and the store counts every payment handed over", async () => {
    const { user, agent } = await testKeys();
    const open = await issueOpenMandate({
      userKey: user.privateJwk,
      agentPublicJwk: agent.publicJwk,
      constraints: { allowedPayees: [PAYEE], allowedAssets: [{ network: NETWORK, asset: USDC, usdDecimals: 6 }], amountRange: { currency: "USD", max: "0.05" }, budget: { currency: "USD", max: "0.20", periodSeconds: 86_400 } },
      expiresAt: T0 + 86_400,
      issuedAt: T0 - 100,
      id: "shared-mandate",
    });
    const setup = join(dir, "setup.json");
    writeFileSync(setup, JSON.stringify({ open, userPublicJwk: user.publicJwk, agentKey: agent.privateJwk, payerKey: "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d", now: T0, payTo: PAYEE, asset: USDC, network: NETWORK }));
    const file = join(dir, "budget.json");
    const worker = fileURLToPath(new URL("./fixtures/wallet-worker.ts", import.meta.url));
    // each process tries 15 payments of $0.01 against $0.20 a day: exactly 20 fit in total
    const spawn = () => run(process.execPath, ["--import", "tsx", worker, setup, file, "15", "2"], { cwd: fileURLToPath(new URL("../../..", import.meta.url)) });
    const [a, b] = (await Promise.all([spawn(), spawn()])).map((r) => JSON.parse(r.stdout) as { granted: number; refused: number; codes: string[] });
    expect(a!.granted + b!.granted).toBe(20);
    expect([...a!.codes, ...b!.codes]).toEqual(Array(10).fill("budget_exceeded"));
    const spent = await createBudgetStore({ file }).spent("shared-mandate", Math.floor(T0 / 86_400) * 86_400);
    expect(spent.amount).toBe(20n * 10_000n * 10n ** 12n); // $0.20 at 18 decimals
    expect(spent.committed).toBe(BigInt(Math.floor(a!.granted / 2) + Math.floor(b!.granted / 2)) * 10_000n * 10n ** 12n);
    expect(spent.occurrences).toBe(20);
  }, 60_000);
});
