/**
 * `paidMcpTools`: an MCP client's tools as AI SDK tools, called through @tollgate/mcp's
 * `wrapMcpClient`, so a tool that asks for an x402 payment is paid once, within the spending
 * policy, and the model reads what was paid. Results are mapped to text (the tool's text
 * content; `structuredContent` as JSON when the tool returns it); payment errors are results,
 * like paidFetchTool's.
 */
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { CallToolResult, Tool as McpTool } from "@modelcontextprotocol/sdk/types.js";
import { dynamicTool, jsonSchema, type JSONSchema7, type ToolSet } from "ai";
import type { UsdAsset } from "@tollgate/core";
import type { PaymentFailedError } from "@tollgate/fetch";
import { getPaymentReceipt, readPaymentRequired, wrapMcpClient, type PayingMcpClient, type WrapMcpClientOptions } from "@tollgate/mcp";
import { isAbort, messageOf, paidSummary, paymentErrorResult, usdValuer, type ErrorResult, type PaidSummary, type PaymentErrorResult, type PaymentFailedResult } from "./payment.ts";

/** The default cap on the text of a tool result handed to the model: 64 KiB (65 536 UTF-16 characters). */
export const DEFAULT_MAX_RESULT_CHARS = 64 * 1024;

export type PaidMcpToolsOptions = WrapMcpClientOptions & {
  /** Only these tools (by MCP name); default every tool the server lists. */
  tools?: readonly string[];
  /** Prefix for the AI SDK tool names (e.g. "weather_"), to keep several servers' tools apart. Default none. */
  prefix?: string;
  /** At most this many characters of a result's text reach the model (default DEFAULT_MAX_RESULT_CHARS). */
  maxResultChars?: number;
  /** Assets to report in dollars besides USDC on the networks core knows (e.g. a local test token). */
  usdAssets?: readonly UsdAsset[];
};

/** The tool answered (after paying, when it asked for payment). */
export interface McpToolResult {
  outcome: "result";
  /** The tool reported an error (a free tool's error; a paid tool that fails after payment is `payment_failed`). */
  isError: boolean;
  /** The result as text: text content joined by newlines, other content named, or `structuredContent` as JSON. */
  text: string;
  truncated: boolean;
  /** What was paid for this result, or null when the tool is free. */
  paid: PaidSummary | null;
}

/** A failed paid call: as PaymentFailedResult, with the tool's error text when it sent one. */
export type McpPaymentFailedResult = PaymentFailedResult & { text?: string };

export type PaidMcpToolResult = McpToolResult | Exclude<PaymentErrorResult, PaymentFailedResult> | McpPaymentFailedResult | ErrorResult;

/**
 * Lists `client`'s tools (every page) and returns them as an AI SDK ToolSet keyed by name (with
 * `prefix`). The input schemas are the server's JSON Schemas; the server validates arguments.
 * Each call goes through one `wrapMcpClient(client, options)`: one payment client, one policy.
 */
export async function paidMcpTools(client: Client, options: PaidMcpToolsOptions): Promise<ToolSet> {
  const maxChars = options.maxResultChars ?? DEFAULT_MAX_RESULT_CHARS;
  if (!Number.isSafeInteger(maxChars) || maxChars < 0) throw new RangeError("paidMcpTools: maxResultChars must be a whole number >= 0");
  const paying = wrapMcpClient(client, options);
  const usd = usdValuer(options.usdAssets);
  const wanted = options.tools ? new Set(options.tools) : undefined;

  const listed: McpTool[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    listed.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor);

  const tools: ToolSet = {};
  for (const t of listed) {
    if (wanted && !wanted.has(t.name)) continue;
    tools[`${options.prefix ?? ""}${t.name}`] = mcpTool(paying, t, usd, maxChars);
  }
  if (wanted) {
    const missing = [...wanted].filter((name) => !listed.some((t) => t.name === name));
    if (missing.length > 0) throw new Error(`paidMcpTools: the server lists no tool named ${missing.map((n) => JSON.stringify(n)).join(", ")}`);
  }
  return tools;
}

function mcpTool(paying: PayingMcpClient, t: McpTool, usd: ReturnType<typeof usdValuer>, maxChars: number) {
  return dynamicTool({
    description: t.description ?? t.title ?? t.name,
    inputSchema: jsonSchema(t.inputSchema as JSONSchema7),
    async execute(input, { abortSignal }): Promise<PaidMcpToolResult> {
      const args = (typeof input === "object" && input !== null ? input : {}) as Record<string, unknown>;
      try {
        const result = await paying.callTool({ name: t.name, arguments: args }, abortSignal ? { signal: abortSignal } : undefined);
        const info = getPaymentReceipt(result);
        const { text, truncated } = cap(resultText(result), maxChars);
        return { outcome: "result", isError: result.isError === true, text, truncated, paid: info ? paidSummary(info, usd) : null };
      } catch (e) {
        if (isAbort(abortSignal)) throw e;
        const what = `the MCP tool "${t.name}"`;
        const mapped = paymentErrorResult(e, usd, what);
        if (mapped?.outcome === "payment_failed") {
          const response = (e as PaymentFailedError<CallToolResult>).response;
          const text = response && !readPaymentRequired(response) ? cap(resultText(response), maxChars).text : undefined;
          return text ? { ...mapped, text } : mapped;
        }
        return mapped ?? { outcome: "error", paid: false, message: `The call of ${what} failed before an answer: ${messageOf(e)}. Nothing was paid.` };
      }
    },
  });
}

/** A tool result as text: `structuredContent` as JSON when present (the spec's preferred form), else the content items. */
function resultText(result: CallToolResult): string {
  if (result.structuredContent !== undefined) return JSON.stringify(result.structuredContent);
  return (result.content ?? [])
    .map((c) => {
      switch (c.type) {
        case "text":
          return c.text;
        case "resource":
          return "text" in c.resource && typeof c.resource.text === "string" ? c.resource.text : `[resource ${c.resource.uri}]`;
        case "resource_link":
          return `[resource ${c.uri}]`;
        case "image":
        case "audio":
          return `[${c.type} ${c.mimeType}]`;
        default:
          return `[${(c as { type: string }).type}]`;
      }
    })
    .join("\n");
}

function cap(text: string, max: number): { text: string; truncated: boolean } {
  return text.length > max ? { text: text.slice(0, max), truncated: true } : { text, truncated: false };
}
