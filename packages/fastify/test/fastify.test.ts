import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import Fastify, { type FastifyInstance } from "fastify";
import { paymentMiddleware, paymentRoute } from "@tollgate/fastify";
import { adapterSuite, PER_ROUTE } from "../../server/test/adapter-suite.ts";

/** A body in chunks with a pause between them, like a handler that streams. */
function chunks(parts: string[], pauseMs: number): Readable {
  return Readable.from(
    (async function* () {
      for (const [i, part] of parts.entries()) {
        if (i > 0 && pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
        yield Buffer.from(part);
      }
    })(),
  );
}

adapterSuite("fastify", async (paywall, runs) => {
  const app: FastifyInstance = Fastify({
    logger: false,
    // Room for the oversized-header test to reach the hook instead of Node's 431.
    serverFactory: (handler) => createServer({ maxHeaderSize: 64 * 1024 }, handler),
    forceCloseConnections: true,
  });
  await app.register(paymentMiddleware(paywall));
  app.get("/free", async () => "free");
  app.get("/weather", async (_request, reply) => {
    runs.count++;
    reply.header("x-handler", "ran");
    return { temp: 21 };
  });
  app.get("/fail", async (_request, reply) => {
    runs.count++;
    return reply.code(500).send("boom");
  });
  app.get("/stream", async (_request, reply) => {
    runs.count++;
    reply.header("x-secret", "yes").type("text/plain");
    return reply.send(chunks(["SECRET-1", "SECRET-2"], 5));
  });
  app.get("/big", async (_request, reply) => {
    runs.count++;
    return reply.send(chunks(["B".repeat(1000), "B".repeat(1000), "B".repeat(1000)], 0));
  });
  app.all("/any", async () => {
    runs.count++;
    return "any";
  });
  app.get("/before", async () => {
    runs.count++;
    runs.settlesSeenByBefore.push(runs.facilitator?.settleCalls.length ?? -1);
    return "before";
  });
  app.get("/per-route", paymentRoute(paywall, PER_ROUTE, "per-route"), async () => {
    runs.count++;
    return "per-route";
  });
  app.get("/slow", async () => {
    runs.count++;
    await new Promise((resolve) => setTimeout(resolve, 300));
    return "slow";
  });
  await app.listen({ port: 0, host: "127.0.0.1" });
  const { port } = app.server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => app.close() };
});
