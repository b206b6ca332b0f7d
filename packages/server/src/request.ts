/**
 * Reading a request the way the framework will route it. The paywall must price every request
 * that can reach a paid handler, so it looks at the framework's own routed path and method,
 * and then also at every other path or method some middleware might route the same request
 * on (a method-override header, a rewrite header, the percent-decoded path). Pricing a request
 * the framework would not route to a paid handler only costs the caller; missing one gives the
 * resource away. What cannot be read is an `invalid_request`, never "free".
 */

import { PaywallConfigError } from "./routes.ts";

export type HeaderLookup = (name: string) => string | undefined | null;

/** The pieces a resource URL is built from when the framework gives no trustworthy full URL. */
export interface UrlParts {
  /** "http" or "https" (Express: `req.protocol`). */
  protocol: string;
  /** The Host header as received; validated before use. */
  host: string | undefined;
  /** The request target as received: origin-form "/a?b" or absolute-form "http://h/a?b". */
  target: string;
}

export type Read<T> = { ok: true; value: T } | { ok: false; field: string; message: string };

/** Headers method-override middleware (Express `method-override`, Rails, Symfony) honours. */
const METHOD_OVERRIDE_HEADERS = ["x-http-method-override", "x-http-method", "x-method-override"];
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers some rewriting middleware routes on instead of the request line (IIS, Symfony). */
const REWRITE_HEADERS = ["x-original-url", "x-rewrite-url"];
const HOST = /^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;
const ABSOLUTE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/**
 * A real CORS preflight: OPTIONS with an Origin and the method the browser is about to use.
 * It cannot carry a payment and must pass for the paid request to be made at all. Any other
 * OPTIONS is priced like the other methods (an `app.all` handler would answer it).
 */
export function isPreflight(method: string, headers: HeaderLookup): boolean {
  if (method.toUpperCase() !== "OPTIONS") return false;
  const origin = headers("origin");
  const requested = headers("access-control-request-method");
  return !!origin && origin.trim() !== "" && !!requested && TOKEN.test(requested.trim());
}

/**
 * The request's method, plus any method an override header or `_method` query parameter asks
 * for: middleware after the paywall may switch to it, so a route priced for that method is
 * priced for this request too.
 */
export function requestMethods(method: string, headers: HeaderLookup, query = ""): string[] {
  const methods = new Set([method.toUpperCase()]);
  const add = (value: string | null | undefined) => {
    for (const part of (value ?? "").split(",")) {
      const m = part.trim();
      if (m && TOKEN.test(m)) methods.add(m.toUpperCase());
    }
  };
  for (const name of METHOD_OVERRIDE_HEADERS) add(headers(name));
  if (query.includes("_method")) add(new URLSearchParams(query).get("_method"));
  return [...methods];
}

/**
 * Every path this request may be routed on: the framework's routed path(s), the same
 * percent-decoded (Hono decodes, Express does not), NFKC-folded (so a look-alike such as
 * the Kelvin sign does not slip past a case-insensitive match), and the path of any rewrite
 * header. A path that does not start with "/" cannot be matched and is an invalid request.
 */
export function requestPaths(paths: readonly string[], headers: HeaderLookup): Read<string[]> {
  const out = new Set<string>();
  for (const raw of paths) {
    if (!raw.startsWith("/")) return { ok: false, field: "request target", message: `request target: expected a path starting with "/", got ${JSON.stringify(raw.slice(0, 64))}` };
    addVariants(out, raw);
  }
  for (const name of REWRITE_HEADERS) {
    const value = headers(name);
    if (value && value.startsWith("/")) addVariants(out, value.split("?")[0]!);
  }
  return { ok: true, value: [...out] };
}

function addVariants(out: Set<string>, path: string): void {
  out.add(path);
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    // A malformed escape is matched as written: a framework that cannot decode it cannot route on the decoded form either.
    return;
  }
  out.add(decoded);
  out.add(decoded.normalize("NFKC"));
}

/** The path of a full URL or of a request target ("/a?b", "http://h/a?b"), for callers that give no routed path. */
export function pathOf(url: string | UrlParts): Read<{ path: string; query: string }> {
  const target = typeof url === "string" ? url : url.target;
  try {
    const parsed = ABSOLUTE.test(target) ? new URL(target) : new URL(target, "http://placeholder.invalid");
    if (!ABSOLUTE.test(target) && !target.startsWith("/")) throw new TypeError("relative");
    return { ok: true, value: { path: parsed.pathname, query: parsed.search } };
  } catch {
    return { ok: false, field: "request target", message: `request target: not a valid URL or path: ${JSON.stringify(target.slice(0, 64))}` };
  }
}

/**
 * The resource URL the 402 names. With `publicUrl` (the server's public origin) the request's
 * Host header is not used at all. Otherwise the Host must be a plain host[:port]: it comes from
 * the client, so anything else is refused rather than echoed. The path and query always come
 * from the request target; an absolute-form target's own host is ignored.
 */
export function resourceUrl(url: string | UrlParts, publicUrl?: URL): Read<string> {
  let origin: string;
  let target: string;
  if (typeof url === "string") {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return { ok: false, field: "url", message: `url: not a valid URL: ${JSON.stringify(url.slice(0, 64))}` };
    }
    // A non-special scheme (the MCP transport's `mcp://tool/<name>`) has an opaque origin, "null":
    // its scheme and host are kept as written instead.
    origin = parsed.origin === "null" ? `${parsed.protocol}//${parsed.host}` : parsed.origin;
    target = parsed.pathname + parsed.search;
  } else {
    const where = pathOf(url);
    if (!where.ok) return where;
    target = where.value.path + where.value.query;
    const protocol = url.protocol.toLowerCase().replace(/:$/, "");
    if (protocol !== "http" && protocol !== "https") return { ok: false, field: "protocol", message: `protocol: expected http or https, got ${JSON.stringify(url.protocol)}` };
    const host = url.host?.trim() ?? "";
    if (!publicUrl && !HOST.test(host)) {
      return { ok: false, field: "host", message: host ? `Host header: expected host[:port], got ${JSON.stringify(host.slice(0, 64))}` : "Host header: missing or empty" };
    }
    origin = `${protocol}://${host.toLowerCase()}`;
  }
  if (publicUrl) return { ok: true, value: publicUrl.origin + publicUrl.pathname.replace(/\/+$/, "") + target };
  return { ok: true, value: origin + target };
}

/** Validates a configured public URL at startup. */
export function parsePublicUrl(value: string | undefined): URL | undefined {
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new PaywallConfigError(`publicUrl: not a valid URL: ${JSON.stringify(value)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new PaywallConfigError(`publicUrl: expected http(s), got ${JSON.stringify(value)}`);
  if (url.search || url.hash) throw new PaywallConfigError(`publicUrl: expected an origin (and optional base path) without query or fragment, got ${JSON.stringify(value)}`);
  return url;
}
