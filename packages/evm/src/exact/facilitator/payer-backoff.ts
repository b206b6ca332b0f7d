/**
 * Payers whose authorization reverted on chain after passing every check are refused for a while
 * (`Reason.payerSuspended`). Verification (including the fee-field dry run for contract wallets)
 * catches what it can; what it cannot (a wallet or token that behaves differently once mined) costs
 * the fee payer gas, and without a back-off the same payer could make it pay again and again.
 * Keyed by network and payer; shared between the scheme and the facilitator's background results.
 */
export interface PayerBackoff {
  /** Until when (ms since epoch) `payer` is refused on `network`, or undefined. */
  suspendedUntil(network: string, payer: string): number | undefined;
  /** Notes a mined revert for `payer` on `network`. */
  suspend(network: string, payer: string): void;
}

export function createPayerBackoff(options: { backoffMs?: number; now?: () => number; maxEntries?: number } = {}): PayerBackoff {
  const backoffMs = options.backoffMs ?? 600_000;
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 100_000;
  const until = new Map<string, number>();
  const keyOf = (network: string, payer: string) => `${network}|${payer.toLowerCase()}`;
  return {
    suspendedUntil(network, payer) {
      if (until.size === 0) return undefined; // the hot path: nobody is suspended
      const key = keyOf(network, payer);
      const t = until.get(key);
      if (t === undefined) return undefined;
      if (t > now()) return t;
      until.delete(key);
      return undefined;
    },
    suspend(network, payer) {
      if (backoffMs <= 0) return;
      if (until.size >= maxEntries) {
        const t = now();
        for (const [k, v] of until) if (v <= t) until.delete(k);
        // Still full: the oldest entry goes (insertion order).
        if (until.size >= maxEntries) until.delete(until.keys().next().value!);
      }
      const key = keyOf(network, payer);
      until.delete(key);
      until.set(key, now() + backoffMs);
    },
  };
}
