/**
 * The demo paid API that `tollgate dev` and `npm start` run: a hono app with one free route
 * and paid ones, protected by @tollgate/hono against whichever facilitator it is given.
 */
import { Hono } from "hono";
import { paymentMiddleware, type PaymentEnv, type PaywallConfig, type RouteConfig } from "@tollgate/hono";
import type { FacilitatorClient, SchemeServer } from "@tollgate/core";

export interface DemoApiOptions {
  facilitator: FacilitatorClient | string;
  schemes: SchemeServer[];
  /** Route config for the paid weather report (price, network(s), payTo). */
  weather: RouteConfig;
  onSettled?: PaywallConfig["onSettled"];
}

export function createDemoApi(options: DemoApiOptions): Hono<PaymentEnv> {
  const app = new Hono<PaymentEnv>();
  app.get("/", (c) => c.json({ name: "Tollgate demo API", free: ["/"], paid: ["/weather"] }));
  app.use(
    paymentMiddleware({
      facilitator: options.facilitator,
      schemes: options.schemes,
      routes: { "GET /weather": options.weather },
      ...(options.onSettled ? { onSettled: options.onSettled } : {}),
    }),
  );
  app.get("/weather", (c) => c.json({ city: "Lisbon", forecast: "sunny", temperatureC: 21, paidBy: c.get("payment")?.payer ?? null }));
  return app;
}
