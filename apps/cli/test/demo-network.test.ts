/**
 * `tollgate demo network` end to end: three real facilitators registered as ERC-8004 agents, a
 * server over all of them, one stopped mid-run. What it prints must be what happened on chain.
 */
import { describe, expect, it } from "vitest";
import { demoNetwork } from "../src/commands/demo-network.ts";

describe("tollgate demo network", () => {
  it("keeps paying through the others when one facilitator stops, settles each payment once, and proves the feedback", async () => {
    const lines: string[] = [];
    const result = await demoNetwork({ out: (l) => lines.push(l), payments: 6 });
    expect(result.payments).toHaveLength(6);
    expect(new Set(result.payments.map((p) => p.transaction)).size).toBe(6);
    // Nothing settled by the stopped one after it stopped.
    expect(result.payments.slice(2).every((p) => p.settledBy !== result.stopped)).toBe(true);
    const text = lines.join("\n");
    expect(text).toMatch(new RegExp(`verify failed over from ${result.stopped}`));
    expect(text).toContain("6 payments, 6 distinct authorizations, each used exactly once");
    for (const f of result.facilitators) {
      expect(f.proven).toBe(f.settled); // every settlement's feedback is proven; the "unreachable" one is not
      expect(f.score).toBe(f.settled > 0 ? "100" : "0");
    }
    expect(result.facilitators.reduce((n, f) => n + f.settled, 0)).toBe(6);
  }, 180_000);
});
