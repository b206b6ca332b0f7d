/**
 * A resource server's view of a facilitator: verify, settle, and what it supports.
 * `httpFacilitatorClient` speaks the facilitator HTTP API of the v2 specification (section 7);
 * `localFacilitatorClient` wraps an in-process `createFacilitator` so both can be passed
 * wherever a `FacilitatorClient` is expected.
 */
import { decodeExtensionResponses, EXTENSION_RESPONSES_HEADER, type ExtensionResponses } from "./discovery/extension-responses.ts";
import type { Facilitator } from "./facilitator.ts";
import { parseSettleResponse, parseSupportedResponse, parseVerifyResponse, type ParseResult } from "./schemas.ts";
import type { PaymentPayload, PaymentRequirements, ResourceInfo, SettleResponse, SupportedResponse, VerifyResponse } from "./types.ts";
import { requirementsToV1 } from "./v1.ts";

export interface FacilitatorClient {
  verify(payload: PaymentPayload, requirements: PaymentRequirements, options?: FacilitatorCallOptions): Promise<VerifyResponse>;
  settle(payload: PaymentPayload, requirements: PaymentRequirements, options?: FacilitatorCallOptions): Promise<SettleResponse>;
  supported(): Promise<SupportedResponse>;
}

export interface FacilitatorCallOptions {
  /**
   * The facilitator advertises this (scheme, network) as a v1 kind only: it is sent a v1 body
   * (`x402Version: 1`, the v1 network name, v1 requirements with the resource inline).
   */
  v1?: { network: string; resource: ResourceInfo };
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
  /** Timeout of `/verify` and `/supported`. Default 30 000. */
  timeoutMs?: number;
  /**
   * Timeout of `/settle`. It must be above the facilitator's own receipt wait (30 s by default),
   * or a settlement the facilitator is still confirming looks like a failure here. Default 60 000.
   */
  settleTimeoutMs?: number;
  /** How long a successful `/supported` answer is reused. Default 300 000 (5 minutes). */
  supportedTtlMs?: number;
  /**
   * Called with the `EXTENSION-RESPONSES` header of a `/verify` or `/settle` answer (e.g. the
   * catalog refusing this server's bazaar declaration, and why). Must not throw.
   */
  onExtensionResponses?: (endpoint: "verify" | "settle", responses: ExtensionResponses) => void;
}

const EXCERPT_CHARS = 200;

export function httpFacilitatorClient(options: HttpFacilitatorOptions): FacilitatorClient {
  const base = options.url.replace(/\/+$/, "");
  if (!/^https?:\/\//i.test(base)) throw new TypeError(`facilitator url must be http(s): ${JSON.stringify(options.url)}`);
  const doFetch = options.fetch ?? globalThis.fetch;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const settleTimeoutMs = options.settleTimeoutMs ?? 60_000;
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
    const limit = endpoint === "settle" ? settleTimeoutMs : timeoutMs;
    try {
      response = await doFetch(`${base}/${endpoint}`, {
        method: body === undefined ? "GET" : "POST",
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(limit),
      });
      text = await response.text();
    } catch (e) {
      const why = e instanceof Error && (e.name === "TimeoutError" || e.name === "AbortError") ? `timed out after ${limit} ms` : errorText(e);
      throw new FacilitatorError(`facilitator ${endpoint}: ${why}`, endpoint, undefined, "");
    }
    if (endpoint !== "supported" && options.onExtensionResponses) {
      const responses = decodeExtensionResponses(response.headers.get(EXTENSION_RESPONSES_HEADER));
      if (responses) options.onExtensionResponses(endpoint, responses);
    }
    const excerpt = compact(text);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new FacilitatorError(`facilitator ${endpoint}: HTTP ${response.status}, body is not JSON: ${excerpt}`, endpoint, response.status, excerpt);
    }
    const parsed = parse(json);
    // A 4xx answer that is nonetheless a well-formed negative verify/settle result (the payload
    // was unreadable, too large, rate-limited) is the facilitator's verdict on the payment. A 5xx
    // (or 401: our own credentials) is the facilitator failing, whatever its body says.
    if (parsed.ok && (response.ok || (endpoint !== "supported" && isVerdictStatus(response.status) && !isPositive(parsed.value)))) return parsed.value;
    const detail = parsed.ok ? excerpt : `${parsed.message} (${excerpt})`;
    throw new FacilitatorError(`facilitator ${endpoint}: HTTP ${response.status}: ${detail}`, endpoint, response.status, excerpt);
  }

  let cached: { at: number; value: Promise<SupportedResponse> } | undefined;

  return {
    verify: (paymentPayload, paymentRequirements, callOptions) =>
      call("verify", facilitatorRequestBody(paymentPayload, paymentRequirements, callOptions), parseVerifyResponse),
    settle: async (paymentPayload, paymentRequirements, callOptions) => {
      const response = await call("settle", facilitatorRequestBody(paymentPayload, paymentRequirements, callOptions), parseSettleResponse);
      // A v1 answer names the network the v1 way; the paywall speaks CAIP-2.
      return callOptions?.v1 && response.network === callOptions.v1.network ? { ...response, network: paymentRequirements.network } : response;
    },
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

/**
 * The `/verify` and `/settle` body: `x402Version` always at the top level (the facilitator
 * requires it); a v1 body for a kind the facilitator serves over v1 only.
 */
export function facilitatorRequestBody(paymentPayload: PaymentPayload, paymentRequirements: PaymentRequirements, options?: FacilitatorCallOptions): Record<string, unknown> {
  const v1 = options?.v1;
  if (!v1) return { x402Version: 2, paymentPayload, paymentRequirements };
  return {
    x402Version: 1,
    paymentPayload: { x402Version: 1, scheme: paymentRequirements.scheme, network: v1.network, payload: paymentPayload.payload },
    paymentRequirements: requirementsToV1(paymentRequirements, v1.network, v1.resource),
  };
}

/** An in-process facilitator (`createFacilitator`) as a `FacilitatorClient`. */
export function localFacilitatorClient(facilitator: Facilitator): FacilitatorClient {
  const request = (payload: PaymentPayload, requirements: PaymentRequirements, options?: FacilitatorCallOptions) =>
    options?.v1 ? { x402Version: 1 as const, payload, requirements, v1Network: options.v1.network } : { x402Version: 2 as const, payload, requirements };
  return {
    verify: (payload, requirements, options) => facilitator.verify(request(payload, requirements, options)),
    settle: (payload, requirements, options) => facilitator.settle(request(payload, requirements, options)),
    supported: async () => facilitator.supported(),
  };
}

/** Statuses whose well-formed negative body is a verdict on the payment, not a facilitator failure. */
function isVerdictStatus(status: number): boolean {
  return status === 400 || status === 402 || status === 409 || status === 413 || status === 422 || status === 429;
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
