/**
 * Adding the paywall's headers to a handler's response: list-valued headers the handler may
 * already carry (a CORS middleware's Access-Control-Expose-Headers, Vary) are merged, the
 * payment headers replace.
 */
const LIST_HEADERS = new Set(["access-control-expose-headers", "vary"]);

export function mergeHeaderValue(name: string, existing: string | undefined | null, value: string): string {
  if (!existing || !LIST_HEADERS.has(name.toLowerCase())) return value;
  const have = existing.split(",").map((s) => s.trim()).filter(Boolean);
  const lower = new Set(have.map((s) => s.toLowerCase()));
  for (const v of value.split(",").map((s) => s.trim())) if (v && !lower.has(v.toLowerCase())) have.push(v);
  return have.join(", ");
}
