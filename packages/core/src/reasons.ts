/**
 * Reason codes carried in `invalidReason` (verify) and `errorReason` (settle).
 * The first group is the x402 v2 specification's list (section 9); the rest follow
 * its naming pattern for cases the spec does not name. Clients match on these strings,
 * so they are part of the wire format: never rename one.
 */
export const Reason = {
  // x402 v2 specification, section 9
  insufficientFunds: "insufficient_funds",
  evmValidAfter: "invalid_exact_evm_payload_authorization_valid_after",
  evmValidBefore: "invalid_exact_evm_payload_authorization_valid_before",
  evmValueMismatch: "invalid_exact_evm_payload_authorization_value_mismatch",
  evmSignature: "invalid_exact_evm_payload_signature",
  evmRecipientMismatch: "invalid_exact_evm_payload_recipient_mismatch",
  invalidNetwork: "invalid_network",
  invalidPayload: "invalid_payload",
  invalidPaymentRequirements: "invalid_payment_requirements",
  invalidScheme: "invalid_scheme",
  unsupportedScheme: "unsupported_scheme",
  invalidX402Version: "invalid_x402_version",
  invalidTransactionState: "invalid_transaction_state",
  unexpectedVerifyError: "unexpected_verify_error",
  unexpectedSettleError: "unexpected_settle_error",

  // Ours, in the same pattern.
  /** The payload's `accepted` differs from the requirements the server sent. */
  requirementsMismatch: "invalid_payment_requirements_mismatch",
  evmNonceUsed: "invalid_exact_evm_payload_authorization_nonce_used",
  evmTokenDomainMismatch: "invalid_exact_evm_payload_token_domain_mismatch",
  evmAssetNotAllowed: "invalid_exact_evm_asset_not_allowed",
  evmSimulationFailed: "invalid_exact_evm_transaction_simulation_failed",
  evmValidityTooLong: "invalid_exact_evm_payload_authorization_validity_too_long",
  amountBelowMinimum: "invalid_amount_below_minimum",
  rateLimited: "rate_limited",
  unauthorized: "unauthorized",
  facilitatorNotReady: "facilitator_not_ready",
  settlementPending: "settlement_pending",
  settlementTimeout: "settlement_timeout",
  /** The resource server's handler failed, so the payment was not settled. */
  resourceFailed: "resource_failed",
} as const;

export type ReasonCode = (typeof Reason)[keyof typeof Reason];
