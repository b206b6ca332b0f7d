/**
 * The `bazaar` extension (x402 specs/extensions/bazaar.md): what a resource server declares in
 * its 402 so facilitators can catalog the resource. `extensions.bazaar = { info, schema,
 * routeTemplate? }`: `info.input` says how to call it (an HTTP method with query or body, or an
 * MCP tool with its input schema), `info.output` what comes back, and `schema` is a JSON Schema
 * (draft 2020-12) that `info` must satisfy (the facilitator checks it before cataloging).
 *
 * Declarations are plain data; `bazaarExtension` turns one into the wire object for a request
 * (the HTTP method and the path parameters are only known then).
 */
import { isValidRouteTemplate, matchRouteTemplate, toRouteTemplate } from "./route-template.ts";

export const BAZAAR = "bazaar";
export const JSON_SCHEMA_2020_12 = "https://json-schema.org/draft/2020-12/schema";

export const QUERY_METHODS = ["GET", "HEAD", "DELETE"] as const;
export const BODY_METHODS = ["POST", "PUT", "PATCH"] as const;
export const BODY_TYPES = ["json", "form-data", "text"] as const;
export const MCP_TRANSPORTS = ["streamable-http", "sse"] as const;

export type QueryMethod = (typeof QUERY_METHODS)[number];
export type BodyMethod = (typeof BODY_METHODS)[number];
export type BodyType = (typeof BODY_TYPES)[number];
export type JsonSchema = Record<string, unknown>;

export interface DiscoveryOutput {
  /** Response content type, e.g. "json" (default) or "text". */
  type?: string;
  format?: string;
  example?: unknown;
  /** JSON Schema of `example` (put in the declaration's schema). */
  schema?: JsonSchema;
}

/** An HTTP route's declaration. Examples are what a caller would send; schemas say what is accepted. */
export interface HttpDiscovery {
  type?: "http";
  /** Fixed method; omitted, the method of the request being priced (a GET route's 402 says GET). */
  method?: QueryMethod | BodyMethod;
  queryParams?: Record<string, unknown>;
  /** JSON Schema of the query parameters: `{ properties, required }`. */
  queryParamsSchema?: JsonSchema;
  /** Body methods: how the body is encoded. Default "json". */
  bodyType?: BodyType;
  body?: unknown;
  bodySchema?: JsonSchema;
  headers?: Record<string, string>;
  /** `/users/:userId` (or `/users/[userId]`): the catalog key of a parameterized route. */
  routeTemplate?: string;
  pathParamsSchema?: JsonSchema;
  output?: DiscoveryOutput;
}

/** An MCP tool's declaration; the catalog key is (resource url, toolName). */
export interface McpDiscovery {
  type: "mcp";
  toolName: string;
  description?: string;
  transport?: (typeof MCP_TRANSPORTS)[number];
  /** The tool's `inputSchema` as `tools/list` declares it. */
  inputSchema: JsonSchema;
  example?: Record<string, unknown>;
  output?: DiscoveryOutput;
}

export type DiscoveryDeclaration = HttpDiscovery | McpDiscovery;

export interface BazaarExtension {
  info: { input: Record<string, unknown>; output?: Record<string, unknown> };
  schema: JsonSchema;
  routeTemplate?: string;
}

export interface BazaarRequestContext {
  /** The request's method (HTTP declarations without a fixed method). */
  method?: string;
  /** The request's path (to fill `pathParams` from the route template). */
  path?: string;
}

export class DiscoveryDeclarationError extends Error {
  override name = "DiscoveryDeclarationError";
}

/**
 * Checks a declaration once (at start-up) and returns the function building its wire object per
 * request. Throws DiscoveryDeclarationError naming the field when it cannot be declared.
 */
export function compileDiscovery(declaration: DiscoveryDeclaration, label = "discovery"): (request?: BazaarRequestContext) => BazaarExtension {
  if (typeof declaration !== "object" || declaration === null) throw new DiscoveryDeclarationError(`${label}: expected an object`);
  if (declaration.type === "mcp") {
    const fixed = mcpExtension(declaration, label);
    return () => fixed;
  }
  const http = declaration as HttpDiscovery;
  if (http.type !== undefined && http.type !== "http") throw new DiscoveryDeclarationError(`${label}.type: expected "http" or "mcp"`);
  if (http.method !== undefined && !isMethod(http.method)) throw new DiscoveryDeclarationError(`${label}.method: expected one of ${[...QUERY_METHODS, ...BODY_METHODS].join(", ")}`);
  if (http.bodyType !== undefined && !(BODY_TYPES as readonly string[]).includes(http.bodyType)) throw new DiscoveryDeclarationError(`${label}.bodyType: expected one of ${BODY_TYPES.join(", ")}`);
  const template = http.routeTemplate === undefined ? undefined : toRouteTemplate(http.routeTemplate);
  if (template !== undefined && !isValidRouteTemplate(template)) throw new DiscoveryDeclarationError(`${label}.routeTemplate: expected a path like /users/:userId (safe path characters, no "..")`);
  return (request = {}) => {
    const method = (http.method ?? request.method ?? "GET").toUpperCase();
    const pathParams = template && request.path ? matchRouteTemplate(template, request.path) : undefined;
    return httpExtension(http, isMethod(method) ? method : "GET", template, pathParams);
  };
}

function isMethod(m: string): m is QueryMethod | BodyMethod {
  return (QUERY_METHODS as readonly string[]).includes(m) || (BODY_METHODS as readonly string[]).includes(m);
}

function isBodyMethod(m: string): m is BodyMethod {
  return (BODY_METHODS as readonly string[]).includes(m);
}

const stringMap = { type: "object", additionalProperties: { type: "string" } };

function outputParts(output: DiscoveryOutput | undefined): { info?: Record<string, unknown>; schema: JsonSchema } {
  const schema: JsonSchema = {
    type: "object",
    properties: { type: { type: "string" }, format: { type: "string" }, example: output?.schema ?? {} },
    required: ["type"],
  };
  if (!output) return { schema };
  const info: Record<string, unknown> = { type: output.type ?? "json" };
  if (output.format !== undefined) info.format = output.format;
  if (output.example !== undefined) info.example = output.example;
  return { info, schema };
}

function httpExtension(d: HttpDiscovery, method: QueryMethod | BodyMethod, template: string | undefined, pathParams: Record<string, string> | undefined): BazaarExtension {
  const body = isBodyMethod(method);
  const input: Record<string, unknown> = { type: "http", method };
  const properties: Record<string, unknown> = {
    type: { type: "string", const: "http" },
    method: { type: "string", enum: body ? [...BODY_METHODS] : [...QUERY_METHODS] },
    queryParams: { type: "object", ...(d.queryParamsSchema ?? {}) },
    headers: stringMap,
  };
  const required = ["type", "method"];
  if (d.queryParams !== undefined) input.queryParams = d.queryParams;
  if (body) {
    input.bodyType = d.bodyType ?? "json";
    input.body = d.body ?? {};
    properties.bodyType = { type: "string", enum: [...BODY_TYPES] };
    properties.body = d.bodySchema ?? {};
    required.push("bodyType", "body");
  }
  if (d.headers !== undefined) input.headers = d.headers;
  if (template !== undefined) {
    properties.pathParams = { type: "object", ...(d.pathParamsSchema ?? {}) };
    if (pathParams) input.pathParams = pathParams;
  }
  return { ...extensionOf(input, { properties, required }, d.output), ...(template !== undefined ? { routeTemplate: template } : {}) };
}

/** `info` (the input as declared, the output) and the schema `info` must satisfy (input closed: no unknown fields). */
function extensionOf(input: Record<string, unknown>, inputSchema: { properties: Record<string, unknown>; required: string[] }, declaredOutput: DiscoveryOutput | undefined): BazaarExtension {
  const output = outputParts(declaredOutput);
  return {
    info: { input, ...(output.info ? { output: output.info } : {}) },
    schema: {
      $schema: JSON_SCHEMA_2020_12,
      type: "object",
      properties: { input: { type: "object", ...inputSchema, additionalProperties: false }, output: output.schema },
      required: ["input"],
    },
  };
}

function mcpExtension(d: McpDiscovery, label: string): BazaarExtension {
  if (typeof d.toolName !== "string" || d.toolName.length === 0) throw new DiscoveryDeclarationError(`${label}.toolName: expected the tool's name`);
  if (typeof d.inputSchema !== "object" || d.inputSchema === null || Array.isArray(d.inputSchema)) throw new DiscoveryDeclarationError(`${label}.inputSchema: expected the tool's JSON Schema object`);
  if (d.transport !== undefined && !(MCP_TRANSPORTS as readonly string[]).includes(d.transport)) throw new DiscoveryDeclarationError(`${label}.transport: expected one of ${MCP_TRANSPORTS.join(", ")}`);
  const input: Record<string, unknown> = { type: "mcp", toolName: d.toolName, inputSchema: d.inputSchema };
  if (d.description !== undefined) input.description = d.description;
  if (d.transport !== undefined) input.transport = d.transport;
  if (d.example !== undefined) input.example = d.example;
  const properties = {
    type: { type: "string", const: "mcp" },
    toolName: { type: "string" },
    description: { type: "string" },
    transport: { type: "string", enum: [...MCP_TRANSPORTS] },
    inputSchema: { type: "object" },
    example: { type: "object" },
  };
  return extensionOf(input, { properties, required: ["type", "toolName", "inputSchema"] }, d.output);
}
