/**
 * `routeTemplate` of the bazaar extension (specs/extensions/bazaar.md, "Dynamic Routes"): the
 * canonical path of a parameterized route, written `/users/:userId` on the wire. The facilitator
 * keys its catalog on it, and the client controls it (it rides in the payment payload), so it is
 * checked by the spec's rules before use: a path of safe characters, no traversal, no scheme,
 * after percent-decoding (repeatedly, so `%252e%252e` is caught too).
 */

const SAFE_PATH = /^\/[a-zA-Z0-9_/:.\-~%]+$/;
/** Bounded: a value still encoded after this many rounds is refused rather than decoded forever. */
const MAX_DECODE_ROUNDS = 8;

export function isValidRouteTemplate(value: unknown): value is string {
  if (typeof value !== "string" || value.length === 0 || value.length > 2048) return false;
  if (!SAFE_PATH.test(value)) return false;
  const decoded = decodeFully(value);
  if (decoded === undefined) return false;
  return !decoded.includes("..") && !decoded.includes("://");
}

function decodeFully(value: string): string | undefined {
  let current = value;
  for (let round = 0; round < MAX_DECODE_ROUNDS; round++) {
    let next: string;
    try {
      next = decodeURIComponent(current);
    } catch {
      return undefined;
    }
    if (next === current) return current;
    current = next;
  }
  return undefined;
}

/** `/users/[userId]` (the framework style some servers write) becomes `/users/:userId`; `:param` is kept. */
export function toRouteTemplate(path: string): string {
  return path.replace(/\[([A-Za-z_][A-Za-z0-9_]*)\]/g, ":$1");
}

/** Names of a template's parameters, in order: `/w/:country/:city` -> ["country", "city"]. */
export function routeTemplateParams(template: string): string[] {
  return [...template.matchAll(/:([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!);
}

/**
 * The concrete values of a template's parameters in `path`, or undefined when the path does not
 * fit the template. Each parameter is one path segment, percent-decoded.
 */
export function matchRouteTemplate(template: string, path: string): Record<string, string> | undefined {
  const names: string[] = [];
  const source = template
    .split(/(:[A-Za-z_][A-Za-z0-9_]*)/)
    .map((part) => {
      if (part.startsWith(":")) {
        names.push(part.slice(1));
        return "([^/]+)";
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    })
    .join("");
  const m = new RegExp(`^${source}/?$`).exec(path);
  if (!m) return undefined;
  const out: Record<string, string> = {};
  for (let i = 0; i < names.length; i++) {
    try {
      out[names[i]!] = decodeURIComponent(m[i + 1]!);
    } catch {
      return undefined;
    }
  }
  return out;
}
