import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { stream } from "hono/streaming";
import { paymentMiddleware, paymentRoute, type PaymentEnv } from "@tollgate/hono";
import { adapterSuite, PER_ROUTE } from "../../server/test/adapter-suite.ts";

adapterSuite("hono", async (paywall, runs) => {
  const app = new Hono<PaymentEnv>();
  app.use(paymentMiddleware(paywall));
  app.get("/free", (c) => c.text("free"));
  app.get("/weather", (c) => {
    runs.count++;
    c.header("x-handler", "ran");
    return c.json({ temp: 21 });
  });
  app.get("/fail", (c) => {
    runs.count++;
    return c.text("boom", 500);
  });
  app.get("/stream", (c) => {
    runs.count++;
    c.header("x-secret", "yes");
    return stream(c, async (s) => {
      await s.write("SECRET-1");
      await s.sleep(5);
      await s.write("SECRET-2");
    });
  });
  app.get("/big", (c) => {
    runs.count++;
    return stream(c, async (s) => {
      for (let i = 0; i < 3; i++) await s.write("B".repeat(1000));
    });
  });
  app.all("/any", (c) => {
    runs.count++;
    return c.text("any");
  });
  app.get("/before", (c) => {
    runs.count++;
    runs.settlesSeenByBefore.push(runs.facilitator?.settleCalls.length ?? -1);
    return c.text("before");
  });
  app.get("/per-route", paymentRoute(paywall, PER_ROUTE, "per-route"), (c) => {
    runs.count++;
    return c.text("per-route");
  });
  app.get("/slow", async (c) => {
    runs.count++;
    await new Promise((resolve) => setTimeout(resolve, 300));
    return c.text("slow");
  });
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    // Room for the oversized-header test to reach the middleware instead of Node's 431.
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1", serverOptions: { maxHeaderSize: 64 * 1024 } }, () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  };
});
