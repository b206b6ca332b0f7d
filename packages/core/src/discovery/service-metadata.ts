/**
 * Optional service metadata a resource server puts in `resource` for catalogs: `serviceName`,
 * `tags`, `iconUrl`. A catalog shows them to strangers, so what is stored is bounded and
 * printable: a name of at most 32 printable ASCII characters, at most 5 distinct tags of at most
 * 32 such characters each, an icon at a public http(s) URL (no credentials, no IP literal, no
 * localhost). The same limits as the reference catalog, so a listing looks the same in either.
 */

export const MAX_SERVICE_NAME_LENGTH = 32;
export const MAX_TAGS = 5;
export const MAX_TAG_LENGTH = 32;
const MAX_ICON_URL_LENGTH = 2048;
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;
const LOCAL_HOSTS = new Set(["localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"]);

export interface ServiceMetadata {
  serviceName?: string;
  tags?: string[];
  iconUrl?: string;
}

export function isValidServiceName(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= MAX_SERVICE_NAME_LENGTH && PRINTABLE_ASCII.test(value);
}

/** The usable tags, in order, duplicates (ignoring case) and bad entries dropped; undefined when none is left. */
export function sanitizeTags(value: unknown): string[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const kept: string[] = [];
  const seen = new Set<string>();
  for (const tag of value) {
    if (typeof tag !== "string" || tag.length === 0 || tag.length > MAX_TAG_LENGTH || !PRINTABLE_ASCII.test(tag)) continue;
    const folded = tag.toLowerCase();
    if (seen.has(folded)) continue;
    seen.add(folded);
    kept.push(tag);
    if (kept.length === MAX_TAGS) break;
  }
  return kept.length > 0 ? kept : undefined;
}

export function isValidIconUrl(value: unknown): value is string {
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_ICON_URL_LENGTH || /[\x00-\x1f\x7f]/.test(value)) return false;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return false;
  if (url.username || url.password) return false;
  const host = url.hostname.toLowerCase();
  // IP literals in any spelling (v6 in brackets, dotted v4, bare numbers, hex) and local names.
  if (host.startsWith("[") || /^[\d.]+$/.test(host) || /^0x[0-9a-f.x]+$/i.test(host) || LOCAL_HOSTS.has(host)) return false;
  return host.includes(".");
}

/** The metadata of `resource` that passes the rules above; invalid fields are left out, not fixed. */
export function sanitizeServiceMetadata(resource: unknown): ServiceMetadata {
  if (typeof resource !== "object" || resource === null) return {};
  const r = resource as Record<string, unknown>;
  const out: ServiceMetadata = {};
  if (isValidServiceName(r.serviceName)) out.serviceName = r.serviceName;
  const tags = sanitizeTags(r.tags);
  if (tags) out.tags = tags;
  if (isValidIconUrl(r.iconUrl)) out.iconUrl = r.iconUrl;
  return out;
}
