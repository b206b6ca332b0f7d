/**
 * The node HTTP server. `POST /verify` and `POST /settle` — the hot routes — are answered from
 * node's own request and response objects through `app.payment`; everything else goes to hono.
 * Why: @hono/node-server turns each request into a web Request and its body into a web stream,
 * which costs more per request than the rest of a verification. The two paths run the same
 * handler (app.payment), so their answers are identical (tests/server.test.ts checks both).
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import { getRequestListener } from "@hono/node-server";
import type { FacilitatorApp, PaymentHttpRequest } from "./app.ts";

export interface FacilitatorServerOptions {
  /** Take the client IP from `X-Forwarded-For` (only behind a proxy you run). */
  trustProxy?: boolean;
}

export function createFacilitatorServer(app: FacilitatorApp, options: FacilitatorServerOptions = {}): Server {
  const hono = getRequestListener(app.fetch);
  return createServer((req, res) => {
    const kind = paymentRoute(req);
    if (!kind) return void hono(req, res);
    void app.payment(nodeRequest(req, kind, options.trustProxy)).then(
      (r) => {
        res.writeHead(r.status, { ...r.headers, "content-length": Buffer.byteLength(r.body) });
        res.end(r.body);
      },
      () => {
        // app.payment answers every error itself; this is only a last guard for the socket.
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
        res.end('{"error":"internal error"}');
      },
    );
  });
}

function paymentRoute(req: IncomingMessage): "verify" | "settle" | undefined {
  if (req.method !== "POST" || !req.url) return undefined;
  const q = req.url.indexOf("?");
  const path = q < 0 ? req.url : req.url.slice(0, q);
  return path === "/verify" ? "verify" : path === "/settle" ? "settle" : undefined;
}

function nodeRequest(req: IncomingMessage, kind: "verify" | "settle", trustProxy: boolean | undefined): PaymentHttpRequest {
  return {
    kind,
    header: (name) => {
      const v = req.headers[name];
      return Array.isArray(v) ? v.join(", ") : v;
    },
    clientIp: () => {
      if (trustProxy) {
        const forwarded = String(req.headers["x-forwarded-for"] ?? "").split(",")[0]?.trim();
        if (forwarded) return forwarded;
      }
      return req.socket.remoteAddress ?? "unknown";
    },
    readBody: (maxBytes) => readBody(req, maxBytes),
  };
}

/**
 * The body, up to `maxBytes`. A declared length over the limit is refused before reading; a
 * body that grows past it (chunked, or lying about its length) stops being read at the limit.
 * Either way the rest is drained, not kept, so the connection can carry the error answer.
 */
function readBody(req: IncomingMessage, maxBytes: number): Promise<string | undefined> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && req.headers["transfer-encoding"] === undefined && parseInt(declared || "0", 10) > maxBytes) {
    req.resume();
    return Promise.resolve(undefined);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > maxBytes) {
        over = true;
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    });
    req.once("end", () => resolve(over ? undefined : chunks.length === 1 ? chunks[0]!.toString("utf8") : Buffer.concat(chunks).toString("utf8")));
    req.once("error", reject);
  });
}
