/**
 * The `EXTENSION-RESPONSES` header a facilitator may add to `/verify` and `/settle` answers
 * (specs/extensions/bazaar.md): base64 of a JSON object keyed by extension name, e.g.
 * `{"bazaar":{"status":"rejected","rejectedReason":"..."}}`. It is how a resource server learns
 * that its listing was refused instead of it silently never appearing.
 */
import { decodeBase64Json, encodeBase64Json } from "../codec.ts";

export const EXTENSION_RESPONSES_HEADER = "EXTENSION-RESPONSES";

export type BazaarStatus = "success" | "processing" | "rejected";

export interface BazaarResponse {
  status: BazaarStatus;
  rejectedReason?: string;
}

export type ExtensionResponses = Record<string, unknown> & { bazaar?: BazaarResponse };

export function encodeExtensionResponses(responses: ExtensionResponses): string {
  return encodeBase64Json(responses);
}

/** The header's object, or undefined when it is absent or not base64 JSON of an object (never throws). */
export function decodeExtensionResponses(header: string | null | undefined): ExtensionResponses | undefined {
  const decoded = decodeBase64Json(header, EXTENSION_RESPONSES_HEADER);
  if (!decoded.ok) return undefined;
  const value = decoded.value;
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as ExtensionResponses) : undefined;
}

/** The `bazaar` entry when it is well formed. */
export function bazaarResponseOf(responses: ExtensionResponses | undefined): BazaarResponse | undefined {
  const b = responses?.bazaar as { status?: unknown; rejectedReason?: unknown } | undefined;
  if (!b || (b.status !== "success" && b.status !== "processing" && b.status !== "rejected")) return undefined;
  return { status: b.status, ...(typeof b.rejectedReason === "string" ? { rejectedReason: b.rejectedReason } : {}) };
}
