/**
 * `tollgate demo upto` end to end on a real local chain: what it prints must be what happened on
 * chain (charged less than signed, zero sends nothing, over-charge refused), and it ends by itself.
 */
import { describe, expect, it } from "vitest";
import { demoUpto } from "../src/commands/demo-upto.ts";

describe("tollgate demo upto", () => {
  it("charges less than the signed maximum, sends nothing for a zero charge, refuses more than signed", async () => {
    const lines: string[] = [];
    const result = await demoUpto({ out: (l) => lines.push(l) });
    const [some, none] = result.requests;
    // 24 words at 500 atomic units each, out of a 50 000 maximum the payer signed.
    expect(some).toMatchObject({ words: 24, max: 50_000n, charged: 12_000n });
    expect(some!.payee.after - some!.payee.before).toBe(12_000n);
    expect(some!.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect(some!.blocks.after).toBe(some!.blocks.before + 1n);
    // Zero: no transaction, no block, no money.
    expect(none).toMatchObject({ words: 0, max: 50_000n, charged: 0n, transaction: "" });
    expect(none!.blocks.after).toBe(none!.blocks.before);
    expect(none!.payee.after).toBe(none!.payee.before);
    expect(result.overcharge).toEqual({ errorReason: "invalid_upto_evm_payload_settlement_exceeds_amount", moved: 0n });
    const text = lines.join("\n");
    expect(text).toContain("charged 0.012 PUSD of the 0.05 PUSD signed");
    expect(text).toContain('transaction "" (none sent)');
    expect(text).toContain("invalid_upto_evm_payload_settlement_exceeds_amount");
  }, 120_000);
});
