// Revocation as a published status list: the issuer serves a JSON document
//   { "type": "tollgate-mandate-status-list", "revoked": ["<mandate id>", …], "updatedAt": <unix s> }
// at a URL of its choice (the CLI writes it to a file; `tollgate mandate serve-status` or any static
// host publishes it). Verifiers fetch it with a short cache. Simpler than a Token Status List bit
// string (no index allocation) and enough for per-user mandate counts.
import { readFile, writeFile, mkdir, rename } from "node:fs/promises";
import { dirname } from "node:path";

export const STATUS_LIST_TYPE = "tollgate-mandate-status-list";

export interface MandateStatusList {
  type: typeof STATUS_LIST_TYPE;
  revoked: string[];
  updatedAt: number;
}

export function parseStatusList(value: unknown): MandateStatusList {
  const v = value as Partial<MandateStatusList> | null;
  if (typeof v !== "object" || v === null || v.type !== STATUS_LIST_TYPE || !Array.isArray(v.revoked) || !v.revoked.every((x) => typeof x === "string")) {
    throw new TypeError(`status list: expected { type: "${STATUS_LIST_TYPE}", revoked: string[] }`);
  }
  return { type: STATUS_LIST_TYPE, revoked: v.revoked, updatedAt: Number.isSafeInteger(v.updatedAt) ? v.updatedAt! : 0 };
}

/**
 * `isRevoked` backed by a published list at `url`, cached `ttlMs` (default 30 s). A list that cannot
 * be fetched or parsed makes every mandate count as revoked (fail closed): a verifier that cannot
 * tell must not accept.
 */
export function statusListRevocation(url: string, opts: { ttlMs?: number; fetch?: typeof fetch } = {}): (id: string) => Promise<boolean> {
  const ttl = opts.ttlMs ?? 30_000;
  const get = opts.fetch ?? fetch;
  let cached: { at: number; revoked: Set<string> | undefined } | undefined;
  return async (id) => {
    if (!cached || Date.now() - cached.at > ttl) {
      let revoked: Set<string> | undefined;
      try {
        const res = await get(url, { signal: AbortSignal.timeout(5_000) });
        if (res.ok) revoked = new Set(parseStatusList(await res.json()).revoked);
      } catch {
        revoked = undefined;
      }
      cached = { at: Date.now(), revoked };
    }
    return cached.revoked ? cached.revoked.has(id) : true;
  };
}

/** Reads a status list file (an empty list when it does not exist yet). */
export async function readStatusListFile(file: string): Promise<MandateStatusList> {
  try {
    return parseStatusList(JSON.parse(await readFile(file, "utf8")));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { type: STATUS_LIST_TYPE, revoked: [], updatedAt: 0 };
    throw e;
  }
}

/** Adds `id` to the status list file (atomic rename). Returns false when it was already revoked. */
export async function revokeInStatusListFile(file: string, id: string, now = Math.floor(Date.now() / 1000)): Promise<boolean> {
  const list = await readStatusListFile(file);
  if (list.revoked.includes(id)) return false;
  list.revoked.push(id);
  list.updatedAt = now;
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(list, null, 2) + "\n");
  await rename(tmp, file);
  return true;
}
