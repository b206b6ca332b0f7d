/**
 * `paidFetchTool`: an AI SDK tool that fetches a URL and pays for it when the server answers
 * 402, through @tollgate/fetch's `wrapFetch` (the spending policy decides before anything is
 * signed). The model gets a JSON result: the status and the body as text (capped), what was paid
 * (dollars, network, transaction), or why nothing was paid, or whether a failed payment cost
 * money. Payment errors are results, not exceptions, so the agent loop goes on and the model
 * can choose another source or tell its user.
 */
import { tool, type Tool } from "ai";
import { z } from "zod/v4";
import type { UsdAsset } from "@tollgate/core";
import { getPaymentReceipt, wrapFetch, type FetchLike, type WrapFetchOptions } from "@tollgate/fetch";
import { isAbort, messageOf, paidSummary, paymentErrorResult, usdValuer, type ErrorResult, type PaidSummary, type PaymentErrorResult } from "./payment.ts";

/** The default cap on the body handed to the model: 64 KiB of text (65 536 UTF-16 characters). */
export const DEFAULT_MAX_BODY_CHARS = 64 * 1024;

export const PAID_FETCH_DESCRIPTION =
  "Fetch an http(s) URL. If the server asks for an x402 payment (HTTP 402), pay it automatically within the spending policy your user set, " +
  "and return the paid response. The result says what was paid (dollars, network, transaction), or, when the policy refuses the price, " +
  "that nothing was paid and why. Bodies are returned as text, truncated when long.";

export interface PaidFetchToolOptions {
  /** The fetch that carries the requests (default: the global fetch). */
  fetch?: FetchLike;
  /** At most this many characters of the body reach the model (default DEFAULT_MAX_BODY_CHARS, 64 KiB); the rest is dropped and `truncated` is true. */
  maxBodyChars?: number;
  /** Which URLs the model may fetch (default: any http/https URL). A refused URL is not requested at all. */
  allowUrl?: (url: URL) => boolean;
  /** Assets to report in dollars besides USDC on the networks core knows (e.g. a local test token). */
  usdAssets?: readonly UsdAsset[];
  /** The tool description the model reads (default PAID_FETCH_DESCRIPTION). */
  description?: string;
}

export const paidFetchInput = z.object({
  url: z.string().describe("The absolute http or https URL to fetch."),
  method: z.enum(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]).optional().describe("HTTP method (default GET)."),
  headers: z.record(z.string(), z.string()).optional().describe("Request headers."),
  body: z.string().optional().describe("Request body, as text (e.g. JSON)."),
});

export type PaidFetchInput = z.infer<typeof paidFetchInput>;

/** The server answered (after paying, when it asked for payment). */
export interface ResponseResult {
  outcome: "response";
  /** HTTP status < 400. */
  ok: boolean;
  status: number;
  contentType: string | null;
  /** The body as text, at most `maxBodyChars` characters. */
  body: string;
  truncated: boolean;
  /** What was paid for this response, or null when nothing was (a free resource). */
  paid: PaidSummary | null;
}

export type PaidFetchResult = ResponseResult | PaymentErrorResult | ErrorResult;

/**
 * An AI SDK tool that fetches and pays within the policy. `payment` is what `wrapFetch` takes:
 * `{ schemes, policy }` (a payment client is made) or `{ client }` (an existing one, e.g. shared
 * with other tools so they draw on one budget).
 */
export function paidFetchTool(payment: WrapFetchOptions, options: PaidFetchToolOptions = {}): Tool<PaidFetchInput, PaidFetchResult> {
  const maxChars = options.maxBodyChars ?? DEFAULT_MAX_BODY_CHARS;
  if (!Number.isSafeInteger(maxChars) || maxChars < 0) throw new RangeError("paidFetchTool: maxBodyChars must be a whole number >= 0");
  const paidFetch = wrapFetch(options.fetch ?? ((input, init) => fetch(input, init)), payment);
  const usd = usdValuer(options.usdAssets);

  return tool({
    description: options.description ?? PAID_FETCH_DESCRIPTION,
    inputSchema: paidFetchInput,
    async execute({ url, method, headers, body }, { abortSignal }): Promise<PaidFetchResult> {
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        return { outcome: "error", paid: false, message: `Not requested: ${JSON.stringify(url)} is not an absolute URL.` };
      }
      if (target.protocol !== "http:" && target.protocol !== "https:") return { outcome: "error", paid: false, message: `Not requested: only http and https URLs can be fetched, not ${target.protocol}` };
      if (options.allowUrl && !options.allowUrl(target)) return { outcome: "error", paid: false, message: `Not requested: ${target.href} is not a URL this tool may fetch.` };

      const verb = method ?? "GET";
      if (body !== undefined && (verb === "GET" || verb === "HEAD")) return { outcome: "error", paid: false, message: `Not requested: a ${verb} request cannot have a body; use POST (or another method) to send one.` };
      const init: RequestInit = { method: verb };
      if (headers) init.headers = headers;
      if (body !== undefined) init.body = body;
      if (abortSignal) init.signal = abortSignal;
      try {
        const response = await paidFetch(target.href, init);
        const info = getPaymentReceipt(response);
        const text = await readCapped(response, maxChars);
        return {
          outcome: "response",
          ok: response.ok,
          status: response.status,
          contentType: response.headers.get("content-type"),
          body: text.text,
          truncated: text.truncated,
          paid: info ? paidSummary(info, usd) : null,
        };
      } catch (e) {
        if (isAbort(abortSignal)) throw e;
        return paymentErrorResult(e, usd, target.href) ?? { outcome: "error", paid: false, message: `The request to ${target.href} failed before an answer: ${messageOf(e)}. Nothing was paid.` };
      }
    },
  });
}

/** The body as text, stopping (and cancelling the rest) after `max` characters. */
async function readCapped(response: Response, max: number): Promise<{ text: string; truncated: boolean }> {
  if (!response.body) return { text: "", truncated: false };
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) {
      text += decoder.decode();
      break;
    }
    text += decoder.decode(value, { stream: true });
    if (text.length > max) {
      await reader.cancel().catch(() => {});
      return { text: text.slice(0, max), truncated: true };
    }
  }
  return text.length > max ? { text: text.slice(0, max), truncated: true } : { text, truncated: false };
}
