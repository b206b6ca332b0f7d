import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { paymentMiddleware, paymentRoute } from "@tollgate/express";
import { adapterSuite, PER_ROUTE } from "../../server/test/adapter-suite.ts";

adapterSuite("express", async (paywall, runs) => {
  const app = express();
  app.use(paymentMiddleware(paywall));
  app.get("/free", (_req, res) => {
    res.send("free");
  });
  app.get("/weather", (_req, res) => {
    runs.count++;
    res.set("x-handler", "ran").json({ temp: 21 });
  });
  app.get("/fail", (_req, res) => {
    runs.count++;
    res.status(500).send("boom");
  });
  app.get("/stream", (_req, res) => {
    runs.count++;
    // writeHead + write + end: the low-level path that would flush headers and body early.
    res.writeHead(200, { "x-secret": "yes", "content-type": "text/plain" });
    res.write("SECRET-1");
    setTimeout(() => res.end("SECRET-2"), 5);
  });
  app.get("/big", (_req, res) => {
    runs.count++;
    res.write("B".repeat(1000));
    res.write("B".repeat(1000));
    res.end("B".repeat(1000));
  });
  app.all("/any", (_req, res) => {
    runs.count++;
    res.send("any");
  });
  app.get("/before", (_req, res) => {
    runs.count++;
    runs.settlesSeenByBefore.push(runs.facilitator?.settleCalls.length ?? -1);
    res.send("before");
  });
  app.get("/per-route", paymentRoute(paywall, PER_ROUTE, "per-route"), (_req, res) => {
    runs.count++;
    res.send("per-route");
  });
  app.get("/slow", (_req, res) => {
    runs.count++;
    setTimeout(() => res.send("slow"), 300);
  });
  // Room for the oversized-header test to reach the middleware instead of Node's 431.
  const server: Server = createServer({ maxHeaderSize: 64 * 1024 }, app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
});
