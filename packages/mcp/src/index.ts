export {
  createMcpPaywall,
  type McpPaywall,
  type McpPaywallConfig,
  type PaidTool,
  type PaidToolExtra,
  type PaidToolHandler,
  type PaidToolOptions,
  type ToolSchema,
} from "./server.ts";
export { wrapMcpClient, getPaymentReceipt, type PayingMcpClient, type WrapMcpClientOptions } from "./client.ts";
export {
  PAYMENT_META_KEY,
  PAYMENT_RESPONSE_META_KEY,
  PAYMENT_REQUIRED_MESSAGE,
  paymentRequiredResult,
  readPaymentRequired,
  readPaymentResponse,
  toolResourceUrl,
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
export { PaywallConfigError, type Payment as PaidToolPayment, type SettledEvent } from "@tollgate/server";
