/**
 * Route keys ("GET /weather", "/api/*") and their compilation into payment requirements.
 * Compilation happens once, at startup, so a price that cannot be paid or a network no
 * scheme serves is a configuration error thrown by `createPaywall`, not a 500 at request time.
 */
import {
  networkMatches,
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
}

/** A single option inline, or several under `accepts` (e.g. different prices per network). */
export type RouteConfig = (PaymentOption & RouteResource) | ({ accepts: PaymentOption[] } & RouteResource);

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
  resource: RouteResource;
  options: CompiledRequirement[];
}

export class PaywallConfigError extends Error {
  override name = "PaywallConfigError";
}

const DEFAULT_TIMEOUT_SECONDS = 60;

export function compileRoutes(routes: Record<string, RouteConfig>, schemes: readonly SchemeServer[]): CompiledRoute[] {
  return Object.entries(routes).map(([key, config]) => {
    const { method, pattern } = parseRouteKey(key);
    const options = "accepts" in config ? config.accepts : [config];
    if (!Array.isArray(options) || options.length === 0) throw new PaywallConfigError(`route "${key}": accepts must list at least one payment option`);
    const compiled = options.flatMap((option, i) => compileOption(option, schemes, options.length > 1 ? `route "${key}" accepts[${i}]` : `route "${key}"`));
    const resource: RouteResource = {};
    if (config.description !== undefined) resource.description = config.description;
    if (config.mimeType !== undefined) resource.mimeType = config.mimeType;
    return { key, method, pattern, resource, options: compiled };
  });
}

/** "GET /a/*" -> method GET, path pattern. `*` matches any characters, including "/". */
export function parseRouteKey(key: string): { method: string | undefined; pattern: RegExp } {
  const m = /^\s*(?:([A-Za-z]+)\s+)?(\/\S*)\s*$/.exec(key);
  if (!m) throw new PaywallConfigError(`route key ${JSON.stringify(key)}: expected "[METHOD] /path", e.g. "GET /weather" or "/api/*"`);
  const path = normalizePath(m[2]!);
  const source = path
    .split("*")
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join(".*");
  return { method: m[1]?.toUpperCase(), pattern: new RegExp(`^${source}$`) };
}

export function matchRoute(routes: readonly CompiledRoute[], method: string, pathname: string): CompiledRoute | undefined {
  const path = normalizePath(pathname);
  const verb = method.toUpperCase();
  // HEAD is GET without a body: a GET route covers it.
  return routes.find((r) => (r.method === undefined || r.method === verb || (verb === "HEAD" && r.method === "GET")) && r.pattern.test(path));
}

/** "/a/" and "/a" are the same resource. */
function normalizePath(path: string): string {
  return path.length > 1 && path.endsWith("/") ? path.replace(/\/+$/, "") || "/" : path;
}

function compileOption(option: PaymentOption, schemes: readonly SchemeServer[], where: string): CompiledRequirement[] {
  const schemeName = option.scheme ?? "exact";
  const networks = Array.isArray(option.network) ? option.network : [option.network];
  if (networks.length === 0) throw new PaywallConfigError(`${where}: network must name at least one network`);
  return networks.map((network) => {
    const scheme = schemes.find((s) => s.scheme === schemeName && s.networks.some((p) => networkMatches(p, network)));
    if (!scheme) throw new PaywallConfigError(`${where}: no "${schemeName}" scheme server is configured for network ${network}`);
    const payTo = typeof option.payTo === "string" ? option.payTo : option.payTo[network];
    if (!payTo) throw new PaywallConfigError(`${where}: payTo has no address for network ${network}`);
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
