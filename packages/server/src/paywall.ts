/**
 * The resource-server side of x402, without a web framework: given a request, decide whether
 * it is free, must be answered now (402 / 400 / 5xx), or is paid and may run — in which case
 * the adapter runs the handler, buffers its response, and calls `settle` with its status.
 * Nothing is settled for a handler that failed, and nothing of the handler's body is sent
 * when settlement failed.
 */
import {
  decodeBase64Json,
  encodeBase64Json,
  FacilitatorError,
  Headers as X402Headers,
  httpFacilitatorClient,
  parsePaymentPayload,
  parsePaymentPayloadV1,
  Reason,
  requirementsToV1,
  settleResponseToV1,
  V1_NETWORKS,
  v1NameToNetwork,
  networkToV1Name,
  payloadFromV1,
  type FacilitatorClient,
  type FieldIssue,
  type PaymentPayload,
  type PaymentRequired,
  type PaymentRequiredV1,
  type PaymentRequirements,
  type PaymentRequirementsV1,
  type ResourceInfo,
  type SchemeServer,
  type SettleResponse,
  type SupportedResponse,
  type V1NetworkNames,
} from "@tollgate/core";
import { renderPaywallPage, type PaywallPageOptions } from "./paywall-page.ts";
import { compileRoutes, matchRoute, type CompiledRequirement, type CompiledRoute, type RouteConfig } from "./routes.ts";

export interface PaywallConfig {
  /** A facilitator client, or the base URL of an HTTP facilitator. */
  facilitator: FacilitatorClient | string;
  schemes: SchemeServer[];
  /** Keys "GET /weather", "/api/*" (method optional, `*` matches anything); first match in declaration order wins. */
  routes: Record<string, RouteConfig>;
  /** Extra v1 network names (for v1 clients), e.g. `{ "my-chain": "eip155:1337" }`. */
  v1Networks?: V1NetworkNames;
  /** Options of the HTML page browsers get; `false` sends browsers the JSON 402 too. */
  paywallPage?: PaywallPageOptions | false;
  /** Called after every successful settlement, before the response is sent. Errors go to `onError`. */
  onSettled?: (event: SettledEvent) => void | Promise<void>;
  /** Errors that do not change the response (a throwing `onSettled`, an internal failure answered with 500). */
  onError?: (error: unknown) => void;
}

export interface SettledEvent {
  route: string;
  resource: ResourceInfo;
  x402Version: 1 | 2;
  requirements: PaymentRequirements;
  settlement: SettleResponse;
}

export interface PaywallRequest {
  method: string;
  /** The full URL, e.g. `https://api.example.com/weather?city=Oslo`. */
  url: string;
  /** Case-insensitive header lookup. */
  headers: (name: string) => string | undefined | null;
}

export interface Respond {
  kind: "respond";
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface Proceed {
  kind: "ok";
  /** Headers to add to the handler's response (e.g. PAYMENT-RESPONSE); empty when nothing was settled. */
  headers: Record<string, string>;
  settlement?: SettleResponse;
}

export interface Payment {
  x402Version: 1 | 2;
  route: string;
  requirements: PaymentRequirements;
  payload: PaymentPayload;
  payer?: string;
}

export type Decision =
  | { kind: "free" }
  | Respond
  | {
      kind: "paid";
      payment: Payment;
      /** Call once, after the handler ran, with its status. >= 400: nothing is settled. */
      settle(result: { status: number }): Promise<Respond | Proceed>;
    };

export interface Paywall {
  handle(request: PaywallRequest): Promise<Decision>;
}

/** Payment headers a browser script may read (the response is cross-origin for most clients). */
export const EXPOSED_HEADERS = [X402Headers.v2.required, X402Headers.v2.response, X402Headers.v1.response].join(", ");

export function createPaywall(config: PaywallConfig): Paywall {
  const facilitator = typeof config.facilitator === "string" ? httpFacilitatorClient({ url: config.facilitator }) : config.facilitator;
  const routes = compileRoutes(config.routes, config.schemes);
  const names: V1NetworkNames = { ...V1_NETWORKS, ...config.v1Networks };
  // Requirements finished with the facilitator's kinds, reused while its /supported answer is the same object.
  const finished = new WeakMap<SupportedResponse, Map<CompiledRoute, CompiledRequirement[]>>();

  async function offersFor(route: CompiledRoute): Promise<CompiledRequirement[]> {
    const supported = await facilitator.supported();
    let byRoute = finished.get(supported);
    if (!byRoute) finished.set(supported, (byRoute = new Map()));
    let offers = byRoute.get(route);
    if (!offers) {
      offers = [];
      for (const o of route.options) {
        const r = o.requirements;
        const kind =
          supported.kinds.find((k) => k.x402Version === 2 && k.scheme === r.scheme && k.network === r.network) ??
          supported.kinds.find((k) => k.x402Version === 1 && k.scheme === r.scheme && v1NameToNetwork(k.network, names) === r.network);
        // An option the facilitator cannot settle is not offered.
        if (!kind) continue;
        const requirements = o.scheme.enhanceRequirements?.(structuredClone(r), kind) ?? r;
        offers.push({ ...o, requirements });
      }
      byRoute.set(route, offers);
    }
    return offers;
  }

  function paymentRequired(resource: ResourceInfo, offers: CompiledRequirement[], error: string, extraHeaders: Record<string, string> = {}, html = false): Respond {
    const accepts = offers.map((o) => o.requirements);
    const v2: PaymentRequired = { x402Version: 2, error, resource, accepts };
    const headers: Record<string, string> = {
      [X402Headers.v2.required]: encodeBase64Json(v2),
      "Access-Control-Expose-Headers": EXPOSED_HEADERS,
      "Cache-Control": "no-store",
      ...extraHeaders,
    };
    if (html && config.paywallPage !== false) {
      const pageOffers = offers.map((o) => {
        const networkName = networkToV1Name(o.requirements.network, names);
        return { requirements: o.requirements, display: o.display, ...(networkName ? { networkName } : {}) };
      });
      headers["Content-Type"] = "text/html; charset=utf-8";
      return { kind: "respond", status: 402, headers, body: renderPaywallPage(resource, pageOffers, error, config.paywallPage) };
    }
    const v1Accepts: PaymentRequirementsV1[] = [];
    for (const r of accepts) {
      const name = networkToV1Name(r.network, names);
      if (name) v1Accepts.push(requirementsToV1(r, name, resource));
    }
    const v1: PaymentRequiredV1 = { x402Version: 1, error, accepts: v1Accepts };
    headers["Content-Type"] = "application/json";
    return { kind: "respond", status: 402, headers, body: JSON.stringify(v1) };
  }

  async function handle(request: PaywallRequest): Promise<Decision> {
    // A CORS preflight cannot carry a payment; it must pass for the real request to be made.
    if (request.method.toUpperCase() === "OPTIONS") return { kind: "free" };
    let url: URL;
    try {
      url = new URL(request.url);
    } catch {
      return { kind: "free" };
    }
    const route = matchRoute(routes, request.method, url.pathname);
    if (!route) return { kind: "free" };
    try {
      return await handleRoute(route, request);
    } catch (e) {
      if (e instanceof FacilitatorError) return facilitatorFailure(e);
      config.onError?.(e);
      return json(500, { error: "internal error while processing the payment", reason: Reason.unexpectedVerifyError });
    }
  }

  async function handleRoute(route: CompiledRoute, request: PaywallRequest): Promise<Decision> {
    const resource: ResourceInfo = { url: request.url, ...route.resource };
    const offers = await offersFor(route);
    if (offers.length === 0) {
      config.onError?.(new Error(`route "${route.key}": the facilitator supports none of its payment options`));
      return json(500, { error: `the facilitator supports none of this resource's payment options`, reason: Reason.invalidPaymentRequirements });
    }
    const v2Header = request.headers(X402Headers.v2.payment);
    const v1Header = v2Header ? undefined : request.headers(X402Headers.v1.payment);
    if (!v2Header && !v1Header) {
      const html = (request.headers("accept") ?? "").includes("text/html");
      return paymentRequired(resource, offers, `${X402Headers.v2.payment} header is required`, {}, html);
    }

    // ------------------------------------------------ decode and match the payment
    let x402Version: 1 | 2;
    let payload: PaymentPayload;
    let offer: CompiledRequirement;
    let v1Name: string | undefined;
    if (v2Header) {
      x402Version = 2;
      const decoded = decodeBase64Json(v2Header, X402Headers.v2.payment);
      if (!decoded.ok) return invalidPayload(decoded.message, X402Headers.v2.payment);
      const parsed = parsePaymentPayload(decoded.value);
      if (!parsed.ok) return invalidPayload(parsed.message, parsed.issues[0]?.field ?? "paymentPayload", parsed.issues);
      payload = parsed.value;
      const match = findOffer(offers, payload.accepted);
      if (!match.ok) return paymentRequired(resource, offers, `${Reason.requirementsMismatch}: ${match.message}`);
      offer = match.offer;
    } else {
      x402Version = 1;
      const decoded = decodeBase64Json(v1Header, X402Headers.v1.payment);
      if (!decoded.ok) return invalidPayload(decoded.message, X402Headers.v1.payment);
      const parsed = parsePaymentPayloadV1(decoded.value);
      if (!parsed.ok) return invalidPayload(parsed.message, parsed.issues[0]?.field ?? "paymentPayload", parsed.issues);
      const p = parsed.value;
      v1Name = p.network;
      const network = v1NameToNetwork(p.network, names);
      // v1 payloads carry no copy of the requirements: scheme and network select one.
      const found = network && offers.find((o) => o.requirements.scheme === p.scheme && o.requirements.network === network);
      if (!found) {
        return paymentRequired(resource, offers, `${Reason.requirementsMismatch}: scheme ${p.scheme} on network ${p.network} is not accepted for this resource`);
      }
      offer = found;
      payload = payloadFromV1(p, offer.requirements);
    }
    const requirements = offer.requirements;

    // ------------------------------------------------ verify
    const verdict = await facilitator.verify(payload, requirements);
    if (!verdict.isValid) {
      const reason = verdict.invalidReason ?? Reason.invalidPayload;
      return paymentRequired(resource, offers, verdict.invalidMessage ? `${reason}: ${verdict.invalidMessage}` : reason);
    }

    const payment: Payment = { x402Version, route: route.key, requirements, payload, ...(verdict.payer ? { payer: verdict.payer } : {}) };
    let settled = false;
    return {
      kind: "paid",
      payment,
      async settle({ status }): Promise<Respond | Proceed> {
        if (settled) throw new Error("settle() was already called for this payment");
        settled = true;
        // The handler failed: the payer gets its error and keeps their money.
        if (status >= 400) return { kind: "ok", headers: {} };
        let settlement: SettleResponse;
        try {
          settlement = await facilitator.settle(payload, requirements);
        } catch (e) {
          if (e instanceof FacilitatorError) return facilitatorFailure(e);
          config.onError?.(e);
          return json(500, { error: "internal error while settling the payment", reason: Reason.unexpectedSettleError });
        }
        const responseHeader: Record<string, string> =
          x402Version === 2
            ? { [X402Headers.v2.response]: encodeBase64Json(settlement) }
            : { [X402Headers.v1.response]: encodeBase64Json(settleResponseToV1(settlement, v1Name ?? settlement.network)) };
        if (!settlement.success) {
          const reason = settlement.errorReason ?? Reason.unexpectedSettleError;
          return paymentRequired(resource, offers, settlement.errorMessage ? `${reason}: ${settlement.errorMessage}` : reason, responseHeader);
        }
        if (config.onSettled) {
          try {
            await config.onSettled({ route: route.key, resource, x402Version, requirements, settlement });
          } catch (e) {
            config.onError?.(e);
          }
        }
        return { kind: "ok", headers: { ...responseHeader, "Access-Control-Expose-Headers": EXPOSED_HEADERS }, settlement };
      },
    };
  }

  return { handle };
}

// ------------------------------------------------------------------ helpers

function json(status: number, body: unknown): Respond {
  return { kind: "respond", status, headers: { "Content-Type": "application/json", "Cache-Control": "no-store" }, body: JSON.stringify(body) };
}

function invalidPayload(message: string, field: string, issues?: FieldIssue[]): Respond {
  return json(400, { error: message, reason: Reason.invalidPayload, field, ...(issues ? { issues } : {}) });
}

/** No answer at all is 503 (try again later); a wrong answer is 502. Nothing is served either way. */
function facilitatorFailure(e: FacilitatorError): Respond {
  const status = e.status === undefined ? 503 : 502;
  const reason = e.endpoint === "settle" ? Reason.unexpectedSettleError : Reason.unexpectedVerifyError;
  return json(status, { error: `payment facilitator unavailable: ${e.message}`, reason });
}

type OfferMatch = { ok: true; offer: CompiledRequirement } | { ok: false; message: string };

/** The offer the payment's `accepted` copies exactly; otherwise the first field that differs. */
function findOffer(offers: readonly CompiledRequirement[], accepted: PaymentRequirements): OfferMatch {
  let closest: string | undefined;
  for (const offer of offers) {
    const diff = firstDifference(offer.requirements, accepted);
    if (!diff) return { ok: true, offer };
    if (!closest && offer.requirements.scheme === accepted.scheme && offer.requirements.network === accepted.network) closest = diff;
  }
  return { ok: false, message: closest ?? `scheme ${accepted.scheme} on network ${accepted.network} is not accepted for this resource` };
}

function firstDifference(required: PaymentRequirements, accepted: PaymentRequirements): string | undefined {
  // EVM addresses are hex and case-insensitive (checksum casing); other chains' are not.
  const evm = required.network.startsWith("eip155:");
  const same = (a: string, b: string) => (evm ? a.toLowerCase() === b.toLowerCase() : a === b);
  const fields: [keyof PaymentRequirements, boolean][] = [
    ["scheme", required.scheme === accepted.scheme],
    ["network", required.network === accepted.network],
    ["asset", same(required.asset, accepted.asset)],
    ["payTo", same(required.payTo, accepted.payTo)],
    ["amount", required.amount === accepted.amount],
    ["maxTimeoutSeconds", required.maxTimeoutSeconds === accepted.maxTimeoutSeconds],
    ["extra", canonical(required.extra ?? {}) === canonical(accepted.extra ?? {})],
  ];
  const bad = fields.find(([, ok]) => !ok);
  if (!bad) return undefined;
  const [field] = bad;
  return `accepted.${field}: ${JSON.stringify(accepted[field])} differs from the required ${JSON.stringify(required[field])}`;
}

/** JSON with sorted keys, so `extra` compares by value, not key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}
