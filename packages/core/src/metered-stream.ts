/**
 * The `metered-stream` extension (docs/extensions/metered-stream.md): a paid response streamed
 * as server-sent events and charged per unit delivered, under the maximum the client signed
 * with `upto`. This file is the wire: the extension's name and advertisement, the control
 * events the server adds to the stream, the SSE framing both sides use, and the client's
 * reader (running cost, stop reason, the in-band settlement receipt).
 */
import { decodeBase64Json } from "./codec.ts";
import { parseSettleResponse } from "./schemas.ts";
import type { SettleResponse } from "./types.ts";

export const METERED_STREAM = "metered-stream";

/** Control events the server adds to a metered stream; the handler's own messages never use the `x402-` prefix. */
export const MeteredEvent = {
  /** First event: the terms this stream is charged on. */
  terms: "x402-metered",
  /** After each message: the running count and cost. */
  cost: "x402-cost",
  /** The next message would have passed the signed maximum: nothing more is sent. */
  capReached: "x402-cap-reached",
  /** Last event: why the stream stopped and the settlement of what was delivered. */
  settlement: "x402-settlement",
} as const;

/** Why a metered stream stopped. */
export type MeteredStopReason = "done" | "cap" | "client-gone" | "time-limit" | "error";

/** One priced option of a metered route, aligned with `accepts` by scheme, network and asset. */
export interface MeteredPrice {
  scheme: string;
  network: string;
  asset: string;
  /** Atomic units of `asset` per unit delivered. */
  pricePerUnit: string;
}

/** `extensions["metered-stream"].info` in a 402. */
export interface MeteredStreamInfo {
  version: "1";
  /** What is counted: "token", "chunk", "second", or the route's own word. */
  unit: string;
  /** How the stream is framed. */
  format: "text/event-stream";
  prices: MeteredPrice[];
}

/** Data of the `x402-metered` event. */
export interface MeteredTermsEvent {
  unit: string;
  pricePerUnit: string;
  max: string;
  asset: string;
  network: string;
  /** Unix ms after which the server stops the stream (the authorization must still be settleable). */
  endsBy: number;
}

/** Data of the `x402-cost` and `x402-cap-reached` events. */
export interface MeteredCostEvent {
  /** Units delivered so far. */
  delivered: string;
  /** Atomic units charged so far: delivered × pricePerUnit. */
  charged: string;
  max: string;
}

/** Data of the final `x402-settlement` event. */
export interface MeteredSettlementEvent extends MeteredCostEvent {
  stopped: MeteredStopReason;
  /** True when the charge was settled (a zero charge is settled with no transfer). */
  success: boolean;
  /** The base64 SettleResponse, as PAYMENT-RESPONSE would carry it (headers are gone by now). */
  paymentResponse?: string;
  /** Why settlement failed (a reason code where one exists). */
  error?: string;
}

export const meteredStreamSchema = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object",
  properties: {
    version: { type: "string", const: "1" },
    unit: { type: "string", minLength: 1, maxLength: 32 },
    format: { type: "string", const: "text/event-stream" },
    prices: {
      type: "array",
      items: {
        type: "object",
        properties: {
          scheme: { type: "string" },
          network: { type: "string" },
          asset: { type: "string" },
          pricePerUnit: { type: "string", pattern: "^[1-9][0-9]*$" },
        },
        required: ["scheme", "network", "asset", "pricePerUnit"],
      },
    },
  },
  required: ["version", "unit", "format", "prices"],
} as const;

// ------------------------------------------------------------------ SSE framing

export interface SseEvent {
  event?: string;
  data: string;
  id?: string;
}

const FIELD_VALUE = /^[^\r\n]*$/;

/**
 * One SSE event as text. Each line of `data` becomes its own `data:` line (CR, LF and CRLF all
 * end a line, as the SSE parser reads them), so the client reads back exactly `data` (CRs
 * normalized to LF). `event` and `id` cannot hold line breaks: refused rather than split.
 */
export function encodeSseEvent(e: SseEvent): string {
  let out = "";
  if (e.event !== undefined) {
    if (!FIELD_VALUE.test(e.event) || e.event === "") throw new TypeError("SSE event name: must be non-empty and hold no line break");
    out += `event: ${e.event}\n`;
  }
  if (e.id !== undefined) {
    if (!FIELD_VALUE.test(e.id) || e.id.includes("\0")) throw new TypeError("SSE id: must hold no line break or NUL");
    out += `id: ${e.id}\n`;
  }
  for (const line of e.data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return out + "\n";
}

/**
 * An incremental SSE parser (the WHATWG event-stream rules for `event`, `data`, `id`;
 * comments and unknown fields ignored). Feed decoded text in any pieces; `end()` drops an
 * unterminated last event, as browsers do.
 */
export function createSseParser(onEvent: (e: SseEvent) => void): { feed(text: string): void; end(): void } {
  let buffer = "";
  let event: string | undefined;
  let id: string | undefined;
  let data: string[] = [];
  let pendingCR = false;

  const dispatch = () => {
    if (data.length > 0) onEvent({ data: data.join("\n"), ...(event !== undefined ? { event } : {}), ...(id !== undefined ? { id } : {}) });
    event = undefined;
    data = [];
  };
  const line = (l: string) => {
    if (l === "") return dispatch();
    if (l.startsWith(":")) return;
    const colon = l.indexOf(":");
    const field = colon === -1 ? l : l.slice(0, colon);
    let value = colon === -1 ? "" : l.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id" && !value.includes("\0")) id = value;
  };
  return {
    feed(text: string) {
      // A CR at the end of the previous piece may be the first half of a CRLF.
      if (pendingCR && text.startsWith("\n")) text = text.slice(1);
      pendingCR = false;
      buffer += text;
      for (;;) {
        const m = /\r\n|\r|\n/.exec(buffer);
        if (!m) break;
        if (m[0] === "\r" && m.index === buffer.length - 1) pendingCR = true;
        line(buffer.slice(0, m.index));
        buffer = buffer.slice(m.index + m[0].length);
      }
    },
    end() {
      buffer = "";
      data = [];
    },
  };
}

// ------------------------------------------------------------------ client reader

export interface MeteredStreamHandlers {
  /** Each of the resource's own messages (control events excluded). */
  onMessage?: (message: SseEvent) => void;
  /** The running count and cost, after each message. */
  onCost?: (cost: { delivered: bigint; charged: bigint; max: bigint }) => void;
  /** The terms, when the stream opens. */
  onTerms?: (terms: MeteredTermsEvent) => void;
}

export interface MeteredStreamResult {
  terms: MeteredTermsEvent | undefined;
  /** Messages received (not control events). */
  messages: number;
  /** As last reported by the server (the final event, else the last cost event). */
  delivered: bigint;
  charged: bigint;
  /** Undefined when the stream ended without its final event (connection lost or cancelled). */
  stopped: MeteredStopReason | undefined;
  capReached: boolean;
  /** The final event's settlement, decoded and checked; undefined if none came. */
  settlement: SettleResponse | undefined;
  /** The final event's `success` (false: settlement failed; see `error`). */
  success: boolean | undefined;
  error: string | undefined;
}

/**
 * Reads a metered stream to its end: calls the handlers as events arrive and resolves with the
 * final tally and settlement receipt. Malformed control events are reported as `error` and
 * otherwise ignored (they never throw). Pass `signal` to stop reading (the connection is
 * cancelled: the server stops and charges what it delivered).
 */
export async function readMeteredStream(response: Response, handlers: MeteredStreamHandlers = {}, signal?: AbortSignal): Promise<MeteredStreamResult> {
  const result: MeteredStreamResult = { terms: undefined, messages: 0, delivered: 0n, charged: 0n, stopped: undefined, capReached: false, settlement: undefined, success: undefined, error: undefined };
  if (!response.body) return result;
  const reader = response.body.getReader();
  const onAbort = () => void reader.cancel().catch(() => {});
  signal?.addEventListener("abort", onAbort, { once: true });
  const parser = createSseParser((e) => onEvent(e, result, handlers));
  const decoder = new TextDecoder();
  try {
    for (;;) {
      if (signal?.aborted) break;
      const { done, value } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
    }
  } catch (e) {
    if (!signal?.aborted) result.error ??= `stream failed: ${(e as Error).message}`;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    parser.end();
  }
  return result;
}

function onEvent(e: SseEvent, r: MeteredStreamResult, h: MeteredStreamHandlers): void {
  switch (e.event) {
    case MeteredEvent.terms: {
      const terms = jsonOf<MeteredTermsEvent>(e.data);
      if (terms) {
        r.terms = terms;
        h.onTerms?.(terms);
      }
      return;
    }
    case MeteredEvent.cost:
    case MeteredEvent.capReached: {
      const cost = costOf(jsonOf<MeteredCostEvent>(e.data));
      if (!cost) return void (r.error ??= `malformed ${e.event} event`);
      r.delivered = cost.delivered;
      r.charged = cost.charged;
      if (e.event === MeteredEvent.capReached) r.capReached = true;
      else h.onCost?.(cost);
      return;
    }
    case MeteredEvent.settlement: {
      const final = jsonOf<MeteredSettlementEvent>(e.data);
      const cost = costOf(final);
      if (!final || !cost) return void (r.error ??= "malformed x402-settlement event");
      r.delivered = cost.delivered;
      r.charged = cost.charged;
      r.stopped = final.stopped;
      r.success = final.success === true;
      if (typeof final.error === "string") r.error = final.error;
      if (typeof final.paymentResponse === "string") {
        const decoded = decodeBase64Json(final.paymentResponse, "x402-settlement paymentResponse");
        const parsed = decoded.ok ? parseSettleResponse(decoded.value) : undefined;
        if (parsed?.ok) r.settlement = parsed.value;
        else r.error ??= "x402-settlement: paymentResponse is not a settlement response";
      }
      return;
    }
    default:
      r.messages++;
      h.onMessage?.(e);
  }
}

function jsonOf<T>(text: string): T | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return v && typeof v === "object" ? (v as T) : undefined;
  } catch {
    return undefined;
  }
}

const ATOMIC = /^\d{1,78}$/;

function costOf(c: Partial<MeteredCostEvent> | undefined): { delivered: bigint; charged: bigint; max: bigint } | undefined {
  if (!c || typeof c.delivered !== "string" || typeof c.charged !== "string" || typeof c.max !== "string") return undefined;
  if (!ATOMIC.test(c.delivered) || !ATOMIC.test(c.charged) || !ATOMIC.test(c.max)) return undefined;
  return { delivered: BigInt(c.delivered), charged: BigInt(c.charged), max: BigInt(c.max) };
}
