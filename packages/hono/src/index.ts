/**
 * x402 payments for hono. After the handler ran, its response is buffered and the payment
 * settled: a failed settlement replaces the response with a 402 (none of the body is sent),
 * a handler error (status >= 400) is passed through and nothing is charged.
 * The verified payment is available to handlers as `c.get("payment")`.
 */
import type { MiddlewareHandler } from "hono";
import { createPaywall, mergeHeaderValue, type Payment, type Paywall, type PaywallConfig, type Respond } from "@tollgate/server";

export type { Payment, PaywallConfig, RouteConfig, PaymentOption } from "@tollgate/server";

export type PaymentEnv = { Variables: { payment: Payment } };

export function paymentMiddleware(config: PaywallConfig | Paywall): MiddlewareHandler<PaymentEnv> {
  const paywall = "handle" in config ? config : createPaywall(config);
  return async (c, next) => {
    const decision = await paywall.handle({ method: c.req.method, url: c.req.url, headers: (name) => c.req.header(name) });
    if (decision.kind === "free") return next();
    if (decision.kind === "respond") return toResponse(decision);
    c.set("payment", decision.payment);
    await next();
    const res = c.res;
    // Read the whole body first: a streaming handler that fails midway must not be charged.
    let body: ArrayBuffer | null;
    let status = res.status;
    try {
      body = res.body === null ? null : await res.arrayBuffer();
    } catch {
      body = null;
      status = 500;
    }
    const outcome = await decision.settle({ status });
    // Assigning undefined first stops hono from merging the old response's headers into the new one.
    c.res = undefined as unknown as Response;
    if (outcome.kind === "respond") {
      c.res = toResponse(outcome);
      return;
    }
    if (status !== res.status) {
      c.res = new Response(JSON.stringify({ error: "the resource failed while sending its response" }), { status, headers: { "Content-Type": "application/json" } });
      return;
    }
    const headers = new Headers(res.headers);
    for (const [k, v] of Object.entries(outcome.headers)) headers.set(k, mergeHeaderValue(k, headers.get(k), v));
    c.res = new Response(body, { status: res.status, statusText: res.statusText, headers });
  };
}

function toResponse(r: Respond): Response {
  return new Response(r.body, { status: r.status, headers: r.headers });
}
