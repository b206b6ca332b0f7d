/**
 * `tollgate demo channel` end to end on anvil with our facilitator service: one deposit, paid
 * requests on vouchers, one claim and one settle. What it prints must be what happened on chain.
 */
import { describe, expect, it } from "vitest";
import { demoChannel } from "../src/commands/demo-channel.ts";

describe("tollgate demo channel", () => {
  it("serves a hundred requests on one deposit and settles them in two more transactions", async () => {
    const lines: string[] = [];
    const r = await demoChannel({ out: (l) => lines.push(l) });
    expect(r.requests).toBe(100);
    expect(r.deposits).toBe(1);
    expect(r.transactions).toBe(3); // deposit, claim, settle
    expect(r.charged).toBe(100_000n);
    expect(r.after.payee - r.before.payee).toBe(100_000n);
    expect(r.before.payer - r.after.payer).toBe(100_000n); // a deposit of exactly a hundred requests
    expect(r.after.escrow).toBe(r.before.escrow);
    const text = lines.join("\n");
    expect(text).toContain("100 responses served; transactions on chain meanwhile: 1");
    expect(text).toContain("100 paid requests, 3 on-chain transactions");
    expect(text).toContain(`tx ${r.settleTransaction.slice(0, 10)}`);
  }, 180_000);
});
