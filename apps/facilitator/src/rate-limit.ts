/**
 * Token buckets keyed by client (IP, payer). A bucket holds up to `burst` tokens and refills
 * at `perSecond`; each request takes one. State is in memory, per process: a limit on abuse,
 * not an accounting system.
 */

export interface BucketLimit {
  /** Tokens added per second (sustained rate). */
  perSecond: number;
  /** Bucket size (largest burst). */
  burst: number;
}

export interface RateLimiter {
  /** Takes a token for `key`; false when the bucket is empty. */
  take(key: string): boolean;
  readonly size: number;
}

/** Buckets beyond this many keys are swept (full, idle buckets are dropped first). */
const MAX_KEYS = 100_000;

export function createRateLimiter(limit: BucketLimit, now: () => number = () => performance.now()): RateLimiter {
  if (!(limit.perSecond > 0) || !(limit.burst >= 1)) throw new RangeError("rate limit: perSecond must be > 0 and burst >= 1");
  const buckets = new Map<string, { tokens: number; at: number }>();

  function sweep(t: number) {
    for (const [k, b] of buckets) {
      if (b.tokens + ((t - b.at) / 1000) * limit.perSecond >= limit.burst) buckets.delete(k);
    }
    // Still too many: drop the oldest (Map iterates in insertion order).
    for (const k of buckets.keys()) {
      if (buckets.size <= MAX_KEYS / 2) break;
      buckets.delete(k);
    }
  }

  return {
    take(key) {
      const t = now();
      let b = buckets.get(key);
      if (!b) {
        if (buckets.size >= MAX_KEYS) sweep(t);
        b = { tokens: limit.burst, at: t };
        buckets.set(key, b);
      } else {
        b.tokens = Math.min(limit.burst, b.tokens + ((t - b.at) / 1000) * limit.perSecond);
        b.at = t;
      }
      if (b.tokens < 1) return false;
      b.tokens -= 1;
      return true;
    },
    get size() {
      return buckets.size;
    },
  };
}
