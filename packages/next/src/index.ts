/**
 * x402 payments for the Next.js App Router, over web-standard Request and Response only (no
 * import of `next`: a route handler is `(request, context) => Response`, and so is what this
 * returns).
 *
 * Three forms:
 * - `export const GET = withPayment(handler, { price, network, payTo }, paywall)` in a
 *   `route.ts`: Next's file-system match is the paywall's match. The handler runs only after the
 *   payment verified; its response is held (up to `maxResponseBytes`) and the payment settled
 *   only if it answered below 400; a failed settlement sends a 402 and none of its body or
 *   headers. The safe default.
 * - `withPaywall(handler, paywallOrConfig)`: the same, with the route table deciding on the
 *   request's path: for one handler serving many paths (an optional catch-all route).
 * - `export const proxy = paymentProxy(config)` in `proxy.ts` (`middleware.ts` before Next 16):
 *   a proxy never sees the route's response, so it can only settle before the request goes on.
 *   Every route in its config must say `settle: "before"`: the payer is charged even if the
 *   route then fails. See the README.
 *
 * The verified payment is `getPayment(request)` inside the handler.
 */
import {
  createPaywall,
  meteredResponse as meteredPaymentResponse,
  openMeter,
  setCharge as setPaymentCharge,
  settleMeteredWebResponse,
  settleWebResponse,
  toWebResponse,
  withPaymentHeaders,
  PaywallConfigError,
  type Decision,
  type MeteredProducer,
  type PaidDecision,
  type Payment,
  type Paywall,
  type PaywallConfig,
  type PaywallRequest,
  type RouteConfig,
} from "@tollgate/server";

export { createPaywall, PaywallConfigError } from "@tollgate/server";
export type { Meter, MeteredProducer, MeteredRouteConfig } from "@tollgate/server";
export type { Payment, Paywall, PaywallConfig, RouteConfig, PaymentOption } from "@tollgate/server";

/** An App Router route handler: `(request, context)`, answering a web Response. */
export type RouteHandler<Req extends Request, Rest extends unknown[]> = (request: Req, ...rest: Rest) => Response | Promise<Response>;

const payments = new WeakMap<Request, Payment>();

/** The verified payment of a request the paywall let through, or undefined for a free one. */
export function getPayment(request: Request): Payment | undefined {
  return payments.get(request);
}

/**
 * Usage-priced routes (`upto`): what this request costs, set by the handler before it returns:
 * atomic units ("1234"), a percentage of the signed maximum ("50%") or dollars ("$0.05"). Unset:
 * the maximum. Throws when malformed or above the maximum. (@tollgate/server charge.ts)
 */
export function setCharge(request: Request, amount: string): void {
  setPaymentCharge(payments.get(request), amount);
}

/**
 * Metered routes (route option `metered`): the handler returns this as its response; `producer`
 * sends each message with its units (`meter.send(text, units)`), each charged before it is sent
 * under the signed maximum. The stream settles what it delivered when it stops and ends with the
 * receipt as its last event. (@tollgate/server metered/, docs/extensions/metered-stream.md)
 */
export function meteredResponse(request: Request, producer: MeteredProducer, init?: { headers?: Record<string, string> }): Response {
  return meteredPaymentResponse(payments.get(request), producer, init);
}

/**
 * A route handler for one paid route. Share one `paywall` between the routes of a server: its
 * in-flight guard is what keeps one payment from being served twice at once.
 */
export function withPayment<Req extends Request, Rest extends unknown[]>(
  handler: RouteHandler<Req, Rest>,
  route: RouteConfig,
  paywall: Paywall,
  name?: string,
): (request: Req, ...rest: Rest) => Promise<Response> {
  const guard = paywall.route(route, name);
  return guarded((request) => guard.handle(request), handler);
}

/**
 * A route handler priced by the paywall's route table, on the request's path (and Next's
 * `nextUrl.pathname`, without the basePath). Export it for every method the handler serves:
 * a method the route does not export never reaches the paywall.
 */
export function withPaywall<Req extends Request, Rest extends unknown[]>(
  handler: RouteHandler<Req, Rest>,
  config: PaywallConfig | Paywall,
): (request: Req, ...rest: Rest) => Promise<Response> {
  const paywall = "handle" in config ? config : createPaywall(config);
  return guarded((request) => paywall.handle(request), handler);
}

function guarded<Req extends Request, Rest extends unknown[]>(
  decide: (request: PaywallRequest) => Promise<Decision>,
  handler: RouteHandler<Req, Rest>,
): (request: Req, ...rest: Rest) => Promise<Response> {
  return async (request, ...rest) => {
    const decision = await decide(paywallRequest(request));
    if (decision.kind === "free") return handler(request, ...rest);
    if (decision.kind === "respond") return toWebResponse(decision);
    payments.set(request, decision.payment);
    if (request.signal?.aborted) {
      // The client left while the payment was being verified: run nothing, charge nothing.
      await decision.settle({ status: 499, aborted: true });
      return new Response(null, { status: 499 });
    }
    if (decision.settled) return settledBefore(decision, () => handler(request, ...rest));
    return settleAfter(request, decision, () => handler(request, ...rest));
  };
}

/**
 * What the paywall needs of a web Request: its path as Next routes it (the URL's, and
 * `nextUrl.pathname` when the request is a NextRequest, which leaves out the basePath), matched
 * ignoring case because next.config rewrites and redirects match that way by default. The
 * resource URL is named after the Host header as on every other adapter: Next builds
 * `request.url` from its own hostname and port, which behind a proxy is not the public one.
 */
export function paywallRequest(request: Request): PaywallRequest {
  const headers = (name: string) => request.headers.get(name);
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    return { method: request.method, url: request.url, headers };
  }
  const nextPath = (request as { nextUrl?: { pathname?: unknown } }).nextUrl?.pathname;
  return {
    method: request.method,
    path: url.pathname,
    altPaths: typeof nextPath === "string" && nextPath !== url.pathname ? [nextPath] : [],
    url: { protocol: url.protocol, host: request.headers.get("host") ?? url.host, target: url.pathname + url.search },
    headers,
    ignoreCase: true,
  };
}

/** Settled before the handler: its response streams through with the payment headers added. */
async function settledBefore(decision: PaidDecision, run: () => Response | Promise<Response>): Promise<Response> {
  let res: Response;
  try {
    res = await run();
  } finally {
    // A formality once settled; called exactly once as the paywall asks.
    await decision.settle({ status: 200 });
  }
  return withPaymentHeaders(res, res.body, decision.settled!.headers);
}

async function settleAfter(request: Request, decision: PaidDecision, run: () => Response | Promise<Response>): Promise<Response> {
  openMeter(decision);
  let res: Response;
  try {
    res = await run();
  } catch (e) {
    // Next's own control flow (notFound(), redirect()) throws too: release the payment, let Next answer.
    await decision.settle({ status: 500, aborted: true });
    throw e;
  }
  const settle = decision.metered ? settleMeteredWebResponse : settleWebResponse;
  return settle(decision, res, request.signal?.aborted === true);
}

/**
 * For `proxy.ts` / `middleware.ts`. Answers 402 (or 400 / 500) itself; for a paid request it
 * settles first and lets Next go on to the route, adding the payment headers to its response;
 * for anything the route table does not price it returns undefined, which Next reads as "go on".
 * Throws a PaywallConfigError naming any route whose `settle` is not "before".
 */
export function paymentProxy(config: PaywallConfig): (request: Request) => Promise<Response | undefined> {
  requireSettleBefore(config);
  const paywall = createPaywall(config);
  return async (request) => {
    const decision = await paywall.handle(paywallRequest(request));
    if (decision.kind === "free") return undefined;
    if (decision.kind === "respond") return toWebResponse(decision);
    if (!decision.settled) {
      // Unreachable with the check above; if it were reached, going on would serve unpaid.
      await decision.settle({ status: 500, aborted: true });
      return Response.json({ error: "the paywall could not settle this payment before the route" }, { status: 500 });
    }
    await decision.settle({ status: 200 });
    // What NextResponse.next({ headers }) is: Next goes on to the route and adds these headers
    // (all but its own x-middleware-* ones) to the route's response.
    const headers = new Headers(decision.settled.headers);
    headers.set("x-middleware-next", "1");
    return new Response(null, { headers });
  };
}

/** The proxy form can only settle before the route runs; every route must say so. */
function requireSettleBefore(config: PaywallConfig): void {
  if (typeof config !== "object" || config === null || "handle" in config) {
    throw new PaywallConfigError("paymentProxy: expected a paywall configuration object (a proxy builds its own paywall)");
  }
  const routes = config.routes ?? {};
  if (typeof routes !== "object" || Object.keys(routes).length === 0) {
    throw new PaywallConfigError("routes: paymentProxy needs at least one route key, e.g. \"GET /api/report\"");
  }
  for (const [key, route] of Object.entries(routes)) {
    if (route?.settle !== "before") {
      throw new PaywallConfigError(
        `routes[${JSON.stringify(key)}].settle: a proxy cannot see the route's response, so it settles before the route runs and the payer is charged even if the route fails; ` +
          `set settle: "before" to accept that, or protect the route with withPayment in its route.ts (settled only after it succeeded)`,
      );
    }
  }
}
