export {
  createPaywall,
  EXPOSED_HEADERS,
  type Decision,
  type HeldResponse,
  type PaidDecision,
  type Payment,
  type PaywallConfig,
  type Paywall,
  type PaywallRequest,
  type Proceed,
  type RouteGuard,
  type SettledEvent,
} from "./paywall.ts";
export { type Respond } from "./responses.ts";
export {
  PaywallConfigError,
  matchRoute,
  normalizePath,
  parseRouteKey,
  type PaymentOption,
  type RouteBehavior,
  type RouteConfig,
  type RouteResource,
  type RouteDiscovery,
} from "./routes.ts";
export { isPreflight, requestMethods, requestPaths, resourceUrl, type HeaderLookup, type UrlParts } from "./request.ts";
export { createInFlight, authorizationKeyOf, payloadHash, type InFlight } from "./inflight.ts";
export { createReplayCache, type CachedResponse, type ReplayCache, type ReplayCacheOptions } from "./replay-cache.ts";
export { settleUntilFinal, isPending, isReplay, SETTLEMENT_EXTENSION, type SettleOutcome } from "./settlement.ts";
export { PAYMENT_IDENTIFIER, PAYMENT_IDENTIFIER_ADVERTISEMENT, readPaymentIdentifier } from "./extensions.ts";
export { isPaymentRequired, paymentRequiredStatus, PERMIT2_ALLOWANCE_REQUIRED, publicMessage, respondHeader, respondJson, respondPaymentRequired, respondSettlement } from "./responses.ts";
export { escapeHtml, renderPaywallPage, type PaywallPageOptions } from "./paywall-page.ts";
export type { PaywallSolanaChain } from "./paywall-solana.ts";
export { mergeHeaderValue } from "./headers.ts";
export { CHARGED_SCHEMES, ChargeError, chargeOf, chargedRequirements, setCharge } from "./charge.ts";
export { EIP2612_GAS_SPONSORING_ADVERTISEMENT, ERC20_APPROVAL_GAS_SPONSORING_ADVERTISEMENT, gasSponsoringExtensions, paysWithPermit2 } from "./gas-sponsoring.ts";
export { checkSupport, describeUnservable, supportedKindFor, type SupportReport, type UnservableOption } from "./supported-check.ts";
export { settleWebResponse, toWebResponse, withPaymentHeaders } from "./web.ts";
export { facilitatorPool, type FacilitatorEntry, type FacilitatorPool, type FacilitatorPoolOptions, type FacilitatorStatus, type PoolEvent } from "./facilitators/pool.ts";
export type { BreakerSettings } from "./facilitators/breaker.ts";
export {
  claimAndSettle,
  settleChannelsEvery,
  type ChannelSettlement,
  type ChannelSettlementOptions,
  fileChannelStore,
  memoryChannelStore,
  localLeases,
  sqlChannelStore,
  type SqlChannelStoreOptions,
  type SqlClient,
  type ChannelLeases,
  ChannelReason,
  type ChannelRecord,
  type ChannelStore,
  type ClaimGroupResult,
  type ClaimOptions,
} from "./channels/index.ts";
export { type MandateRouteConfig, type MandateRouteOptions } from "./mandate-check.ts";
export { type RouteMandate } from "./routes.ts";
export {
  meteredResponse,
  meteredStream,
  openMeter,
  pipeMeteredToNode,
  settleMeteredWebResponse,
  createTally,
  MeterError,
  METERED_HEADERS,
  METERED_STREAM,
  type Meter,
  type MeteredProducer,
  type MeteredRouteConfig,
  type MeteredTerms,
  type NodeResponseLike,
} from "./metered/index.ts";
export { type RouteMetered } from "./routes.ts";
