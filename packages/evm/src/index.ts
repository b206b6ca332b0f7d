// our contracts: typed ABIs (pure data) and compiled artifacts
export {
  MULTICALL3_ADDRESS,
  batchSettlerAbi,
  buildContracts,
  eip3009Abi,
  loadArtifact,
  multicall3Abi,
  transferWithAuthorizationTypes,
  type Artifact,
  type ContractName,
  PERMIT2_ADDRESS,
  EXACT_PERMIT2_PROXY_ADDRESS,
  permit2WitnessTypes,
  eip2612PermitTypes,
  permit2Abi,
  exactPermit2ProxyAbi,
  erc20PermitAbi,
  UPTO_PERMIT2_PROXY_ADDRESS,
  uptoPermit2WitnessTypes,
  uptoPermit2ProxyAbi,
} from "./contracts/index.ts";

// x402 batch-settlement contracts: canonical addresses and typed ABI
export {
  BATCH_SETTLEMENT_ADDRESS,
  ERC3009_DEPOSIT_COLLECTOR_ADDRESS,
  PERMIT2_DEPOSIT_COLLECTOR_ADDRESS,
  batchSettlementAbi,
} from "./contracts/index.ts";

// batch-settlement scheme (channels: deposit once, cumulative vouchers, batched claims)
export * from "./batch-settlement/index.ts";
export * from "./batch-settlement/client-index.ts";

// exact scheme (EIP-3009): client, server, facilitator
export * from "./exact/index.ts";
export { EIP2612_GAS_SPONSORING, eip2612SponsoringExtension, type Eip2612SponsoringInfo, type SponsoringReader } from "./exact/eip2612-sponsoring.ts";
export {
  APPROVE_GAS_LIMIT,
  ERC20_APPROVAL_GAS_SPONSORING,
  erc20ApprovalSponsoringExtension,
  type ApprovalSponsoringReader,
  type Erc20ApprovalSponsoringInfo,
} from "./exact/erc20-approval-sponsoring.ts";
export {
  Erc20ApprovalReason,
  judgeErc20Approval,
  readErc20ApprovalClaim,
  type ApprovalClaim,
  type ApprovalPlan,
  type ApprovalSponsoringPolicy,
} from "./exact/facilitator/erc20-approval-check.ts";
export {
  SponsorReason,
  memorySponsorStore,
  recoverSponsoredApprovals,
  withErc20ApprovalSponsoring,
  type ApprovalSponsorOptions,
  type BeginResult as SponsorBeginResult,
  type SponsorLimits,
  type SponsorStore,
  type SponsoredApproval,
  type SponsoredStatus,
} from "./exact/facilitator/erc20-approval-sponsor.ts";

// upto scheme (Permit2, "pay at most X"): client, server, facilitator
export * from "./upto/index.ts";

// settlement engine: nonces, several signers, batching, fee bumps (plugs into the exact facilitator's submit hook)
export * from "./settlement/index.ts";

// signature recovery (native libsecp256k1 with a pure-JS fallback)
export * from "./crypto/index.ts";

// JSON-RPC transport for viem over node:http(s) keep-alive (several times cheaper than http())
export * from "./rpc/index.ts";
