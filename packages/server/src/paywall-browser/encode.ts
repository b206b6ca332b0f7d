// Base64 JSON for the x402 headers, in the browser (core's codec uses Node's Buffer). Same bytes:
// UTF-8 JSON, standard base64 with padding.

export function encodeBase64Json(value: unknown): string {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  let binary = "";
  // In slices: String.fromCharCode(...bytes) overflows the call stack on large inputs.
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** The JSON a header carries, or undefined when it is absent or not base64 JSON. */
export function decodeBase64Json(header: string | null): unknown {
  if (!header) return undefined;
  try {
    const binary = atob(header.trim().replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return undefined;
  }
}
