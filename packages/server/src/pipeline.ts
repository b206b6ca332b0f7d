/**
 * A priced request, from its payment header to the answer: read and match the payment, hold its
 * authorization (one request per payment at a time), verify, and settle before or after the
 * handler, polling a pending settlement until final. Small functions over one context; the
 * answers a client sees are built at the end of this file.
 */
import {
  BAZAAR,
  CanonicalJsonError,
  encodeBase64Json,
  FacilitatorError,
  Headers as X402Headers,
  networkToV1Name,
  Reason,
  requirementsToV1,
  settleResponseToV1,
  type FacilitatorCallOptions,
  type Extensions,
  type FacilitatorClient,
  type PaymentRequired,
  type PaymentRequiredV1,
  type PaymentRequirementsV1,
  type ResourceInfo,
  type SchemeServer,
  type SettleResponse,
  type SupportedResponse,
  type V1NetworkNames,
} from "@tollgate/core";
import { PAYMENT_IDENTIFIER, PAYMENT_IDENTIFIER_ADVERTISEMENT, readPaymentIdentifier } from "./extensions.ts";
import { mergeHeaderValue } from "./headers.ts";
import { AP2_MANDATE } from "./mandate-check.ts";
import { authorizationKeyOf, createInFlight, payloadHash, type InFlight } from "./inflight.ts";
import { admitChannelPayment } from "./channels/pipe.ts";
import { chargedRequirements } from "./charge.ts";
import { METERED_STREAM, meteredAdvertisement, meteredTermsFor } from "./metered/terms.ts";
import { gasSponsoringFor } from "./gas-sponsoring.ts";
import type { ChannelStore } from "./channels/store.ts";
import { renderPaywallPage, type PaywallPageOptions } from "./paywall-page.ts";
import type { PaywallSolanaView } from "./paywall-data.ts";
import { paywallSolanaViews } from "./paywall-solana.ts";
import { readPayment, type DecodedPayment, type Offer } from "./payment.ts";
import type { CachedResponse, ReplayCache } from "./replay-cache.ts";
import { resourceUrl } from "./request.ts";
import {
  errorText,
  facilitatorFailure,
  internalError,
  invalidPayload,
  invalidRequest,
  json,
  paymentRequiredStatus,
  publicSettleResponse,
  responseTooLarge,
  settlementUnknown,
  type Respond,
} from "./responses.ts";
import type { CompiledRoute } from "./routes.ts";
import { isReplayVerdict, settleUntilFinal, type SettleOutcome } from "./settlement.ts";
import { supportedKindFor } from "./supported-check.ts";
import type { Decision, HeldResponse, PaidDecision, Payment, PaywallConfig, PaywallRequest, Proceed } from "./types.ts";

/** Payment headers a browser script may read (the response is cross-origin for most clients). */
export const EXPOSED_HEADERS = [X402Headers.v2.required, X402Headers.v2.response, X402Headers.v1.response].join(", ");

/** The configuration as the pipeline uses it: defaults applied, checked at startup. */
export interface Settings {
  facilitator: FacilitatorClient;
  schemes: SchemeServer[];
  names: V1NetworkNames;
  publicUrl: URL | undefined;
  settlementTimeoutMs: number;
  settlementPollMs: number;
  maxResponseBytes: number;
  paywallPage: PaywallPageOptions | false | undefined;
  onSettled: PaywallConfig["onSettled"];
  onError: (error: unknown) => void;
  /** `batch-settlement` channels: where their state is kept (default: in memory), snapshot freshness. */
  channels?: { store?: ChannelStore; maxSnapshotAgeMs?: number };
}

export interface Pipeline {
  settings: Settings;
  cache: ReplayCache | undefined;
  inflight: InFlight;
  offersFor: (route: CompiledRoute) => Promise<Offer[]>;
}

export function createPipeline(settings: Settings, cache: ReplayCache | undefined): Pipeline {
  return { settings, cache, inflight: createInFlight(), offersFor: offerCatalog(settings) };
}

/** What a priced request's answers are built from. */
export interface Page {
  route: CompiledRoute;
  resource: ResourceInfo;
  offers: Offer[];
  /** The request's method (the route's bazaar declaration names it). */
  method: string;
  /** Extensions its 402 also advertises (eip2612GasSponsoring: gas-sponsoring.ts). */
  sponsoring?: Extensions;
}

/** A verified payment holding its authorization key. */
interface Admitted {
  page: Page;
  decoded: DecodedPayment;
  payer: string | undefined;
  call: FacilitatorCallOptions | undefined;
  /** Set when the payment carries a payment-identifier: where its response is cached. */
  cacheKey: string | undefined;
  release: () => void;
}

/** Facilitator failures and bugs become a 500 with a fixed text; the details go to onError. */
export async function decide(p: Pipeline, route: CompiledRoute, request: PaywallRequest): Promise<Decision> {
  try {
    return await priced(p, route, request);
  } catch (e) {
    p.settings.onError(e);
    return e instanceof FacilitatorError ? facilitatorFailure(e.endpoint) : internalError("verify");
  }
}

async function priced(p: Pipeline, route: CompiledRoute, request: PaywallRequest): Promise<Decision> {
  const { settings } = p;
  const url = resourceUrl(request.url, settings.publicUrl);
  if (!url.ok) return invalidRequest(url.message, url.field);
  const resource: ResourceInfo = { url: url.value, ...route.resource };
  const offers = await p.offersFor(route);
  if (offers.length === 0) {
    settings.onError(new Error(`route "${route.key}": the facilitator supports none of its payment options`));
    return json(500, { error: "the payment facilitator supports none of this resource's payment options", reason: Reason.invalidPaymentRequirements });
  }
  const page: Page = { route, resource, offers, method: request.method, sponsoring: await gasSponsoringFor(settings.facilitator, offers.map((o) => o.requirements)) };
  const read = readPayment(request.headers, offers, settings.names);
  if (read.kind === "none") {
    const html = (request.headers("accept") ?? "").includes("text/html");
    // A browser's page: the server reads what a Solana wallet payment needs (the page reaches no RPC).
    const solana = html && settings.paywallPage ? await paywallSolanaViews(page.offers.map((o) => o.requirements), settings.paywallPage.solana) : undefined;
    return paymentRequired(settings, page, `${X402Headers.v2.payment} header is required`, {}, html, solana);
  }
  if (read.kind === "invalid") return read.respond;
  if (read.kind === "mismatch") return paymentRequired(settings, page, read.error);
  return admit(p, page, read.payment, request.method.toUpperCase(), new URL(url.value));
}

/** One request per authorization from here until its settlement is final. */
async function admit(p: Pipeline, page: Page, decoded: DecodedPayment, method: string, url: URL): Promise<Decision> {
  const { settings, cache } = p;
  const { payload, offer } = decoded;
  // Deferred schemes take vouchers off-chain and claim later (channels/admit.ts).
  if (offer.scheme.channels) return admitChannelPayment(p, page, decoded);
  let key: string;
  let hash: string;
  try {
    key = authorizationKeyOf(offer.scheme, payload, offer.requirements);
    hash = payloadHash(payload);
  } catch (e) {
    if (e instanceof CanonicalJsonError) return invalidPayload(`paymentPayload.payload: ${e.message}`, "paymentPayload.payload");
    throw e;
  }
  const identifier = readPaymentIdentifier(payload);
  if (!identifier.ok) return invalidPayload(identifier.message, identifier.field);
  const cacheKey = identifier.id && cache ? [page.route.key, method, url.pathname + url.search, identifier.id, hash].join("\n") : undefined;
  // A payment-identifier replay of a response this paywall produced: the spec's cached response, no facilitator call.
  const hit = cacheKey ? cache?.get(cacheKey) : undefined;
  if (hit) return fromCache(hit);
  // AP2 mandate routes: refused before the facilitator sees the payment (mandate-check.ts).
  const mandateRefusal = await page.route.mandate?.check(payload, offer.requirements, page.resource.url);
  if (mandateRefusal) return paymentRequired(settings, page, errorText(mandateRefusal.reason, mandateRefusal.message));
  const release = p.inflight.acquire(key);
  if (!release) return paymentRequired(settings, page, errorText(Reason.duplicateSettlement, "another request with this payment is being served"));
  try {
    const call = callOptions(offer, page.resource);
    const verdict = await settings.facilitator.verify(payload, offer.requirements, call);
    if (!verdict.isValid) {
      release();
      return paymentRequired(settings, page, errorText(verdict.invalidReason ?? Reason.invalidPayload, verdict.invalidMessage));
    }
    const admitted: Admitted = { page, decoded, payer: verdict.payer, call, cacheKey, release };
    const first = page.route.settle === "before" || isReplayVerdict(verdict);
    return first ? await settleBefore(p, admitted) : settleAfter(p, admitted);
  } catch (e) {
    release();
    throw e;
  }
}

function paymentOf(a: Admitted, settlement?: SettleResponse): Payment {
  const { decoded, page } = a;
  return {
    x402Version: decoded.x402Version,
    route: page.route.key,
    requirements: decoded.offer.requirements,
    payload: decoded.payload,
    ...(a.payer ? { payer: a.payer } : {}),
    ...(settlement ? { settlement } : {}),
  };
}

/** Route option settle "before" (or a replay): the handler runs only once the money has moved. */
async function settleBefore(p: Pipeline, a: Admitted): Promise<Decision> {
  let outcome: SettleOutcome;
  try {
    outcome = await settleNow(p, a);
  } finally {
    a.release();
  }
  const reply = await answer(p, a, outcome, undefined);
  if (reply.kind === "respond") return reply;
  return {
    kind: "paid",
    payment: paymentOf(a, reply.settlement),
    settled: reply,
    maxResponseBytes: a.page.route.maxResponseBytes ?? p.settings.maxResponseBytes,
    settle: async () => reply,
  };
}

/** The default: the handler runs, its response is held, and only a success is settled. */
function settleAfter(p: Pipeline, a: Admitted): PaidDecision {
  const maxResponseBytes = a.page.route.maxResponseBytes ?? p.settings.maxResponseBytes;
  let called = false;
  // The handler may set its charge on this object (charge.ts, upto): settled with that amount.
  const payment = paymentOf(a);
  const metered = a.page.route.metered && meteredTermsFor(a.page.route.metered, a.decoded.offer.requirements, p.settings.onError, Date.now(), a.decoded.offer.scheme.validUntil?.(a.decoded.payload));
  return {
    kind: "paid",
    payment,
    maxResponseBytes,
    ...(metered ? { metered } : {}),
    async settle(held) {
      if (called) throw new Error("settle() was already called for this payment");
      called = true;
      try {
        if (held.aborted) return { kind: "ok", headers: {} };
        if (held.tooLarge) {
          p.settings.onError(new Error(`route "${a.page.route.key}": the handler's response exceeded maxResponseBytes (${maxResponseBytes}); the payment was not settled`));
          return responseTooLarge(maxResponseBytes);
        }
        // The handler failed: the payer gets its error and keeps their money.
        if (held.status >= 400) return { kind: "ok", headers: {} };
        const charged = chargedRequirements(payment, a.decoded.offer.scheme);
        // A charge that cannot be settled as set (above the maximum): nothing settled, nothing served.
        if (!charged.ok) throw charged.error;
        return await answer(p, a, await settleNow(p, a, charged.requirements), held);
      } catch (e) {
        p.settings.onError(e);
        return internalError("settle");
      } finally {
        a.release();
      }
    },
  };
}

function settleNow(p: Pipeline, a: Admitted, requirements = a.decoded.offer.requirements): Promise<SettleOutcome> {
  const { payload } = a.decoded;
  return settleUntilFinal(() => p.settings.facilitator.settle(payload, requirements, a.call), {
    timeoutMs: p.settings.settlementTimeoutMs,
    pollMs: p.settings.settlementPollMs,
  });
}

/** The client's answer to a final settle outcome. */
async function answer(p: Pipeline, a: Admitted, outcome: SettleOutcome, held: HeldResponse | undefined): Promise<Respond | Proceed> {
  const { settings, cache } = p;
  const { page, decoded } = a;
  switch (outcome.kind) {
    case "unreachable":
      settings.onError(outcome.error);
      return settlementUnknown();
    case "pending":
      return paymentRequired(settings, page, errorText(Reason.settlementPending, "the payment is still being settled; retry with the same payment later"), responseHeader(decoded, publicSettleResponse(outcome.response)));
    case "failed": {
      const r = outcome.response;
      return paymentRequired(settings, page, errorText(r.errorReason ?? Reason.unexpectedSettleError, r.errorMessage), responseHeader(decoded, publicSettleResponse(r)));
    }
    case "settled":
      break;
  }
  const settlement = outcome.response;
  if (outcome.replay) {
    // The facilitator handed this success out before: only the response this paywall produced for it may be served again.
    const hit = a.cacheKey ? cache?.get(a.cacheKey) : undefined;
    if (hit) return fromCache(hit);
    return paymentRequired(settings, page, errorText(Reason.duplicateSettlement, "this payment was already settled and its response served"));
  }
  await notifySettled(settings, a, settlement);
  const headers = { ...responseHeader(decoded, settlement), "Access-Control-Expose-Headers": EXPOSED_HEADERS };
  if (a.cacheKey && cache && held && !held.streamed) cache.set(a.cacheKey, cachedResponse(held, headers), decoded.offer.requirements.maxTimeoutSeconds * 1000);
  return { kind: "ok", headers, settlement };
}

async function notifySettled(settings: Settings, a: Admitted, settlement: SettleResponse): Promise<void> {
  if (!settings.onSettled) return;
  const { page, decoded } = a;
  try {
    await settings.onSettled({ route: page.route.key, resource: page.resource, x402Version: decoded.x402Version, requirements: decoded.offer.requirements, settlement });
  } catch (e) {
    settings.onError(e);
  }
}

/** Requirements finished with the facilitator's kinds, reused while its /supported answer is the same object. */
function offerCatalog(settings: Settings): (route: CompiledRoute) => Promise<Offer[]> {
  const finished = new WeakMap<SupportedResponse, Map<CompiledRoute, Offer[]>>();
  return async (route) => {
    const supported = await settings.facilitator.supported();
    let byRoute = finished.get(supported);
    if (!byRoute) finished.set(supported, (byRoute = new Map()));
    let offers = byRoute.get(route);
    if (offers) return offers;
    offers = [];
    for (const o of route.options) {
      const r = o.requirements;
      const found = supportedKindFor(supported, r, settings.names);
      // An option the facilitator cannot settle is not offered (named at start: supported-check.ts).
      if (!found) continue;
      const requirements = o.scheme.enhanceRequirements?.(structuredClone(r), found.kind) ?? r;
      offers.push({ ...o, requirements, ...(found.v1 ? { facilitatorV1Network: found.kind.network } : {}) });
    }
    byRoute.set(route, offers);
    return offers;
  };
}

function callOptions(offer: Offer, resource: ResourceInfo): FacilitatorCallOptions | undefined {
  return offer.facilitatorV1Network ? { v1: { network: offer.facilitatorV1Network, resource } } : undefined;
}

// ------------------------------------------------------------------ answers

/** payment-identifier always; the route's bazaar declaration for this request when it has one. */
function extensionsFor(page: Page): Extensions {
  const extensions: Extensions = { ...page.sponsoring, [PAYMENT_IDENTIFIER]: PAYMENT_IDENTIFIER_ADVERTISEMENT };
  if (page.route.discovery) extensions[BAZAAR] = page.route.discovery({ method: page.method, path: new URL(page.resource.url).pathname });
  if (page.route.mandate) extensions[AP2_MANDATE] = page.route.mandate.advertisement;
  if (page.route.metered) extensions[METERED_STREAM] = meteredAdvertisement(page.route.metered, page.offers.map((o) => o.requirements));
  return extensions;
}

/** The payment-required answer: 402, or 412 when `error` is a missing Permit2 allowance (responses.ts paymentRequiredStatus). */
export function paymentRequired(settings: Settings, page: Page, error: string, extraHeaders: Record<string, string> = {}, html = false, solana?: readonly (PaywallSolanaView | undefined)[]): Respond {
  const { resource, offers } = page;
  const accepts = offers.map((o) => o.requirements);
  const v2: PaymentRequired = { x402Version: 2, error, resource, accepts, extensions: extensionsFor(page) };
  const headers: Record<string, string> = {
    [X402Headers.v2.required]: encodeBase64Json(v2),
    "Access-Control-Expose-Headers": EXPOSED_HEADERS,
    "Cache-Control": "no-store",
    ...extraHeaders,
  };
  if (html && settings.paywallPage !== false) {
    const pageOffers = offers.map((o, i) => {
      const networkName = networkToV1Name(o.requirements.network, settings.names);
      const chain = solana?.[i];
      return { requirements: o.requirements, display: o.display, ...(networkName ? { networkName } : {}), ...(chain ? { solana: chain } : {}) };
    });
    headers["Content-Type"] = "text/html; charset=utf-8";
    return { kind: "respond", status: paymentRequiredStatus(error), headers, body: renderPaywallPage(resource, pageOffers, error, settings.paywallPage, v2) };
  }
  const v1Accepts: PaymentRequirementsV1[] = [];
  for (const r of accepts) {
    const name = networkToV1Name(r.network, settings.names);
    if (name) v1Accepts.push(requirementsToV1(r, name, resource));
  }
  const v1: PaymentRequiredV1 = { x402Version: 1, error, accepts: v1Accepts };
  headers["Content-Type"] = "application/json";
  return { kind: "respond", status: paymentRequiredStatus(error), headers, body: JSON.stringify(v1) };
}

function responseHeader(decoded: DecodedPayment, settlement: SettleResponse): Record<string, string> {
  return decoded.x402Version === 2
    ? { [X402Headers.v2.response]: encodeBase64Json(settlement) }
    : { [X402Headers.v1.response]: encodeBase64Json(settleResponseToV1(settlement, decoded.v1Name ?? settlement.network)) };
}

/** The response as sent (handler headers plus payment headers), for a payment-identifier replay. */
function cachedResponse(held: HeldResponse, headers: Record<string, string>): CachedResponse {
  const merged = new Map<string, [string, string]>();
  for (const [k, v] of held.headers ?? []) {
    // A replay does not set cookies again: they may be per-session, and the replayer may not be the payer.
    if (k.toLowerCase() !== "set-cookie") merged.set(k.toLowerCase(), [k, v]);
  }
  for (const [k, v] of Object.entries(headers)) merged.set(k.toLowerCase(), [k, mergeHeaderValue(k, merged.get(k.toLowerCase())?.[1], v)]);
  return { status: held.status, headers: [...merged.values()], body: held.body ?? new Uint8Array() };
}

function fromCache(hit: CachedResponse): Respond {
  return { kind: "respond", status: hit.status, headers: Object.fromEntries(hit.headers), body: hit.body };
}
