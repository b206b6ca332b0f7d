/**
 * The paywall's own answers (400, 402 bodies aside, 500) and what of the facilitator's words
 * may reach a client. A paying client learns the reason code and a message meant for it; the
 * facilitator's internal errors (RPC URLs, addresses of its own hosts, stack text) go to
 * `onError` only.
 */
import { decodeBase64Json, Headers as X402Headers, parsePaymentRequired, parseSettleResponse, Reason, type FieldIssue, type PaymentRequired, type SettleResponse } from "@tollgate/core";

export interface Respond {
  kind: "respond";
  status: number;
  headers: Record<string, string>;
  body: string | Uint8Array;
}

export function json(status: number, body: unknown): Respond {
  return { kind: "respond", status, headers: { "Content-Type": "application/json", "Cache-Control": "no-store" }, body: JSON.stringify(body) };
}

export function invalidPayload(message: string, field: string, issues?: FieldIssue[]): Respond {
  return json(400, { error: message, reason: Reason.invalidPayload, field, ...(issues ? { issues } : {}) });
}

/** The request itself (target, Host, method) could not be read: nothing is served for it. */
export function invalidRequest(message: string, field: string): Respond {
  return json(400, { error: message, reason: Reason.invalidRequest, field });
}

/** The facilitator is down or broken: HTTP 500 (transports-v2/http.md "Server Error"), a fixed text. */
export function facilitatorFailure(endpoint: "verify" | "settle" | "supported"): Respond {
  const reason = endpoint === "settle" ? Reason.unexpectedSettleError : Reason.unexpectedVerifyError;
  return json(500, { error: "the payment facilitator is unavailable; nothing was charged", reason });
}

/** Settlement could not be confirmed either way before the deadline and no answer came at all. */
export function settlementUnknown(): Respond {
  return json(500, { error: "the payment facilitator is unavailable; retry with the same payment later", reason: Reason.unexpectedSettleError });
}

export function internalError(endpoint: "verify" | "settle"): Respond {
  const reason = endpoint === "settle" ? Reason.unexpectedSettleError : Reason.unexpectedVerifyError;
  return json(500, { error: "internal error while processing the payment", reason });
}

export function responseTooLarge(limit: number): Respond {
  return json(500, { error: `the resource's response is larger than the ${limit} bytes the paywall holds for settlement; nothing was charged`, reason: Reason.responseTooLarge });
}

/**
 * The reason code of the Permit2 method's missing allowance. schemes/exact/scheme_exact_evm.md
 * (and scheme_upto_evm.md), Permit2 verification step 2: no allowance to Permit2 and neither gas
 * sponsoring extension, answered `412 Precondition Failed` so the client knows a one-time
 * `approve(Permit2)` is needed before it retries; every other refusal is a 402.
 */
export const PERMIT2_ALLOWANCE_REQUIRED = "permit2_allowance_required";

/** The status of a payment-required answer whose PaymentRequired.error is `error` ("reason" or "reason: message"). */
export function paymentRequiredStatus(error: string): 402 | 412 {
  return reasonOfError(error) === PERMIT2_ALLOWANCE_REQUIRED ? 412 : 402;
}

/** True for the paywall's payment-required answers (402, or 412 for a missing Permit2 allowance). */
export function isPaymentRequired(r: Respond): boolean {
  return r.status === 402 || r.status === 412;
}

function reasonOfError(error: string): string {
  const colon = error.indexOf(":");
  return (colon < 0 ? error : error.slice(0, colon)).trim();
}

/** Reasons whose message describes the facilitator's own trouble, not the payment. */
const INTERNAL_REASONS = new Set<string>([Reason.unexpectedVerifyError, Reason.unexpectedSettleError, Reason.facilitatorNotReady]);
const MAX_MESSAGE = 300;

/**
 * What a client may read of a facilitator message: nothing for internal reasons; otherwise one
 * line, bounded, with URLs and IP addresses replaced (a scheme message may quote an RPC error).
 */
export function publicMessage(reason: string, message: string | undefined): string | undefined {
  if (!message || INTERNAL_REASONS.has(reason)) return undefined;
  const line = message
    .split(/\r?\n/)[0]!
    .replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>)]+/gi, "<url>")
    .replace(/\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b/g, "<address>")
    .trim();
  if (!line) return undefined;
  return line.length <= MAX_MESSAGE ? line : `${line.slice(0, MAX_MESSAGE - 3)}...`;
}

/** "reason" or "reason: message", the form of PaymentRequired.error. */
export function errorText(reason: string, message: string | undefined): string {
  const m = publicMessage(reason, message);
  return m ? `${reason}: ${m}` : reason;
}

/** A settle response as a client may see it in PAYMENT-RESPONSE. */
export function publicSettleResponse(r: SettleResponse): SettleResponse {
  if (r.success || r.errorMessage === undefined) return r;
  const { errorMessage, ...rest } = r;
  const m = publicMessage(r.errorReason ?? Reason.unexpectedSettleError, errorMessage);
  return m ? { ...rest, errorMessage: m } : rest;
}

// ------------------------------------------------------------------ reading an answer back
// For transports that are not HTTP (MCP, A2A): the paywall answers as if over HTTP, and they
// carry what its answer says in their own shapes.

/** A header of a paywall answer, by case-insensitive name. */
export function respondHeader(r: Respond, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(r.headers)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

/** The PaymentRequired a 402 (or 412) carries in its header, or undefined. */
export function respondPaymentRequired(r: Respond): PaymentRequired | undefined {
  const decoded = decodeBase64Json(respondHeader(r, X402Headers.v2.required), X402Headers.v2.required);
  if (!decoded.ok) return undefined;
  const parsed = parsePaymentRequired(decoded.value);
  return parsed.ok ? parsed.value : undefined;
}

/** The settlement an answer reports in PAYMENT-RESPONSE, or undefined. */
export function respondSettlement(r: Respond): SettleResponse | undefined {
  const raw = respondHeader(r, X402Headers.v2.response);
  if (raw === undefined) return undefined;
  const decoded = decodeBase64Json(raw, X402Headers.v2.response);
  if (!decoded.ok) return undefined;
  const parsed = parseSettleResponse(decoded.value);
  return parsed.ok ? parsed.value : undefined;
}

/** An answer's JSON object body, or undefined. */
export function respondJson(r: Respond): Record<string, unknown> | undefined {
  try {
    const text = typeof r.body === "string" ? r.body : new TextDecoder().decode(r.body);
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
