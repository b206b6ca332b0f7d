import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { stream } from "hono/streaming";
import { paymentMiddleware, type PaymentEnv } from "@tollgate/hono";
import { adapterSuite } from "../../server/test/adapter-suite.ts";

adapterSuite("hono", async (config, runs) => {
  const app = new Hono<PaymentEnv>();
  app.use(paymentMiddleware(config));
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
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    // Room for the oversized-header test to reach the middleware instead of Node's 431.
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1", serverOptions: { maxHeaderSize: 64 * 1024 } }, () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
});
