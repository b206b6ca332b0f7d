/**
 * A JSON-RPC transport for viem over `node:http` / `node:https` with a keep-alive Agent.
 *
 * Why: viem's `http()` goes through undici `fetch` (Request/Headers/AbortSignal objects, a
 * web-streams body reader) and costs several times the CPU of a plain `node:http` request per call;
 * the facilitator makes hundreds of RPC calls per thousand settlements on its main thread.
 *
 * What stays the same as `http()`, so callers cannot tell the difference:
 * - A JSON-RPC error `{ code, message, data }` is thrown as viem's `RpcRequestError` (with `status`
 *   and `headers` when the HTTP status was not 2xx), and viem's `buildRequest` maps its code to the
 *   `RpcError` classes (-32000 → InvalidInputRpcError, ...), so "nonce too low" and revert `data`
 *   reach callers exactly as before.
 * - HTTP failures are viem's `HttpRequestError` (`status`, `headers` for Retry-After), timeouts viem's
 *   `TimeoutError`, an oversized answer `ResponseBodyTooLargeError`; so `retryCount`/`retryDelay`
 *   go through viem's own retry policy (which looks at those classes and the status).
 * - `batch: true | { batchSize, wait }`: calls made before the batch flushes go as one JSON-RPC
 *   array; each caller gets the answer with its own id.
 *
 * Differences, on purpose: error messages never carry URL credentials (`user:pass@` becomes a Basic
 * Authorization header, as viem does, and is stripped from every URL we put in an error) and
 * HTTP/timeout errors do not carry the request body.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type RequestOptions } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import {
  HttpRequestError,
  ResponseBodyTooLargeError,
  RpcRequestError,
  TimeoutError,
  createTransport,
  stringify,
  webSocket,
  type EIP1193RequestFn,
  type Transport,
} from "viem";

export interface RpcTransportOptions {
  /**
   * JSON-RPC batching, as viem's `http()`: `true` or `{ batchSize, wait }`. Calls made before the
   * flush (after `wait` ms; with 0, at the end of the current event-loop turn) go as one array.
   * `batchSize` defaults to 1000; a full batch leaves at once.
   */
  batch?: boolean | { batchSize?: number | undefined; wait?: number | undefined } | undefined;
  /** Per-request timeout in ms (the whole request: connect, send, read the answer). Default 10 000. */
  timeout?: number | undefined;
  /** Retries by viem's policy (transport errors, 5xx/429, -32603, ...). Default: the client's (3). */
  retryCount?: number | undefined;
  /** Base delay in ms of viem's exponential backoff between retries. Default 150. */
  retryDelay?: number | undefined;
  /** Sockets per origin in the keep-alive Agent. Default 64. */
  maxSockets?: number | undefined;
  /** Extra HTTP headers on every request (e.g. an API key). */
  headers?: Record<string, string> | undefined;
  /** Largest answer accepted, in bytes; `false` for no limit. Default 10 MiB (viem's). */
  maxResponseBodySize?: number | false | undefined;
  /** viem transport key and name. */
  key?: string | undefined;
  name?: string | undefined;
}

interface JsonRpcRequest {
  jsonrpc: "2.0";
  id: number;
  method: string;
  params?: unknown;
}
interface JsonRpcError {
  code: number;
  message: string;
  data?: unknown;
}
interface JsonRpcResponse {
  id?: unknown;
  result?: unknown;
  error?: JsonRpcError;
}

/** One HTTP exchange: a status, headers and the parsed (or raw, when not JSON) body. */
interface Exchange {
  status: number;
  statusText: string;
  headers: IncomingHttpHeaders;
  json: unknown;
  /** The body as text when it was not JSON. */
  text?: string;
  parseError?: Error;
}

const DEFAULT_MAX_BODY = 10_485_760;

/**
 * A URL safe to show in messages and logs: scheme and host kept; credentials, query values and
 * any path segment that looks like a key hidden. Providers put API keys in the path
 * (`https://x.g.alchemy.com/v2/<key>`, `https://mainnet.infura.io/v3/<key>`) as often as in the
 * query. Unparsable input gives a placeholder rather than the raw string, which could hold a secret.
 */
export function redactRpcUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    u.hash = "";
    u.pathname = u.pathname
      .split("/")
      .map((segment) => (looksLikeKey(segment) ? "[redacted]" : segment))
      .join("/");
    const keys = [...new Set(u.searchParams.keys())];
    u.search = keys.length > 0 ? `?${keys.map((k) => `${encodeURIComponent(k)}=[redacted]`).join("&")}` : "";
    const redacted = u.toString();
    // Nothing hidden: the URL as given (so messages match viem's own, which print it unchanged).
    return redacted === new URL(url).toString() ? url : redacted;
  } catch {
    return "<invalid URL>";
  }
}

/**
 * A path segment that could be a secret: long, or mixing letters and digits beyond a short
 * version tag (`v2`, `v3`, `rpc`, `ext`, `bc` stay readable).
 */
function looksLikeKey(segment: string): boolean {
  if (segment.length === 0) return false;
  if (segment.length >= 16) return true;
  return segment.length >= 8 && /[0-9]/.test(segment) && /[a-zA-Z]/.test(segment);
}

/**
 * A viem `Transport` for an http(s) JSON-RPC endpoint over `node:http(s)` with keep-alive.
 * Throws a TypeError for any other URL scheme (ws(s): see `rpcTransportForUrl`).
 */
export function rpcTransport(url: string, options: RpcTransportOptions = {}): Transport<"http", { url: string }> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError("rpcTransport: not a valid URL");
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new TypeError(`rpcTransport: unsupported URL scheme "${parsed.protocol.replace(/:$/, "")}" (expected http or https)`);
  }
  const https = parsed.protocol === "https:";
  const safeUrl = redactRpcUrl(url);
  const headers: Record<string, string> = { "content-type": "application/json" };
  // As viem's http(): credentials in the URL become Basic auth, and never reach a message.
  if (parsed.username || parsed.password) {
    headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}`).toString("base64")}`;
  }
  for (const [k, v] of Object.entries(options.headers ?? {})) headers[k.toLowerCase()] = v;
  const base: RequestOptions = {
    protocol: parsed.protocol,
    hostname: parsed.hostname.startsWith("[") ? parsed.hostname.slice(1, -1) : parsed.hostname,
    port: parsed.port || (https ? 443 : 80),
    path: `${parsed.pathname}${parsed.search}`,
    method: "POST",
  };
  const maxSockets = options.maxSockets ?? 64;
  const maxBody = options.maxResponseBodySize === false ? Infinity : (options.maxResponseBodySize ?? DEFAULT_MAX_BODY);
  const batch = options.batch;
  const batchSize = typeof batch === "object" ? (batch.batchSize ?? 1000) : 1000;
  const batchWait = typeof batch === "object" ? (batch.wait ?? 0) : 0;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new TypeError("rpcTransport: batch.batchSize must be a positive integer");

  // One Agent per rpcTransport() value: every client built from it shares the sockets. Idle
  // keep-alive sockets are unref'd by node, so they do not hold the process open.
  let agent: HttpAgent | undefined;
  let nextId = 0;

  return ({ retryCount: clientRetryCount, timeout: clientTimeout }) => {
    const timeout = options.timeout ?? clientTimeout ?? 10_000;
    agent ??= https ? new HttpsAgent({ keepAlive: true, maxSockets }) : new HttpAgent({ keepAlive: true, maxSockets });
    const send = https ? httpsRequest : httpRequest;

    /** POSTs a body; resolves with whatever HTTP answer came back, rejects only on transport failure. */
    function post(body: string, signal: AbortSignal | undefined, retried = false): Promise<Exchange> {
      return new Promise<Exchange>((resolve, reject) => {
        let settled = false;
        let responded = false;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const finish = (err: unknown, value?: Exchange) => {
          if (settled) return;
          settled = true;
          if (timer) clearTimeout(timer);
          if (signal) signal.removeEventListener("abort", onAbort);
          if (err) reject(err);
          else resolve(value!);
        };
        const req = send(
          { ...base, agent, headers: { ...headers, "content-length": Buffer.byteLength(body) } },
          (res: IncomingMessage) => {
            responded = true;
            const chunks: Buffer[] = [];
            let size = 0;
            res.on("data", (chunk: Buffer) => {
              size += chunk.length;
              if (size > maxBody) {
                req.destroy();
                finish(new ResponseBodyTooLargeError({ maxSize: maxBody, size }));
                return;
              }
              chunks.push(chunk);
            });
            res.on("error", (e) => finish(e));
            // The connection dropped mid-answer ('end' never comes): fail now, not at the timeout.
            res.on("close", () => {
              if (!res.complete) finish(new Error("connection closed before the response ended"));
            });
            res.on("end", () => {
              const text = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString("utf8");
              const exchange: Exchange = { status: res.statusCode ?? 0, statusText: res.statusMessage ?? "", headers: res.headers, json: undefined };
              try {
                exchange.json = JSON.parse(text);
              } catch (e) {
                exchange.text = text;
                exchange.parseError = e as Error;
              }
              finish(undefined, exchange);
            });
          },
        );
        req.on("error", (e: NodeJS.ErrnoException) => {
          if (settled) return;
          // A kept-alive socket the server closed while it sat idle: the request almost surely never
          // reached the node, so send it once more on a fresh socket (node's documented pattern for
          // reusedSocket). viem's own retry would resend it too, only later; a duplicate
          // eth_sendRawTransaction is answered "already known", which callers already handle.
          if (!retried && !responded && req.reusedSocket && e.code === "ECONNRESET") {
            settled = true;
            if (timer) clearTimeout(timer);
            if (signal) signal.removeEventListener("abort", onAbort);
            post(body, signal, true).then(resolve, reject);
            return;
          }
          finish(e);
        });
        function onAbort() {
          req.destroy();
          finish(abortError(signal));
        }
        if (signal) signal.addEventListener("abort", onAbort, { once: true });
        if (timeout > 0) {
          timer = setTimeout(() => {
            req.destroy();
            finish(TIMED_OUT);
          }, timeout);
        }
        req.end(body);
      });
    }

    /** The HTTP layer: JSON-RPC answers out, viem's HTTP-level errors thrown. */
    // Plain promise chains, not async functions: each await layer costs microtask hops on the hot path.
    function exchange(payload: JsonRpcRequest | JsonRpcRequest[], signal: AbortSignal | undefined): Promise<unknown> {
      return post(serialize(payload), signal).then(
        (ex) => answer(payload, ex),
        (e: unknown) => {
          if (signal?.aborted) throw abortError(signal);
          if (e === TIMED_OUT) {
            // The request body stays out of the message: a method name is enough to find the call.
            const summary = Array.isArray(payload) ? { batch: payload.length, method: payload[0]?.method } : { method: payload.method };
            throw new TimeoutError({ body: summary, url: safeUrl });
          }
          if (e instanceof ResponseBodyTooLargeError) throw e;
          throw new HttpRequestError({ cause: e as Error, details: (e as Error).message, url: safeUrl });
        },
      );
    }

    function answer(payload: JsonRpcRequest | JsonRpcRequest[], ex: Exchange): unknown {
      const ok = ex.status >= 200 && ex.status < 300;
      if (ok && ex.parseError === undefined) return ex.json;
      const responseHeaders = ok ? undefined : toHeaders(ex.headers);
      if (!ok) {
        // As viem: a JSON-RPC error body keeps its RPC error class, with the status for retries.
        const err = Array.isArray(ex.json) && ex.json.length === 1 ? ex.json[0] : ex.json;
        if (isRpcErrorResponse(err)) {
          throw new RpcRequestError({ body: requestBody(payload), error: err.error, headers: responseHeaders, status: ex.status, url: safeUrl });
        }
      }
      const snippet = ex.text !== undefined ? ex.text.slice(0, 200) : JSON.stringify(ex.json)?.slice(0, 200);
      // No `cause` for a JSON parse error: viem would show its message instead of these details.
      throw new HttpRequestError({
        details: ok ? `HTTP ${ex.status} response is not JSON: ${snippet}` : snippet || ex.statusText || `HTTP ${ex.status}`,
        ...(responseHeaders ? { headers: responseHeaders } : {}),
        // A 2xx with a broken body has no status, as in viem, so its retry policy treats it as
        // a transport failure (retried) rather than a final HTTP status.
        ...(ok ? {} : { status: ex.status }),
        url: safeUrl,
      });
    }

    function rpcError(method: string, params: unknown, error: JsonRpcError, ex?: { status?: number; headers?: Headers }): RpcRequestError {
      return new RpcRequestError({ body: { method, params }, error, url: safeUrl, ...ex });
    }

    /** One call alone: its own HTTP request. */
    function single(method: string, params: unknown, signal: AbortSignal | undefined): Promise<unknown> {
      return exchange({ jsonrpc: "2.0", id: ++nextId, method, params }, signal).then((data) => {
        if (!data || typeof data !== "object") throw badAnswer("expected a JSON-RPC response object");
        const res = data as JsonRpcResponse;
        if (res.error) throw rpcError(method, params, res.error);
        if (!("result" in res)) throw badAnswer("JSON-RPC response has neither result nor error");
        return res.result;
      });
    }

    function badAnswer(details: string): HttpRequestError {
      return new HttpRequestError({ details, url: safeUrl });
    }

    // ---- batching -----------------------------------------------------------------------------
    interface Pending {
      req: JsonRpcRequest;
      resolve: (value: unknown) => void;
      reject: (err: unknown) => void;
    }
    let queue: Pending[] = [];
    let flushHandle: ReturnType<typeof setTimeout> | ReturnType<typeof setImmediate> | undefined;

    function cancelFlush(): void {
      if (flushHandle === undefined) return;
      if (batchWait > 0) clearTimeout(flushHandle as ReturnType<typeof setTimeout>);
      else clearImmediate(flushHandle as ReturnType<typeof setImmediate>);
      flushHandle = undefined;
    }

    function flush(): void {
      cancelFlush();
      const items = queue;
      queue = [];
      if (items.length === 0) return;
      if (items.length === 1) {
        // A batch of one is an ordinary request: no array for the node to unpack.
        const { req, resolve, reject } = items[0]!;
        single(req.method, req.params, undefined).then(resolve, reject);
        return;
      }
      exchange(
        items.map((i) => i.req),
        undefined,
      ).then(
        (data) => deliver(items, data),
        (err) => {
          for (const i of items) i.reject(err);
        },
      );
    }

    function deliver(items: Pending[], data: unknown): void {
      if (Array.isArray(data)) {
        const byId = new Map<unknown, JsonRpcResponse>();
        for (const r of data as JsonRpcResponse[]) if (r && typeof r === "object") byId.set(r.id, r);
        // A node that refuses a whole batch answers with one error (bare or in a one-element array).
        const first = data[0] as JsonRpcResponse | undefined;
        const whole = data.length === 1 && first?.id == null && isRpcErrorResponse(first) ? first : undefined;
        for (const { req, resolve, reject } of items) {
          const res = byId.get(req.id) ?? whole;
          if (!res) reject(badAnswer(`batch response has no answer for request id ${req.id} (${data.length} answers to ${items.length} requests)`));
          else if (res.error) reject(rpcError(req.method, req.params, res.error));
          else if (!("result" in res)) reject(badAnswer("JSON-RPC response has neither result nor error"));
          else resolve(res.result);
        }
        return;
      }
      if (isRpcErrorResponse(data)) {
        for (const { req, reject } of items) reject(rpcError(req.method, req.params, data.error));
        return;
      }
      const err = badAnswer(`expected ${items.length} responses to a batch request`);
      for (const i of items) i.reject(err);
    }

    function enqueue(method: string, params: unknown): Promise<unknown> {
      return new Promise((resolve, reject) => {
        queue.push({ req: { jsonrpc: "2.0", id: ++nextId, method, params }, resolve, reject });
        if (queue.length >= batchSize) flush();
        else if (flushHandle === undefined) flushHandle = batchWait > 0 ? setTimeout(flush, batchWait) : setImmediate(flush);
      });
    }

    const request = (({ method, params }: { method: string; params?: unknown }, opts?: { signal?: AbortSignal | undefined }) => {
      const signal = opts?.signal;
      // A call with its own abort signal goes alone, so aborting it cannot cancel its neighbours.
      if (batch && !signal) return enqueue(method, params);
      return single(method, params, signal);
    }) as EIP1193RequestFn;

    return createTransport(
      {
        key: options.key ?? "rpc",
        name: options.name ?? "node:http JSON-RPC",
        request,
        ...(options.retryCount !== undefined || clientRetryCount !== undefined ? { retryCount: options.retryCount ?? clientRetryCount } : {}),
        ...(options.retryDelay !== undefined ? { retryDelay: options.retryDelay } : {}),
        timeout,
        // "http": viem then polls (no subscriptions), as it does for http().
        type: "http",
      },
      { url: safeUrl },
    );
  };
}

/**
 * The transport for a configured RPC URL: http(s) → `rpcTransport`, ws(s) → viem's `webSocket()`
 * (anvil, geth and most providers serve JSON-RPC on both). viem's `http()` cannot reach a ws URL at
 * all (every request fails with "unknown scheme"), so this is strictly better for configs that
 * accept ws URLs. `batch` and the socket options apply to http(s) only.
 */
export function rpcTransportForUrl(url: string, options: RpcTransportOptions = {}): Transport {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === "ws" || scheme === "wss") {
    return webSocket(url, {
      ...(options.retryCount !== undefined ? { retryCount: options.retryCount } : {}),
      ...(options.retryDelay !== undefined ? { retryDelay: options.retryDelay } : {}),
      ...(options.timeout !== undefined ? { timeout: options.timeout } : {}),
    });
  }
  return rpcTransport(url, options);
}

/** Rejection of a request that timed out, replaced by viem's TimeoutError. */
const TIMED_OUT = new Error("timed out");

function abortError(signal: AbortSignal | undefined): unknown {
  if (signal?.reason) return signal.reason;
  return new DOMException("This operation was aborted", "AbortError");
}

function isRpcErrorResponse(data: unknown): data is { error: JsonRpcError } {
  const error = (data as { error?: { code?: unknown; message?: unknown } } | null | undefined)?.error;
  return typeof error?.code === "number" && typeof error.message === "string";
}

/** JSON.stringify, falling back to viem's bigint-aware stringify (slower) only when it must. */
function serialize(payload: unknown): string {
  try {
    return JSON.stringify(payload);
  } catch {
    return stringify(payload);
  }
}

function requestBody(payload: JsonRpcRequest | JsonRpcRequest[]): { [k: string]: unknown } | { [k: string]: unknown }[] {
  return Array.isArray(payload) ? payload.map((p) => ({ method: p.method, params: p.params })) : { method: payload.method, params: payload.params };
}

function toHeaders(h: IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out.append(k, x);
    else out.set(k, v);
  }
  return out;
}
