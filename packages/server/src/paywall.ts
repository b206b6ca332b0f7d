/**
 * The resource-server side of x402, without a web framework: given a request, decide whether
 * it is free, must be answered now (402 / 400 / 500), or is paid and may run — in which case
 * the adapter runs the handler, holds its response, and calls `settle` with it.
 *
 * The guarantees, whatever the client sends:
 * - A request the framework may route to a paid handler is priced (request.ts); one the paywall
 *   cannot read is a 400 `invalid_request`, never free.
 * - One payment, one response: copies of one authorization never reach a handler concurrently
 *   in this process (inflight.ts), and a settlement the facilitator reports as already handed
 *   out is served only from this paywall's own cache of that payment's response (replay-cache.ts).
 * - Never charged without the resource: nothing is settled for a handler that failed, a
 *   response too large to hold, or a client that went away; a pending settlement is polled
 *   until final (settlement.ts); nothing of the handler's response is sent unless settled.
 */
import { bazaarResponseOf, httpFacilitatorClient, V1_NETWORKS, type ExtensionResponses, type FacilitatorClient } from "@tollgate/core";
import { facilitatorPool, type FacilitatorEntry } from "./facilitators/pool.ts";
import { createPipeline, decide, type Settings } from "./pipeline.ts";
import { createReplayCache } from "./replay-cache.ts";
import { isPreflight, parsePublicUrl, pathOf, requestMethods, requestPaths, type Read } from "./request.ts";
import { invalidRequest } from "./responses.ts";
import { compileRoute, compileRoutes, matchRoute, PaywallConfigError, type CompiledRoute, type RouteConfig } from "./routes.ts";
import { checkSupport, describeUnservable, requireServable } from "./supported-check.ts";
import type { Decision, Paywall, PaywallConfig, PaywallRequest, RouteGuard } from "./types.ts";

export { EXPOSED_HEADERS } from "./pipeline.ts";
export type { Respond } from "./responses.ts";
export type * from "./types.ts";

const FREE = { kind: "free" } as const;
const DEFAULT_SETTLEMENT_TIMEOUT_MS = 150_000;
const DEFAULT_SETTLEMENT_POLL_MS = 1_000;
const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

export function createPaywall(config: PaywallConfig): Paywall {
  const settings = resolveSettings(config);
  const routes = compileRoutes(config.routes ?? {}, config.schemes);
  const pipeline = createPipeline(settings, config.replayCache === false ? undefined : createReplayCache(config.replayCache));
  /** Every compiled route, per-route guards included, for the start-up check. */
  const checked: CompiledRoute[] = [...routes];
  let unnamed = 0;

  async function handle(request: PaywallRequest): Promise<Decision> {
    if (isPreflight(request.method, request.headers)) return FREE;
    const target = routingTarget(request);
    if (!target.ok) return invalidRequest(target.message, target.field);
    const route = matchRoute(routes, target.value.methods, target.value.paths, { ignoreCase: request.ignoreCase === true });
    if (!route) return FREE;
    return decide(pipeline, route, request);
  }

  function route(routeConfig: RouteConfig, name?: string): RouteGuard {
    const compiled = compileRoute(name ?? `route #${++unnamed}`, routeConfig, config.schemes);
    checked.push(compiled);
    return { handle: async (request) => (isPreflight(request.method, request.headers) ? FREE : decide(pipeline, compiled, request)) };
  }

  const ready = async () => requireServable(await checkSupport(settings.facilitator, checked, settings.names));
  // On the next turn, so routes attached right after construction (the per-route form) are included.
  if (config.checkAtStart !== false) setTimeout(() => void warnAtStart(settings, checked, config.onWarning ?? console.warn), 0).unref?.();

  return { handle, route, ready };
}

/** A URL, a client, or several of them (a pool that fails over between them: facilitators/pool.ts). */
function facilitatorOf(config: PaywallConfig): FacilitatorClient {
  const f = config.facilitator;
  const onExtensionResponses = catalogWarnings(config.onWarning ?? console.warn);
  if (typeof f === "string") return httpFacilitatorClient({ url: f, onExtensionResponses });
  if (Array.isArray(f)) {
    const entries = f as ReadonlyArray<FacilitatorEntry | FacilitatorClient | string>;
    return facilitatorPool({ facilitators: entries.map((e) => (typeof e === "string" ? { facilitator: httpFacilitatorClient({ url: e, onExtensionResponses }), name: e } : e)) });
  }
  return f as FacilitatorClient;
}

/**
 * A facilitator that refuses this server's bazaar declaration says so in `EXTENSION-RESPONSES`:
 * the operator hears it (once per reason) instead of the listing silently never appearing.
 */
export function catalogWarnings(warn: (message: string) => void): (endpoint: "verify" | "settle", responses: ExtensionResponses) => void {
  const told = new Set<string>();
  return (endpoint, responses) => {
    const bazaar = bazaarResponseOf(responses);
    if (bazaar?.status !== "rejected") return;
    const reason = (bazaar.rejectedReason ?? "no reason given").slice(0, 500);
    if (told.has(reason) || told.size >= 100) return;
    told.add(reason);
    try {
      warn(`tollgate paywall: the facilitator's catalog refused this server's discovery declaration (${endpoint}): ${reason}`);
    } catch {
      // a throwing warning hook must not fail a payment
    }
  };
}

/** The background form of `ready()`: findings become one warning each, nothing throws. */
async function warnAtStart(settings: Settings, routes: readonly CompiledRoute[], warn: (message: string) => void): Promise<void> {
  try {
    const report = await checkSupport(settings.facilitator, routes, settings.names);
    if (report.unservable.length > 0) warn(`tollgate paywall: ${describeUnservable(report)}`);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    warn(`tollgate paywall: could not ask the facilitator what it supports (${why}); paid routes answer 500 until it answers`);
  }
}

function resolveSettings(config: PaywallConfig): Settings {
  const whole = (value: number | undefined, fallback: number, field: string, min: number): number => {
    if (value === undefined) return fallback;
    if (!Number.isSafeInteger(value) || value < min) throw new PaywallConfigError(`${field}: expected a whole number >= ${min}, got ${value}`);
    return value;
  };
  if (!Array.isArray(config.schemes)) throw new PaywallConfigError("schemes: expected an array of scheme servers");
  return {
    facilitator: facilitatorOf(config),
    schemes: config.schemes,
    names: { ...V1_NETWORKS, ...config.v1Networks },
    publicUrl: parsePublicUrl(config.publicUrl),
    settlementTimeoutMs: whole(config.settlementTimeoutMs, DEFAULT_SETTLEMENT_TIMEOUT_MS, "settlementTimeoutMs", 0),
    settlementPollMs: whole(config.settlementPollMs, DEFAULT_SETTLEMENT_POLL_MS, "settlementPollMs", 1),
    maxResponseBytes: whole(config.maxResponseBytes, DEFAULT_MAX_RESPONSE_BYTES, "maxResponseBytes", 0),
    paywallPage: config.paywallPage,
    onSettled: config.onSettled,
    onError: config.onError ?? (() => {}),
    ...(config.channels ? { channels: config.channels } : {}),
  };
}

/** Every method and path the request may be routed on. */
function routingTarget(request: PaywallRequest): Read<{ methods: string[]; paths: string[] }> {
  const where = pathOf(request.url);
  let primary: string[];
  if (request.path !== undefined) primary = [request.path, ...(request.altPaths ?? [])];
  else if (where.ok) primary = [where.value.path];
  else return where;
  const paths = requestPaths(primary, request.headers);
  if (!paths.ok) return paths;
  if (!request.method || !/^[A-Za-z]+$/.test(request.method)) return { ok: false, field: "method", message: `method: not an HTTP method: ${JSON.stringify(String(request.method).slice(0, 32))}` };
  return { ok: true, value: { methods: requestMethods(request.method, request.headers, where.ok ? where.value.query : ""), paths: paths.value } };
}
