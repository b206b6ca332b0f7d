/**
 * `tollgate mandate issue | show | revoke` and `tollgate pay --mandate` against the dev stack: the
 * keys are kept encrypted, a payment inside the mandate carries its chain (nonce = its hash), one
 * outside it is refused before signing unless approved, and the mandate's budget is counted in the
 * same store as `--budget`.
 */
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mandate } from "../src/commands/mandate.ts";
import { pay, type PayResult } from "../src/commands/pay.ts";
import { startDevStack, type DevStack } from "../src/stack.ts";

let stack: DevStack;
beforeAll(async () => {
  stack = await startDevStack();
}, 120_000);
afterAll(async () => {
  await stack?.close();
});

describe("tollgate mandate", () => {
  it("issues, pays under, shows, refuses outside, and revokes a mandate", async () => {
    const env = { XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), "tollgate-mandate-cli-")), TOLLGATE_KEYSTORE_PASSWORD: "correct horse battery", TOLLGATE_PRIVATE_KEY: stack.chain.accounts.payers[1]!.privateKey };
    const out: string[] = [];
    const usdAsset = `${stack.chain.network}/${stack.chain.usdc.address}:6`;
    await mandate({
      action: "issue",
      payees: [stack.chain.accounts.payee.address],
      network: stack.chain.network,
      asset: `${stack.chain.usdc.address}:6`,
      max: "$0.05",
      budget: "$0.015/day",
      json: true,
      env,
      out: (l) => out.push(l),
      kdf: { n: 1024 },
    });
    const issued = JSON.parse(out[0]!) as { id: string; file: string };
    const dir = join(env.XDG_CONFIG_HOME, "tollgate");
    for (const f of ["mandate-user.json", "mandate-agent.json"]) {
      const text = readFileSync(join(dir, f), "utf8");
      expect(text).toContain('"crypto"');
      expect(text).not.toMatch(/"d"\s*:/); // the private scalar only inside the ciphertext
    }

    const run = async (o: Partial<Parameters<typeof pay>[0]> = {}) => {
      const lines: string[] = [];
      await pay({ url: `${stack.apiUrl}/weather`, usdAssets: [usdAsset], mandate: issued.id, json: true, env, out: (l) => lines.push(l), ...o });
      return JSON.parse(lines[0]!) as PayResult;
    };
    const first = await run();
    expect(first).toMatchObject({ ok: true, paid: true, amountUsd: "0.01" });
    // $0.01 of $0.015 spent: the next $0.01 does not fit the mandate's daily budget; refused before signing
    const second = await run({ approve: async () => false });
    expect(second.error?.code).toBe("refused_by_mandate");
    expect(second.error?.message).toMatch(/payment\.budget: budget_exceeded/);

    const shown: string[] = [];
    await mandate({ action: "show", id: issued.id, json: true, env, out: (l) => shown.push(l) });
    expect(JSON.parse(shown[0]!)).toMatchObject({ id: issued.id, status: "active", spentThisPeriodUsd: "0.01" });
    // one store: the mandate's budget lives in budgets.json
    expect(Object.keys((JSON.parse(readFileSync(join(dir, "budgets.json"), "utf8")) as { mandates: object }).mandates)).toEqual([issued.id]);

    // approved outside the mandate: paid without it
    const questions: string[] = [];
    const third = await run({ approve: async (q) => (questions.push(q), true) });
    expect(third).toMatchObject({ ok: true, paid: true });
    expect(questions[0]).toMatch(/outside mandate/);

    const revoked: string[] = [];
    await mandate({ action: "revoke", id: issued.id, env, out: (l) => revoked.push(l) });
    expect(revoked[0]).toMatch(/^revoked/);
    const status = JSON.parse(readFileSync(join(dir, "mandates", "status.json"), "utf8")) as { revoked: string[] };
    expect(status.revoked).toEqual([issued.id]);
    shown.length = 0;
    await mandate({ action: "show", id: issued.id, json: true, env, out: (l) => shown.push(l) });
    expect(JSON.parse(shown[0]!)).toMatchObject({ status: "revoked" });
    expect(readdirSync(dir).filter((f) => f.endsWith(".lock") || f.endsWith(".tmp"))).toEqual([]);
  }, 120_000);
});
