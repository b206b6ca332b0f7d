/**
 * `GET /discovery/resources` and `GET /discovery/search` (x402 v2 section 8, bazaar.md): every
 * query parameter checked, a 400 naming the parameter for a bad one, the spec's shapes back.
 * Search pages use an opaque cursor (this catalog's offset, encoded); lists use limit/offset.
 */
import { DISCOVERY_DEFAULT_LIMIT, DISCOVERY_MAX_LIMIT, type DiscoveryFilters, type DiscoveryResourcesResponse, type SearchResourcesResponse } from "@tollgate/core";
import type { Catalog } from "./catalog.ts";

export interface DiscoveryAnswer {
  status: 200 | 400;
  body: DiscoveryResourcesResponse | SearchResourcesResponse | { error: string };
}

const FILTERS = ["type", "payTo", "scheme", "network", "extensions"] as const;
const MAX_FILTER_CHARS = 256;
const MAX_QUERY_CHARS = 512;
const MAX_OFFSET = 1_000_000;

type Read<T> = { ok: true; value: T } | { ok: false; error: string };

export async function answerList(catalog: Catalog, params: URLSearchParams): Promise<DiscoveryAnswer> {
  const filters = readFilters(params);
  if (!filters.ok) return bad(filters.error);
  const limit = readInt(params, "limit", DISCOVERY_DEFAULT_LIMIT, 1, DISCOVERY_MAX_LIMIT);
  if (!limit.ok) return bad(limit.error);
  const offset = readInt(params, "offset", 0, 0, MAX_OFFSET);
  if (!offset.ok) return bad(offset.error);
  const page = await catalog.list(filters.value, limit.value, offset.value);
  return { status: 200, body: { x402Version: 2, items: page.items, pagination: { limit: limit.value, offset: offset.value, total: page.total } } };
}

export async function answerSearch(catalog: Catalog, params: URLSearchParams): Promise<DiscoveryAnswer> {
  const query = params.get("query");
  if (query === null || query.trim() === "") return bad("query: required (the words to search for)");
  if (query.length > MAX_QUERY_CHARS) return bad(`query: at most ${MAX_QUERY_CHARS} characters`);
  const filters = readFilters(params);
  if (!filters.ok) return bad(filters.error);
  const limit = readInt(params, "limit", DISCOVERY_DEFAULT_LIMIT, 1, DISCOVERY_MAX_LIMIT);
  if (!limit.ok) return bad(limit.error);
  const cursor = params.get("cursor");
  const offset = cursor === null || cursor === "" ? 0 : offsetOfCursor(cursor);
  if (offset === undefined) return bad("cursor: not a cursor this catalog handed out");
  const page = await catalog.search(query, filters.value, limit.value, offset);
  const next = offset + page.items.length;
  return {
    status: 200,
    body: { x402Version: 2, resources: page.items, partialResults: false, pagination: { limit: limit.value, cursor: next < page.total ? cursorOf(next) : null } },
  };
}

function bad(error: string): DiscoveryAnswer {
  return { status: 400, body: { error } };
}

function readFilters(params: URLSearchParams): Read<DiscoveryFilters> {
  const filters: DiscoveryFilters = {};
  for (const name of FILTERS) {
    const value = params.get(name);
    if (value === null) continue;
    if (value.length === 0 || value.length > MAX_FILTER_CHARS) return { ok: false, error: `${name}: expected 1-${MAX_FILTER_CHARS} characters` };
    filters[name] = value;
  }
  return { ok: true, value: filters };
}

function readInt(params: URLSearchParams, name: string, fallback: number, min: number, max: number): Read<number> {
  const raw = params.get(name);
  if (raw === null) return { ok: true, value: fallback };
  const value = /^\d{1,9}$/.test(raw) ? Number(raw) : NaN;
  if (!(value >= min && value <= max)) return { ok: false, error: `${name}: expected a whole number from ${min} to ${max}` };
  return { ok: true, value };
}

function cursorOf(offset: number): string {
  return Buffer.from(`o:${offset}`, "utf8").toString("base64url");
}

function offsetOfCursor(cursor: string): number | undefined {
  if (!/^[A-Za-z0-9_-]{1,24}$/.test(cursor)) return undefined;
  const m = /^o:(\d{1,9})$/.exec(Buffer.from(cursor, "base64url").toString("utf8"));
  const offset = m ? Number(m[1]) : NaN;
  return offset <= MAX_OFFSET ? offset : undefined;
}
