/**
 * A small stand-in for `next start` (Next 16), for running route handlers and a proxy over real
 * HTTP without building a Next app. It does what Next does between the socket and the exported
 * handlers, as far as a paywall can tell:
 * - repeated slashes or a backslash in the request target before its query (so an
 *   absolute-form target too, whose "//" counts): 308 to the normalized path; a trailing slash:
 *   308 without it (Next's default `trailingSlash: false`);
 * - the web Request (NextRequestAdapter.fromNodeNextRequest): its URL is the request target
 *   resolved against Next's own `http://hostname:port` (an absolute-form target is taken as
 *   is), never the Host header; the node headers as they came; the body as a stream for
 *   methods other than GET and HEAD; a signal that aborts when the response closes before it
 *   finished (signalFromNodeResponse); and `nextUrl`, the URL without the basePath;
 * - the proxy first: a response carrying `x-middleware-next` goes on to the route with the
 *   proxy's other headers set on the route's response (replacing the route's own of the same
 *   name); any other response is the answer;
 * - App Router routing: a static route's exact path (not its percent-decoded form: Next answers
 *   "/%77eather" 404), else the deepest optional catch-all folder holding the path (a nested
 *   app/v1/[[...slug]]/route.ts before the root one); then the module's export for the method, HEAD answered by GET when not
 *   exported, OPTIONS by a 204 with `Allow`, any other missing method by a 405
 *   (autoImplementMethods); a handler that throws is a 500 with no body;
 * - the web Response written to the node response: status, headers (each Set-Cookie apart), the
 *   body streamed, no body for HEAD.
 * Each of these was checked against a real `next build && next start` of Next 16.4.6.
 * Test only.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";

export type Handler = (request: Request, context: { params: Promise<Record<string, string[]>> }) => Response | Promise<Response>;
export type RouteModule = Partial<Record<(typeof HTTP_METHODS)[number], Handler>>;

export interface NextLikeApp {
  /**
   * app/<path>/route.ts, keyed by path ("/per-route"); a key ending in "/[[...slug]]" is that
   * folder's optional catch-all ("/v1/[[...slug]]": app/v1/[[...slug]]/route.ts, serving "/v1"
   * and everything under it).
   */
  routes?: Record<string, RouteModule>;
  /** app/[[...slug]]/route.ts: whatever no static route matches. */
  catchAll?: RouteModule;
  /** proxy.ts */
  proxy?: (request: Request) => Promise<Response | undefined> | Response | undefined;
}

export interface Running {
  url: string;
  port: number;
  close(): Promise<void>;
}

const HTTP_METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"] as const;

/** What NextRequest adds that a paywall reads: the URL as Next routes it. */
class NextLikeRequest extends Request {
  readonly nextUrl: URL;
  constructor(url: URL, init: RequestInit) {
    super(url, init);
    this.nextUrl = new URL(url);
  }
}

/** Serves `app` on 127.0.0.1, on `port` (default: an ephemeral one). */
export async function serveLikeNext(app: NextLikeApp, listenOn = 0): Promise<Running> {
  let port = 0;
  // Room for the oversized-header test to reach the paywall instead of Node's 431.
  const server: Server = createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => {
    handle(app, port, req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(listenOn, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(app: NextLikeApp, port: number, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const target = req.url ?? "/";
  const method = (req.method ?? "GET").toUpperCase();
  const [rawPath = "", query] = splitQuery(target);
  if (/\\|\/\//.test(rawPath)) return redirect(res, rawPath.replace(/\\/g, "/").replace(/\/{2,}/g, "/"), query);
  if (rawPath.length > 1 && rawPath.endsWith("/")) return redirect(res, rawPath.replace(/\/+$/, ""), query);

  const controller = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) controller.abort();
  });
  const url = target.startsWith("http") ? new URL(target) : new URL(target, `http://127.0.0.1:${port}`);
  const request = new NextLikeRequest(url, {
    method,
    headers: nodeHeaders(req),
    ...(method === "GET" || method === "HEAD" ? {} : { body: Readable.toWeb(req) as ReadableStream, duplex: "half" }),
    signal: controller.signal,
  } as RequestInit);

  let proxyHeaders: Headers | undefined;
  if (app.proxy) {
    const answer = await app.proxy(new NextLikeRequest(url, { method, headers: nodeHeaders(req), signal: controller.signal }));
    if (answer && !answer.headers.has("x-middleware-next")) return send(res, answer, method);
    if (answer) {
      proxyHeaders = new Headers();
      answer.headers.forEach((value, name) => {
        if (!name.startsWith("x-middleware-")) proxyHeaders!.set(name, value);
      });
    }
  }

  const { module, slug } = resolveRoute(app, url.pathname);
  if (!module) return send(res, new Response("not found", { status: 404 }), method, proxyHeaders);
  let response: Response;
  try {
    response = await methodHandler(module, method)(request, { params: Promise.resolve({ slug }) });
  } catch {
    response = new Response(null, { status: 500 });
  }
  return send(res, response, method, proxyHeaders);
}

const CATCH_ALL = "/[[...slug]]";

/** The static route of exactly this path, else the deepest optional catch-all folder holding it, else the root one. */
function resolveRoute(app: NextLikeApp, pathname: string): { module: RouteModule | undefined; slug: string[] } {
  const own = app.routes?.[pathname];
  if (own) return { module: own, slug: pathname.split("/").filter(Boolean) };
  let best: { base: string; module: RouteModule } | undefined;
  for (const [key, module] of Object.entries(app.routes ?? {})) {
    if (!key.endsWith(CATCH_ALL)) continue;
    const base = key.slice(0, -CATCH_ALL.length);
    if ((pathname === base || pathname.startsWith(`${base}/`)) && (!best || base.length > best.base.length)) best = { base, module };
  }
  if (best) return { module: best.module, slug: pathname.slice(best.base.length).split("/").filter(Boolean) };
  return { module: app.catchAll, slug: pathname.split("/").filter(Boolean) };
}

function methodHandler(module: RouteModule, method: string): Handler {
  const known = HTTP_METHODS.find((m) => m === method);
  const own = known ? module[known] : undefined;
  if (own) return own;
  if (method === "HEAD" && module.GET) return module.GET;
  if (method === "OPTIONS") {
    const allow = new Set(["OPTIONS", ...HTTP_METHODS.filter((m) => module[m])]);
    if (module.GET) allow.add("HEAD");
    return () => new Response(null, { status: 204, headers: { Allow: [...allow].sort().join(", ") } });
  }
  return () => new Response(null, { status: 405 });
}

async function send(res: ServerResponse, response: Response, method: string, proxyHeaders?: Headers): Promise<void> {
  res.statusCode = response.status;
  response.headers.forEach((value, name) => {
    if (name !== "set-cookie") res.setHeader(name, value);
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) res.setHeader("set-cookie", cookies);
  proxyHeaders?.forEach((value, name) => res.setHeader(name, value));
  if (method === "HEAD" || response.body === null) {
    await response.body?.cancel().catch(() => {});
    res.end();
    return;
  }
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      if (res.destroyed) break;
      res.write(chunk);
    }
  } finally {
    res.end();
  }
}

function redirect(res: ServerResponse, path: string, query: string | undefined): void {
  res.writeHead(308, { Location: (path || "/") + (query ? `?${query}` : "") }).end();
}

function nodeHeaders(req: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else if (value !== undefined) headers.set(name, value);
  }
  return headers;
}

function splitQuery(target: string): [string, string | undefined] {
  const i = target.indexOf("?");
  return i < 0 ? [target, undefined] : [target.slice(0, i), target.slice(i + 1)];
}
