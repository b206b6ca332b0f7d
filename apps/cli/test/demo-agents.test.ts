/**
 * `tollgate demo agents` end to end (local chain, real facilitator, HTTP + MCP + A2A services):
 * what it prints must be what happened — the payments on chain, to the services' payees, the
 * refusal with nothing signed, the answer the specialists' data gives.
 */
import { describe, expect, it } from "vitest";
import { devAccount } from "@tollgate/devnet";
import { demoAgents } from "../src/commands/demo-agents.ts";

describe("tollgate demo agents", () => {
  it("discovers, refuses the over-budget service unsigned, pays three transports, and accounts for every cent", async () => {
    const lines: string[] = [];
    const result = await demoAgents({ out: (l) => lines.push(l) });
    expect(result.answer).toMatchObject({ buy: "gamma", sell: "beta", gross: "25.40", net: "14.86" });
    expect(result.refused.service).toBe("Premium Oracle");
    expect(result.refused.signedAfter).toBe(result.refused.signedBefore);
    expect(result.refused.reason).toMatch(/maxPerRequest/);
    expect(result.paid.map((p) => [p.transport, p.amount, p.payTo])).toEqual([
      ["HTTP", 10_000n, devAccount(10).address],
      ["MCP", 20_000n, devAccount(12).address],
      ["A2A", 30_000n, devAccount(13).address],
    ]);
    expect(new Set(result.paid.map((p) => p.transaction)).size).toBe(3);
    expect(result.agent.before - result.agent.after).toBe(60_000n);
    const text = lines.join("\n");
    expect(text).toContain("GET /discovery/resources now lists all 4 services.");
    for (const p of result.paid) expect(text).toContain(p.transaction);
  }, 120_000);
});
