/**
 * Verification of an `exact` Solana payment before the fee payer signs anything: the spec's
 * rules (specs/schemes/exact/scheme_exact_svm.md, "Facilitator Verification Rules") plus ours
 * (asset allowlist, zero amount, compute budget). The fee payer's money and signature are what an
 * attacker is after, so every rule is about what that signature could authorize or cost.
 * Cheapest first: everything up to the account lookups needs no RPC.
 */
import { findAssociatedTokenPda } from "@solana-program/token";
import {
  address as toAddress,
  getBase58Decoder,
  getBase64EncodedWireTransaction,
  getPublicKeyFromAddress,
  isAddress,
  signBytes,
  verifySignature,
  type KeyPairSigner,
  type SignatureBytes,
  type Transaction,
} from "@solana/kit";
import { isAtomic, Reason, type PaymentPayload, type PaymentRequirements } from "@tollgate/core";
import type { SolanaChain } from "../../chain.ts";
import { LIGHTHOUSE_PROGRAM, MEMO_PROGRAM, TOKEN_2022_PROGRAM, TOKEN_PROGRAM } from "../../constants.ts";
import { decodeBase64Transaction, parseComputeUnitLimit, parseComputeUnitPrice, parseTransferChecked, type DecodedInstruction, type DecodedTransaction, type TransferChecked } from "../../transaction.ts";

export type Failure = { ok: false; reason: string; message: string; payer?: string };
export type Checked = {
  ok: true;
  payer: string;
  decoded: DecodedTransaction;
  transfer: TransferChecked;
  /** Fully signed wire transaction (base64). */
  wire: string;
  /** Its id: the fee payer's signature, base58 (deterministic for the message: ed25519). */
  signature: string;
};

export interface CheckContext {
  feePayer: KeyPairSigner;
  chains: ReadonlyMap<string, SolanaChain>;
  /** Per network: the accepted mints. */
  assets: ReadonlyMap<string, ReadonlySet<string>>;
  maxComputeUnitPrice: bigint;
  maxComputeUnitLimit: number;
  maxPriorityFeeLamports: bigint;
}

export const fail = (reason: string, message: string, payer?: string): Failure => ({ ok: false, reason, message, ...(payer ? { payer } : {}) });

/**
 * Associated token account addresses, memoized: deriving one costs about a millisecond (sha256
 * and an off-curve check per bump), and the same few (fee payer, payees) recur on every payment.
 * A pure function of its inputs, so the cache can never be wrong; it is bounded, not evicted.
 */
const ataCache = new Map<string, string>();
async function associatedTokenAccount(owner: string, mint: string, tokenProgram: string): Promise<string> {
  const key = `${owner}|${mint}|${tokenProgram}`;
  const hit = ataCache.get(key);
  if (hit) return hit;
  const [ata] = await findAssociatedTokenPda({ owner: toAddress(owner), mint: toAddress(mint), tokenProgram: toAddress(tokenProgram) });
  if (ataCache.size >= 10_000) ataCache.clear();
  ataCache.set(key, ata);
  return ata;
}

/** The requirements alone: scheme, network, asset allowlist, fee payer, amount. */
export function checkRequirements(ctx: CheckContext, requirements: PaymentRequirements): Failure | undefined {
  if (requirements.scheme !== "exact") return fail(Reason.unsupportedScheme, `paymentRequirements.scheme: expected "exact"`);
  if (!ctx.chains.has(requirements.network)) return fail(Reason.invalidNetwork, `paymentRequirements.network: ${requirements.network} is not served`);
  // Before anything else: a mint nobody listed never costs a decode, an RPC call or a signature.
  const accepted = ctx.assets.get(requirements.network);
  if (!accepted || !accepted.has(requirements.asset)) {
    const list = accepted && accepted.size > 0 ? [...accepted].join(", ") : "none configured (list this network's mints in `assets`)";
    return fail(Reason.svmAssetNotAllowed, `paymentRequirements.asset: ${requirements.asset} is not accepted on ${requirements.network} (accepted: ${list})`);
  }
  const extraFeePayer = requirements.extra?.feePayer;
  if (typeof extraFeePayer !== "string" || extraFeePayer.length === 0) return fail(Reason.svmMissingFeePayer, "paymentRequirements.extra.feePayer: missing");
  if (extraFeePayer !== ctx.feePayer.address) return fail(Reason.svmFeePayerNotManaged, `paymentRequirements.extra.feePayer: ${extraFeePayer} is not this facilitator's fee payer`);
  if (!isAddress(requirements.asset)) return fail(Reason.invalidPaymentRequirements, "paymentRequirements.asset: expected a Solana mint address");
  if (!isAddress(requirements.payTo)) return fail(Reason.invalidPaymentRequirements, "paymentRequirements.payTo: expected a Solana address");
  if (typeof requirements.amount !== "string" || !isAtomic(requirements.amount) || BigInt(requirements.amount) >= 1n << 64n) {
    return fail(Reason.invalidPaymentRequirements, "paymentRequirements.amount: expected a u64 integer string");
  }
  // Nothing to pay for, and the fee payer would pay the fee to move nothing.
  if (BigInt(requirements.amount) === 0n) return fail(Reason.amountZero, "paymentRequirements.amount: zero; nothing to settle");
  return undefined;
}

/**
 * Compute budget: the limit and the price each capped, and what the fee payer actually pays on
 * top of the base fee, limit × price, capped too (a high limit at a legal price is still a drain).
 */
export function checkComputeBudget(ctx: CheckContext, ixs: readonly DecodedInstruction[]): Failure | undefined {
  const limit = parseComputeUnitLimit(ixs[0]!);
  if (limit === undefined) return fail(Reason.svmComputeLimitInstruction, "payload.transaction: instruction 1 must be ComputeBudget SetComputeUnitLimit");
  const price = parseComputeUnitPrice(ixs[1]!);
  if (price === undefined) return fail(Reason.svmComputePriceInstruction, "payload.transaction: instruction 2 must be ComputeBudget SetComputeUnitPrice");
  if (limit > ctx.maxComputeUnitLimit) {
    return fail(Reason.svmComputeLimitTooHigh, `payload.transaction: compute unit limit ${limit} exceeds ${ctx.maxComputeUnitLimit}`);
  }
  if (price > ctx.maxComputeUnitPrice) {
    return fail(Reason.svmComputePriceTooHigh, `payload.transaction: compute unit price ${price} exceeds ${ctx.maxComputeUnitPrice} micro-lamports`);
  }
  const priorityFee = (BigInt(limit) * price + 999_999n) / 1_000_000n;
  if (priorityFee > ctx.maxPriorityFeeLamports) {
    return fail(
      Reason.svmComputePriceTooHigh,
      `payload.transaction: priority fee ${priorityFee} lamports (limit ${limit} × price ${price} micro-lamports) exceeds ${ctx.maxPriorityFeeLamports} lamports`,
    );
  }
  return undefined;
}

/** The full static and account check, then the fee payer's co-signature. */
export async function check(ctx: CheckContext, payload: PaymentPayload, requirements: PaymentRequirements): Promise<Failure | Checked> {
  const refused = checkRequirements(ctx, requirements);
  if (refused) return refused;
  let decoded: DecodedTransaction;
  try {
    decoded = decodeBase64Transaction(payload.payload?.transaction);
  } catch (e) {
    return fail(Reason.svmTransactionUndecodable, e instanceof Error ? e.message : "payload.transaction: could not be decoded");
  }
  if (decoded.feePayer !== ctx.feePayer.address) return fail(Reason.svmFeePayerMismatch, `payload.transaction: fee payer ${decoded.feePayer} is not extra.feePayer`);
  const layout = await checkLayout(ctx, decoded, requirements);
  if (!layout.ok) return layout;
  const { transfer, payer } = layout;
  const signatures = await checkSignatures(ctx, decoded, payer);
  if (signatures) return signatures;
  // 5. Account existence.
  const chain = ctx.chains.get(requirements.network)!;
  if (!(await chain.getAccountInfo(transfer.source))) return fail(Reason.svmSenderAtaNotFound, `payload.transaction: source token account ${transfer.source} does not exist`, payer);
  if (!(await chain.getAccountInfo(transfer.destination))) {
    return fail(Reason.svmReceiverAtaNotFound, `payload.transaction: destination token account ${transfer.destination} does not exist`, payer);
  }
  const signed = await coSign(ctx.feePayer, decoded.transaction);
  return { ok: true, payer, decoded, transfer, wire: signed.wire, signature: signed.signature };
}

/** 1–4, 6: instruction layout, compute budget, fee payer safety, transfer intent, optional instructions. */
async function checkLayout(ctx: CheckContext, decoded: DecodedTransaction, requirements: PaymentRequirements): Promise<Failure | { ok: true; transfer: TransferChecked; payer: string }> {
  const ixs = decoded.instructions;
  if (ixs.length < 3 || ixs.length > 6) return fail(Reason.svmInstructionsLength, `payload.transaction: ${ixs.length} instructions (expected 3 to 6)`);
  const budget = checkComputeBudget(ctx, ixs);
  if (budget) return budget;
  const transferIx = ixs[2]!;
  const tokenProgram = transferIx.programAddress;
  const transfer = tokenProgram === TOKEN_PROGRAM || tokenProgram === TOKEN_2022_PROGRAM ? parseTransferChecked(transferIx) : undefined;
  if (!transfer) return fail(Reason.svmNoTransferInstruction, "payload.transaction: instruction 3 must be SPL Token or Token-2022 TransferChecked");
  const payer = transfer.authority;
  const feePayer = ctx.feePayer.address;
  // Fee payer safety: its signature must not move its own tokens, nor appear anywhere else.
  const feePayerAta = await associatedTokenAccount(feePayer, transfer.mint, tokenProgram);
  if (transfer.authority === feePayer || transfer.source === feePayer || transfer.source === feePayerAta) {
    return fail(Reason.svmFeePayerTransferringFunds, "payload.transaction: the fee payer must not be the transfer's authority or source", payer);
  }
  for (const ix of ixs) {
    if (ix.accounts.includes(feePayer)) return fail(Reason.svmFeePayerInInstructionAccounts, `payload.transaction: the fee payer appears in the accounts of a ${ix.programAddress} instruction`, payer);
  }
  // Transfer intent: the asset, to payTo's associated token account, the exact amount.
  if (transfer.mint !== requirements.asset) return fail(Reason.svmMintMismatch, `payload.transaction: mint ${transfer.mint} is not paymentRequirements.asset`, payer);
  const expectedDestination = await associatedTokenAccount(requirements.payTo, requirements.asset, tokenProgram);
  if (transfer.destination !== expectedDestination) return fail(Reason.svmRecipientMismatch, "payload.transaction: destination is not the associated token account of payTo", payer);
  if (transfer.amount !== BigInt(requirements.amount)) {
    return fail(Reason.svmAmountMismatch, `payload.transaction: amount ${transfer.amount} differs from paymentRequirements.amount ${requirements.amount}`, payer);
  }
  const optional = checkOptional(ixs.slice(3), requirements, payer);
  return optional ?? { ok: true, transfer, payer };
}

/** Positions 4 and 5 Lighthouse or Memo, position 6 Memo only; `extra.memo` when required. */
function checkOptional(optional: readonly DecodedInstruction[], requirements: PaymentRequirements, payer: string): Failure | undefined {
  const unknownReasons = [Reason.svmUnknownFourthInstruction, Reason.svmUnknownFifthInstruction, Reason.svmUnknownSixthInstruction];
  for (const [i, ix] of optional.entries()) {
    const allowed = i < 2 ? ix.programAddress === LIGHTHOUSE_PROGRAM || ix.programAddress === MEMO_PROGRAM : ix.programAddress === MEMO_PROGRAM;
    if (!allowed) return fail(unknownReasons[i]!, `payload.transaction: instruction ${i + 4} (${ix.programAddress}) is not allowed`, payer);
  }
  const expectedMemo = requirements.extra?.memo;
  if (expectedMemo === undefined) return undefined;
  const memos = optional.filter((ix) => ix.programAddress === MEMO_PROGRAM);
  if (memos.length !== 1) return fail(Reason.svmMemoCount, `payload.transaction: expected exactly one Memo instruction, found ${memos.length}`, payer);
  const text = new TextDecoder("utf-8", { fatal: false }).decode(memos[0]!.data);
  if (typeof expectedMemo !== "string" || text !== expectedMemo) return fail(Reason.svmMemoMismatch, "payload.transaction: memo differs from paymentRequirements.extra.memo", payer);
  return undefined;
}

/**
 * Every required signature except the fee payer's must be present and valid now; a missing one
 * would only surface at simulation, after we had signed.
 */
async function checkSignatures(ctx: CheckContext, decoded: DecodedTransaction, payer: string): Promise<Failure | undefined> {
  const tx = decoded.transaction;
  for (const signer of decoded.signers) {
    if (signer === ctx.feePayer.address) continue;
    const sig = tx.signatures[toAddress(signer)];
    if (!sig || !(await verifySignature(await getPublicKeyFromAddress(toAddress(signer)), sig, tx.messageBytes))) {
      return fail(Reason.svmSignature, `payload.transaction: signature of ${signer} is missing or invalid`, payer);
    }
  }
  if (!decoded.signers.includes(payer)) return fail(Reason.svmSignature, "payload.transaction: the transfer authority has not signed", payer);
  return undefined;
}

async function coSign(feePayer: KeyPairSigner, tx: Transaction): Promise<{ wire: string; signature: string }> {
  const sig = (await signBytes(feePayer.keyPair.privateKey, tx.messageBytes)) as SignatureBytes;
  const signed: Transaction = { ...tx, signatures: { ...tx.signatures, [feePayer.address]: sig } };
  return { wire: getBase64EncodedWireTransaction(signed as Parameters<typeof getBase64EncodedWireTransaction>[0]), signature: getBase58Decoder().decode(sig) };
}
