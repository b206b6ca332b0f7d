export {
  paidFetchTool,
  paidFetchInput,
  DEFAULT_MAX_BODY_CHARS,
  PAID_FETCH_DESCRIPTION,
  type PaidFetchToolOptions,
  type PaidFetchInput,
  type PaidFetchResult,
  type ResponseResult,
} from "./fetch-tool.ts";
export { paidMcpTools, DEFAULT_MAX_RESULT_CHARS, type PaidMcpToolsOptions, type PaidMcpToolResult, type McpToolResult, type McpPaymentFailedResult } from "./mcp-tools.ts";
export type { PaymentSummary, PaidSummary, RefusedResult, PaymentFailedResult, InvalidPaymentRequestResult, ErrorResult, PaymentErrorResult } from "./payment.ts";
// What a paying agent needs besides the tools, so one import is enough.
export { accountFromEnv, accountFromKeystore, createPaymentClient, spendingPolicy, PaymentRefusedError, PaymentFailedError, RefusalCode, type SpendingPolicy, type SpendingPolicyOptions } from "@tollgate/fetch";
