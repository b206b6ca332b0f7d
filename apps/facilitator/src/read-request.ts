/**
 * A `/verify` or `/settle` body, from text to a protocol request: content type, JSON, nesting
 * depth, the protocol's shape (core's parseRequest, `x402Version` required) and the
 * payment-identifier extension. Anything wrong is a field-named reason for a 400, never a throw.
 */
import { jsonDepth, MAX_JSON_DEPTH, Reason, type Facilitator, type FacilitatorRequest } from "@tollgate/core";
import { paymentIdentifier } from "./payment.ts";

export type ReadRequestResult =
  | { ok: true; request: FacilitatorRequest; identifier: string | undefined }
  | { ok: false; reason: string; message: string; network: string };

const JSON_TYPE = /^application\/([a-z0-9.+-]*\+)?json\b/i;

export function readPaymentRequest(facilitator: Facilitator, text: string, contentType: string | undefined): ReadRequestResult {
  if (contentType && !JSON_TYPE.test(contentType.trim())) {
    return refused(Reason.invalidPayload, `content-type: expected application/json, got ${JSON.stringify(contentType.slice(0, 64))}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    // The parser's message quotes the body; say only what is wrong.
    return refused(Reason.invalidPayload, "body: not valid JSON");
  }
  // Bounded before anything walks it recursively (schemas, hashing, the schemes): a deeply
  // nested body is the client's error, never a stack overflow.
  if (jsonDepth(body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) return refused(Reason.invalidPayload, `body: nested deeper than ${MAX_JSON_DEPTH} levels`);
  const parsed = facilitator.parseRequest(body);
  if (!parsed.ok) return refused(parsed.reason, parsed.message, networkOf(body));
  const identifier = paymentIdentifier(parsed.request.payload);
  if (!identifier.ok) return refused(Reason.invalidPayload, identifier.message, parsed.request.requirements.network);
  return { ok: true, request: parsed.request, identifier: identifier.id };
}

function refused(reason: string, message: string, network = ""): ReadRequestResult {
  return { ok: false, reason, message, network };
}

function networkOf(body: unknown): string {
  const n = (body as { paymentRequirements?: { network?: unknown } } | null)?.paymentRequirements?.network;
  return typeof n === "string" ? n.slice(0, 64) : "";
}
