/**
 * Reading a payment request off the wire, the same way for node's own server (server.ts, the hot
 * path) and for hono (app.ts): the body within a byte bound, and the client's address.
 */
import { Readable } from "node:stream";

/** What the body reader needs: node's IncomingMessage is one, and so is a web body via Readable.fromWeb. */
export interface BodyStream {
  on(event: "data", listener: (chunk: Uint8Array) => void): unknown;
  once(event: "end", listener: () => void): unknown;
  once(event: "error", listener: (e: Error) => void): unknown;
  /** Reads the rest without keeping it. */
  resume(): unknown;
}

export interface BodyHeaders {
  contentLength: string | undefined;
  transferEncoding: string | undefined;
}

/**
 * The body as text, up to `maxBytes`; undefined when larger. A declared length over the limit is
 * refused before reading; a body that grows past it (chunked, or lying about its length) stops
 * being kept at the limit. Either way the rest is drained, not kept, so the connection can carry
 * the error answer (destroying the stream would close the socket before it).
 */
export function readBody(stream: BodyStream, headers: BodyHeaders, maxBytes: number): Promise<string | undefined> {
  if (headers.contentLength !== undefined && headers.transferEncoding === undefined && parseInt(headers.contentLength || "0", 10) > maxBytes) {
    stream.resume();
    return Promise.resolve(undefined);
  }
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    let over = false;
    stream.on("data", (chunk) => {
      if (over) return;
      size += chunk.byteLength;
      if (size > maxBytes) {
        over = true;
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    });
    stream.once("end", () => resolve(over ? undefined : text(chunks)));
    stream.once("error", reject);
  });
}

function text(chunks: Uint8Array[]): string {
  if (chunks.length === 1) {
    const c = chunks[0]!;
    return Buffer.isBuffer(c) ? c.toString("utf8") : Buffer.from(c.buffer, c.byteOffset, c.byteLength).toString("utf8");
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** A web request body (hono, fetch) as a BodyStream. */
export function webBody(body: ReadableStream<Uint8Array> | null): BodyStream {
  return body ? Readable.fromWeb(body as import("node:stream/web").ReadableStream<Uint8Array>) : Readable.from([]);
}

/** The client's address: the first `X-Forwarded-For` hop only behind a proxy you run (`trustProxy`). */
export function clientIp(forwardedFor: string | string[] | undefined, socketAddress: string | undefined, trustProxy: boolean | undefined): string {
  if (trustProxy) {
    const first = (Array.isArray(forwardedFor) ? forwardedFor[0] : forwardedFor)?.split(",")[0]?.trim();
    if (first) return first;
  }
  return socketAddress ?? "unknown";
}
