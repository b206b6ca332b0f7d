/**
 * A resource server's view of a facilitator: verify, settle, and what it supports.
 * `httpFacilitatorClient` speaks the facilitator HTTP API of the v2 specification (section 7);
 * `localFacilitatorClient` wraps an in-process `createFacilitator` so both can be passed
 * wherever a `FacilitatorClient` is expected.
 */
import type { Facilitator } from "./facilitator.ts";
import { parseSettleResponse, parseSupportedResponse, parseVerifyResponse, type ParseResult } from "./schemas.ts";
import type { PaymentPayload, PaymentRequirements, SettleResponse, SupportedResponse, VerifyResponse } from "./types.ts";

export interface FacilitatorClient {
  verify(payload: PaymentPayload, requirements: PaymentRequirements): Promise<VerifyResponse>;
  settle(payload: PaymentPayload, requirements: PaymentRequirements): Promise<SettleResponse>;
  supported(): Promise<SupportedResponse>;
}

/**
 * The facilitator could not be asked, or answered with something that is not a facilitator
 * response. `status` is the HTTP status, or undefined when no response arrived (unreachable,
 * timed out). `excerpt` is the start of the body, whitespace-collapsed, for logs.
 */
export class FacilitatorError extends Error {
  override name = "FacilitatorError";
  constructor(
    message: string,
    readonly endpoint: "verify" | "settle" | "supported",
    readonly status: number | undefined,
    readonly excerpt: string,
  ) {
    super(message);
  }
}

export interface HttpFacilitatorOptions {
  /** Base URL, e.g. `https://facilitator.example.com` (the `/verify` etc. paths are appended). */
  url: string;
  /** Extra request headers (e.g. authorization), computed per request. */
  headers?: (endpoint: "verify" | "settle" | "supported") => Record<string, string> | Promise<Record<string, string>>;
  fetch?: typeof globalThis.fetch;
  /** Per-request timeout; settlement waits for a chain, so the default is generous. Default 30 000. */
  timeoutMs?: number;
  /** How long a successful `/supported` answer is reused. Default 300 000 (5 minutes). */
  supportedTtlMs?: number;
}

const EXCERPT_CHARS = 200;

export function httpFacilitatorClient(options: HttpFacilitatorOptions): FacilitatorClient {
  const base = options.url.replace(/\/+$/, "");
  if (!/^https?:\/\//i.test(base)) throw new TypeError(`facilitator url must be http(s): ${JSON.stringify(options.url)}`);
  const doFetch = options.fetch ?? globalThis.fetch;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const ttl = options.supportedTtlMs ?? 300_000;

  async function call<T>(
    endpoint: "verify" | "settle" | "supported",
    body: unknown,
    parse: (v: unknown) => ParseResult<T>,
  ): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json", ...(await options.headers?.(endpoint)) };
    if (body !== undefined) headers["content-type"] = "application/json";
    let response: Response;
    let text: string;
    try {
      response = await doFetch(`${base}/${endpoint}`, {
        method: body === undefined ? "GET" : "POST",
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await response.text();
    } catch (e) {
      const why = e instanceof Error && (e.name === "TimeoutError" || e.name === "AbortError") ? `timed out after ${timeoutMs} ms` : errorText(e);
      throw new FacilitatorError(`facilitator ${endpoint}: ${why}`, endpoint, undefined, "");
    }
    const excerpt = compact(text);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new FacilitatorError(`facilitator ${endpoint}: HTTP ${response.status}, body is not JSON: ${excerpt}`, endpoint, response.status, excerpt);
    }
    const parsed = parse(json);
    // A non-2xx answer that is nonetheless a well-formed verify/settle result (isValid:false,
    // success:false) is the facilitator's verdict, not a transport failure.
    if (parsed.ok && (response.ok || (endpoint !== "supported" && !isPositive(parsed.value)))) return parsed.value;
    const detail = parsed.ok ? excerpt : `${parsed.message} (${excerpt})`;
    throw new FacilitatorError(`facilitator ${endpoint}: HTTP ${response.status}: ${detail}`, endpoint, response.status, excerpt);
  }

  let cached: { at: number; value: Promise<SupportedResponse> } | undefined;

  return {
    verify: (paymentPayload, paymentRequirements) =>
      call("verify", { x402Version: 2, paymentPayload, paymentRequirements }, parseVerifyResponse),
    settle: (paymentPayload, paymentRequirements) =>
      call("settle", { x402Version: 2, paymentPayload, paymentRequirements }, parseSettleResponse),
    supported() {
      if (cached && Date.now() - cached.at < ttl) return cached.value;
      const entry = { at: Date.now(), value: call("supported", undefined, parseSupportedResponse) };
      cached = entry;
      // A failure is not remembered: the next request asks again.
      entry.value.catch(() => {
        if (cached === entry) cached = undefined;
      });
      return entry.value;
    },
  };
}

/** An in-process facilitator (`createFacilitator`) as a `FacilitatorClient`. */
export function localFacilitatorClient(facilitator: Facilitator): FacilitatorClient {
  return {
    verify: (payload, requirements) => facilitator.verify({ x402Version: 2, payload, requirements }),
    settle: (payload, requirements) => facilitator.settle({ x402Version: 2, payload, requirements }),
    supported: async () => facilitator.supported(),
  };
}

/** An error status carrying `isValid: true` / `success: true` is contradictory: not trusted. */
function isPositive(value: unknown): boolean {
  const v = value as { isValid?: unknown; success?: unknown };
  return v.isValid === true || v.success === true;
}

function compact(text: string): string {
  const c = text.trim().replace(/\s+/g, " ");
  if (!c) return "<empty body>";
  return c.length <= EXCERPT_CHARS ? c : `${c.slice(0, EXCERPT_CHARS - 3)}...`;
}

function errorText(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  const cause = e instanceof Error && e.cause instanceof Error ? ` (${e.cause.message})` : "";
  return (m + cause).split("\n")[0]!.slice(0, 300);
}
