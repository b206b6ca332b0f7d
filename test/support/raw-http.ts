/**
 * HTTP/1.x by hand over a TCP socket, for requests fetch will not send: an absolute-form request
 * target, a malformed or missing Host header, raw dot segments, bytes a URL parser would
 * normalize away. Test only.
 */
import { connect } from "node:net";

export interface RawResponse {
  status: number;
  /** Lower-cased names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: string;
  /** The whole response as received. */
  raw: string;
}

/**
 * Sends `head` (request line and headers, without the blank line) plus `Connection: close`, and
 * reads until the server closes. A server that closes without answering yields status 0.
 */
export function rawRequest(port: number, head: string, options: { timeoutMs?: number; host?: string } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: options.host ?? "127.0.0.1" });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${options.timeoutMs ?? 10_000} ms to ${JSON.stringify(head.split("\r\n")[0])}`));
    }, options.timeoutMs ?? 10_000);
    socket.on("connect", () => socket.write(`${head}\r\nConnection: close\r\n\r\n`, "latin1"));
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", () => {
      // A server may reset a request it refuses; what arrived (maybe nothing) is the answer.
    });
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(parseResponse(Buffer.concat(chunks).toString("latin1")));
    });
  });
}

function parseResponse(raw: string): RawResponse {
  const split = raw.indexOf("\r\n\r\n");
  const head = split === -1 ? raw : raw.slice(0, split);
  let body = split === -1 ? "" : raw.slice(split + 4);
  const [statusLine = "", ...lines] = head.split("\r\n");
  const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const i = line.indexOf(":");
    if (i <= 0) continue;
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] = headers[name] ? `${headers[name]}, ${value}` : value;
  }
  if (headers["transfer-encoding"]?.toLowerCase() === "chunked") body = dechunk(body);
  return { status, headers, body, raw };
}

function dechunk(text: string): string {
  let out = "";
  let rest = text;
  for (;;) {
    const eol = rest.indexOf("\r\n");
    if (eol === -1) return out;
    const size = parseInt(rest.slice(0, eol), 16);
    if (!Number.isFinite(size) || size === 0) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}
