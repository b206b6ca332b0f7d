/**
 * The facilitator's checks of `batch-settlement` payloads (spec "Verification Rules" 1-11), each a
 * function returning undefined or a failure with the spec's reason code. Signatures are checked
 * off-chain (ECDSA) where the channel commits an EOA; contract wallets go through the node
 * (EIP-1271, viem's verifyTypedData).
 */
import type { PaymentRequirements } from "@tollgate/core";
import { encodeFunctionData, getAddress, isAddressEqual, recoverTypedDataAddress, zeroAddress, type Address, type Hex } from "viem";
import { ERC3009_DEPOSIT_COLLECTOR_ADDRESS, PERMIT2_DEPOSIT_COLLECTOR_ADDRESS, batchSettlementAbi } from "../contracts/batch-settlement-abi.ts";
import { PERMIT2_ADDRESS, erc20PermitAbi } from "../contracts/permit2-abi.ts";
import {
  MAX_WITHDRAW_DELAY,
  MIN_WITHDRAW_DELAY,
  computeChannelId,
  depositPermit2WitnessTypes,
  encodeErc3009CollectorData,
  encodePermit2CollectorData,
  erc3009DepositNonce,
  normalizeChannelConfig,
  receiveWithAuthorizationTypes,
  voucherTypedData,
  type ChannelConfig,
} from "./eip712.ts";
import { readSnapshot, shortMessage, type BatchChain, type ChannelSnapshot } from "./facilitator-chain.ts";
import { BatchReason, fail, type DepositPayload, type Failure, type SignedVoucher } from "./facilitator-payload.ts";

/** Rules 1-5: the config hashes to the id and is the one the requirements describe. */
export function checkChannelBinding(config: ChannelConfig, channelId: Hex, requirements: PaymentRequirements, chain: BatchChain): Failure | undefined {
  if (computeChannelId(config, chain.chainId, chain.contract).toLowerCase() !== channelId.toLowerCase()) {
    return fail(BatchReason.channelIdMismatch, "voucher.channelId: is not the EIP-712 hash of channelConfig on this chain");
  }
  if (!sameAddress(config.receiver, requirements.payTo)) return fail(BatchReason.receiverMismatch, "channelConfig.receiver: differs from paymentRequirements.payTo");
  if (!sameAddress(config.token, requirements.asset)) return fail(BatchReason.tokenMismatch, "channelConfig.token: differs from paymentRequirements.asset");
  const extra = requirements.extra ?? {};
  const authorizer = extra.receiverAuthorizer;
  if (typeof authorizer !== "string" || !sameAddress(authorizer, config.receiverAuthorizer) || isAddressEqual(config.receiverAuthorizer, zeroAddress)) {
    return fail(BatchReason.receiverAuthorizerMismatch, "channelConfig.receiverAuthorizer: differs from paymentRequirements.extra.receiverAuthorizer (or is zero)");
  }
  if (extra.withdrawDelay !== undefined && Number(extra.withdrawDelay) !== config.withdrawDelay) {
    return fail(BatchReason.withdrawDelayMismatch, "channelConfig.withdrawDelay: differs from paymentRequirements.extra.withdrawDelay");
  }
  if (config.withdrawDelay < MIN_WITHDRAW_DELAY || config.withdrawDelay > MAX_WITHDRAW_DELAY) {
    return fail(BatchReason.withdrawDelayOutOfRange, `channelConfig.withdrawDelay: must be between ${MIN_WITHDRAW_DELAY} and ${MAX_WITHDRAW_DELAY} seconds`);
  }
  return undefined;
}

function sameAddress(a: string, b: string): boolean {
  try {
    return getAddress(a) === getAddress(b);
  } catch {
    return false;
  }
}

/** Rule 6: the voucher is the payer authorizer's (ECDSA) or, with no authorizer, the payer's (EOA or EIP-1271). */
export async function checkVoucherSignature(chain: BatchChain, config: ChannelConfig, voucher: SignedVoucher): Promise<Failure | undefined> {
  const typed = voucherTypedData(voucher.channelId, voucher.maxClaimableAmount, chain.chainId, chain.contract);
  let ok: boolean;
  try {
    if (!isAddressEqual(config.payerAuthorizer, zeroAddress)) {
      ok = isAddressEqual(await recoverTypedDataAddress({ ...typed, signature: voucher.signature }), config.payerAuthorizer);
    } else {
      ok = await chain.client.verifyTypedData({ ...typed, address: config.payer, signature: voucher.signature });
    }
  } catch {
    ok = false;
  }
  return ok ? undefined : fail(BatchReason.voucherSignature, "voucher.signature: not the channel's voucher signer's signature over this voucher");
}

export type SnapshotRead = { ok: true; snapshot: Awaited<ReturnType<typeof readSnapshot>> } | Failure;

export async function snapshotOf(chain: BatchChain, channelId: Hex): Promise<SnapshotRead> {
  try {
    return { ok: true, snapshot: await readSnapshot(chain, channelId) };
  } catch (e) {
    return fail(BatchReason.rpcReadFailed, `could not read the channel on chain: ${shortMessage(e)}`);
  }
}

/**
 * Rules 7, 9, 10: the channel is funded, the voucher stays within the escrow (plus this deposit),
 * and it is above what was already claimed (a refund's zero-charge voucher may equal it).
 */
export function checkVoucherAgainstChain(voucher: SignedVoucher, raw: { balance: bigint; totalClaimed: bigint }, mode: "voucher" | "refund" | "deposit", depositAmount = 0n): Failure | undefined {
  const balance = raw.balance + depositAmount;
  if (balance === 0n) return fail(BatchReason.channelNotFound, "the channel has no balance on chain (deposit first)");
  if (voucher.maxClaimableAmount > balance) {
    return fail(BatchReason.exceedsBalance, `voucher.maxClaimableAmount: ${voucher.maxClaimableAmount} exceeds the channel's balance ${balance}`);
  }
  const below = mode === "refund" ? voucher.maxClaimableAmount < raw.totalClaimed : voucher.maxClaimableAmount <= raw.totalClaimed;
  if (below) return fail(BatchReason.belowClaimed, `voucher.maxClaimableAmount: must be above the claimed total ${raw.totalClaimed}`);
  return undefined;
}

export function snapshotExtra(s: ChannelSnapshot): ChannelSnapshot {
  return { channelId: s.channelId, balance: s.balance, totalClaimed: s.totalClaimed, withdrawRequestedAt: s.withdrawRequestedAt, refundNonce: s.refundNonce };
}

/** The deposit call: collector and its data, from the payload's authorization. */
export function depositCall(p: DepositPayload, chain: BatchChain): Hex {
  const a = p.authorization;
  const collector = a.method === "eip3009" ? ERC3009_DEPOSIT_COLLECTOR_ADDRESS : PERMIT2_DEPOSIT_COLLECTOR_ADDRESS;
  const data =
    a.method === "eip3009"
      ? encodeErc3009CollectorData({ validAfter: a.validAfter, validBefore: a.validBefore, salt: a.salt, signature: a.signature })
      : encodePermit2CollectorData({ nonce: a.nonce, deadline: a.deadline, signature: a.signature });
  void chain;
  return encodeFunctionData({ abi: batchSettlementAbi, functionName: "deposit", args: [normalizeChannelConfig(p.channelConfig), p.amount, collector, data] });
}

/** How long an authorization must still be valid when checked: it has to survive inclusion. */
const VALIDITY_MARGIN_SECONDS = 6n;

/** The deposit authorization: method as the requirements ask, time window, signature, and the payer's funds. */
export async function checkDepositAuthorization(chain: BatchChain, p: DepositPayload, requirements: PaymentRequirements): Promise<Failure | undefined> {
  const method = requirements.extra?.assetTransferMethod === "permit2" ? "permit2" : "eip3009";
  const a = p.authorization;
  const now = BigInt(Math.floor(Date.now() / 1000));
  const payer = p.channelConfig.payer;
  if (method === "eip3009") {
    if (a.method !== "eip3009") return fail(BatchReason.erc3009Required, "deposit.authorization: erc3009Authorization is required for this asset");
    const name = requirements.extra?.name;
    const version = requirements.extra?.version;
    if (typeof name !== "string" || typeof version !== "string") return fail(BatchReason.missingEip712Domain, "paymentRequirements.extra: name and version (the token's EIP-712 domain) are required");
    if (a.validBefore < now + VALIDITY_MARGIN_SECONDS) return fail(BatchReason.validBefore, "deposit.authorization.erc3009Authorization.validBefore: expired or about to");
    if (a.validAfter > now) return fail(BatchReason.validAfter, "deposit.authorization.erc3009Authorization.validAfter: in the future");
    let ok: boolean;
    try {
      ok = await chain.client.verifyTypedData({
        address: payer,
        domain: { name, version, chainId: chain.chainId, verifyingContract: p.channelConfig.token },
        types: receiveWithAuthorizationTypes,
        primaryType: "ReceiveWithAuthorization",
        message: { from: payer, to: ERC3009_DEPOSIT_COLLECTOR_ADDRESS, value: p.amount, validAfter: a.validAfter, validBefore: a.validBefore, nonce: erc3009DepositNonce(p.voucher.channelId, a.salt) },
        signature: a.signature,
      });
    } catch {
      ok = false;
    }
    if (!ok) return fail(BatchReason.receiveAuthorizationSignature, "deposit.authorization.erc3009Authorization.signature: not the payer's authorization of this deposit");
  } else {
    if (a.method !== "permit2") return fail(BatchReason.permit2Required, "deposit.authorization: permit2Authorization is required for this asset");
    if (!sameAddress(a.spender, PERMIT2_DEPOSIT_COLLECTOR_ADDRESS)) return fail(BatchReason.permit2Spender, "permit2Authorization.spender: must be the Permit2 deposit collector");
    if (a.amount !== p.amount || !sameAddress(a.token, p.channelConfig.token) || !sameAddress(a.from, payer) || a.witnessChannelId !== p.voucher.channelId) {
      return fail(BatchReason.permit2Amount, "permit2Authorization: token, amount, owner or witness.channelId differ from the deposit");
    }
    if (a.deadline < now + VALIDITY_MARGIN_SECONDS) return fail(BatchReason.permit2Deadline, "permit2Authorization.deadline: expired or about to");
    let ok: boolean;
    try {
      ok = await chain.client.verifyTypedData({
        address: payer,
        domain: { name: "Permit2", chainId: chain.chainId, verifyingContract: PERMIT2_ADDRESS },
        types: depositPermit2WitnessTypes,
        primaryType: "PermitWitnessTransferFrom",
        message: { permitted: { token: a.token, amount: a.amount }, spender: a.spender, nonce: a.nonce, deadline: a.deadline, witness: { channelId: p.voucher.channelId } },
        signature: a.signature,
      });
    } catch {
      ok = false;
    }
    if (!ok) return fail(BatchReason.permit2Signature, "permit2Authorization.signature: not the payer's signature over this transfer");
    const allowance = await readOrFail(() => chain.client.readContract({ address: p.channelConfig.token, abi: erc20PermitAbi, functionName: "allowance", args: [payer, PERMIT2_ADDRESS] }));
    if (typeof allowance !== "bigint") return allowance;
    if (allowance < p.amount) return fail(BatchReason.permit2Allowance, "the payer has not approved Permit2 for this amount");
  }
  const funds = await readOrFail(() => chain.client.readContract({ address: p.channelConfig.token, abi: erc20PermitAbi, functionName: "balanceOf", args: [payer] }));
  if (typeof funds !== "bigint") return funds;
  if (funds < p.amount) return fail(BatchReason.insufficientBalance, `the payer holds ${funds}, less than the deposit ${p.amount}`);
  return undefined;
}

async function readOrFail<T>(read: () => Promise<T>): Promise<T | Failure> {
  try {
    return await read();
  } catch (e) {
    return fail(BatchReason.rpcReadFailed, `could not read the token: ${shortMessage(e)}`);
  }
}

/** eth_call of the exact transaction from the relayer: what would revert is refused unsigned. */
export async function simulate(chain: BatchChain, data: Hex): Promise<string | undefined> {
  try {
    await chain.client.call({ account: chain.relayer.address as Address, to: chain.contract, data });
    return undefined;
  } catch (e) {
    return shortMessage(e);
  }
}
