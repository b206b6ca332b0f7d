/**
 * EIP-712 definitions and encodings of the x402 `batch-settlement` scheme on EVM, shared by the
 * client, server and facilitator faces: the x402BatchSettlement domain, ChannelConfig / Voucher /
 * Refund / ClaimBatch types, channel ids, digests, and the deposit collectors' data encodings.
 * Every digest here equals the contract's own `get*Digest` view (asserted in the anvil tests).
 */
import { encodeAbiParameters, getAddress, hashTypedData, keccak256, type Address, type Hex, type TypedDataDomain } from "viem";
import { BATCH_SETTLEMENT_ADDRESS } from "../contracts/batch-settlement-abi.ts";

export const BATCH_SETTLEMENT_SCHEME = "batch-settlement";

/** Withdraw delay bounds the contract enforces at deposit time (seconds). */
export const MIN_WITHDRAW_DELAY = 900;
export const MAX_WITHDRAW_DELAY = 2_592_000;

/** The immutable channel parameters; their EIP-712 hash is the channel id. */
export type ChannelConfig = {
  payer: Address;
  /** EOA that signs vouchers, or the zero address to verify against `payer` (EIP-1271 wallets). */
  payerAuthorizer: Address;
  receiver: Address;
  /** Signs claim batches and refunds; never zero. */
  receiverAuthorizer: Address;
  token: Address;
  withdrawDelay: number;
  salt: Hex;
};

/** One claim row as the contract takes it: the payer-signed voucher plus the new cumulative claim. */
export type VoucherClaim = {
  voucher: { channel: ChannelConfig; maxClaimableAmount: bigint };
  signature: Hex;
  totalClaimed: bigint;
};

export function batchSettlementDomain(chainId: number, verifyingContract: Address = BATCH_SETTLEMENT_ADDRESS): TypedDataDomain {
  return { name: "x402 Batch Settlement", version: "1", chainId, verifyingContract: getAddress(verifyingContract) };
}

export const channelConfigTypes = {
  ChannelConfig: [
    { name: "payer", type: "address" },
    { name: "payerAuthorizer", type: "address" },
    { name: "receiver", type: "address" },
    { name: "receiverAuthorizer", type: "address" },
    { name: "token", type: "address" },
    { name: "withdrawDelay", type: "uint40" },
    { name: "salt", type: "bytes32" },
  ],
} as const;

export const voucherTypes = {
  Voucher: [
    { name: "channelId", type: "bytes32" },
    { name: "maxClaimableAmount", type: "uint128" },
  ],
} as const;

export const refundTypes = {
  Refund: [
    { name: "channelId", type: "bytes32" },
    { name: "nonce", type: "uint256" },
    { name: "amount", type: "uint128" },
  ],
} as const;

export const claimBatchTypes = {
  ClaimBatch: [{ name: "claims", type: "ClaimEntry[]" }],
  ClaimEntry: [
    { name: "channelId", type: "bytes32" },
    { name: "maxClaimableAmount", type: "uint128" },
    { name: "totalClaimed", type: "uint128" },
  ],
} as const;

/** EIP-3009 ReceiveWithAuthorization (the deposit authorization is made out to the ERC-3009 collector). */
export const receiveWithAuthorizationTypes = {
  ReceiveWithAuthorization: [
    { name: "from", type: "address" },
    { name: "to", type: "address" },
    { name: "value", type: "uint256" },
    { name: "validAfter", type: "uint256" },
    { name: "validBefore", type: "uint256" },
    { name: "nonce", type: "bytes32" },
  ],
} as const;

/** Permit2 witness transfer with the deposit witness (spender: the Permit2 deposit collector). */
export const depositPermit2WitnessTypes = {
  PermitWitnessTransferFrom: [
    { name: "permitted", type: "TokenPermissions" },
    { name: "spender", type: "address" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
    { name: "witness", type: "DepositWitness" },
  ],
  TokenPermissions: [
    { name: "token", type: "address" },
    { name: "amount", type: "uint256" },
  ],
  DepositWitness: [{ name: "channelId", type: "bytes32" }],
} as const;

/** Normalized (checksummed) copy of a config, in the contract's field order. */
export function normalizeChannelConfig(config: ChannelConfig): ChannelConfig {
  return {
    payer: getAddress(config.payer),
    payerAuthorizer: getAddress(config.payerAuthorizer),
    receiver: getAddress(config.receiver),
    receiverAuthorizer: getAddress(config.receiverAuthorizer),
    token: getAddress(config.token),
    withdrawDelay: config.withdrawDelay,
    salt: config.salt,
  };
}

/** channelId = EIP-712 hash of the config under the settlement contract's domain (chain-bound). */
export function computeChannelId(config: ChannelConfig, chainId: number, verifyingContract?: Address): Hex {
  return hashTypedData({
    domain: batchSettlementDomain(chainId, verifyingContract),
    types: channelConfigTypes,
    primaryType: "ChannelConfig",
    message: normalizeChannelConfig(config),
  });
}

/** What the payer (or payer authorizer) signs for each request. */
export function voucherTypedData(channelId: Hex, maxClaimableAmount: bigint, chainId: number, verifyingContract?: Address) {
  return {
    domain: batchSettlementDomain(chainId, verifyingContract),
    types: voucherTypes,
    primaryType: "Voucher" as const,
    message: { channelId, maxClaimableAmount },
  };
}

export function voucherDigest(channelId: Hex, maxClaimableAmount: bigint, chainId: number, verifyingContract?: Address): Hex {
  return hashTypedData(voucherTypedData(channelId, maxClaimableAmount, chainId, verifyingContract));
}

/** What the receiver authorizer signs to let anyone relay a refund at `nonce`. */
export function refundTypedData(channelId: Hex, nonce: bigint, amount: bigint, chainId: number, verifyingContract?: Address) {
  return {
    domain: batchSettlementDomain(chainId, verifyingContract),
    types: refundTypes,
    primaryType: "Refund" as const,
    message: { channelId, nonce, amount },
  };
}

export function refundDigest(channelId: Hex, nonce: bigint, amount: bigint, chainId: number, verifyingContract?: Address): Hex {
  return hashTypedData(refundTypedData(channelId, nonce, amount, chainId, verifyingContract));
}

/** What the receiver authorizer signs to let anyone relay a claim batch (`claimWithSignature`). */
export function claimBatchTypedData(claims: readonly VoucherClaim[], chainId: number, verifyingContract?: Address) {
  return {
    domain: batchSettlementDomain(chainId, verifyingContract),
    types: claimBatchTypes,
    primaryType: "ClaimBatch" as const,
    message: {
      claims: claims.map((c) => ({
        channelId: computeChannelId(c.voucher.channel, chainId, verifyingContract),
        maxClaimableAmount: c.voucher.maxClaimableAmount,
        totalClaimed: c.totalClaimed,
      })),
    },
  };
}

export function claimBatchDigest(claims: readonly VoucherClaim[], chainId: number, verifyingContract?: Address): Hex {
  return hashTypedData(claimBatchTypedData(claims, chainId, verifyingContract));
}

/** The contract's tuple shape of a claim row (viem takes the nested objects as they are). */
export function toContractClaim(c: VoucherClaim) {
  return {
    voucher: { channel: normalizeChannelConfig(c.voucher.channel), maxClaimableAmount: c.voucher.maxClaimableAmount },
    signature: c.signature,
    totalClaimed: c.totalClaimed,
  };
}

// ---------------------------------------------------------------- deposit collectors

/** EIP-3009 nonce of a deposit: keccak256(abi.encode(channelId, salt)), so it funds one channel only. */
export function erc3009DepositNonce(channelId: Hex, salt: bigint): Hex {
  return keccak256(encodeAbiParameters([{ type: "bytes32" }, { type: "uint256" }], [channelId, salt]));
}

/** collectorData of the ERC-3009 collector: abi.encode(validAfter, validBefore, salt, signature). */
export function encodeErc3009CollectorData(a: { validAfter: bigint; validBefore: bigint; salt: bigint; signature: Hex }): Hex {
  return encodeAbiParameters(
    [{ type: "uint256" }, { type: "uint256" }, { type: "uint256" }, { type: "bytes" }],
    [a.validAfter, a.validBefore, a.salt, a.signature],
  );
}

/** Optional EIP-2612 permit segment for the Permit2 collector: abi.encode(value, deadline, v, r, s). */
export function encodeEip2612PermitData(p: { value: bigint; deadline: bigint; v: number; r: Hex; s: Hex }): Hex {
  return encodeAbiParameters(
    [{ type: "uint256" }, { type: "uint256" }, { type: "uint8" }, { type: "bytes32" }, { type: "bytes32" }],
    [p.value, p.deadline, p.v, p.r, p.s],
  );
}

/** collectorData of the Permit2 collector: abi.encode(nonce, deadline, permit2Signature, eip2612PermitData). */
export function encodePermit2CollectorData(a: { nonce: bigint; deadline: bigint; signature: Hex; eip2612PermitData?: Hex }): Hex {
  return encodeAbiParameters(
    [{ type: "uint256" }, { type: "uint256" }, { type: "bytes" }, { type: "bytes" }],
    [a.nonce, a.deadline, a.signature, a.eip2612PermitData ?? "0x"],
  );
}
