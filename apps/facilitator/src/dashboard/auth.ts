/**
 * Who may see the dashboard. It shows every payer, payee and amount, so:
 *
 * - API keys configured: the same keys as `/verify` and `/settle`, as `Authorization: Bearer`
 *   (scripts) or a session cookie set by the login form (browsers). The cookie never holds the
 *   key: it is `expiry.HMAC(sha256(key), expiry)`, HttpOnly, SameSite=Strict, Path=/dashboard,
 *   Secure over https. Stateless, so every instance sharing the keys accepts it (a load balancer
 *   may send the next request elsewhere), and it stops working when its key is removed.
 * - No keys: only to a browser on this machine (a loopback connection without X-Forwarded-For,
 *   so a local reverse proxy does not turn the world into "this machine").
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export const SESSION_COOKIE = "tollgate_dashboard";
const SESSION_SECONDS = 12 * 3600;

export type Access = { ok: true } | { ok: false; status: 401 | 403; message: string };

export interface AccessRequest {
  authorization: string | undefined;
  cookie: string | undefined;
  forwardedFor: string | undefined;
  /** The socket's peer address; undefined when unknown (then it is not loopback). */
  remoteAddress: string | undefined;
}

function mac(keyDigest: Buffer, expiry: string): Buffer {
  return createHmac("sha256", keyDigest).update(`tollgate-dashboard-session|${expiry}`).digest();
}

/** A session cookie's value for the key with this digest. */
export function sessionValue(keyDigest: Buffer, nowMs = Date.now()): string {
  const expiry = String(Math.floor(nowMs / 1000) + SESSION_SECONDS);
  return `${expiry}.${mac(keyDigest, expiry).toString("base64url")}`;
}

/** Constant-time over every key, whichever matches. */
function anyMatches(given: Buffer, expected: (k: Buffer) => Buffer, keys: readonly Buffer[]): boolean {
  let ok = false;
  for (const k of keys) {
    const e = expected(k);
    ok = (e.length === given.length && timingSafeEqual(e, given)) || ok;
  }
  return ok;
}

export function sessionValid(value: string, keys: readonly Buffer[], nowMs = Date.now()): boolean {
  const m = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(value);
  if (!m || Number(m[1]) * 1000 <= nowMs) return false;
  return anyMatches(Buffer.from(m[2]!, "base64url"), (k) => mac(k, m[1]!), keys);
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === "::1" || /^127\./.test(address) || /^::ffff:127\./.test(address);
}

/** Decides one request. `keyDigests`: sha256 of each operator API key, one without `receivers` (payment-routes `operatorKeyDigests`). */
export function dashboardAccess(req: AccessRequest, keyDigests: readonly Buffer[], digest: (key: string) => Buffer): Access {
  if (keyDigests.length === 0) {
    if (isLoopback(req.remoteAddress) && req.forwardedFor === undefined) return { ok: true };
    return { ok: false, status: 403, message: "the dashboard is served to this machine only while no operator apiKeys (keys without receivers) are configured; configure one to use it from elsewhere" };
  }
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.authorization ?? "");
  if (bearer && anyMatches(digest(bearer[1]!), (k) => k, keyDigests)) return { ok: true };
  const session = cookieValue(req.cookie, SESSION_COOKIE);
  if (session && sessionValid(session, keyDigests)) return { ok: true };
  return { ok: false, status: 401, message: "sign in with an API key (login form, or Authorization: Bearer <api key>)" };
}

/** The key's digest when `key` is one of the configured ones. */
export function matchingKey(key: string, keyDigests: readonly Buffer[], digest: (key: string) => Buffer): Buffer | undefined {
  const given = digest(key);
  let found: Buffer | undefined;
  for (const k of keyDigests) if (timingSafeEqual(given, k)) found = k;
  return found;
}

export function sessionCookie(value: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${value}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=${SESSION_SECONDS}${secure ? "; Secure" : ""}`;
}

export function clearedSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0${secure ? "; Secure" : ""}`;
}
