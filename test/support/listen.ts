/** One way to serve a test server on loopback, shared by our harness and the official one. */
import { createServer, type RequestListener, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface Closable {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves `listener` on 127.0.0.1 (ephemeral port by default). The header limit is raised to
 * 64 KiB so oversized-header tests reach the x402 code instead of Node's own 431. close()
 * drops keep-alive sockets too: fetch (undici) keeps them open, and close() would otherwise
 * wait for their idle timeout.
 */
export async function listen(listener: RequestListener, port = 0): Promise<Closable> {
  const server: Server = createServer({ maxHeaderSize: 64 * 1024 }, listener);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port: bound } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${bound}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
