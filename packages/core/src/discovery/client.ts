/**
 * Asking a facilitator's catalog what can be bought: `listResources` and `searchResources` speak
 * `GET /discovery/resources` and `GET /discovery/search`; `discover` walks the pages for you. Any
 * facilitator's answer is validated (a catalog is a stranger's data) and read the same way.
 */
import { parseWith } from "../schemas.ts";
import {
  DISCOVERY_MAX_LIMIT,
  discoveryResourcesResponseSchema,
  searchResourcesResponseSchema,
  type DiscoveredResource,
  type DiscoveryFilters,
  type DiscoveryResourcesResponse,
  type ListResourcesParams,
  type SearchResourcesParams,
  type SearchResourcesResponse,
} from "./catalog-types.ts";

export interface DiscoveryClientOptions {
  fetch?: typeof globalThis.fetch;
  headers?: Record<string, string>;
  /** Per request. Default 10 000. */
  timeoutMs?: number;
}

/** The catalog could not be asked, or its answer is not a discovery response. */
export class DiscoveryError extends Error {
  override name = "DiscoveryError";
  constructor(
    message: string,
    readonly status: number | undefined,
  ) {
    super(message);
  }
}

export function listResources(facilitatorUrl: string, params: ListResourcesParams = {}, options: DiscoveryClientOptions = {}): Promise<DiscoveryResourcesResponse> {
  const query = filterQuery(params);
  if (params.limit !== undefined) query.set("limit", String(params.limit));
  if (params.offset !== undefined) query.set("offset", String(params.offset));
  return ask(facilitatorUrl, "resources", query, options, (v) => parseWith<DiscoveryResourcesResponse>(discoveryResourcesResponseSchema, v, "discoveryResources"));
}

export function searchResources(facilitatorUrl: string, params: SearchResourcesParams, options: DiscoveryClientOptions = {}): Promise<SearchResourcesResponse> {
  const query = filterQuery(params);
  query.set("query", params.query);
  if (params.limit !== undefined) query.set("limit", String(params.limit));
  if (params.cursor !== undefined) query.set("cursor", params.cursor);
  return ask(facilitatorUrl, "search", query, options, (v) => parseWith<SearchResourcesResponse>(searchResourcesResponseSchema, v, "discoverySearch"));
}

export interface DiscoverParams extends DiscoveryFilters {
  /** Words to search for (`/discovery/search`); omitted, the whole catalog is listed. */
  query?: string;
  /** Stop after this many resources. Default 100. */
  max?: number;
}

/** Every resource matching, across pages, up to `max`. */
export async function discover(facilitatorUrl: string, params: DiscoverParams = {}, options: DiscoveryClientOptions = {}): Promise<DiscoveredResource[]> {
  const { query, max = 100, ...filters } = params;
  const found: DiscoveredResource[] = [];
  const limit = Math.min(DISCOVERY_MAX_LIMIT, Math.max(1, max));
  if (query !== undefined) {
    let cursor: string | undefined;
    do {
      const page = await searchResources(facilitatorUrl, { ...filters, query, limit, ...(cursor ? { cursor } : {}) }, options);
      found.push(...page.resources);
      cursor = page.pagination?.cursor ?? undefined;
      if (page.resources.length === 0) break;
    } while (cursor && found.length < max);
    return found.slice(0, max);
  }
  for (let offset = 0; found.length < max; ) {
    const page = await listResources(facilitatorUrl, { ...filters, limit, offset }, options);
    found.push(...page.items);
    offset += page.items.length;
    if (page.items.length === 0 || offset >= page.pagination.total) break;
  }
  return found.slice(0, max);
}

function filterQuery(f: DiscoveryFilters): URLSearchParams {
  const q = new URLSearchParams();
  for (const key of ["type", "payTo", "scheme", "network", "extensions"] as const) {
    const v = f[key];
    if (v !== undefined) q.set(key, v);
  }
  return q;
}

async function ask<T>(
  facilitatorUrl: string,
  endpoint: "resources" | "search",
  query: URLSearchParams,
  options: DiscoveryClientOptions,
  parse: (v: unknown) => { ok: true; value: T } | { ok: false; message: string },
): Promise<T> {
  const base = facilitatorUrl.replace(/\/+$/, "");
  if (!/^https?:\/\//i.test(base)) throw new TypeError(`facilitator url must be http(s): ${JSON.stringify(facilitatorUrl)}`);
  const url = `${base}/discovery/${endpoint}${query.size > 0 ? `?${query}` : ""}`;
  const timeoutMs = options.timeoutMs ?? 10_000;
  let response: Response;
  let text: string;
  try {
    response = await (options.fetch ?? globalThis.fetch)(url, { headers: { accept: "application/json", ...options.headers }, signal: AbortSignal.timeout(timeoutMs) });
    text = await response.text();
  } catch (e) {
    const timedOut = e instanceof Error && (e.name === "TimeoutError" || e.name === "AbortError");
    throw new DiscoveryError(`discovery ${endpoint}: ${timedOut ? `timed out after ${timeoutMs} ms` : e instanceof Error ? e.message : String(e)}`, undefined);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new DiscoveryError(`discovery ${endpoint}: HTTP ${response.status}, body is not JSON`, response.status);
  }
  if (!response.ok) {
    const error = (json as { error?: unknown } | null)?.error;
    throw new DiscoveryError(`discovery ${endpoint}: HTTP ${response.status}${typeof error === "string" ? `: ${error.slice(0, 300)}` : ""}`, response.status);
  }
  const parsed = parse(json);
  if (!parsed.ok) throw new DiscoveryError(`discovery ${endpoint}: ${parsed.message}`, response.status);
  return parsed.value;
}
