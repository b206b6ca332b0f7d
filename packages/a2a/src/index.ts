export { createA2aPaywall, getPayment, type A2aPaywall, type A2aPaywallConfig, type PaidExecutorOptions } from "./server.ts";
export { wrapA2aClient, getPaymentReceipt, paymentMessage, type PayingA2aClient, type WrapA2aClientOptions } from "./client.ts";
export {
  AP2_CART_MANDATE,
  AP2_PAYMENT_MANDATE,
  cartMandateArtifact,
  errorCodeFor,
  ErrorCode,
  EXTENSIONS_HEADER,
  EXTENSIONS_HEADER_V1,
  isTask,
  Meta,
  paymentMandatePart,
  PaymentStatus,
  paymentStatusOf,
  readEmbeddedPayload,
  readEmbeddedRequired,
  readPaymentError,
  readPaymentRequired,
  readReceipts,
  X402_EXTENSION_URI_V01,
  X402_EXTENSION_URI_V02,
  X402_EXTENSION_URIS,
  X402_PAYMENT_METHOD,
  x402AgentExtensions,
  type X402ExtensionUri,
} from "./meta.ts";
// What a paying agent needs besides the wrapper, so one import is enough.
export { accountFromEnv, accountFromKeystore, PaymentFailedError, type Charged, type PaymentInfo } from "@tollgate/fetch";
export {
  PaymentRefusedError,
  InvalidPaymentRequiredError,
  RefusalCode,
  spendingPolicy,
  type SpendingPolicy,
  type SpendingPolicyOptions,
} from "@tollgate/core";
export { PaywallConfigError, type Payment as PaidTaskPayment, type SettledEvent, type RouteConfig } from "@tollgate/server";
export { paidAgentCard, type PaidAgentCardOptions } from "./card.ts";
