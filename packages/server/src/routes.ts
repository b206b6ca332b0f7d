/**
 * Route keys ("GET /weather", "/api/*") and their compilation into payment requirements.
 * Compilation happens once, at startup, so a price that cannot be paid or a network no
 * scheme serves is a configuration error thrown by `createPaywall`, not a 500 at request time.
 */
import { CHARGED_SCHEMES } from "./charge.ts";
import { compileMandate, type CompiledMandate, type MandateRouteConfig } from "./mandate-check.ts";
import { compileMetered, type CompiledMetered, type MeteredRouteConfig } from "./metered/terms.ts";
import {
  compileDiscovery,
  DiscoveryDeclarationError,
  isValidIconUrl,
  isValidServiceName,
  MAX_TAG_LENGTH,
  MAX_TAGS,
  networkMatches,
  sanitizeTags,
  type BazaarExtension,
  type BazaarRequestContext,
  type DiscoveryDeclaration,
  parsePaymentRequirements,
  type Network,
  type PaymentRequirements,
  type Price,
  type SchemeServer,
} from "@tollgate/core";

/** One way to pay for a route, possibly on several networks. */
export interface PaymentOption {
  /** Payment scheme. Default "exact". */
  scheme?: string;
  /** "$0.01", "0.01 USDC", or an exact `{ amount, asset }` in atomic units. */
  price: Price;
  network: Network | Network[];
  /** The receiving address, or one per network. */
  payTo: string | Record<string, string>;
  /** How long the payer's authorization must stay valid. Default 60. */
  maxTimeoutSeconds?: number;
  /** Merged over the scheme's `extra` (e.g. EIP-712 domain name/version). */
  extra?: Record<string, unknown>;
}

export interface RouteResource {
  description?: string;
  mimeType?: string;
  /** For catalogs: a name of at most 32 printable ASCII characters. */
  serviceName?: string;
  /** For catalogs: at most 5 distinct tags of at most 32 printable ASCII characters. */
  tags?: string[];
  /** For catalogs: an icon at a public http(s) URL. */
  iconUrl?: string;
}

/** The route's listing in facilitators' catalogs (the bazaar extension in its 402). */
export interface RouteDiscovery {
  /**
   * How to call the resource: example query parameters or body and their JSON Schemas, the
   * output, a `routeTemplate` for parameterized paths. Declared in every 402 of the route; the
   * client echoes it in its payment and the facilitator catalogs it once the payment settles.
   */
  discovery?: DiscoveryDeclaration;
}

/** How the paywall runs a paid route's handler. */
export interface RouteBehavior {
  /**
   * When the payment is settled. "after" (default): the handler runs, its response is held, and
   * the payment is settled only when the handler succeeded; the payer is never charged for a
   * failure. "before": verified AND settled before the handler runs, for handlers whose effects
   * cannot be undone (sending a message, starting a job). The payer has then paid whatever the
   * handler does: a handler failure is the merchant's to make good. The response is streamed,
   * not held, and not cached for payment-identifier replays.
   */
  settle?: "after" | "before";
  /** Largest response held for settlement (settle "after"), in bytes. Default: the paywall's `maxResponseBytes`. */
  maxResponseBytes?: number;
}

/** A single option inline, or several under `accepts` (e.g. different prices per network). */
export type RouteConfig = ((PaymentOption & RouteResource) | ({ accepts: PaymentOption[] } & RouteResource)) & RouteBehavior & RouteDiscovery & RouteMandate & RouteMetered;

/** Metered streams (metered/, docs/extensions/metered-stream.md). */
export interface RouteMetered {
  /**
   * The response is a server-sent-event stream charged per unit delivered, under the `upto`
   * maximum the client signed (the route's price); the 402 advertises `metered-stream`. The
   * handler streams with `meteredResponse` / `meteredStream` of its adapter.
   */
  metered?: MeteredRouteConfig;
}

/** AP2 mandates (mandate-check.ts, docs/extensions/ap2-mandate.md). */
export interface RouteMandate {
  /** "required": the 402 advertises `ap2-mandate` and a payment without a valid, bound mandate chain is refused before the facilitator is asked. */
  mandate?: MandateRouteConfig;
}

export interface CompiledRequirement {
  requirements: PaymentRequirements;
  scheme: SchemeServer;
  /** How the price was written, for the HTML page ("$0.01"), or a description of the atomic amount. */
  display: string;
}

export interface CompiledRoute {
  key: string;
  method: string | undefined;
  pattern: RegExp;
  /** The same pattern ignoring ASCII case, as Express routes by default. */
  patternIgnoringCase: RegExp;
  resource: RouteResource;
  options: CompiledRequirement[];
  settle: "after" | "before";
  maxResponseBytes: number | undefined;
  /** The route's bazaar declaration for one request, when it has one. */
  discovery: ((request: BazaarRequestContext) => BazaarExtension) | undefined;
  /** Set when the route requires an AP2 mandate. */
  mandate?: CompiledMandate;
  /** Set when the route is a metered stream. */
  metered?: CompiledMetered;
}

export class PaywallConfigError extends Error {
  override name = "PaywallConfigError";
}

const DEFAULT_TIMEOUT_SECONDS = 60;

export function compileRoutes(routes: Record<string, RouteConfig>, schemes: readonly SchemeServer[]): CompiledRoute[] {
  return Object.entries(routes).map(([key, config]) => {
    const { method, pattern, patternIgnoringCase } = parseRouteKey(key);
    return { key, method, pattern, patternIgnoringCase, ...compileRouteConfig(key, config, schemes) };
  });
}

/**
 * A route attached by the framework itself (the per-route form): no key to match, the
 * framework's routing decided. `name` labels it in errors and events.
 */
export function compileRoute(name: string, config: RouteConfig, schemes: readonly SchemeServer[]): CompiledRoute {
  const never = /(?!)/;
  return { key: name, method: undefined, pattern: never, patternIgnoringCase: never, ...compileRouteConfig(name, config, schemes) };
}

function compileRouteConfig(key: string, config: RouteConfig, schemes: readonly SchemeServer[]): Omit<CompiledRoute, "key" | "method" | "pattern" | "patternIgnoringCase"> {
  if (typeof config !== "object" || config === null) throw new PaywallConfigError(`route "${key}": expected a route configuration object`);
  const options = "accepts" in config ? config.accepts : [config];
  if (!Array.isArray(options) || options.length === 0) throw new PaywallConfigError(`route "${key}": accepts must list at least one payment option`);
  const compiled = options.flatMap((option, i) => compileOption(option, schemes, options.length > 1 ? `route "${key}" accepts[${i}]` : `route "${key}"`));
  const resource = compileResource(key, config);
  const settle = config.settle ?? "after";
  if (settle !== "after" && settle !== "before") throw new PaywallConfigError(`route "${key}": settle must be "after" or "before", got ${JSON.stringify(settle)}`);
  // A usage-priced option is charged what the handler decides: unknown before it runs.
  const charged = compiled.find((o) => CHARGED_SCHEMES.has(o.scheme.scheme));
  if (settle === "before" && charged) throw new PaywallConfigError(`route "${key}": settle "before" cannot be used with the "${charged.scheme.scheme}" scheme (the charge is decided after the handler runs)`);
  const max = config.maxResponseBytes;
  if (max !== undefined && (!Number.isSafeInteger(max) || max < 0)) throw new PaywallConfigError(`route "${key}": maxResponseBytes must be a non-negative whole number of bytes`);
  let discovery: CompiledRoute["discovery"];
  try {
    discovery = config.discovery === undefined ? undefined : compileDiscovery(config.discovery, `route "${key}" discovery`);
  } catch (e) {
    throw e instanceof DiscoveryDeclarationError ? new PaywallConfigError(e.message) : e;
  }
  let mandate: CompiledMandate | undefined;
  try {
    mandate = compileMandate(key, config.mandate);
  } catch (e) {
    throw new PaywallConfigError((e as Error).message);
  }
  let metered: CompiledMetered | undefined;
  try {
    metered = compileMetered(key, config.metered, compiled, settle);
  } catch (e) {
    throw new PaywallConfigError((e as Error).message);
  }
  return { resource, options: compiled, settle, maxResponseBytes: max, discovery, ...(mandate ? { mandate } : {}), ...(metered ? { metered } : {}) };
}

/** The resource fields of a route; catalog metadata is checked here so a listing is never dropped silently later. */
function compileResource(key: string, config: RouteResource): RouteResource {
  const resource: RouteResource = {};
  if (config.description !== undefined) resource.description = config.description;
  if (config.mimeType !== undefined) resource.mimeType = config.mimeType;
  if (config.serviceName !== undefined) {
    if (!isValidServiceName(config.serviceName)) throw new PaywallConfigError(`route "${key}": serviceName must be 1-32 printable ASCII characters`);
    resource.serviceName = config.serviceName;
  }
  if (config.tags !== undefined) {
    const tags = sanitizeTags(config.tags);
    if (!tags || tags.length !== config.tags.length) throw new PaywallConfigError(`route "${key}": tags must be at most ${MAX_TAGS} distinct strings of 1-${MAX_TAG_LENGTH} printable ASCII characters`);
    resource.tags = tags;
  }
  if (config.iconUrl !== undefined) {
    if (!isValidIconUrl(config.iconUrl)) throw new PaywallConfigError(`route "${key}": iconUrl must be a public http(s) URL (no credentials, IP address or localhost)`);
    resource.iconUrl = config.iconUrl;
  }
  return resource;
}

/** "GET /a/*" -> method GET, path pattern. `*` matches any characters, including "/"; a trailing "/*" also matches the bare prefix. */
export function parseRouteKey(key: string): { method: string | undefined; pattern: RegExp; patternIgnoringCase: RegExp } {
  const m = /^\s*(?:([A-Za-z]+)\s+)?(\/\S*)\s*$/.exec(key);
  if (!m) throw new PaywallConfigError(`route key ${JSON.stringify(key)}: expected "[METHOD] /path", e.g. "GET /weather" or "/api/*"`);
  const path = normalizePath(m[2]!);
  let source = path
    .split("*")
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join(".*");
  // "/api/*" covers "/api" itself too: a handler mounted with app.use("/api") answers both.
  if (source.endsWith("/.*")) source = `${source.slice(0, -3)}(?:/.*)?`;
  // No "u" flag: case folding then follows the same (ASCII-centred) rules as Express's path-to-regexp.
  return { method: m[1]?.toUpperCase(), pattern: new RegExp(`^${source}$`), patternIgnoringCase: new RegExp(`^${source}$`, "i") };
}

export interface MatchOptions {
  /** Match paths ignoring case (Express routes this way unless "case sensitive routing" is on). */
  ignoreCase?: boolean;
}

/**
 * The first route priced for any of `methods` on any of `paths`. Callers pass every method and
 * path the framework might route the request on: pricing a request the framework would not
 * route to a paid handler costs nothing, missing one that it would gives the resource away.
 */
export function matchRoute(routes: readonly CompiledRoute[], methods: string | readonly string[], paths: string | readonly string[], options: MatchOptions = {}): CompiledRoute | undefined {
  const verbs = (typeof methods === "string" ? [methods] : methods).map((m) => m.toUpperCase());
  const candidates = (typeof paths === "string" ? [paths] : paths).map(normalizePath);
  return routes.find((r) => {
    if (r.method !== undefined && !verbs.some((v) => v === r.method || (v === "HEAD" && r.method === "GET"))) return false;
    const pattern = options.ignoreCase ? r.patternIgnoringCase : r.pattern;
    return candidates.some((p) => pattern.test(p));
  });
}

/**
 * "/a/", "/a//" and "//a" are matched as "/a": frameworks differ on repeated and trailing
 * slashes (Express without strict routing ignores one trailing slash), and treating them as the
 * same resource can only price more requests, never fewer.
 */
export function normalizePath(path: string): string {
  const collapsed = path.replace(/\/{2,}/g, "/");
  return collapsed.length > 1 && collapsed.endsWith("/") ? collapsed.slice(0, -1) : collapsed;
}

function compileOption(option: PaymentOption, schemes: readonly SchemeServer[], where: string): CompiledRequirement[] {
  const schemeName = option.scheme ?? "exact";
  const networks = Array.isArray(option.network) ? option.network : [option.network];
  if (networks.length === 0) throw new PaywallConfigError(`${where}: network must name at least one network`);
  return networks.map((network) => {
    const scheme = schemes.find((s) => s.scheme === schemeName && s.networks.some((p) => networkMatches(p, network)));
    if (!scheme) throw new PaywallConfigError(`${where}: no "${schemeName}" scheme server is configured for network ${network}`);
    const payTo = typeof option.payTo === "string" ? option.payTo : option.payTo[network];
    if (typeof payTo !== "string" || payTo === "") throw new PaywallConfigError(`${where}: payTo has no address for network ${network}`);
    const payToProblem = scheme.checkPayTo?.(payTo, network);
    if (payToProblem) throw new PaywallConfigError(`${where}: payTo on ${network}: ${payToProblem}`);
    let amount;
    try {
      amount = scheme.parsePrice(option.price, network);
    } catch (e) {
      throw new PaywallConfigError(`${where}: price ${JSON.stringify(option.price)} on ${network}: ${e instanceof Error ? e.message : String(e)}`);
    }
    const extra = { ...amount.extra, ...option.extra };
    const candidate: PaymentRequirements = {
      scheme: schemeName,
      network,
      amount: amount.amount,
      asset: amount.asset,
      payTo,
      maxTimeoutSeconds: option.maxTimeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS,
      ...(Object.keys(extra).length > 0 ? { extra } : {}),
    };
    const checked = parsePaymentRequirements(candidate, where);
    if (!checked.ok) throw new PaywallConfigError(checked.message);
    const display = typeof option.price === "string" ? option.price.trim() : `${amount.amount} atomic units of ${amount.asset}`;
    return { requirements: candidate, scheme, display };
  });
}
