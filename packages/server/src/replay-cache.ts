/**
 * Responses this paywall produced for payments that carried a `payment-identifier`. The
 * extension's spec: "same id, same payload → return cached response". A client whose paid
 * request timed out may send the same payload again and gets what it paid for, once more; the
 * facilitator answers such a settle with `replay: true`, and a replay is served only from here
 * (without a cached response it is refused: one payment, one response).
 *
 * Bounded three ways: entries expire after the payment's `maxTimeoutSeconds`, an entry larger
 * than `maxEntryBytes` is not kept, and the least recently used go when the total passes
 * `maxBytes` or `maxEntries`.
 */

export interface CachedResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Uint8Array;
}

export interface ReplayCacheOptions {
  /** Default 1000. */
  maxEntries?: number;
  /** Default 256 KiB. */
  maxEntryBytes?: number;
  /** Default 16 MiB. */
  maxBytes?: number;
  now?: () => number;
}

export interface ReplayCache {
  get(key: string): CachedResponse | undefined;
  /** Keeps `response` for `ttlMs`; false when it is too large to keep. */
  set(key: string, response: CachedResponse, ttlMs: number): boolean;
  readonly size: number;
  readonly bytes: number;
}

interface Entry {
  response: CachedResponse;
  expires: number;
  bytes: number;
}

export function createReplayCache(options: ReplayCacheOptions = {}): ReplayCache {
  const maxEntries = options.maxEntries ?? 1000;
  const maxEntryBytes = options.maxEntryBytes ?? 256 * 1024;
  const maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
  const now = options.now ?? Date.now;
  // A Map iterates in insertion order: re-inserting on read makes the first key the least recently used.
  const entries = new Map<string, Entry>();
  let total = 0;

  const remove = (key: string) => {
    const e = entries.get(key);
    if (!e) return;
    entries.delete(key);
    total -= e.bytes;
  };

  return {
    get(key) {
      const e = entries.get(key);
      if (!e) return undefined;
      if (e.expires <= now()) {
        remove(key);
        return undefined;
      }
      entries.delete(key);
      entries.set(key, e);
      return e.response;
    },
    set(key, response, ttlMs) {
      const bytes = sizeOf(response);
      if (bytes > maxEntryBytes || bytes > maxBytes || ttlMs <= 0) return false;
      remove(key);
      entries.set(key, { response, expires: now() + ttlMs, bytes });
      total += bytes;
      for (const oldest of entries.keys()) {
        if (total <= maxBytes && entries.size <= maxEntries) break;
        remove(oldest);
      }
      return true;
    },
    get size() {
      return entries.size;
    },
    get bytes() {
      return total;
    },
  };
}

function sizeOf(r: CachedResponse): number {
  let n = r.body.byteLength + 64;
  for (const [k, v] of r.headers) n += k.length + v.length + 4;
  return n;
}
