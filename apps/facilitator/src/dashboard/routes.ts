/**
 * The operator dashboard's routes, under `/dashboard`:
 *
 *   GET  /dashboard                  the page (or the login form)
 *   POST /dashboard/login, /logout   session cookie (see auth.ts)
 *   GET  /dashboard/assets/<file>    the page's script and styles, and uPlot, from this origin
 *   GET  /dashboard/api/overview     charts and tables for ?window=1h|24h|7d
 *   GET  /dashboard/api/search       ?q=<address or transaction hash>: ledger records, explorer links
 *   GET  /dashboard/api/events       server-sent events: payments as they verify and settle; a
 *                                    reconnecting EventSource's Last-Event-ID (or ?after=<id>) first
 *                                    gets what it missed, the latest RESUME_MAX events at most
 *
 * Everything but the assets requires access (auth.ts). Every answer is read from the ledger.
 */
import { safeMessage } from "@tollgate/core";
import type { Context, Hono } from "hono";
import { readBody, webBody } from "../http-request.ts";
import type { Ledger } from "../ledger/ledger.ts";
import type { Logger } from "../logger.ts";
import { clearedSessionCookie, dashboardAccess, matchingKey, sessionCookie, sessionValue, type Access } from "./auth.ts";
import { explorerLinkFor } from "./explorers.ts";
import { createLiveFeed, type LiveFeed } from "./live.ts";
import { dashboardPage, loginPage, refusedPage } from "./page.ts";
import { createDashboardQueries, readSearchQuery, WINDOWS, type DashboardQueries, type PaymentEventRow, type WindowName } from "./queries.ts";
import { createRateLimiter, type BucketLimit } from "../rate-limit.ts";
import { readAsset } from "./assets.ts";

export interface FeePayerBalance {
  network: string;
  address: string;
  /** Native balance in the chain's smallest unit. */
  balance: bigint;
}

export interface DashboardAsset {
  network: string;
  address: string;
  symbol: string;
  decimals: number;
}

export interface DashboardOptions {
  /**
   * Transaction links per network: a URL with `{hash}`, e.g. `https://basescan.org/tx/{hash}`.
   * Well-known networks have one built in (explorers.ts); a local chain has none (the hash is shown).
   */
  explorers?: Record<string, string>;
  /** Fee payers' native balances, read when the page asks (bounded to 3 s). */
  feePayers?: () => Promise<FeePayerBalance[]>;
  /** EVM fee payers under this are not used (minSignerBalanceWei). */
  floorWei?: bigint;
  /** Symbols and decimals for display; amounts of other assets are shown in atomic units. */
  assets?: readonly DashboardAsset[];
  /** How often the live feed reads the ledger. Default 1000 ms. */
  pollMs?: number;
  /** Open live streams at most. Default 20. */
  maxStreams?: number;
  /** Login attempts per client address. Default a burst of 5, then one every 12 s. */
  loginLimit?: BucketLimit;
}

export interface DashboardDeps {
  ledger: Ledger;
  logger: Logger;
  apiKeyDigests: readonly Buffer[];
  digest(key: string): Buffer;
  remoteAddress(c: Context): string | undefined;
  /** The client's address for the login limit (X-Forwarded-For when the proxy is trusted); default remoteAddress. */
  clientAddress?(c: Context): string | undefined;
}

export interface Dashboard {
  /** Ends every open live stream (a closing server must not wait on them). */
  close(): void;
}

const JSON_HEADERS = { "cache-control": "no-store", "x-content-type-options": "nosniff" };
/** The page loads only its own files and talks only to its own origin (uPlot styles through the CSSOM, which style-src allows). */
const PAGE_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  // same-origin: the login form post carries its Origin (no-referrer would make it "null"); nothing leaves for other sites.
  "referrer-policy": "same-origin",
  "x-frame-options": "DENY",
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
};
const MAX_LOGIN_BYTES = 2048;
/** Guessing API keys through the form is slow: 5 tries at once, then one every 12 s, per address. */
const LOGIN_LIMIT: BucketLimit = { perSecond: 1 / 12, burst: 5 };
/** A resuming stream gets at most this many missed events (the newest); the page reloads its overview anyway. */
export const RESUME_MAX = 200;

export function mountDashboard(app: Hono, deps: DashboardDeps, options: DashboardOptions = {}): Dashboard {
  const queries = createDashboardQueries(deps.ledger);
  const feed: LiveFeed = createLiveFeed({ queries, logger: deps.logger, ...(options.pollMs ? { pollMs: options.pollMs } : {}), ...(options.maxStreams ? { maxListeners: options.maxStreams } : {}) });
  const streams = new Set<() => void>();
  const hasKeys = deps.apiKeyDigests.length > 0;
  const logins = createRateLimiter(options.loginLimit ?? LOGIN_LIMIT);

  const access = (c: Context): Access =>
    dashboardAccess(
      { authorization: c.req.header("authorization"), cookie: c.req.header("cookie"), forwardedFor: c.req.header("x-forwarded-for"), remoteAddress: deps.remoteAddress(c) },
      deps.apiKeyDigests,
      deps.digest,
    );
  const secure = (c: Context) => new URL(c.req.url).protocol === "https:";

  app.get("/dashboard", (c) => {
    const a = access(c);
    if (a.ok) return c.body(dashboardPage({ loginRequired: hasKeys }), 200, PAGE_HEADERS);
    return c.body(a.status === 401 ? loginPage() : refusedPage(a.message), a.status, PAGE_HEADERS);
  });

  app.post("/dashboard/login", async (c) => {
    if (!hasKeys) return c.redirect("/dashboard", 303);
    if (!sameOrigin(c)) return c.body(refusedPage("login: cross-site form posts are refused"), 403, PAGE_HEADERS);
    // Counted before the key is read: every attempt, right or wrong, takes a token.
    if (!logins.take((deps.clientAddress ?? deps.remoteAddress)(c) ?? "unknown")) {
      return c.body(loginPage("Too many sign-in attempts from this address. Wait a minute, then try again."), 429, { ...PAGE_HEADERS, "retry-after": "12" });
    }
    const text = await readBody(webBody(c.req.raw.body), { contentLength: c.req.header("content-length"), transferEncoding: c.req.header("transfer-encoding") }, MAX_LOGIN_BYTES);
    const key = text === undefined ? undefined : new URLSearchParams(text).get("key");
    const found = key ? matchingKey(key, deps.apiKeyDigests, deps.digest) : undefined;
    if (!found) return c.body(loginPage("That is not one of this facilitator's API keys."), 401, PAGE_HEADERS);
    return c.body(null, 303, { location: "/dashboard", "set-cookie": sessionCookie(sessionValue(found), secure(c)), "cache-control": "no-store" });
  });

  app.post("/dashboard/logout", (c) => {
    if (!sameOrigin(c)) return c.body(refusedPage("logout: cross-site form posts are refused"), 403, PAGE_HEADERS);
    return c.body(null, 303, { location: "/dashboard", "set-cookie": clearedSessionCookie(secure(c)), "cache-control": "no-store" });
  });

  app.get("/dashboard/assets/:name", async (c) => {
    const asset = await readAsset(c.req.param("name"));
    if (!asset) return c.json({ error: "no such dashboard asset" }, 404);
    return c.body(asset.body, 200, { "content-type": asset.type, "cache-control": "public, max-age=3600", "x-content-type-options": "nosniff" });
  });

  app.get("/dashboard/api/overview", async (c) => {
    const a = access(c);
    if (!a.ok) return c.json({ error: a.message }, a.status, JSON_HEADERS);
    const raw = c.req.query("window") ?? "1h";
    if (!Object.hasOwn(WINDOWS, raw)) return c.json({ error: `window: expected one of ${Object.keys(WINDOWS).join(", ")}` }, 400, JSON_HEADERS);
    const w = raw as WindowName;
    const [volume, outcomes, open, gas, payees, recent, feePayers] = await Promise.all([
      queries.volume(w),
      queries.outcomes(w),
      queries.open(),
      queries.gas(w),
      queries.payees(w),
      queries.recent(),
      readFeePayers(options, deps.logger),
    ]);
    return c.json(
      {
        window: w,
        bucketSeconds: WINDOWS[w].bucket,
        windowSeconds: WINDOWS[w].seconds,
        now: Math.floor(Date.now() / 1000),
        volume,
        outcomes,
        open,
        gas,
        payees,
        recent: recent.map((p) => ({ ...p, link: explorerLinkFor(p.network, p.transaction, options.explorers) })),
        feePayers,
        assets: options.assets ?? [],
      },
      200,
      JSON_HEADERS,
    );
  });

  app.get("/dashboard/api/search", async (c) => {
    const a = access(c);
    if (!a.ok) return c.json({ error: a.message }, a.status, JSON_HEADERS);
    const raw = c.req.query("q") ?? "";
    const query = raw.length <= 100 ? readSearchQuery(raw) : undefined;
    if (!query) return c.json({ error: "q: expected a payer or payee address (0x + 40 hex, or base58) or a transaction hash (0x + 64 hex, or a base58 signature)" }, 400, JSON_HEADERS);
    const found = await queries.search(query);
    const records = await Promise.all(
      found.slice(0, 10).map(async (p) => ({
        ...p,
        link: explorerLinkFor(p.network, p.transaction, options.explorers),
        attempts: (await queries.attempts(p.key)).map((x) => ({ ...x, link: explorerLinkFor(p.network, x.hash, options.explorers) })),
      })),
    );
    return c.json({ query: { kind: query.kind, value: query.value }, total: found.length, records }, 200, JSON_HEADERS);
  });

  app.get("/dashboard/api/events", (c) => {
    const a = access(c);
    if (!a.ok) return c.json({ error: a.message }, a.status, JSON_HEADERS);
    const after = readLastEventId(c.req.header("last-event-id") ?? c.req.query("after"));
    if (after === null) return c.json({ error: "Last-Event-ID (or after): expected a dashboard event id (decimal digits)" }, 400, JSON_HEADERS);
    return liveStream(c, { feed, queries, streams, after, logger: deps.logger, ...(options.explorers ? { explorers: options.explorers } : {}) }) ?? c.json({ error: "too many open dashboard streams; try again later" }, 503, { ...JSON_HEADERS, "retry-after": "5" });
  });

  return {
    close() {
      for (const end of [...streams]) end();
      feed.close();
    },
  };
}

/** A form post from this origin (or a client that sends no Origin, like curl). */
function sameOrigin(c: Context): boolean {
  const site = c.req.header("sec-fetch-site");
  if (site !== undefined && site !== "same-origin" && site !== "none") return false;
  const origin = c.req.header("origin");
  if (origin === undefined) return true;
  const host = c.req.header("host");
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}

/** A Last-Event-ID (or ?after=) value: a ledger event id; undefined when absent, null when malformed. */
export function readLastEventId(raw: string | undefined): bigint | undefined | null {
  if (raw === undefined || raw === "") return undefined;
  return /^(0|[1-9][0-9]{0,18})$/.test(raw) ? BigInt(raw) : null;
}

interface StreamDeps {
  feed: LiveFeed;
  queries: Pick<DashboardQueries, "eventsAfter" | "lastEventId">;
  streams: Set<() => void>;
  /** The last event id the client saw (reconnecting): it first gets what came after it. */
  after: bigint | undefined;
  explorers?: Record<string, string>;
  logger: Logger;
}

/** Events after `after`: the newest RESUME_MAX of them at most, oldest first. */
async function missedSince(queries: StreamDeps["queries"], after: bigint): Promise<PaymentEventRow[]> {
  const latest = BigInt(await queries.lastEventId());
  const from = latest - BigInt(RESUME_MAX) > after ? latest - BigInt(RESUME_MAX) : after;
  return from >= latest ? [] : queries.eventsAfter(from.toString(), RESUME_MAX);
}

/**
 * The event stream: a comment every 15 s keeps proxies from timing it out; ends when the client
 * goes. A resuming client: the live feed is joined FIRST (its events held back), then the missed
 * ones are read and sent, then the held ones not already among them, so nothing committed in
 * between falls through the gap.
 */
function liveStream(c: Context, deps: StreamDeps): Response | undefined {
  const { feed, streams, after } = deps;
  const encoder = new TextEncoder();
  const format = (e: PaymentEventRow) => `id: ${e.id}\nevent: payment\ndata: ${JSON.stringify({ ...e, link: explorerLinkFor(e.network, e.transaction, deps.explorers) })}\n\n`;
  let end: (() => void) | undefined;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      let done = false;
      const send = (text: string) => {
        if (!done) controller.enqueue(encoder.encode(text));
      };
      let held: PaymentEventRow[] | undefined = after === undefined ? undefined : [];
      const resent = new Set<string>();
      const deliver = (events: readonly PaymentEventRow[]) => {
        for (const e of events) if (!resent.has(e.id)) send(format(e));
      };
      const unsubscribe = feed.subscribe((events) => (held ? held.push(...events) : deliver(events)));
      if (!unsubscribe) return;
      const heartbeat = setInterval(() => send(": keep-alive\n\n"), 15_000);
      heartbeat.unref?.();
      end = () => {
        if (done) return;
        done = true;
        clearInterval(heartbeat);
        unsubscribe();
        streams.delete(end!);
        try {
          controller.close();
        } catch {
          // Already cancelled by the client.
        }
      };
      streams.add(end);
      c.req.raw.signal?.addEventListener("abort", () => end?.());
      send("retry: 3000\n: connected\n\n");
      if (after === undefined) return;
      void missedSince(deps.queries, after)
        .then((missed) => {
          deliver(missed);
          for (const e of missed) resent.add(e.id);
        })
        .catch((e) => deps.logger.warn({ err: safeMessage(e) }, "dashboard: could not read the events a reconnecting page missed"))
        .finally(() => {
          const waiting = held ?? [];
          held = undefined;
          deliver(waiting);
        });
    },
    cancel() {
      end?.();
    },
  });
  if (!end) return undefined;
  return new Response(body, { status: 200, headers: { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", "x-accel-buffering": "no", "x-content-type-options": "nosniff" } });
}

async function readFeePayers(options: DashboardOptions, logger: Logger): Promise<Array<{ network: string; address: string; balance: string; floor: string | null; belowFloor: boolean }> | { error: string }> {
  if (!options.feePayers) return [];
  try {
    const list = await Promise.race([options.feePayers(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error("fee-payer balances: no answer within 3 s")), 3_000).unref())]);
    return list.map((b) => {
      const floor = b.network.startsWith("eip155:") ? options.floorWei : undefined;
      return { network: b.network, address: b.address, balance: b.balance.toString(), floor: floor?.toString() ?? null, belowFloor: floor !== undefined && b.balance < floor };
    });
  } catch (e) {
    logger.warn({ err: safeMessage(e) }, "dashboard: could not read fee-payer balances");
    return { error: "fee-payer balances could not be read now" };
  }
}
