/**
 * Choosers order the acceptable options (those a scheme supports and the policy allows).
 * The client pays with the first one it can reserve budget for. A chooser may also drop
 * options; it must not invent new ones (unknown entries are ignored).
 */
import { networkMatches } from "../caip2.ts";
import type { PaymentRequirements, ResourceInfo } from "../types.ts";
import { assetKey } from "./policy.ts";

export interface ChooseContext {
  x402Version: 1 | 2;
  resource?: ResourceInfo;
  url?: string;
}

export type Chooser = (options: readonly PaymentRequirements[], context: ChooseContext) => readonly PaymentRequirements[];

/** The default: the server's order. */
export const serverOrder: Chooser = (options) => options;

/** Options on earlier patterns first (`["eip155:8453", "solana:*"]`); the rest keep their order, last. */
export function preferNetworks(patterns: readonly string[]): Chooser {
  const rank = (r: PaymentRequirements) => {
    const i = patterns.findIndex((p) => networkMatches(p, r.network));
    return i < 0 ? patterns.length : i;
  };
  // Array.prototype.sort is stable, so equal ranks keep the server's order.
  return (options) => [...options].sort((a, b) => rank(a) - rank(b));
}

/**
 * The cheapest first, comparing atomic amounts only between options in the same asset on the
 * same network (amounts in different assets are not comparable without prices). Each asset's
 * options are sorted among the positions they held, so other assets keep their places.
 */
export function cheapest(): Chooser {
  return (options) => {
    const groups = new Map<string, PaymentRequirements[]>();
    for (const o of options) {
      const k = assetKey(o.network, o.asset);
      const g = groups.get(k);
      if (g) g.push(o);
      else groups.set(k, [o]);
    }
    for (const g of groups.values()) g.sort((a, b) => (BigInt(a.amount) < BigInt(b.amount) ? -1 : BigInt(a.amount) > BigInt(b.amount) ? 1 : 0));
    const next = new Map<string, number>();
    return options.map((o) => {
      const k = assetKey(o.network, o.asset);
      const i = next.get(k) ?? 0;
      next.set(k, i + 1);
      return groups.get(k)![i]!;
    });
  };
}
