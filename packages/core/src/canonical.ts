/**
 * Key-order-independent JSON, so a re-serialized payload hashes and compares the same.
 * Input comes from outside (payloads, `extra`): nesting is bounded, and a value nested deeper
 * than `maxDepth` is a `CanonicalJsonError` naming the limit, never a stack overflow.
 */
export class CanonicalJsonError extends Error {
  override name = "CanonicalJsonError";
}

/** Deeper than any x402 message needs (a payload is a handful of levels). */
export const MAX_JSON_DEPTH = 32;

export function canonicalJson(value: unknown, maxDepth = MAX_JSON_DEPTH): string {
  return encode(value, 0, maxDepth);
}

function encode(value: unknown, depth: number, maxDepth: number): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (depth >= maxDepth) throw new CanonicalJsonError(`nested deeper than ${maxDepth} levels`);
  if (Array.isArray(value)) return "[" + value.map((v) => encode(v, depth + 1, maxDepth)).join(",") + "]";
  const o = value as Record<string, unknown>;
  return (
    "{" +
    Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => JSON.stringify(k) + ":" + encode(o[k], depth + 1, maxDepth))
      .join(",") +
    "}"
  );
}

/** How deeply `value` nests (0 for a primitive), counting no further than `limit + 1`. */
export function jsonDepth(value: unknown, limit = MAX_JSON_DEPTH): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    const here = d + 1;
    if (here > deepest) deepest = here;
    if (deepest > limit) return deepest;
    for (const child of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)) stack.push([child, here]);
  }
  return deepest;
}
