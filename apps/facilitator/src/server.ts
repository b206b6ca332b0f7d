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
import { clientIp, readBody } from "./http-request.ts";

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
    clientIp: () => clientIp(req.headers["x-forwarded-for"], req.socket.remoteAddress, trustProxy),
    readBody: (maxBytes) => readBody(req, { contentLength: req.headers["content-length"], transferEncoding: req.headers["transfer-encoding"] }, maxBytes),
  };
}
