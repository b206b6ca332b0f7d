/**
 * Base64 JSON codecs for the x402 HTTP headers. Decoding is defensive: a size cap before
 * any work, strict base64, JSON parse errors reported by name, never thrown raw.
 */

/** Headers larger than this are refused before decoding (servers commonly cap all headers at 8-16 KiB). */
export const MAX_HEADER_BYTES = 16 * 1024;

export type DecodeResult = { ok: true; value: unknown } | { ok: false; reason: "invalid_payload"; message: string };

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;
// One decoder for every header: decode() without `stream` keeps no state between calls, and
// constructing one costs more than decoding a payment header (bench/channel.ts profile).
const UTF8 = new TextDecoder("utf-8", { fatal: true });

export function encodeBase64Json(value: unknown): string {
  return Buffer.from(JSON.stringify(value), "utf8").toString("base64");
}

export function decodeBase64Json(header: string | null | undefined, name: string): DecodeResult {
  if (header == null || header === "") return { ok: false, reason: "invalid_payload", message: `${name}: header is empty` };
  if (header.length > MAX_HEADER_BYTES) {
    return { ok: false, reason: "invalid_payload", message: `${name}: header is ${header.length} bytes, over the ${MAX_HEADER_BYTES}-byte limit` };
  }
  const text = header.trim();
  let bytes: Buffer;
  if (BASE64.test(text) && text.length % 4 === 0) bytes = Buffer.from(text, "base64");
  else if (BASE64URL.test(text)) bytes = Buffer.from(text, "base64url");
  else return { ok: false, reason: "invalid_payload", message: `${name}: not valid base64` };
  let json: string;
  try {
    json = UTF8.decode(bytes);
  } catch {
    return { ok: false, reason: "invalid_payload", message: `${name}: decoded bytes are not UTF-8` };
  }
  try {
    return { ok: true, value: JSON.parse(json) };
  } catch (e) {
    return { ok: false, reason: "invalid_payload", message: `${name}: not valid JSON (${(e as Error).message})` };
  }
}
