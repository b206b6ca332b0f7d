/**
 * Canonical addresses and the typed ABI of the x402 `batch-settlement` contracts on EVM
 * (x402BatchSettlement and its deposit collectors). Pure data, hand-written `as const`; our
 * BatchSettlement.sol implements exactly this surface (checked against the compiled artifact in
 * packages/evm/test/batch-settlement-contracts.anvil.test.ts).
 */
import type { Address } from "viem";

/** x402BatchSettlement (CREATE2, same address on every chain; the devnet installs ours there). */
export const BATCH_SETTLEMENT_ADDRESS: Address = "0x4020074e9dF2ce1deE5A9C1b5c3f541D02a10003";
/** Deposit collector for EIP-3009 tokens (receiveWithAuthorization to the collector). */
export const ERC3009_DEPOSIT_COLLECTOR_ADDRESS: Address = "0x4020806089470a89826cB9fB1f4059150b550004";
/** Deposit collector for any ERC-20 through Permit2 (witness `DepositWitness(bytes32 channelId)`). */
export const PERMIT2_DEPOSIT_COLLECTOR_ADDRESS: Address = "0x4020425FAf3B746C082C2f942b4E5159887B0005";

const channelConfigComponents = [
  { name: "payer", type: "address" },
  { name: "payerAuthorizer", type: "address" },
  { name: "receiver", type: "address" },
  { name: "receiverAuthorizer", type: "address" },
  { name: "token", type: "address" },
  { name: "withdrawDelay", type: "uint40" },
  { name: "salt", type: "bytes32" },
] as const;

const configInput = { name: "config", type: "tuple", components: channelConfigComponents } as const;

const voucherClaimComponents = [
  {
    name: "voucher",
    type: "tuple",
    components: [
      { name: "channel", type: "tuple", components: channelConfigComponents },
      { name: "maxClaimableAmount", type: "uint128" },
    ],
  },
  { name: "signature", type: "bytes" },
  { name: "totalClaimed", type: "uint128" },
] as const;

const claimsInput = { name: "voucherClaims", type: "tuple[]", components: voucherClaimComponents } as const;

const noOutputs = [] as const;

export const batchSettlementAbi = [
  { type: "function", name: "multicall", stateMutability: "nonpayable", inputs: [{ name: "data", type: "bytes[]" }], outputs: [{ name: "results", type: "bytes[]" }] },
  {
    type: "function",
    name: "deposit",
    stateMutability: "nonpayable",
    inputs: [configInput, { name: "amount", type: "uint128" }, { name: "collector", type: "address" }, { name: "collectorData", type: "bytes" }],
    outputs: noOutputs,
  },
  { type: "function", name: "claim", stateMutability: "nonpayable", inputs: [claimsInput], outputs: noOutputs },
  {
    type: "function",
    name: "claimWithSignature",
    stateMutability: "nonpayable",
    inputs: [claimsInput, { name: "authorizerSignature", type: "bytes" }],
    outputs: noOutputs,
  },
  {
    type: "function",
    name: "settle",
    stateMutability: "nonpayable",
    inputs: [{ name: "receiver", type: "address" }, { name: "token", type: "address" }],
    outputs: noOutputs,
  },
  { type: "function", name: "initiateWithdraw", stateMutability: "nonpayable", inputs: [configInput, { name: "amount", type: "uint128" }], outputs: noOutputs },
  { type: "function", name: "finalizeWithdraw", stateMutability: "nonpayable", inputs: [configInput], outputs: noOutputs },
  { type: "function", name: "refund", stateMutability: "nonpayable", inputs: [configInput, { name: "amount", type: "uint128" }], outputs: noOutputs },
  {
    type: "function",
    name: "refundWithSignature",
    stateMutability: "nonpayable",
    inputs: [configInput, { name: "amount", type: "uint128" }, { name: "nonce", type: "uint256" }, { name: "receiverAuthorizerSignature", type: "bytes" }],
    outputs: noOutputs,
  },
  { type: "function", name: "getChannelId", stateMutability: "view", inputs: [configInput], outputs: [{ name: "", type: "bytes32" }] },
  { type: "function", name: "CHANNEL_CONFIG_TYPEHASH", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "bytes32" }] },
  { type: "function", name: "MIN_WITHDRAW_DELAY", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "uint40" }] },
  { type: "function", name: "MAX_WITHDRAW_DELAY", stateMutability: "view", inputs: [], outputs: [{ name: "", type: "uint40" }] },
  {
    type: "function",
    name: "channels",
    stateMutability: "view",
    inputs: [{ name: "channelId", type: "bytes32" }],
    outputs: [{ name: "balance", type: "uint128" }, { name: "totalClaimed", type: "uint128" }],
  },
  {
    type: "function",
    name: "pendingWithdrawals",
    stateMutability: "view",
    inputs: [{ name: "channelId", type: "bytes32" }],
    outputs: [{ name: "amount", type: "uint128" }, { name: "initiatedAt", type: "uint40" }],
  },
  {
    type: "function",
    name: "receivers",
    stateMutability: "view",
    inputs: [{ name: "receiver", type: "address" }, { name: "token", type: "address" }],
    outputs: [{ name: "totalClaimed", type: "uint128" }, { name: "totalSettled", type: "uint128" }],
  },
  { type: "function", name: "refundNonce", stateMutability: "view", inputs: [{ name: "channelId", type: "bytes32" }], outputs: [{ name: "", type: "uint256" }] },
  {
    type: "function",
    name: "getVoucherDigest",
    stateMutability: "view",
    inputs: [{ name: "channelId", type: "bytes32" }, { name: "maxClaimableAmount", type: "uint128" }],
    outputs: [{ name: "", type: "bytes32" }],
  },
  {
    type: "function",
    name: "getRefundDigest",
    stateMutability: "view",
    inputs: [{ name: "channelId", type: "bytes32" }, { name: "nonce", type: "uint256" }, { name: "amount", type: "uint128" }],
    outputs: [{ name: "", type: "bytes32" }],
  },
  { type: "function", name: "getClaimBatchDigest", stateMutability: "view", inputs: [claimsInput], outputs: [{ name: "", type: "bytes32" }] },
  { type: "event", name: "ChannelCreated", anonymous: false, inputs: [{ name: "channelId", type: "bytes32", indexed: true }, { name: "config", type: "tuple", components: channelConfigComponents, indexed: false }] },
  { type: "event", name: "ChannelClosed", anonymous: false, inputs: [{ name: "channelId", type: "bytes32", indexed: true }, { name: "config", type: "tuple", components: channelConfigComponents, indexed: false }] },
  {
    type: "event",
    name: "Deposited",
    anonymous: false,
    inputs: [
      { name: "channelId", type: "bytes32", indexed: true },
      { name: "sender", type: "address", indexed: true },
      { name: "amount", type: "uint128", indexed: false },
      { name: "newBalance", type: "uint128", indexed: false },
    ],
  },
  {
    type: "event",
    name: "Claimed",
    anonymous: false,
    inputs: [
      { name: "channelId", type: "bytes32", indexed: true },
      { name: "sender", type: "address", indexed: true },
      { name: "claimAmount", type: "uint128", indexed: false },
      { name: "newTotalClaimed", type: "uint128", indexed: false },
    ],
  },
  {
    type: "event",
    name: "Settled",
    anonymous: false,
    inputs: [
      { name: "receiver", type: "address", indexed: true },
      { name: "token", type: "address", indexed: true },
      { name: "sender", type: "address", indexed: true },
      { name: "amount", type: "uint128", indexed: false },
    ],
  },
  {
    type: "event",
    name: "Refunded",
    anonymous: false,
    inputs: [{ name: "channelId", type: "bytes32", indexed: true }, { name: "sender", type: "address", indexed: true }, { name: "amount", type: "uint128", indexed: false }],
  },
  {
    type: "event",
    name: "WithdrawInitiated",
    anonymous: false,
    inputs: [{ name: "channelId", type: "bytes32", indexed: true }, { name: "amount", type: "uint128", indexed: false }, { name: "finalizeAfter", type: "uint40", indexed: false }],
  },
  {
    type: "event",
    name: "WithdrawFinalized",
    anonymous: false,
    inputs: [{ name: "channelId", type: "bytes32", indexed: true }, { name: "sender", type: "address", indexed: true }, { name: "amount", type: "uint128", indexed: false }],
  },
  // custom errors, so viem decodes revert reasons by name
  { type: "error", name: "InvalidChannel", inputs: [] },
  { type: "error", name: "ZeroDeposit", inputs: [] },
  { type: "error", name: "DepositOverflow", inputs: [] },
  { type: "error", name: "InvalidSignature", inputs: [] },
  { type: "error", name: "NotReceiverAuthorizer", inputs: [] },
  { type: "error", name: "NotAuthorizedToClaim", inputs: [] },
  { type: "error", name: "NotAuthorizedToRefund", inputs: [] },
  { type: "error", name: "ClaimExceedsCeiling", inputs: [] },
  { type: "error", name: "ClaimExceedsBalance", inputs: [] },
  { type: "error", name: "WithdrawalAlreadyPending", inputs: [] },
  { type: "error", name: "WithdrawalNotPending", inputs: [] },
  { type: "error", name: "NotAuthorizedToFinalizeWithdraw", inputs: [] },
  { type: "error", name: "WithdrawDelayNotElapsed", inputs: [] },
  { type: "error", name: "NothingToWithdraw", inputs: [] },
  { type: "error", name: "WithdrawAmountExceedsAvailable", inputs: [] },
  { type: "error", name: "WithdrawDelayOutOfRange", inputs: [] },
  { type: "error", name: "EmptyBatch", inputs: [] },
  { type: "error", name: "DepositCollectionFailed", inputs: [] },
  { type: "error", name: "InvalidCollector", inputs: [] },
  { type: "error", name: "InvalidRefundNonce", inputs: [] },
  { type: "error", name: "ZeroRefund", inputs: [] },
] as const;
