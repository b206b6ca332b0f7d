// @tollgate/erc8004: ERC-8004 (Trustless Agents) registries for x402 agents.

export { ERC8004_MAINNET_ADDRESSES, ERC8004_TESTNET_ADDRESSES, agentRegistryId, type Erc8004Addresses } from "./addresses.ts";
export { identityRegistryAbi, reputationRegistryAbi, validationRegistryAbi } from "./abi.ts";
export { deployErc8004, type DeployErc8004Options, type DeployedErc8004 } from "./deploy.ts";
export { refusalOf, type Erc8004Clients, type WriteRefused, type WriteResult } from "./write.ts";
export { formatFixedPoint, parseFixedPoint, MAX_VALUE_DECIMALS, type FixedPointValue } from "./value.ts";
export { fromJsonDataUri, toJsonDataUri, type ParseFailure } from "./result.ts";

// identity
export { registerAgent, type AgentMetadataInput, type RegisterAgentParams } from "./identity/register-agent.ts";
export { setAgentUri } from "./identity/set-agent-uri.ts";
export { setAgentMetadata } from "./identity/set-agent-metadata.ts";
export { getAgentMetadata } from "./identity/get-agent-metadata.ts";
export {
  DEFAULT_WALLET_PROOF_TTL_SECONDS,
  agentWalletTypedData,
  setAgentWallet,
  signWalletProof,
  type AgentWalletProofFields,
  type PresignedWalletProof,
  type SetAgentWalletParams,
} from "./identity/set-agent-wallet.ts";
export { getAgentWallet } from "./identity/get-agent-wallet.ts";
export { unsetAgentWallet } from "./identity/unset-agent-wallet.ts";
export { readAgent, type AgentRecord } from "./identity/read-agent.ts";

// reputation
export { giveFeedback, type GiveFeedbackParams } from "./reputation/give-feedback.ts";
export { revokeFeedback } from "./reputation/revoke-feedback.ts";
export { appendResponse } from "./reputation/append-response.ts";
export { readFeedback, type FeedbackRecord } from "./reputation/read-feedback.ts";
export { getReputationSummary, type ReputationSummary } from "./reputation/get-reputation-summary.ts";
export { getClients } from "./reputation/get-clients.ts";

// validation
export { requestValidation, type RequestValidationParams } from "./validation/request-validation.ts";
export { respondValidation, type RespondValidationParams } from "./validation/respond-validation.ts";
export { getValidationStatus, type ValidationStatus } from "./validation/get-validation-status.ts";

// off-chain files
export {
  REGISTRATION_FILE_TYPE,
  WELL_KNOWN_REGISTRATION_PATH,
  buildRegistrationFile,
  parseRegistrationFile,
  registrationFileHandler,
  registrationFileSchema,
  registrationMatches,
  type AgentRegistration,
  type BuildRegistrationFileInput,
  type KnownServiceName,
  type RegistrationFile,
  type RegistrationFileHandlerOptions,
  type RegistrationService,
} from "./registration-file.ts";
export {
  buildFeedbackFile,
  feedbackFileHash,
  feedbackFileSchema,
  parseFeedbackFile,
  paymentProofSchema,
  summarizeProvenFeedback,
  verifyPaymentProof,
  type BuildFeedbackFileInput,
  type FeedbackFile,
  type PaymentProof,
  type PaymentProofVerdict,
  type ProvenFeedbackSummary,
  type SummarizeProvenFeedbackOptions,
  type VerifyPaymentProofOptions,
} from "./feedback-proof.ts";

// x402 facilitators as agents
export { FACILITATOR_SERVICE, findRegisteredFacilitators, registerFacilitator, type RegisterFacilitatorParams, type RegisteredFacilitator } from "./x402-facilitators.ts";
export {
  giveFeedbackForPayment,
  giveSettlementFeedback,
  latencyBucket,
  rankByReputation,
  reputableFacilitators,
  type PaymentFeedbackParams,
  type ReputableFacilitator,
} from "./x402-reputation.ts";
