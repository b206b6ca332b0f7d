/**
 * The discovery API's messages (x402 specification v2 section 8, specs/extensions/bazaar.md):
 * `GET /discovery/resources` (filters, limit/offset) and `GET /discovery/search` (a query,
 * limit/cursor). One schema per message, used by our facilitator to answer and by our client
 * to read any facilitator's answer.
 */
import { z } from "zod";
import { paymentRequirementsSchema } from "../schemas.ts";
import type { PaymentRequirements } from "../types.ts";

/** One cataloged resource. An MCP tool is its own item (the catalog key is url + tool name). */
export interface DiscoveredResource {
  /** The resource URL (for MCP, the server's URL or `mcp://tool/<name>`). */
  resource: string;
  /** "http" or "mcp". */
  type: string;
  x402Version: number;
  accepts: PaymentRequirements[];
  /** Unix seconds of the last payment that refreshed this entry. */
  lastUpdated: number;
  description?: string;
  mimeType?: string;
  serviceName?: string;
  tags?: string[];
  iconUrl?: string;
  /** The declaration as cataloged: `{ bazaar: { info, schema, routeTemplate? } }`. */
  extensions?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
}

export interface DiscoveryFilters {
  /** "http" or "mcp". */
  type?: string;
  payTo?: string;
  scheme?: string;
  network?: string;
  /** Only resources declaring this extension key (e.g. "bazaar"). */
  extensions?: string;
}

export interface ListResourcesParams extends DiscoveryFilters {
  /** 1-100, default 20. */
  limit?: number;
  offset?: number;
}

export interface SearchResourcesParams extends DiscoveryFilters {
  query: string;
  limit?: number;
  /** The `pagination.cursor` of the previous page. */
  cursor?: string;
}

export interface DiscoveryResourcesResponse {
  x402Version: 2;
  items: DiscoveredResource[];
  pagination: { limit: number; offset: number; total: number };
}

export interface SearchResourcesResponse {
  x402Version: 2;
  resources: DiscoveredResource[];
  partialResults?: boolean;
  pagination?: { limit: number; cursor: string | null } | null;
}

export const DISCOVERY_DEFAULT_LIMIT = 20;
export const DISCOVERY_MAX_LIMIT = 100;

const record = z.record(z.string(), z.unknown());

export const discoveredResourceSchema = z.looseObject({
  resource: z.string().max(4096),
  type: z.string().max(64),
  x402Version: z.number().int(),
  accepts: z.array(paymentRequirementsSchema).max(64),
  // The spec says Unix seconds; some catalogs send an ISO date: both are read as seconds.
  lastUpdated: z.union([z.number(), z.string().max(64)]).transform((v) => (typeof v === "number" ? v : Math.floor(Date.parse(v) / 1000) || 0)),
  description: z.string().max(4096).optional(),
  mimeType: z.string().max(256).optional(),
  serviceName: z.string().max(256).optional(),
  tags: z.array(z.string().max(256)).max(64).optional(),
  iconUrl: z.string().max(4096).optional(),
  extensions: record.optional(),
  metadata: record.optional(),
});

export const discoveryResourcesResponseSchema = z.looseObject({
  x402Version: z.number().int(),
  items: z.array(discoveredResourceSchema),
  pagination: z.looseObject({ limit: z.number().int(), offset: z.number().int(), total: z.number().int() }),
});

export const searchResourcesResponseSchema = z.looseObject({
  x402Version: z.number().int(),
  resources: z.array(discoveredResourceSchema),
  partialResults: z.boolean().optional(),
  pagination: z.looseObject({ limit: z.number().int(), cursor: z.string().nullable() }).nullish(),
});
