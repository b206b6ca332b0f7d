/**
 * The paid MCP server every transport test talks to: the spec's `financial_analysis` tool and
 * a few that fail, priced by the server tests' stub scheme and settled by their stub
 * facilitator (packages/server/test/fixtures.ts), plus two free tools, `stats` and `control`,
 * so a test can read the counters and steer the facilitator of a server in another process
 * (stdio) the same way as of one in this process.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { FacilitatorClient, PaymentPayload, PaymentRequirements, SettleResponse } from "@tollgate/core";
import { createMcpPaywall, type McpPaywallConfig } from "@tollgate/mcp";
import { PAY_TO, PAYER, PENDING, stubFacilitator, stubScheme, TX, type StubFacilitator } from "../../../server/test/fixtures.ts";

export { PAY_TO, PAYER, TX };
export { stubSchemeClient } from "../../../server/test/fixtures.ts";
export const NETWORK = "eip155:84532";
/** What financial_analysis answers once paid: a test looks for it anywhere in a refused result. */
export const ANALYSIS = "Financial analysis for AAPL: Strong fundamentals with positive outlook...";

export interface Counters {
  runs: Record<string, number>;
  verify: number;
  settle: number;
  /** The payer the last paid tool run was handed (`extra.payment`). */
  lastPayer: string | null;
}

export type SettleMode = "success" | "fail" | "pending";

export interface Control {
  settle?: SettleMode;
  settleDelayMs?: number;
  verify?: "valid" | "invalid";
}

/**
 * The stub facilitator, plus what the real one's ledger does: an authorization settles once, and
 * every later /settle of it is `duplicate_settlement`.
 */
function settleOnce(stub: StubFacilitator): FacilitatorClient {
  const settled = new Set<string>();
  return {
    verify: (payload, requirements, options) => stub.verify(payload, requirements, options),
    supported: () => stub.supported(),
    async settle(payload: PaymentPayload, requirements: PaymentRequirements, options) {
      const key = JSON.stringify(payload.payload);
      if (settled.has(key)) {
        stub.settleCalls.push({ payload, requirements });
        return { success: false, errorReason: "duplicate_settlement", errorMessage: "this authorization was settled before", transaction: "", network: requirements.network, payer: PAYER };
      }
      const answer: SettleResponse = await stub.settle(payload, requirements, options);
      if (answer.success) settled.add(key);
      return answer;
    },
  };
}

export interface Demo {
  facilitator: StubFacilitator;
  counters(): Counters;
  control(c: Control): void;
  createServer(): McpServer;
}

export function createDemo(settings: Partial<McpPaywallConfig> = {}): Demo {
  const facilitator = stubFacilitator();
  const runs: Record<string, number> = {};
  let lastPayer: string | null = null;
  const ran = (name: string) => (runs[name] = (runs[name] ?? 0) + 1);
  const paywall = createMcpPaywall({ facilitator: settleOnce(facilitator), schemes: [stubScheme], checkAtStart: false, settlementPollMs: 10, settlementTimeoutMs: 200, ...settings });
  const price = { price: "$0.01", network: NETWORK, payTo: PAY_TO } as const;

  const tools = [
    paywall.tool(
      "financial_analysis",
      { ...price, description: "Advanced financial analysis tool", mimeType: "application/json", inputSchema: { ticker: z.string(), analysis_type: z.string().optional() } },
      async ({ ticker }, extra) => {
        ran("financial_analysis");
        lastPayer = extra.payment.payer ?? null;
        return { content: [{ type: "text", text: ANALYSIS.replace("AAPL", ticker) }] };
      },
    ),
    paywall.tool("failing_tool", { ...price, description: "Returns an error" }, () => {
      ran("failing_tool");
      return { isError: true, content: [{ type: "text", text: "upstream exchange unavailable" }] };
    }),
    paywall.tool("throwing_tool", { ...price, description: "Throws" }, () => {
      ran("throwing_tool");
      throw new Error("the tool crashed");
    }),
  ];

  function control(c: Control): void {
    facilitator.reset();
    for (const k of Object.keys(runs)) delete runs[k];
    lastPayer = null;
    if (c.settleDelayMs) facilitator.settleDelayMs = c.settleDelayMs;
    if (c.verify === "invalid") facilitator.verifyResult = { isValid: false, invalidReason: "insufficient_funds", invalidMessage: "balance 0 < 10000", payer: PAYER };
    if (c.settle === "fail") facilitator.settleResult = { success: false, errorReason: "transaction_failed", errorMessage: "execution reverted", transaction: "", network: NETWORK, payer: PAYER };
    if (c.settle === "pending") facilitator.settleResult = PENDING;
  }
  const counters = (): Counters => ({ runs: { ...runs }, verify: facilitator.verifyCalls.length, settle: facilitator.settleCalls.length, lastPayer });

  function createServer(): McpServer {
    const server = new McpServer({ name: "tollgate-mcp-demo", version: "0.0.0" });
    for (const t of tools) t.register(server);
    server.registerTool("stats", { description: "Counters (free)" }, () => ({ content: [{ type: "text", text: JSON.stringify(counters()) }] }));
    server.registerTool(
      "control",
      { description: "Steers the stub facilitator (free, tests only)", inputSchema: { settle: z.enum(["success", "fail", "pending"]).optional(), settleDelayMs: z.number().optional(), verify: z.enum(["valid", "invalid"]).optional() } },
      (args) => {
        control(args as Control);
        return { content: [{ type: "text", text: "ok" }] };
      },
    );
    return server;
  }

  return { facilitator, counters, control, createServer };
}

