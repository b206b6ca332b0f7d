/**
 * The x402 MCP transport on the wire (x402 specs/transports-v2/mcp.md): the `_meta` keys, the
 * payment-required tool result, and reading both back. Shared by the server and client sides so
 * each shape is written and read in one place.
 */
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { parseSettleResponse, type PaymentRequired, type SettleResponse } from "@tollgate/core";

/** `params._meta` key of a `tools/call` request carrying the PaymentPayload. */
export const PAYMENT_META_KEY = "x402/payment";
/** `result._meta` key of a tool result carrying the SettlementResponse. */
export const PAYMENT_RESPONSE_META_KEY = "x402/payment-response";
/** The `error` of a PaymentRequired answering a call that carried no payment (the spec's example text). */
export const PAYMENT_REQUIRED_MESSAGE = "Payment required to access this resource";

/** The resource URL of a paid tool: `mcp://tool/<name>`. */
export function toolResourceUrl(name: string): string {
  return `mcp://tool/${name}`;
}

/**
 * The spec's "Payment Required Signaling": `isError: true`, the PaymentRequired as
 * `structuredContent`, and the same object as JSON in `content[0].text`. `receipt` (a failed or
 * pending settlement) rides in `_meta["x402/payment-response"]`, as PAYMENT-RESPONSE does on an
 * HTTP 402, and never inside the PaymentRequired itself.
 */
export function paymentRequiredResult(required: PaymentRequired, receipt?: SettleResponse): CallToolResult {
  const result: CallToolResult = {
    isError: true,
    structuredContent: required as unknown as Record<string, unknown>,
    content: [{ type: "text", text: JSON.stringify(required) }],
  };
  if (receipt) result._meta = { [PAYMENT_RESPONSE_META_KEY]: receipt };
  return result;
}

/** A `content[0].text` larger than this is not parsed looking for a PaymentRequired (one is a few KiB). */
const MAX_TEXT_CHARS = 256 * 1024;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function looksRequired(v: unknown): v is Record<string, unknown> {
  return isObject(v) && "x402Version" in v && Array.isArray(v.accepts);
}

/**
 * The PaymentRequired of a payment-required tool result, as the spec's client requirements read
 * it: `structuredContent` when it has `x402Version` and `accepts`, else `content[0].text` parsed
 * as JSON with the same fields. Undefined for any other result (including non-error results: a
 * tool may return payment data as its ordinary output). Not validated here: the payment client
 * validates it field by field before choosing anything.
 */
export function readPaymentRequired(result: unknown): Record<string, unknown> | undefined {
  if (!isObject(result) || result.isError !== true) return undefined;
  if (looksRequired(result.structuredContent)) return result.structuredContent;
  const first = Array.isArray(result.content) ? result.content[0] : undefined;
  if (!isObject(first) || first.type !== "text" || typeof first.text !== "string" || first.text.length > MAX_TEXT_CHARS) return undefined;
  try {
    const parsed: unknown = JSON.parse(first.text);
    return looksRequired(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** The raw `_meta["x402/payment-response"]` of a result, if any. */
export function rawPaymentResponse(result: unknown): unknown {
  if (!isObject(result) || !isObject(result._meta)) return undefined;
  return result._meta[PAYMENT_RESPONSE_META_KEY];
}

/** The settlement response in a result's `_meta["x402/payment-response"]`, validated; undefined when absent or malformed. */
export function readPaymentResponse(result: unknown): SettleResponse | undefined {
  const raw = rawPaymentResponse(result);
  if (raw === undefined) return undefined;
  const parsed = parseSettleResponse(raw);
  return parsed.ok ? parsed.value : undefined;
}
