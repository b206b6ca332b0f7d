/**
 * The paywall's public types: its configuration, what adapters pass in (a request, the held
 * response) and what they get back (a decision, an outcome).
 */
import type { FacilitatorClient, PaymentPayload, PaymentRequirements, ResourceInfo, SchemeServer, SettleResponse, V1NetworkNames } from "@tollgate/core";
import type { PaywallPageOptions } from "./paywall-page.ts";
import type { ReplayCacheOptions } from "./replay-cache.ts";
import type { HeaderLookup, UrlParts } from "./request.ts";
import type { Respond } from "./responses.ts";
import type { FacilitatorEntry } from "./facilitators/pool.ts";
import type { RouteConfig } from "./routes.ts";
import type { ChannelStore } from "./channels/store.ts";
import type { SupportReport } from "./supported-check.ts";
import type { MeteredTerms } from "./metered/terms.ts";

export interface PaywallConfig {
  /**
   * A facilitator client, the base URL of an HTTP facilitator, or several (URLs, clients or
   * `{ facilitator, name, reputation }` entries): a pool that routes each payment to one that
   * supports it and fails over safely (`facilitatorPool` for its options).
   */
  facilitator: FacilitatorClient | string | ReadonlyArray<FacilitatorClient | string | FacilitatorEntry>;
  schemes: SchemeServer[];
  /**
   * Keys "GET /weather", "/api/*" (method optional, `*` matches anything); first match in
   * declaration order wins. Optional: routes may instead be attached per route in the framework
   * (`paymentRoute` in the adapters), where the framework's own match is the paywall's match.
   */
  routes?: Record<string, RouteConfig>;
  /** Extra v1 network names (for v1 clients), e.g. `{ "my-chain": "eip155:1337" }`. */
  v1Networks?: V1NetworkNames;
  /** Options of the HTML page browsers get; `false` sends browsers the JSON 402 too. */
  paywallPage?: PaywallPageOptions | false;
  /**
   * This server's public origin (and base path), e.g. "https://api.example.com". The resource
   * URL in a 402 is built from it; without it, from the request's Host header, which must then
   * be a plain host[:port] (anything else is a 400).
   */
  publicUrl?: string;
  /**
   * How long a pending settlement is polled before the client is answered 402 with the pending
   * state (it may retry the same payment later and will get the resource). Above the
   * facilitator's worst case: its receipt wait (30 s) plus its reconciler. Default 150 000.
   */
  settlementTimeoutMs?: number;
  /** Pause between polls of a pending settlement. Default 1 000. */
  settlementPollMs?: number;
  /** Largest handler response held for settlement, in bytes (per route: `maxResponseBytes`). Default 8 MiB. */
  maxResponseBytes?: number;
  /** Bounds of the cache of responses kept for payment-identifier replays; `false` keeps none. */
  replayCache?: ReplayCacheOptions | false;
  /** Called after every successful settlement, before the response is sent. Errors go to `onError`. */
  onSettled?: (event: SettledEvent) => void | Promise<void>;
  /** Everything that does not reach the client: facilitator errors, a throwing `onSettled`, internal failures answered with 500. */
  onError?: (error: unknown) => void;
  /**
   * The start-up check: right after construction the paywall asks the facilitator's
   * `/supported` once and reports, through `onWarning`, any route option it cannot settle (and
   * what it does support), or that it could not be reached. `false` skips it. Await
   * `paywall.ready()` instead to fail the start. Default true.
   */
  checkAtStart?: boolean;
  /** Where start-up findings go. Default `console.warn`. */
  onWarning?: (message: string) => void;
  /**
   * `batch-settlement` channels: `store` keeps each channel's charged total and latest voucher
   * (default in memory: a restart forfeits unclaimed vouchers; use `fileChannelStore` to keep
   * them); a voucher is checked off-chain only against a facilitator snapshot younger than
   * `maxSnapshotAgeMs` (default 60 000), else by /verify. Claim with `claimAndSettle`.
   */
  channels?: { store?: ChannelStore; maxSnapshotAgeMs?: number };
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
  /**
   * The path the framework routes this request on (Express: `req.baseUrl + req.path`; Hono:
   * `c.req.path`). Omitted: the path of `url`.
   */
  path?: string;
  /** Other paths the framework may route on (Express: the mount-relative `req.path`); priced too. */
  altPaths?: readonly string[];
  /** The full URL, or the parts it is built from (see `publicUrl`). */
  url: string | UrlParts;
  /** Case-insensitive header lookup. */
  headers: HeaderLookup;
  /** Match route keys ignoring case, as the framework routes (Express's default). */
  ignoreCase?: boolean;
}

export interface Proceed {
  kind: "ok";
  /** Headers to add to the handler's response (e.g. PAYMENT-RESPONSE); empty when nothing was settled. */
  headers: Record<string, string>;
  settlement?: SettleResponse;
}

/** The handler's response as the adapter held it. */
export interface HeldResponse {
  status: number;
  headers?: ReadonlyArray<readonly [string, string]>;
  body?: Uint8Array;
  /** The handler wrote more than `maxResponseBytes`: nothing is settled, a 500 is sent. */
  tooLarge?: boolean;
  /** The client went away before the response was complete: nothing is settled. */
  aborted?: boolean;
  /** A metered stream: its body went out as it was produced (metered/session.ts); nothing to hold or cache. */
  streamed?: boolean;
}

export interface Payment {
  x402Version: 1 | 2;
  route: string;
  requirements: PaymentRequirements;
  payload: PaymentPayload;
  payer?: string;
  /** Set when the route settles before its handler runs. */
  settlement?: SettleResponse;
}

export interface PaidDecision {
  kind: "paid";
  payment: Payment;
  /**
   * Set when the payment was settled before the handler (route option `settle: "before"`): add
   * these headers and send the handler's response as it comes; `settle` is then a formality.
   */
  settled?: Proceed;
  /** Hold at most this many bytes of the handler's response; more is `tooLarge`. */
  maxResponseBytes: number;
  /** Set on a metered route (route option `metered`): the terms its stream is charged on (metered/). */
  metered?: MeteredTerms;
  /** Call exactly once, when the handler's response is complete (or the client went away). */
  settle(held: HeldResponse): Promise<Respond | Proceed>;
}

export type Decision = { kind: "free" } | Respond | PaidDecision;

export interface RouteGuard {
  /** Decides a request the framework already routed to this guard's route. */
  handle(request: PaywallRequest): Promise<Decision>;
}

export interface Paywall {
  handle(request: PaywallRequest): Promise<Decision>;
  /**
   * Asks the facilitator's `/supported` now and resolves with what it supports when every
   * payment option of every route (those in `routes` and those attached with `route()` so far)
   * can be settled; rejects with a `PaywallConfigError` naming each option it cannot settle and
   * what it does support, or with the `FacilitatorError` of an unreachable facilitator. Await it
   * before listening to fail the start instead of serving 402s that leave options out.
   */
  ready(): Promise<SupportReport>;
  /** A guard for one route attached by the framework (the per-route form): no path matching at all. */
  route(config: RouteConfig, name?: string): RouteGuard;
}
