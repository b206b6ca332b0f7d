/**
 * The shared adapter suite against the route-handler forms, served the way `next start` serves
 * an App Router app (./next-like.ts). The paths the suite prices through the route table are
 * served by an optional catch-all route (app/[[...slug]]/route.ts) exporting every method
 * through `withPaywall`, whose handler routes by path; /per-route is a static route
 * (app/per-route/route.ts) exporting GET through `withPayment`, which Next matches before the
 * catch-all. (A catch-all because a static route exports only the methods it serves: a POST to a
 * GET-only route.ts is Next's 405 and never reaches any paywall, so the method-override case
 * needs a route that takes every method, like the express and hono apps' middleware does.)
 */
import { withPayment, withPaywall } from "@tollgate/next";
import { adapterSuite, PER_ROUTE } from "../../server/test/adapter-suite.ts";
import { serveLikeNext, type Handler, type RouteModule } from "./next-like.ts";

/** A body in chunks with a pause between them, like a handler that streams. */
function chunks(parts: string[], pauseMs: number): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    async start(controller) {
      for (const [i, part] of parts.entries()) {
        if (i > 0 && pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
        controller.enqueue(encoder.encode(part));
      }
      controller.close();
    },
  });
}

const EVERY_METHOD = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"] as const;

adapterSuite("next (route handlers)", async (paywall, runs) => {
  const get: Record<string, () => Response | Promise<Response>> = {
    "/free": () => new Response("free"),
    "/weather": () => {
      runs.count++;
      return Response.json({ temp: 21 }, { headers: { "x-handler": "ran" } });
    },
    "/fail": () => {
      runs.count++;
      return new Response("boom", { status: 500 });
    },
    "/stream": () => {
      runs.count++;
      return new Response(chunks(["SECRET-1", "SECRET-2"], 5), { headers: { "x-secret": "yes", "content-type": "text/plain" } });
    },
    "/big": () => {
      runs.count++;
      return new Response(chunks(["B".repeat(1000), "B".repeat(1000), "B".repeat(1000)], 0));
    },
    "/before": () => {
      runs.count++;
      runs.settlesSeenByBefore.push(runs.facilitator?.settleCalls.length ?? -1);
      return new Response("before");
    },
    "/slow": async () => {
      runs.count++;
      await new Promise((resolve) => setTimeout(resolve, 300));
      return new Response("slow");
    },
  };
  // The catch-all's own routing: GET (and HEAD) by path, every method on /any.
  const router: Handler = (request) => {
    const { pathname } = new URL(request.url);
    if (pathname === "/any") {
      runs.count++;
      return new Response("any");
    }
    const page = request.method === "GET" || request.method === "HEAD" ? get[pathname] : undefined;
    return page ? page() : new Response("not found", { status: 404 });
  };
  const paid = withPaywall(router, paywall);
  const catchAll: RouteModule = Object.fromEntries(EVERY_METHOD.map((m) => [m, paid]));
  const perRoute: RouteModule = {
    GET: withPayment(
      () => {
        runs.count++;
        return new Response("per-route");
      },
      PER_ROUTE,
      paywall,
      "per-route",
    ),
  };
  const server = await serveLikeNext({ routes: { "/per-route": perRoute }, catchAll });
  return { url: server.url, close: server.close };
});
