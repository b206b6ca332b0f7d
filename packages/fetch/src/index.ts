export { wrapFetch, getPaymentReceipt, PaymentFailedError, type Charged, type FetchLike, type WrapFetchOptions, type PaymentInfo } from "./wrap.ts";
// The exchange under wrapFetch, for other HTTP clients (@tollgate/axios runs the same one).
export { payAndRetry, type PaidRetry, type PaidResult, type ResponseView } from "./exchange.ts";
export {
  accountFromEnv,
  accountFromKeystore,
  createKeystore,
  decryptKeystore,
  KeyError,
  KeystoreError,
  type KeystoreV3,
  type CreateKeystoreOptions,
  type ScryptParams,
  type Pbkdf2Params,
} from "./keys.ts";
// The payment client lives in core; re-exported so one import is enough for a paying app.
export {
  createPaymentClient,
  spendingPolicy,
  preferNetworks,
  cheapest,
  PaymentRefusedError,
  InvalidPaymentRequiredError,
  RefusalCode,
  DEFAULT_MAX_TIMEOUT_SECONDS,
  type PaymentClient,
  type PaymentClientOptions,
  type Payment,
  type SpendingPolicy,
  type SpendingPolicyOptions,
  type OutstandingPayment,
  type ExpiredResolution,
  type Chooser,
} from "@tollgate/core";
// Finding what to pay for: a facilitator's discovery catalog (bazaar).
export {
  discover,
  listResources,
  searchResources,
  DiscoveryError,
  type DiscoveredResource,
  type DiscoverParams,
  type DiscoveryFilters,
  type ListResourcesParams,
  type SearchResourcesParams,
} from "@tollgate/core";
// Metered streams (docs/extensions/metered-stream.md): the running cost and the in-band receipt.
export { readMeteredStream, type MeteredStreamHandlers, type MeteredStreamResult } from "@tollgate/core";
