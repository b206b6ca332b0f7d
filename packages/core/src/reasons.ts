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
  /** The official SDKs' code (EIP-3009 nonce already used or canceled on-chain). */
  evmNonceUsed: "invalid_exact_evm_nonce_already_used",
  /** A contract-wallet (ERC-1271) signature, and this facilitator accepts plain ECDSA only. */
  evmContractWalletNotAllowed: "invalid_exact_evm_payload_contract_wallet_not_allowed",
  evmTokenDomainMismatch: "invalid_exact_evm_payload_token_domain_mismatch",
  evmAssetNotAllowed: "invalid_exact_evm_asset_not_allowed",
  evmSimulationFailed: "invalid_exact_evm_transaction_simulation_failed",
  evmValidityTooLong: "invalid_exact_evm_payload_authorization_validity_too_long",
  amountBelowMinimum: "invalid_amount_below_minimum",
  /** A zero amount: nothing to pay for, and the fee payer would spend gas on it. */
  amountZero: "invalid_amount_zero",
  /** The payer's recent authorizations reverted on-chain; it is refused for a while. */
  payerSuspended: "invalid_payer_suspended",
  rateLimited: "rate_limited",
  unauthorized: "unauthorized",
  facilitatorNotReady: "facilitator_not_ready",
  settlementPending: "settlement_pending",
  settlementTimeout: "settlement_timeout",
  /** The resource server's handler failed, so the payment was not settled. */
  resourceFailed: "resource_failed",
  /** The resource server's handler answered more bytes than the paywall buffers; nothing was settled. */
  responseTooLarge: "resource_response_too_large",
  /** The request could not be read (target, Host header, path): nothing is served for it. */
  invalidRequest: "invalid_request",
  /** A `payment-identifier` id already used by the payer for a different payload. */
  paymentIdentifierConflict: "invalid_payment_identifier_conflict",
  /** An authorization (same payer and nonce) already being settled or settled with different content. */
  authorizationReused: "invalid_payload_authorization_reused",

  // exact on Solana (SVM): the reference implementation's codes, kept verbatim for interop.
  svmMissingFeePayer: "invalid_exact_svm_payload_missing_fee_payer",
  svmFeePayerNotManaged: "fee_payer_not_managed_by_facilitator",
  svmTransactionUndecodable: "invalid_exact_svm_payload_transaction_could_not_be_decoded",
  svmInstructionsLength: "invalid_exact_svm_payload_transaction_instructions_length",
  svmComputeLimitInstruction: "invalid_exact_svm_payload_transaction_instructions_compute_limit_instruction",
  svmComputePriceInstruction: "invalid_exact_svm_payload_transaction_instructions_compute_price_instruction",
  svmComputePriceTooHigh: "invalid_exact_svm_payload_transaction_instructions_compute_price_instruction_too_high",
  svmComputeLimitTooHigh: "invalid_exact_svm_payload_transaction_instructions_compute_limit_instruction_too_high",
  svmNoTransferInstruction: "invalid_exact_svm_payload_no_transfer_instruction",
  svmFeePayerTransferringFunds: "invalid_exact_svm_payload_transaction_fee_payer_transferring_funds",
  svmFeePayerInInstructionAccounts: "invalid_exact_svm_payload_transaction_fee_payer_included_in_instruction_accounts",
  svmMintMismatch: "invalid_exact_svm_payload_mint_mismatch",
  svmRecipientMismatch: "invalid_exact_svm_payload_recipient_mismatch",
  svmAmountMismatch: "invalid_exact_svm_payload_amount_mismatch",
  svmUnknownFourthInstruction: "invalid_exact_svm_payload_unknown_fourth_instruction",
  svmUnknownFifthInstruction: "invalid_exact_svm_payload_unknown_fifth_instruction",
  svmUnknownSixthInstruction: "invalid_exact_svm_payload_unknown_sixth_instruction",
  svmMemoCount: "invalid_exact_svm_payload_memo_count",
  svmMemoMismatch: "invalid_exact_svm_payload_memo_mismatch",
  svmSenderAtaNotFound: "invalid_exact_svm_payload_transaction_sender_ata_not_found",
  svmReceiverAtaNotFound: "invalid_exact_svm_payload_transaction_receiver_ata_not_found",
  svmSimulationFailed: "transaction_simulation_failed",
  svmTransactionFailed: "transaction_failed",
  /** One code for EVM and Solana: this authorization was already settled and its success already answered. */
  duplicateSettlement: "duplicate_settlement",
  // exact on Solana: ours, in the same pattern.
  /** The transaction's fee payer is not `extra.feePayer`. */
  svmFeePayerMismatch: "invalid_exact_svm_payload_transaction_fee_payer_mismatch",
  /** A required signature other than the fee payer's is missing or invalid. */
  svmSignature: "invalid_exact_svm_payload_signature",
  /** The recent blockhash is unknown or expired. */
  svmBlockhashExpired: "invalid_exact_svm_payload_transaction_blockhash_expired",
  /** The mint is not on the facilitator's allowlist for the network. */
  svmAssetNotAllowed: "invalid_exact_svm_asset_not_allowed",
} as const;

export type ReasonCode = (typeof Reason)[keyof typeof Reason];
