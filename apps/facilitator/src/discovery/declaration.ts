/**
 * What the catalog reads from a payment: the bazaar declaration the client echoed, checked
 * (the spec's shape, then `info` against its own `schema`) and turned into a catalog entry keyed
 * by what it describes: (type, canonical URL, HTTP method or MCP tool name). Pure: no store.
 *
 * The resource server's `paymentRequirements` (the option that was paid) become the entry's
 * `accepts`; the canonical URL drops query and fragment, or takes the validated `routeTemplate`
 * as its path so `/users/1` and `/users/2` are one entry.
 */
import {
  BAZAAR,
  BODY_METHODS,
  BODY_TYPES,
  isValidRouteTemplate,
  MCP_TRANSPORTS,
  QUERY_METHODS,
  sanitizeServiceMetadata,
  type FacilitatorRequest,
  type PaymentRequirements,
} from "@tollgate/core";
import { checkAgainstSchema } from "./schema-check.ts";

export interface CatalogEntry {
  key: string;
  type: "http" | "mcp";
  resource: string;
  /** HTTP method or MCP tool name: part of the key. */
  operation: string;
  x402Version: 2;
  accepted: PaymentRequirements;
  description?: string;
  mimeType?: string;
  serviceName?: string;
  tags?: string[];
  iconUrl?: string;
  bazaar: { info: Record<string, unknown>; schema: Record<string, unknown>; routeTemplate?: string };
}

export type DeclarationRead = { kind: "none" } | { kind: "rejected"; reason: string } | { kind: "entry"; entry: CatalogEntry };

const MAX_URL = 2048;

export function readDeclaration(request: FacilitatorRequest): DeclarationRead {
  const declared = request.x402Version === 2 ? request.payload.extensions?.[BAZAAR] : undefined;
  if (declared === undefined) return { kind: "none" };
  const rejected = (reason: string): DeclarationRead => ({ kind: "rejected", reason });
  if (!isObject(declared)) return rejected("extensions.bazaar: expected an object with info and schema");
  const { info, schema } = declared;
  if (!isObject(info)) return rejected("extensions.bazaar.info: expected an object");
  if (!isObject(schema)) return rejected("extensions.bazaar.schema: expected a JSON Schema object");
  const input = info.input;
  if (!isObject(input)) return rejected("extensions.bazaar.info.input: expected an object");
  const shape = input.type === "http" ? httpShape(input) : input.type === "mcp" ? mcpShape(input) : { reason: `extensions.bazaar.info.input.type: expected "http" or "mcp"` };
  if ("reason" in shape) return rejected(shape.reason);
  const checked = checkAgainstSchema(info, schema);
  if (!checked.ok) return rejected(`extensions.bazaar.${checked.reason}`);

  const url = canonicalUrl(request.payload.resource?.url, input.type as "http" | "mcp", declared.routeTemplate);
  if ("reason" in url) return rejected(url.reason);
  const resource = request.payload.resource;
  const type = input.type as "http" | "mcp";
  const entry: CatalogEntry = {
    key: `${type}|${url.value}|${shape.operation}`,
    type,
    resource: url.value,
    operation: shape.operation,
    x402Version: 2,
    accepted: request.requirements,
    ...(typeof resource?.description === "string" && resource.description ? { description: resource.description.slice(0, 1024) } : {}),
    ...(typeof resource?.mimeType === "string" && resource.mimeType ? { mimeType: resource.mimeType.slice(0, 256) } : {}),
    ...sanitizeServiceMetadata(resource),
    bazaar: { info, schema, ...(url.template ? { routeTemplate: url.template } : {}) },
  };
  return { kind: "entry", entry };
}

function httpShape(input: Record<string, unknown>): { operation: string } | { reason: string } {
  const at = "extensions.bazaar.info.input";
  const method = input.method;
  const query = (QUERY_METHODS as readonly unknown[]).includes(method);
  const body = (BODY_METHODS as readonly unknown[]).includes(method);
  if (!query && !body) return { reason: `${at}.method: expected one of ${[...QUERY_METHODS, ...BODY_METHODS].join(", ")}` };
  if (body) {
    if (!(BODY_TYPES as readonly unknown[]).includes(input.bodyType)) return { reason: `${at}.bodyType: expected one of ${BODY_TYPES.join(", ")} for ${String(method)}` };
    if (input.body === undefined) return { reason: `${at}.body: required for ${String(method)}` };
  }
  return { operation: method as string };
}

function mcpShape(input: Record<string, unknown>): { operation: string } | { reason: string } {
  const at = "extensions.bazaar.info.input";
  // `toolName` (the reference SDKs), `tool` (the spec's first text): the same thing.
  const tool = input.toolName ?? input.tool;
  if (typeof tool !== "string" || !/^[A-Za-z0-9_.-]{1,128}$/.test(tool)) return { reason: `${at}.toolName: expected an MCP tool name (1-128 of A-Z a-z 0-9 _ - .)` };
  if (!isObject(input.inputSchema)) return { reason: `${at}.inputSchema: expected the tool's JSON Schema object` };
  if (input.transport !== undefined && !(MCP_TRANSPORTS as readonly unknown[]).includes(input.transport)) return { reason: `${at}.transport: expected one of ${MCP_TRANSPORTS.join(", ")}` };
  return { operation: tool };
}

function canonicalUrl(raw: unknown, type: "http" | "mcp", template: unknown): { value: string; template?: string } | { reason: string } {
  if (typeof raw !== "string" || raw.length === 0 || raw.length > MAX_URL) return { reason: "resource.url: required (at most 2048 characters) to catalog a resource" };
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { reason: "resource.url: not a URL" };
  }
  const web = url.protocol === "https:" || url.protocol === "http:";
  if (type === "http" ? !web : !web && url.protocol !== "mcp:") return { reason: `resource.url: ${type === "http" ? "an HTTP resource needs an http(s) URL" : "an MCP tool needs an http(s) or mcp: URL"}` };
  if (url.username || url.password) return { reason: "resource.url: credentials in a URL are not cataloged" };
  // An invalid template is ignored (the concrete path is used), as the spec says.
  const valid = web && isValidRouteTemplate(template) ? template : undefined;
  const origin = web ? url.origin : `${url.protocol}//${url.host}`;
  return { value: `${origin}${valid ?? url.pathname}`, ...(valid ? { template: valid } : {}) };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
