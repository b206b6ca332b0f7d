export * from "./types.ts";
export {
  generateMandateKey,
  importMandateKey,
  importPublicMandateJwk,
  exportPublicMandateJwk,
  exportMandateKey,
  mandateKeyThumbprint,
  type MandateKeyPair,
  type PrivateMandateJwk,
  type PublicMandateJwk,
} from "./keys.ts";
export { parseAtomic, parseDecimal, atomicToUsdScaled, formatUsdScaled, USD_SCALE } from "./amount.ts";
export {
  issueOpenMandate,
  verifyOpenMandate,
  buildConstraints,
  checkDisclosures,
  type OpenMandateConstraints,
  type IssueOpenMandateOptions,
  type VerifyOpenOptions,
  type VerifyOpenResult,
  type VerifyFailure,
} from "./open.ts";
export { checkPayment, budgetFor, periodStartFor, instrumentFor, FREQUENCY_SECONDS, type CheckResult, type SpentSoFar } from "./check.ts";
export { createBudgetStore, type BudgetStore, type BudgetStoreOptions, type ReserveResult, type SpentInPeriod } from "./budget-store.ts";
export {
  makeClosedMandate,
  verifyClosedMandate,
  mandateChain,
  mandateChainHash,
  type MakeClosedMandateOptions,
  type VerifyClosedOptions,
  type VerifyClosedResult,
} from "./closed.ts";
export { type ExpiredReservation } from "./budget-store.ts";
export {
  AP2_MANDATE,
  ap2MandateAdvertisement,
  mandateTransactionId,
  readAp2MandateInfo,
  splitChain,
  type Ap2MandatePayloadInfo,
} from "./extension.ts";
export {
  mandateWallet,
  MandateRefusedError,
  payloadCarriesNonce,
  type MandateWallet,
  type MandateWalletOptions,
  type ExpiredMandatePayment,
  type ExpiredAnswer,
} from "./wallet.ts";
export { verifyMandatedPayment, MandateReason, type VerifyMandatedPaymentOptions, type VerifyMandatedPaymentResult } from "./verify-payment.ts";
export { statusListRevocation, parseStatusList, readStatusListFile, revokeInStatusListFile, STATUS_LIST_TYPE, type MandateStatusList } from "./status-list.ts";
