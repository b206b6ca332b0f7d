/**
 * `tollgate demo mandate` end to end: what it prints must be what happened on chain — two payments
 * inside the mandate whose AuthorizationUsed nonces are their chains' hashes, a refusal at the
 * wallet with nothing signed, a refusal by the server with nothing moved.
 */
import { describe, expect, it } from "vitest";
import { devAccount } from "@tollgate/devnet";
import { demoMandate } from "../src/commands/demo-mandate.ts";

describe("tollgate demo mandate", () => {
  it("pays two services inside the mandate, refuses the third before signing, and the server refuses a payment without one", async () => {
    const lines: string[] = [];
    const result = await demoMandate({ out: (l) => lines.push(l) });
    expect(result.paid.map((p) => [p.service, p.amount, p.payTo])).toEqual([
      ["weather", 20_000n, devAccount(10).address],
      ["news", 30_000n, devAccount(11).address],
    ]);
    for (const p of result.paid) {
      expect(p.onChainNonce).toMatch(/^0x[0-9a-f]{64}$/);
      expect(p.onChainNonce).toBe(p.chainHash);
    }
    expect(result.refusedAtWallet).toMatchObject({ service: "oracle", constraint: "payment.allowed_payees", code: "payee_not_allowed" });
    expect(result.refusedAtWallet.signedAfter).toBe(result.refusedAtWallet.signedBefore);
    expect(result.refusedByServer.reason).toMatch(/^mandate_required/);
    expect(result.refusedByServer.charged).toBe(false);
    expect(result.refusedByServer.moved).toBe(0n);
    expect(result.agent.before - result.agent.after).toBe(50_000n);
    const text = lines.join("\n");
    for (const p of result.paid) expect(text).toContain(p.transaction);
    expect(text).toContain("nothing was signed");
  }, 120_000);
});
