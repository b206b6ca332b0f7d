/**
 * The paywall for frameworks whose handlers return a web-standard `Response` (hono, Next.js
 * route handlers): turning the paywall's answers into a `Response`, and the one way a handler's
 * `Response` is held, settled and then sent or replaced.
 */
import { mergeHeaderValue } from "./headers.ts";
import type { Respond } from "./responses.ts";
import type { PaidDecision } from "./types.ts";

/** A paywall answer (402, 400, 500…) as a `Response`. */
export function toWebResponse(r: Respond): Response {
  return new Response(r.body as BodyInit, { status: r.status, headers: r.headers });
}

/** `res` with `body` and the payment headers merged into its own. */
export function withPaymentHeaders(res: Response, body: BodyInit | null, add: Record<string, string>): Response {
  const headers = new Headers(res.headers);
  for (const [k, v] of Object.entries(add)) headers.set(k, mergeHeaderValue(k, headers.get(k), v));
  return new Response(body, { status: res.status, statusText: res.statusText, headers });
}

/**
 * Settle-after for a handler's `Response`: the whole body is read first (a stream that fails
 * midway, or grows past `maxResponseBytes`, is not charged), then settled, then sent with the
 * payment headers, or replaced by the paywall's answer with nothing of the handler's in it.
 */
export async function settleWebResponse(decision: PaidDecision, res: Response, aborted: boolean): Promise<Response> {
  const read = await readCapped(res, decision.maxResponseBytes);
  const status = read.kind === "failed" ? 500 : res.status;
  const body = read.kind === "ok" ? read.body : null;
  const outcome = await decision.settle({
    status,
    headers: headerPairs(res.headers),
    ...(body ? { body } : {}),
    tooLarge: read.kind === "tooLarge",
    aborted,
  });
  // Not settled (or served from the replay cache): a new response, nothing of the handler's.
  if (outcome.kind === "respond") return toWebResponse(outcome);
  if (read.kind === "failed") return Response.json({ error: "the resource failed while sending its response" }, { status: 500 });
  return withPaymentHeaders(res, body, outcome.headers);
}

function headerPairs(headers: Headers): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  headers.forEach((value, name) => out.push([name, value]));
  return out;
}

type Read = { kind: "ok"; body: Uint8Array<ArrayBuffer> | null } | { kind: "tooLarge" } | { kind: "failed" };

/** The whole body, unless it passes `limit` bytes (the stream is then cancelled) or fails midway. */
async function readCapped(res: Response, limit: number): Promise<Read> {
  if (res.body === null) return { kind: "ok", body: null };
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel().catch(() => {});
        return { kind: "tooLarge" };
      }
      chunks.push(value);
    }
  } catch {
    return { kind: "failed" };
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { kind: "ok", body };
}
