/**
 * A metered route's terms (docs/extensions/metered-stream.md): the unit and its price, compiled
 * once per payment option at startup (a price that cannot be charged exactly is a configuration
 * error, not a 500 later), advertised in the 402, and handed to the adapter with a paid decision.
 */
import { isAtomic, METERED_STREAM, meteredStreamSchema, type MeteredPrice, type MeteredStreamInfo, type PaymentRequirements } from "@tollgate/core";
import { CHARGED_SCHEMES } from "../charge.ts";
import type { CompiledRequirement } from "../routes.ts";

export { METERED_STREAM };

/** Route option `metered`: the response is a stream charged per unit delivered, under the signed `upto` maximum. */
export interface MeteredRouteConfig {
  /** What is counted: "token", "chunk", "second", or your own word (1-32 printable ASCII characters). */
  unit: string;
  /** Per unit: atomic units of the asset ("100") or dollars ("$0.0001"), converted exactly per payment option. */
  pricePerUnit: string;
  /**
   * Seconds kept free at the end of the payer's authorization window to settle in: the stream
   * is stopped `maxTimeoutSeconds - settleMarginSeconds` after the payment was verified.
   * Default 15. Raise the route's `maxTimeoutSeconds` for long streams.
   */
  settleMarginSeconds?: number;
}

export interface CompiledMetered {
  unit: string;
  settleMarginSeconds: number;
  /** One per payment option, same order as the route's options. */
  prices: MeteredPrice[];
}

/** What the adapter streams a paid request under. */
export interface MeteredTerms {
  unit: string;
  pricePerUnit: bigint;
  /** The signed maximum: the stream's cap. */
  max: bigint;
  asset: string;
  network: string;
  /** Unix ms by which the stream is stopped so the authorization can still be settled. */
  endsBy: number;
  /** Where settlement failures after the headers went out are reported (the paywall's onError). */
  onError: (error: unknown) => void;
}

const UNIT = /^[\x21-\x7e](?:[\x20-\x7e]{0,30}[\x21-\x7e])?$/;
const DEFAULT_SETTLE_MARGIN_SECONDS = 15;

/** Throws a message (the caller wraps it in PaywallConfigError) naming what is wrong. */
export function compileMetered(key: string, config: MeteredRouteConfig | undefined, options: readonly CompiledRequirement[], settle: "after" | "before"): CompiledMetered | undefined {
  if (config === undefined) return undefined;
  const where = `route "${key}" metered`;
  if (typeof config !== "object" || config === null) throw new Error(`${where}: expected { unit, pricePerUnit }`);
  if (typeof config.unit !== "string" || !UNIT.test(config.unit)) throw new Error(`${where}.unit: expected 1-32 printable ASCII characters, e.g. "token"`);
  if (settle !== "after") throw new Error(`${where}: a metered stream is settled when it ends; settle "before" cannot be used`);
  const margin = config.settleMarginSeconds ?? DEFAULT_SETTLE_MARGIN_SECONDS;
  if (!Number.isSafeInteger(margin) || margin < 0) throw new Error(`${where}.settleMarginSeconds: expected a whole number of seconds >= 0`);
  const prices = options.map((o) => {
    const r = o.requirements;
    if (!CHARGED_SCHEMES.has(r.scheme)) throw new Error(`${where}: the "${r.scheme}" scheme charges the price as signed; metered streams need a usage-priced scheme (upto, batch-settlement)`);
    if (r.maxTimeoutSeconds <= margin) throw new Error(`${where}: maxTimeoutSeconds (${r.maxTimeoutSeconds}) must be above settleMarginSeconds (${margin}) on ${r.network}`);
    const price = unitPrice(config.pricePerUnit, o, where);
    if (price > BigInt(r.amount)) throw new Error(`${where}.pricePerUnit: ${price} atomic units is above the route's maximum ${r.amount} on ${r.network}: not even one unit could be delivered`);
    return { scheme: r.scheme, network: r.network, asset: r.asset, pricePerUnit: price.toString() };
  });
  return { unit: config.unit, settleMarginSeconds: margin, prices };
}

function unitPrice(raw: unknown, option: CompiledRequirement, where: string): bigint {
  if (typeof raw !== "string") throw new Error(`${where}.pricePerUnit: expected a string ("100" atomic units or "$0.0001")`);
  // (isAtomic's type guard narrows `raw` to never past it: the text is read from `text`.)
  const text: string = raw.trim();
  let value: bigint;
  if (isAtomic(raw)) value = BigInt(raw);
  else if (/^\$\d+(?:\.\d+)?$/.test(text)) {
    const r = option.requirements;
    const priced = option.scheme.parsePrice(text, r.network); // throws when it cannot be paid exactly
    if (priced.asset.toLowerCase() !== r.asset.toLowerCase()) throw new Error(`${where}.pricePerUnit: ${raw} prices in ${priced.asset}, not the route's asset ${r.asset}; write atomic units`);
    value = BigInt(priced.amount);
  } else throw new Error(`${where}.pricePerUnit: ${JSON.stringify(text.slice(0, 40))} is neither atomic units ("100") nor dollars ("$0.0001")`);
  if (value <= 0n) throw new Error(`${where}.pricePerUnit: must be above zero`);
  return value;
}

/** `extensions["metered-stream"]` of the route's 402. */
export function meteredAdvertisement(metered: CompiledMetered, accepts: readonly PaymentRequirements[]): { info: MeteredStreamInfo; schema: typeof meteredStreamSchema } {
  const prices = accepts.map((r) => priceFor(metered, r)).filter((p): p is MeteredPrice => p !== undefined);
  return { info: { version: "1", unit: metered.unit, format: "text/event-stream", prices }, schema: meteredStreamSchema };
}

/**
 * The terms of a verified payment on `requirements` (the accepted option). `validUntil` (unix
 * seconds, the scheme's `validUntil` of the payment) is when its authorization ends: a client may
 * sign a shorter window than `maxTimeoutSeconds`, and a stream still running then could no longer
 * be settled.
 */
export function meteredTermsFor(metered: CompiledMetered, requirements: PaymentRequirements, onError: (e: unknown) => void, now = Date.now(), validUntil?: number): MeteredTerms | undefined {
  const price = priceFor(metered, requirements);
  if (!price) return undefined;
  const margin = metered.settleMarginSeconds * 1000;
  const deadline = validUntil !== undefined && Number.isSafeInteger(validUntil) ? validUntil * 1000 : undefined;
  return {
    unit: metered.unit,
    pricePerUnit: BigInt(price.pricePerUnit),
    max: BigInt(requirements.amount),
    asset: requirements.asset,
    network: requirements.network,
    endsBy: Math.min(now + requirements.maxTimeoutSeconds * 1000 - margin, deadline === undefined ? Infinity : deadline - margin),
    onError,
  };
}

function priceFor(metered: CompiledMetered, r: PaymentRequirements): MeteredPrice | undefined {
  return metered.prices.find((p) => p.scheme === r.scheme && p.network === r.network && p.asset.toLowerCase() === r.asset.toLowerCase());
}
