/**
 * The discovery catalog, in the ledger's store (PGlite, or PostgreSQL shared by several
 * facilitators): entries written when a payment for a declared resource settles, listed with
 * filters and offset pages, searched by words with cursor pages.
 *
 * A hot resource settles many times a minute: an entry whose content did not change is not
 * written again for `refreshMs` (its `lastUpdated` moves at most that often). The catalog is
 * bounded (`maxEntries`): a full catalog refuses new entries and says so; known ones still refresh.
 */
import type { BazaarResponse, DiscoveredResource, DiscoveryFilters, PaymentRequirements } from "@tollgate/core";
import { canonicalJson } from "@tollgate/core";
import type { Ledger } from "../ledger/ledger.ts";
import type { CatalogEntry } from "./declaration.ts";

export interface CatalogOptions {
  /** Entries at most. Default 10 000. */
  maxEntries?: number;
  /** An unchanged entry is rewritten (lastUpdated refreshed) at most this often. Default 60 000. */
  refreshMs?: number;
  /** Ways to pay kept per entry (the newest win). Default 16. */
  maxAccepts?: number;
}

export interface CatalogPage {
  items: DiscoveredResource[];
  total: number;
}

export interface Catalog {
  record(entry: CatalogEntry): Promise<BazaarResponse>;
  list(filters: DiscoveryFilters, limit: number, offset: number): Promise<CatalogPage>;
  /** Entries matching any of the words, best first; `total` counts all matches. */
  search(query: string, filters: DiscoveryFilters, limit: number, offset: number): Promise<CatalogPage>;
}

interface Row {
  accepts: PaymentRequirements[] | string;
  item: Omit<DiscoveredResource, "accepts" | "lastUpdated"> | string;
  last_updated: Date | string;
  total?: string | number;
}

export function createCatalog(ledger: Ledger, options: CatalogOptions = {}): Catalog {
  const { sql } = ledger;
  const table = `${ledger.schema}.discovery_resources`;
  const maxEntries = options.maxEntries ?? 10_000;
  const refreshMs = options.refreshMs ?? 60_000;
  const maxAccepts = options.maxAccepts ?? 16;
  const recent = new Map<string, { digest: string; at: number }>();

  async function record(entry: CatalogEntry): Promise<BazaarResponse> {
    const digest = canonicalJson(entry);
    const seen = recent.get(entry.key);
    if (seen && seen.digest === digest && Date.now() - seen.at < refreshMs) return { status: "success" };
    const stored = await sql.transaction(async (tx) => {
      // Serializes writers of one entry across processes (its accepts are merged from the row read here).
      await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`tollgate-catalog:${entry.key}`]);
      const rows = await tx.query<{ accepts: PaymentRequirements[] | string }>(`SELECT accepts FROM ${table} WHERE catalog_key = $1`, [entry.key]);
      if (rows.length === 0) {
        const count = await tx.query<{ n: string | number }>(`SELECT count(*) AS n FROM ${table}`);
        if (Number(count[0]?.n ?? 0) >= maxEntries) return false;
      }
      const accepts = mergeAccepts(rows[0] ? parseJson<PaymentRequirements[]>(rows[0].accepts) : [], entry.accepted, maxAccepts);
      const item = itemOf(entry);
      await tx.query(
        `INSERT INTO ${table} (catalog_key, type, resource, accepts, item, search_text, pay_to_keys, schemes, networks, extension_keys, last_updated)
         VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7, $8, $9, $10, now())
         ON CONFLICT (catalog_key) DO UPDATE SET accepts = EXCLUDED.accepts, item = EXCLUDED.item, search_text = EXCLUDED.search_text,
           pay_to_keys = EXCLUDED.pay_to_keys, schemes = EXCLUDED.schemes, networks = EXCLUDED.networks, extension_keys = EXCLUDED.extension_keys, last_updated = now()`,
        [
          entry.key,
          entry.type,
          entry.resource,
          JSON.stringify(accepts),
          JSON.stringify(item),
          searchText(entry),
          unique(accepts.map((a) => addressKey(a.payTo))),
          unique(accepts.map((a) => a.scheme)),
          unique(accepts.map((a) => a.network)),
          Object.keys(item.extensions ?? {}),
        ],
      );
      return true;
    });
    if (!stored) return { status: "rejected", rejectedReason: `the catalog is full (${maxEntries} entries); not listed` };
    if (recent.size > 10_000) recent.clear();
    recent.set(entry.key, { digest, at: Date.now() });
    return { status: "success" };
  }

  function where(filters: DiscoveryFilters, params: unknown[]): string {
    const clauses: string[] = [];
    const add = (clause: (p: string) => string, value: string) => {
      params.push(value);
      clauses.push(clause(`$${params.length}`));
    };
    if (filters.type !== undefined) add((p) => `type = ${p}`, filters.type);
    if (filters.payTo !== undefined) add((p) => `${p} = ANY(pay_to_keys)`, addressKey(filters.payTo));
    if (filters.scheme !== undefined) add((p) => `${p} = ANY(schemes)`, filters.scheme);
    if (filters.network !== undefined) add((p) => `${p} = ANY(networks)`, filters.network);
    if (filters.extensions !== undefined) add((p) => `${p} = ANY(extension_keys)`, filters.extensions);
    return clauses.length > 0 ? clauses.join(" AND ") : "true";
  }

  async function page(query: string, params: unknown[]): Promise<CatalogPage> {
    const rows = await sql.query<Row>(query, params);
    return { items: rows.map(toResource), total: Number(rows[0]?.total ?? 0) };
  }

  return {
    record,
    async list(filters, limit, offset) {
      const params: unknown[] = [];
      const clause = where(filters, params);
      params.push(limit, offset);
      const result = await page(
        `SELECT accepts, item, last_updated, count(*) OVER () AS total FROM ${table} WHERE ${clause}
         ORDER BY last_updated DESC, catalog_key LIMIT $${params.length - 1} OFFSET $${params.length}`,
        params,
      );
      // A page past the end has no rows to carry the count.
      if (result.items.length === 0 && offset > 0) result.total = Number((await sql.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE ${clause}`, params.slice(0, -2)))[0]?.n ?? 0);
      return result;
    },
    async search(text, filters, limit, offset) {
      const words = searchWords(text);
      if (words.length === 0) return { items: [], total: 0 };
      const params: unknown[] = [];
      const clause = where(filters, params);
      const score = words
        .map((w) => {
          params.push(`%${w.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
          return `(search_text LIKE $${params.length})::int`;
        })
        .join(" + ");
      params.push(limit, offset);
      return page(
        `SELECT accepts, item, last_updated, count(*) OVER () AS total FROM (SELECT *, (${score}) AS score FROM ${table} WHERE ${clause}) matched
         WHERE score > 0 ORDER BY score DESC, last_updated DESC, catalog_key LIMIT $${params.length - 1} OFFSET $${params.length}`,
        params,
      );
    },
  };
}

/** At most 8 distinct lowercase words of 2-64 characters: what a search matches on. */
export function searchWords(text: string): string[] {
  return unique(
    text
      .toLowerCase()
      .split(/[^a-z0-9_.:-]+/)
      .filter((w) => w.length >= 2 && w.length <= 64),
  ).slice(0, 8);
}

function itemOf(entry: CatalogEntry): Omit<DiscoveredResource, "accepts" | "lastUpdated"> {
  return {
    resource: entry.resource,
    type: entry.type,
    x402Version: entry.x402Version,
    ...(entry.description !== undefined ? { description: entry.description } : {}),
    ...(entry.mimeType !== undefined ? { mimeType: entry.mimeType } : {}),
    ...(entry.serviceName !== undefined ? { serviceName: entry.serviceName } : {}),
    ...(entry.tags !== undefined ? { tags: entry.tags } : {}),
    ...(entry.iconUrl !== undefined ? { iconUrl: entry.iconUrl } : {}),
    extensions: { bazaar: entry.bazaar },
  };
}

function searchText(entry: CatalogEntry): string {
  const input = entry.bazaar.info.input as Record<string, unknown>;
  const parts = [entry.resource, entry.type, entry.operation, entry.description, entry.serviceName, ...(entry.tags ?? []), typeof input.description === "string" ? input.description : undefined];
  return parts.filter((p): p is string => typeof p === "string").join(" ").toLowerCase().slice(0, 8192);
}

/** The newest way to pay replaces one of the same kind (scheme, network, asset, payee). */
function mergeAccepts(existing: readonly PaymentRequirements[], added: PaymentRequirements, max: number): PaymentRequirements[] {
  const kind = (r: PaymentRequirements) => [r.scheme, r.network, r.asset, addressKey(r.payTo)].join("|");
  const others = existing.filter((r) => kind(r) !== kind(added));
  return [added, ...others].slice(0, max);
}

/** EVM addresses compare case-insensitively; anything else (base58) exactly. */
function addressKey(address: string): string {
  return /^0x[0-9a-fA-F]{40}$/.test(address) ? address.toLowerCase() : address;
}

function unique<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}

function parseJson<T>(value: T | string): T {
  return typeof value === "string" ? (JSON.parse(value) as T) : value;
}

function toResource(row: Row): DiscoveredResource {
  const at = row.last_updated instanceof Date ? row.last_updated : new Date(row.last_updated);
  return { ...parseJson(row.item), accepts: parseJson(row.accepts), lastUpdated: Math.floor(at.getTime() / 1000) };
}
