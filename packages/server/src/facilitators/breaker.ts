/**
 * One facilitator's health as data: a circuit breaker (closed → open after consecutive failures
 * → half-open after a cooldown, where one trial call decides) and a moving average of its
 * latency. Plain functions over a mutable record owned by the pool; no timers.
 */

export interface BreakerSettings {
  /** Consecutive failures that open the breaker. Default 3. */
  failures: number;
  /** How long an open breaker refuses calls before one trial. Default 30 000. */
  cooldownMs: number;
}

export interface Health {
  state: "closed" | "open" | "half-open";
  consecutiveFailures: number;
  /** When an open breaker may try again (ms since epoch). */
  retryAt: number;
  /** Exponential moving average of successful calls, ms; undefined before the first. */
  latencyMs: number | undefined;
  calls: number;
  failuresTotal: number;
  lastError: string | undefined;
}

export const DEFAULT_BREAKER: BreakerSettings = { failures: 3, cooldownMs: 30_000 };

export function newHealth(): Health {
  return { state: "closed", consecutiveFailures: 0, retryAt: 0, latencyMs: undefined, calls: 0, failuresTotal: 0, lastError: undefined };
}

/** May a call go to this facilitator now? An open breaker past its cooldown lets one trial through. */
export function admits(h: Health, now: number): boolean {
  if (h.state === "closed") return true;
  if (h.state === "open" && now >= h.retryAt) {
    h.state = "half-open";
    return true;
  }
  // half-open: the trial is in flight; others wait for its verdict.
  return false;
}

/** `ms` undefined: a success that says nothing about payment latency (a `/supported` refresh). */
export function recordSuccess(h: Health, ms: number | undefined): void {
  h.calls++;
  h.consecutiveFailures = 0;
  h.state = "closed";
  if (ms === undefined) return;
  // Weight 0.2: a few slow calls move it, one outlier does not dominate.
  h.latencyMs = h.latencyMs === undefined ? ms : h.latencyMs * 0.8 + ms * 0.2;
}

/** An open breaker whose cooldown has passed: its next call is the trial. */
export function trialDue(h: Health, now: number): boolean {
  return h.state === "open" && now >= h.retryAt;
}

export function recordFailure(h: Health, settings: BreakerSettings, now: number, error: string): void {
  h.calls++;
  h.failuresTotal++;
  h.consecutiveFailures++;
  h.lastError = error;
  if (h.state === "half-open" || h.consecutiveFailures >= settings.failures) {
    h.state = "open";
    h.retryAt = now + settings.cooldownMs;
  }
}
