/**
 * Reads the `batch-settlement` payloads a facilitator receives (spec: scheme_batch_settlement_evm.md)
 * into typed values, or a failure naming the field and the spec's reason code. Nothing here touches
 * the chain or checks a signature: it only refuses what is malformed.
 *
 *   deposit  client: channelConfig + voucher + deposit { amount, authorization }
 *   voucher  client: channelConfig + voucher (verify only: vouchers move no money by themselves)
 *   refund   client asks, server completes: + amount, refundNonce, claims, authorizer signatures
 *   claim    server: claims[] (+ claimAuthorizerSignature)
 *   settle   server: receiver + token
 */
import { getAddress, isAddress, isHex, type Address, type Hex } from "viem";
import type { ChannelConfig, VoucherClaim } from "./eip712.ts";

export const BatchReason = {
  scheme: "invalid_batch_settlement_evm_scheme",
  networkMismatch: "invalid_batch_settlement_evm_network_mismatch",
  payloadType: "invalid_batch_settlement_evm_payload_type",
  voucherPayload: "invalid_batch_settlement_evm_voucher_payload",
  depositPayload: "invalid_batch_settlement_evm_deposit_payload",
  refundPayload: "invalid_batch_settlement_evm_refund_payload",
  claimPayload: "invalid_batch_settlement_evm_claim_payload",
  settlePayload: "invalid_batch_settlement_evm_settle_payload",
  channelIdMismatch: "invalid_batch_settlement_evm_channel_id_mismatch",
  receiverMismatch: "invalid_batch_settlement_evm_receiver_mismatch",
  receiverAuthorizerMismatch: "invalid_batch_settlement_evm_receiver_authorizer_mismatch",
  tokenMismatch: "invalid_batch_settlement_evm_token_mismatch",
  /** The channel's token is not on the facilitator's allowlist for the network (ours, like exact's asset_not_allowed). */
  assetNotAllowed: "invalid_batch_settlement_evm_asset_not_allowed",
  withdrawDelayMismatch: "invalid_batch_settlement_evm_withdraw_delay_mismatch",
  withdrawDelayOutOfRange: "invalid_batch_settlement_evm_withdraw_delay_out_of_range",
  voucherSignature: "invalid_batch_settlement_evm_voucher_signature",
  channelNotFound: "invalid_batch_settlement_evm_channel_not_found",
  exceedsBalance: "invalid_batch_settlement_evm_cumulative_exceeds_balance",
  belowClaimed: "invalid_batch_settlement_evm_cumulative_below_claimed",
  insufficientBalance: "invalid_batch_settlement_evm_insufficient_balance",
  rpcReadFailed: "invalid_batch_settlement_evm_rpc_read_failed",
  missingEip712Domain: "invalid_batch_settlement_evm_missing_eip712_domain",
  erc3009Required: "invalid_batch_settlement_evm_erc3009_authorization_required",
  receiveAuthorizationSignature: "invalid_batch_settlement_evm_receive_authorization_signature",
  validAfter: "invalid_batch_settlement_evm_payload_authorization_valid_after",
  validBefore: "invalid_batch_settlement_evm_payload_authorization_valid_before",
  permit2Required: "invalid_batch_settlement_evm_permit2_authorization_required",
  permit2Spender: "invalid_batch_settlement_evm_permit2_invalid_spender",
  permit2Amount: "invalid_batch_settlement_evm_permit2_amount_mismatch",
  permit2Deadline: "invalid_batch_settlement_evm_permit2_deadline_expired",
  permit2Signature: "invalid_batch_settlement_evm_permit2_invalid_signature",
  permit2Allowance: "invalid_batch_settlement_evm_permit2_allowance_required",
  depositSimulation: "invalid_batch_settlement_evm_deposit_simulation_failed",
  depositTransaction: "invalid_batch_settlement_evm_deposit_transaction_failed",
  claimSimulation: "invalid_batch_settlement_evm_claim_simulation_failed",
  claimTransaction: "invalid_batch_settlement_evm_claim_transaction_failed",
  settleSimulation: "invalid_batch_settlement_evm_settle_simulation_failed",
  settleTransaction: "invalid_batch_settlement_evm_settle_transaction_failed",
  nothingToSettle: "invalid_batch_settlement_evm_nothing_to_settle",
  refundSimulation: "invalid_batch_settlement_evm_refund_simulation_failed",
  refundTransaction: "invalid_batch_settlement_evm_refund_transaction_failed",
  refundNoBalance: "invalid_batch_settlement_evm_refund_no_balance",
  refundAmountInvalid: "invalid_batch_settlement_evm_refund_amount_invalid",
  authorizerMismatch: "invalid_batch_settlement_evm_authorizer_address_mismatch",
  authorizerNotConfigured: "invalid_batch_settlement_evm_authorizer_not_configured",
  transactionReverted: "invalid_batch_settlement_evm_transaction_reverted",
  waitForReceipt: "invalid_batch_settlement_evm_wait_for_receipt_failed",
} as const;

export type Failure = { ok: false; reason: string; message: string };
export type Read<T> = { ok: true; value: T } | Failure;

export const fail = (reason: string, message: string): Failure => ({ ok: false, reason, message });

export interface SignedVoucher {
  channelId: Hex;
  maxClaimableAmount: bigint;
  signature: Hex;
}

export interface Erc3009DepositAuthorization {
  method: "eip3009";
  validAfter: bigint;
  validBefore: bigint;
  salt: bigint;
  signature: Hex;
}

export interface Permit2DepositAuthorization {
  method: "permit2";
  from: Address;
  token: Address;
  amount: bigint;
  spender: Address;
  nonce: bigint;
  deadline: bigint;
  witnessChannelId: Hex;
  signature: Hex;
}

export type DepositPayload = {
  type: "deposit";
  channelConfig: ChannelConfig;
  voucher: SignedVoucher;
  amount: bigint;
  authorization: Erc3009DepositAuthorization | Permit2DepositAuthorization;
};
export type VoucherPayload = { type: "voucher"; channelConfig: ChannelConfig; voucher: SignedVoucher };
export type RefundPayload = {
  type: "refund";
  channelConfig: ChannelConfig;
  voucher: SignedVoucher;
  /** Undefined: everything unclaimed (the server resolves it before /settle). */
  amount?: bigint;
  refundNonce?: bigint;
  claims?: VoucherClaim[];
  refundAuthorizerSignature?: Hex;
  claimAuthorizerSignature?: Hex;
};
export type ClaimPayload = { type: "claim"; claims: VoucherClaim[]; claimAuthorizerSignature?: Hex };
export type SweepPayload = { type: "settle"; receiver: Address; token: Address };

export type BatchPayload = DepositPayload | VoucherPayload | RefundPayload | ClaimPayload | SweepPayload;

/** Claims per transaction: bounds the calldata and the gas of one claim. */
export const MAX_CLAIMS_PER_BATCH = 200;

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const UINT128_MAX = (1n << 128n) - 1n;
const UINT256_MAX = (1n << 256n) - 1n;

class Bad extends Error {
  constructor(readonly field: string, readonly why: string) {
    super(`${field}: ${why}`);
  }
}

function address(v: unknown, field: string): Address {
  if (typeof v !== "string" || !isAddress(v, { strict: false })) throw new Bad(field, "expected a 0x-prefixed 20-byte address");
  return getAddress(v);
}

function bytes32(v: unknown, field: string): Hex {
  if (typeof v !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(v)) throw new Bad(field, "expected 0x + 64 hex digits");
  return v.toLowerCase() as Hex;
}

function hexBytes(v: unknown, field: string, maxBytes = 4096): Hex {
  if (typeof v !== "string" || !isHex(v) || v.length % 2 !== 0 || v.length < 4 || v.length > 2 + maxBytes * 2) throw new Bad(field, "expected 0x-prefixed hex bytes");
  return v as Hex;
}

/** A decimal string (or, for the few numeric fields the spec writes as numbers, a safe integer). */
function uint(v: unknown, field: string, max: bigint = UINT256_MAX): bigint {
  let n: bigint;
  if (typeof v === "string" && /^(0|[1-9][0-9]{0,77})$/.test(v)) n = BigInt(v);
  else if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) n = BigInt(v);
  else throw new Bad(field, "expected a non-negative integer as a decimal string");
  if (n > max) throw new Bad(field, "out of range");
  return n;
}

/** A 256-bit salt or nonce: decimal, or 0x-hex as the reference client writes its ERC-3009 salt. */
function saltValue(v: unknown, field: string): bigint {
  if (typeof v === "string" && /^0x[0-9a-fA-F]{1,64}$/.test(v)) return BigInt(v);
  return uint(v, field);
}

function obj(v: unknown, field: string): Obj {
  if (!isObj(v)) throw new Bad(field, "expected an object");
  return v;
}

export function readChannelConfig(v: unknown, field: string): ChannelConfig {
  const c = obj(v, field);
  const delay = uint(c.withdrawDelay, `${field}.withdrawDelay`, (1n << 40n) - 1n);
  return {
    payer: address(c.payer, `${field}.payer`),
    payerAuthorizer: address(c.payerAuthorizer, `${field}.payerAuthorizer`),
    receiver: address(c.receiver, `${field}.receiver`),
    receiverAuthorizer: address(c.receiverAuthorizer, `${field}.receiverAuthorizer`),
    token: address(c.token, `${field}.token`),
    withdrawDelay: Number(delay),
    salt: bytes32(c.salt, `${field}.salt`),
  };
}

function readVoucher(v: unknown, field: string): SignedVoucher {
  const o = obj(v, field);
  return {
    channelId: bytes32(o.channelId, `${field}.channelId`),
    maxClaimableAmount: uint(o.maxClaimableAmount, `${field}.maxClaimableAmount`, UINT128_MAX),
    signature: hexBytes(o.signature, `${field}.signature`),
  };
}

function readClaims(v: unknown, field: string): VoucherClaim[] {
  if (!Array.isArray(v)) throw new Bad(field, "expected an array");
  if (v.length > MAX_CLAIMS_PER_BATCH) throw new Bad(field, `at most ${MAX_CLAIMS_PER_BATCH} claims per batch`);
  return v.map((row, i) => {
    const r = obj(row, `${field}[${i}]`);
    const voucher = obj(r.voucher, `${field}[${i}].voucher`);
    return {
      voucher: {
        channel: readChannelConfig(voucher.channel, `${field}[${i}].voucher.channel`),
        maxClaimableAmount: uint(voucher.maxClaimableAmount, `${field}[${i}].voucher.maxClaimableAmount`, UINT128_MAX),
      },
      signature: hexBytes(r.signature, `${field}[${i}].signature`),
      totalClaimed: uint(r.totalClaimed, `${field}[${i}].totalClaimed`, UINT128_MAX),
    };
  });
}

function readAuthorization(v: unknown, field: string): DepositPayload["authorization"] {
  const a = obj(v, field);
  if (a.erc3009Authorization !== undefined && a.permit2Authorization !== undefined) throw new Bad(field, "exactly one of erc3009Authorization and permit2Authorization");
  if (a.erc3009Authorization !== undefined) {
    const e = obj(a.erc3009Authorization, `${field}.erc3009Authorization`);
    const f = `${field}.erc3009Authorization`;
    return { method: "eip3009", validAfter: uint(e.validAfter, `${f}.validAfter`), validBefore: uint(e.validBefore, `${f}.validBefore`), salt: saltValue(e.salt, `${f}.salt`), signature: hexBytes(e.signature, `${f}.signature`) };
  }
  if (a.permit2Authorization !== undefined) {
    const f = `${field}.permit2Authorization`;
    const p = obj(a.permit2Authorization, f);
    const permitted = obj(p.permitted, `${f}.permitted`);
    const witness = obj(p.witness, `${f}.witness`);
    return {
      method: "permit2",
      from: address(p.from, `${f}.from`),
      token: address(permitted.token, `${f}.permitted.token`),
      amount: uint(permitted.amount, `${f}.permitted.amount`),
      spender: address(p.spender, `${f}.spender`),
      nonce: saltValue(p.nonce, `${f}.nonce`),
      deadline: uint(p.deadline, `${f}.deadline`),
      witnessChannelId: bytes32(witness.channelId, `${f}.witness.channelId`),
      signature: hexBytes(p.signature, `${f}.signature`),
    };
  }
  throw new Bad(field, "expected erc3009Authorization or permit2Authorization");
}

const REASON_OF: Record<BatchPayload["type"], string> = {
  deposit: BatchReason.depositPayload,
  voucher: BatchReason.voucherPayload,
  refund: BatchReason.refundPayload,
  claim: BatchReason.claimPayload,
  settle: BatchReason.settlePayload,
};

/** Reads `paymentPayload.payload` of any of the five types. */
export function readBatchPayload(raw: unknown): Read<BatchPayload> {
  if (!isObj(raw)) return fail(BatchReason.payloadType, "paymentPayload.payload: expected an object");
  const type = raw.type;
  if (type !== "deposit" && type !== "voucher" && type !== "refund" && type !== "claim" && type !== "settle") {
    return fail(BatchReason.payloadType, `paymentPayload.payload.type: expected deposit, voucher, refund, claim or settle, got ${JSON.stringify(type)?.slice(0, 40)}`);
  }
  const f = "paymentPayload.payload";
  try {
    switch (type) {
      case "deposit": {
        const deposit = obj(raw.deposit, `${f}.deposit`);
        const amount = uint(deposit.amount, `${f}.deposit.amount`, UINT128_MAX);
        if (amount === 0n) throw new Bad(`${f}.deposit.amount`, "must be positive");
        return { ok: true, value: { type, channelConfig: readChannelConfig(raw.channelConfig, `${f}.channelConfig`), voucher: readVoucher(raw.voucher, `${f}.voucher`), amount, authorization: readAuthorization(deposit.authorization, `${f}.deposit.authorization`) } };
      }
      case "voucher":
        return { ok: true, value: { type, channelConfig: readChannelConfig(raw.channelConfig, `${f}.channelConfig`), voucher: readVoucher(raw.voucher, `${f}.voucher`) } };
      case "refund": {
        const value: RefundPayload = { type, channelConfig: readChannelConfig(raw.channelConfig, `${f}.channelConfig`), voucher: readVoucher(raw.voucher, `${f}.voucher`) };
        if (raw.amount !== undefined) {
          const amount = uint(raw.amount, `${f}.amount`, UINT128_MAX);
          if (amount === 0n) return fail(BatchReason.refundAmountInvalid, `${f}.amount: must be positive`);
          value.amount = amount;
        }
        if (raw.refundNonce !== undefined) value.refundNonce = uint(raw.refundNonce, `${f}.refundNonce`);
        if (raw.claims !== undefined) value.claims = readClaims(raw.claims, `${f}.claims`);
        if (raw.refundAuthorizerSignature !== undefined) value.refundAuthorizerSignature = hexBytes(raw.refundAuthorizerSignature, `${f}.refundAuthorizerSignature`);
        if (raw.claimAuthorizerSignature !== undefined) value.claimAuthorizerSignature = hexBytes(raw.claimAuthorizerSignature, `${f}.claimAuthorizerSignature`);
        return { ok: true, value };
      }
      case "claim": {
        const claims = readClaims(raw.claims, `${f}.claims`);
        if (claims.length === 0) throw new Bad(`${f}.claims`, "must not be empty");
        const value: ClaimPayload = { type, claims };
        if (raw.claimAuthorizerSignature !== undefined) value.claimAuthorizerSignature = hexBytes(raw.claimAuthorizerSignature, `${f}.claimAuthorizerSignature`);
        return { ok: true, value };
      }
      case "settle":
        return { ok: true, value: { type, receiver: address(raw.receiver, `${f}.receiver`), token: address(raw.token, `${f}.token`) } };
    }
  } catch (e) {
    if (e instanceof Bad) return fail(REASON_OF[type], e.message);
    throw e;
  }
}
