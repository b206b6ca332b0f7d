/**
 * x402 payments for hono. After the handler ran, its response is held (up to
 * `maxResponseBytes`) and the payment settled: a failed settlement replaces the response with a
 * 402 (none of the body is sent), a handler error (status >= 400) is passed through and nothing
 * is charged, a response too large to hold is a 500 and nothing is charged.
 * The verified payment is available to handlers as `c.get("payment")`.
 *
 * Two forms:
 * - `app.use(paymentMiddleware({ ..., routes }))`: route keys are matched on the path hono
 *   routes on (`c.req.path`, percent-decoded as hono decodes it; the raw path too).
 * - `app.get("/report", paymentRoute(paywall, { price, network, payTo }), handler)`: hono's own
 *   match is the paywall's match.
 */
import type { Context, MiddlewareHandler } from "hono";
import {
  createPaywall,
  meteredResponse as meteredPaymentResponse,
  openMeter,
  setCharge as setPaymentCharge,
  settleMeteredWebResponse,
  settleWebResponse,
  toWebResponse,
  withPaymentHeaders,
  type Decision,
  type MeteredProducer,
  type PaidDecision,
  type Payment,
  type Paywall,
  type PaywallConfig,
  type PaywallRequest,
  type RouteConfig,
} from "@tollgate/server";

export { createPaywall } from "@tollgate/server";
export type { Payment, Paywall, PaywallConfig, RouteConfig, PaymentOption } from "@tollgate/server";
export type { Meter, MeteredProducer, MeteredRouteConfig } from "@tollgate/server";

export type PaymentEnv = { Variables: { payment: Payment } };

/**
 * Usage-priced routes (`upto`): what this request costs, set by the handler before it responds:
 * atomic units ("1234"), a percentage of the signed maximum ("50%") or dollars ("$0.05"). Unset:
 * the maximum. Throws when malformed or above the maximum. (@tollgate/server charge.ts)
 */
export function setCharge(c: Context, amount: string): void {
  setPaymentCharge(c.get("payment") as Payment | undefined, amount);
}

/**
 * Metered routes (route option `metered`): the handler returns this as its response; `producer`
 * sends each message with its units (`meter.send(text, units)`), each charged before it is sent
 * under the signed maximum. The stream settles what it delivered when it stops and ends with the
 * receipt as its last event. (@tollgate/server metered/, docs/extensions/metered-stream.md)
 */
export function meteredResponse(c: Context, producer: MeteredProducer, init?: { headers?: Record<string, string> }): Response {
  return meteredPaymentResponse(c.get("payment") as Payment | undefined, producer, init);
}

/** The paywall for every route in `config.routes` (or of a paywall made with `createPaywall`). */
export function paymentMiddleware(config: PaywallConfig | Paywall): MiddlewareHandler<PaymentEnv> {
  const paywall = "handle" in config ? config : createPaywall(config);
  return middleware((request) => paywall.handle(request));
}

/**
 * The paywall for the one route this handler is attached to. Share one `paywall` between
 * routes: its in-flight guard is what keeps one payment from being served twice at once.
 */
export function paymentRoute(paywall: Paywall, route: RouteConfig, name?: string): MiddlewareHandler<PaymentEnv> {
  const guard = paywall.route(route, name);
  return middleware((request) => guard.handle(request));
}

function middleware(decide: (request: PaywallRequest) => Promise<Decision>): MiddlewareHandler<PaymentEnv> {
  return async (c, next) => {
    const decision = await decide(paywallRequest(c));
    if (decision.kind === "free") return next();
    if (decision.kind === "respond") return toWebResponse(decision);
    c.set("payment", decision.payment);
    if (decision.settled) return settledBefore(c, next, decision);
    return settleAfter(c, next, decision);
  };
}

/**
 * What the paywall needs of a hono request: the path hono routes on, and the raw one. The
 * resource URL is named after the Host header as on every other adapter (an absolute-form
 * request target's own host, which node's adapter puts in `c.req.url`, is the client's word).
 */
export function paywallRequest(c: Context): PaywallRequest {
  const headers = (name: string) => c.req.header(name);
  let url: URL;
  try {
    url = new URL(c.req.url);
  } catch {
    return { method: c.req.method, path: c.req.path, url: c.req.url, headers };
  }
  return {
    method: c.req.method,
    path: c.req.path,
    altPaths: [url.pathname],
    url: { protocol: url.protocol, host: c.req.header("host") ?? url.host, target: url.pathname + url.search },
    headers,
  };
}

/** Settled before the handler: its response streams through with the payment headers added. */
async function settledBefore(c: Context<PaymentEnv>, next: () => Promise<void>, decision: PaidDecision): Promise<void> {
  try {
    await next();
  } finally {
    await decision.settle({ status: c.res.status });
  }
  const res = c.res;
  c.res = undefined as unknown as Response;
  c.res = withPaymentHeaders(res, res.body, decision.settled!.headers);
}

async function settleAfter(c: Context<PaymentEnv>, next: () => Promise<void>, decision: PaidDecision): Promise<void> {
  openMeter(decision);
  try {
    await next();
  } catch (e) {
    await decision.settle({ status: 500, aborted: true });
    throw e;
  }
  const res = c.res;
  const settle = decision.metered ? settleMeteredWebResponse : settleWebResponse;
  const answer = await settle(decision, res, c.req.raw.signal?.aborted === true);
  // Assigning undefined first stops hono from merging the old response's headers into the new one.
  c.res = undefined as unknown as Response;
  c.res = answer;
}
