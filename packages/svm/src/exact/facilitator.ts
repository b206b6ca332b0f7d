/**
 * Facilitator face of `exact` on Solana. Verification enforces the spec's rules (specs/schemes/
 * exact/scheme_exact_svm.md, "Facilitator Verification Rules") before the fee payer signs
 * anything; the fee payer's money and signature are what an attacker is after, so every rule
 * is about what that signature could authorize.
 *
 * Replay: a transaction's id is the fee payer's signature, which is deterministic (ed25519) for
 * a given message. Settling checks that id on chain and in a short-lived in-flight cache, so the
 * same payment never reports success twice (the spec's "duplicate settlement" mitigation).
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
import {
  isAtomic,
  Reason,
  type Network,
  type AuthenticateResult,
  type PaymentPayload,
  type PaymentRequirements,
  type SchemeFacilitator,
  type SettleResponse,
  type VerifyResponse,
} from "@tollgate/core";
import type { ChainError, SolanaChain } from "../chain.ts";
import {
  LIGHTHOUSE_PROGRAM,
  MAX_COMPUTE_UNIT_PRICE_MICROLAMPORTS,
  MEMO_PROGRAM,
  SETTLEMENT_CACHE_MS,
  TOKEN_2022_PROGRAM,
  TOKEN_PROGRAM,
} from "../constants.ts";
import {
  decodeBase64Transaction,
  parseComputeUnitLimit,
  parseComputeUnitPrice,
  parseTransferChecked,
  svmAuthorizationKey,
  type DecodedTransaction,
  type TransferChecked,
} from "../transaction.ts";
import { resolveChain, type ChainSource } from "./chains.ts";

export interface ExactSvmFacilitatorOptions {
  networks: ReadonlyArray<{ network: Network; rpc: ChainSource }>;
  /** Pays the transaction fees; never the payer of the payment itself. */
  feePayer: KeyPairSigner;
  /** Cap on SetComputeUnitPrice, micro-lamports per CU (default and maximum per spec: 5 lamports). */
  maxComputeUnitPrice?: bigint;
  /** Bound on waiting for confirmation after submission (default 30 s). */
  confirmTimeoutMs?: number;
  /** Poll interval while confirming (default 500 ms). */
  pollIntervalMs?: number;
}

type Failure = { ok: false; reason: string; message: string; payer?: string };
type Checked = {
  ok: true;
  payer: string;
  decoded: DecodedTransaction;
  transfer: TransferChecked;
  /** Fully signed wire transaction (base64). */
  wire: string;
  /** Its id: the fee payer's signature, base58. */
  signature: string;
};

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

const fail = (reason: string, message: string, payer?: string): Failure => ({ ok: false, reason, message, ...(payer ? { payer } : {}) });

export function exactSvmFacilitator(options: ExactSvmFacilitatorOptions): SchemeFacilitator {
  const feePayer = options.feePayer;
  const feePayerAddress: string = feePayer.address;
  const maxPrice = options.maxComputeUnitPrice ?? MAX_COMPUTE_UNIT_PRICE_MICROLAMPORTS;
  if (maxPrice < 0n || maxPrice > MAX_COMPUTE_UNIT_PRICE_MICROLAMPORTS) {
    throw new RangeError(`maxComputeUnitPrice: must be between 0 and ${MAX_COMPUTE_UNIT_PRICE_MICROLAMPORTS} micro-lamports (spec cap)`);
  }
  const chains = new Map<string, SolanaChain>();
  for (const n of options.networks) {
    if (!n.network.startsWith("solana:")) throw new TypeError(`networks: ${n.network} is not a Solana network`);
    chains.set(n.network, resolveChain(n.rpc, n.network));
  }
  const confirmTimeoutMs = options.confirmTimeoutMs ?? 30_000;
  const pollIntervalMs = options.pollIntervalMs ?? 500;
  /** Transaction ids being or recently settled -> expiry (ms). */
  const inFlight = new Map<string, number>();

  async function check(payload: PaymentPayload, requirements: PaymentRequirements): Promise<Failure | Checked> {
    if (requirements.scheme !== "exact") return fail(Reason.unsupportedScheme, `paymentRequirements.scheme: expected "exact"`);
    const chain = chains.get(requirements.network);
    if (!chain) return fail(Reason.invalidNetwork, `paymentRequirements.network: ${requirements.network} is not served`);
    const extraFeePayer = requirements.extra?.feePayer;
    if (typeof extraFeePayer !== "string" || extraFeePayer.length === 0) {
      return fail(Reason.svmMissingFeePayer, "paymentRequirements.extra.feePayer: missing");
    }
    if (extraFeePayer !== feePayerAddress) {
      return fail(Reason.svmFeePayerNotManaged, `paymentRequirements.extra.feePayer: ${extraFeePayer} is not this facilitator's fee payer`);
    }
    if (!isAddress(requirements.asset)) return fail(Reason.invalidPaymentRequirements, "paymentRequirements.asset: expected a Solana mint address");
    if (!isAddress(requirements.payTo)) return fail(Reason.invalidPaymentRequirements, "paymentRequirements.payTo: expected a Solana address");
    if (!isAtomic(requirements.amount) || BigInt(requirements.amount) >= 1n << 64n) {
      return fail(Reason.invalidPaymentRequirements, "paymentRequirements.amount: expected a u64 integer string");
    }

    let decoded: DecodedTransaction;
    try {
      decoded = decodeBase64Transaction(payload.payload?.transaction);
    } catch (e) {
      return fail(Reason.svmTransactionUndecodable, e instanceof Error ? e.message : "payload.transaction: could not be decoded");
    }
    if (decoded.feePayer !== feePayerAddress) {
      return fail(Reason.svmFeePayerMismatch, `payload.transaction: fee payer ${decoded.feePayer} is not extra.feePayer`);
    }

    // 1. Layout: ComputeLimit, ComputePrice, TransferChecked, then up to three Lighthouse/Memo.
    const ixs = decoded.instructions;
    if (ixs.length < 3 || ixs.length > 6) {
      return fail(Reason.svmInstructionsLength, `payload.transaction: ${ixs.length} instructions (expected 3 to 6)`);
    }
    if (parseComputeUnitLimit(ixs[0]!) === undefined) {
      return fail(Reason.svmComputeLimitInstruction, "payload.transaction: instruction 1 must be ComputeBudget SetComputeUnitLimit");
    }
    const price = parseComputeUnitPrice(ixs[1]!);
    if (price === undefined) {
      return fail(Reason.svmComputePriceInstruction, "payload.transaction: instruction 2 must be ComputeBudget SetComputeUnitPrice");
    }
    if (price > maxPrice) {
      return fail(Reason.svmComputePriceTooHigh, `payload.transaction: compute unit price ${price} exceeds ${maxPrice} micro-lamports`);
    }
    const transferIx = ixs[2]!;
    const tokenProgram = transferIx.programAddress;
    const transfer = tokenProgram === TOKEN_PROGRAM || tokenProgram === TOKEN_2022_PROGRAM ? parseTransferChecked(transferIx) : undefined;
    if (!transfer) {
      return fail(Reason.svmNoTransferInstruction, "payload.transaction: instruction 3 must be SPL Token or Token-2022 TransferChecked");
    }
    const payer = transfer.authority;

    // 2. Fee payer safety: its signature must not move its own tokens, nor appear anywhere else.
    const feePayerAta = await associatedTokenAccount(feePayerAddress, transfer.mint, tokenProgram);
    if (transfer.authority === feePayerAddress || transfer.source === feePayerAddress || transfer.source === feePayerAta) {
      return fail(Reason.svmFeePayerTransferringFunds, "payload.transaction: the fee payer must not be the transfer's authority or source", payer);
    }
    for (const ix of ixs) {
      if (ix.accounts.includes(feePayerAddress)) {
        return fail(Reason.svmFeePayerInInstructionAccounts, `payload.transaction: the fee payer appears in the accounts of a ${ix.programAddress} instruction`, payer);
      }
    }

    // 4 and 6. Transfer intent: the asset, to payTo's associated token account, the exact amount.
    if (transfer.mint !== requirements.asset) {
      return fail(Reason.svmMintMismatch, `payload.transaction: mint ${transfer.mint} is not paymentRequirements.asset`, payer);
    }
    const expectedDestination = await associatedTokenAccount(requirements.payTo, requirements.asset, tokenProgram);
    if (transfer.destination !== expectedDestination) {
      return fail(Reason.svmRecipientMismatch, "payload.transaction: destination is not the associated token account of payTo", payer);
    }
    if (transfer.amount !== BigInt(requirements.amount)) {
      return fail(Reason.svmAmountMismatch, `payload.transaction: amount ${transfer.amount} differs from paymentRequirements.amount ${requirements.amount}`, payer);
    }

    // Optional instructions: positions 4 and 5 Lighthouse or Memo, position 6 Memo only.
    const optional = ixs.slice(3);
    const unknownReasons = [Reason.svmUnknownFourthInstruction, Reason.svmUnknownFifthInstruction, Reason.svmUnknownSixthInstruction];
    for (const [i, ix] of optional.entries()) {
      const allowed = i < 2 ? ix.programAddress === LIGHTHOUSE_PROGRAM || ix.programAddress === MEMO_PROGRAM : ix.programAddress === MEMO_PROGRAM;
      if (!allowed) return fail(unknownReasons[i]!, `payload.transaction: instruction ${i + 4} (${ix.programAddress}) is not allowed`, payer);
    }
    const expectedMemo = requirements.extra?.memo;
    if (expectedMemo !== undefined) {
      const memos = optional.filter((ix) => ix.programAddress === MEMO_PROGRAM);
      if (memos.length !== 1) return fail(Reason.svmMemoCount, `payload.transaction: expected exactly one Memo instruction, found ${memos.length}`, payer);
      const text = new TextDecoder("utf-8", { fatal: false }).decode(memos[0]!.data);
      if (typeof expectedMemo !== "string" || text !== expectedMemo) {
        return fail(Reason.svmMemoMismatch, "payload.transaction: memo differs from paymentRequirements.extra.memo", payer);
      }
    }

    // Every required signature except the fee payer's must be present and valid now; a missing
    // one would only surface at simulation, after we had signed.
    const tx = decoded.transaction;
    for (const signer of decoded.signers) {
      if (signer === feePayerAddress) continue;
      const sig = tx.signatures[toAddress(signer)];
      if (!sig || !(await verifySignature(await getPublicKeyFromAddress(toAddress(signer)), sig, tx.messageBytes))) {
        return fail(Reason.svmSignature, `payload.transaction: signature of ${signer} is missing or invalid`, payer);
      }
    }
    if (!decoded.signers.includes(payer)) {
      return fail(Reason.svmSignature, "payload.transaction: the transfer authority has not signed", payer);
    }

    // 5. Account existence.
    if (!(await chain.getAccountInfo(transfer.source))) {
      return fail(Reason.svmSenderAtaNotFound, `payload.transaction: source token account ${transfer.source} does not exist`, payer);
    }
    if (!(await chain.getAccountInfo(transfer.destination))) {
      return fail(Reason.svmReceiverAtaNotFound, `payload.transaction: destination token account ${transfer.destination} does not exist`, payer);
    }

    const signed = await coSign(tx);
    return { ok: true, payer, decoded, transfer, wire: signed.wire, signature: signed.signature };
  }

  async function coSign(tx: Transaction): Promise<{ wire: string; signature: string }> {
    const sig = (await signBytes(feePayer.keyPair.privateKey, tx.messageBytes)) as SignatureBytes;
    const signed: Transaction = { ...tx, signatures: { ...tx.signatures, [feePayerAddress]: sig } };
    return { wire: getBase64EncodedWireTransaction(signed as Parameters<typeof getBase64EncodedWireTransaction>[0]), signature: getBase58Decoder().decode(sig) };
  }

  /** Full verification: static checks, replay check, then simulation of the co-signed transaction. */
  async function verifyFull(payload: PaymentPayload, requirements: PaymentRequirements): Promise<Failure | Checked> {
    const c = await check(payload, requirements);
    if (!c.ok) return c;
    const chain = chains.get(requirements.network)!;
    const status = await chain.getSignatureStatus(c.signature);
    if (status) return fail(Reason.duplicateSettlement, `transaction ${c.signature} was already submitted`, c.payer);
    const sim = await chain.simulateTransaction(c.wire);
    if (sim.err) return simulationFailure(sim.err, c);
    return c;
  }

  async function verify(payload: PaymentPayload, requirements: PaymentRequirements): Promise<VerifyResponse> {
    const r = await verifyFull(payload, requirements);
    if (!r.ok) return { isValid: false, invalidReason: r.reason, invalidMessage: r.message, ...(r.payer ? { payer: r.payer } : {}) };
    return { isValid: true, payer: r.payer };
  }

  async function settle(payload: PaymentPayload, requirements: PaymentRequirements): Promise<SettleResponse> {
    const network = requirements.network;
    const r = await verifyFull(payload, requirements);
    if (!r.ok) return { success: false, errorReason: r.reason, errorMessage: r.message, transaction: "", network, ...(r.payer ? { payer: r.payer } : {}) };
    const { payer, signature } = r;

    // Check-and-set with no await in between: concurrent settles of one transaction see each other.
    const now = Date.now();
    for (const [k, exp] of inFlight) if (exp <= now) inFlight.delete(k);
    if (inFlight.has(signature)) {
      return { success: false, errorReason: Reason.duplicateSettlement, errorMessage: `transaction ${signature} is already being settled`, transaction: "", network, payer };
    }
    inFlight.set(signature, now + SETTLEMENT_CACHE_MS);

    const chain = chains.get(network)!;
    const sent = await chain.sendTransaction(r.wire);
    if ("error" in sent) {
      const e = sent.error;
      if (e.code === "AlreadyProcessed") {
        return { success: false, errorReason: Reason.duplicateSettlement, errorMessage: `transaction ${signature} was already processed`, transaction: "", network, payer };
      }
      inFlight.delete(signature); // nothing landed: a retry is not a duplicate
      const reason = e.code === "BlockhashNotFound" ? Reason.svmBlockhashExpired : Reason.svmTransactionFailed;
      return { success: false, errorReason: reason, errorMessage: `submission rejected: ${e.message}`.slice(0, 300), transaction: "", network, payer };
    }

    const deadline = Date.now() + confirmTimeoutMs;
    for (;;) {
      const status = await chain.getSignatureStatus(signature);
      if (status?.err) {
        return { success: false, errorReason: Reason.svmTransactionFailed, errorMessage: `transaction failed on chain: ${status.err.message}`.slice(0, 300), transaction: signature, network, payer };
      }
      if (status && (status.confirmationStatus === "confirmed" || status.confirmationStatus === "finalized")) {
        return { success: true, transaction: signature, network, payer, amount: requirements.amount };
      }
      if (Date.now() >= deadline) {
        return { success: false, errorReason: Reason.settlementTimeout, errorMessage: `transaction ${signature} not confirmed within ${confirmTimeoutMs} ms; it may still land`, transaction: signature, network, payer };
      }
      await new Promise((res) => setTimeout(res, pollIntervalMs));
    }
  }

  /**
   * The transfer authority, proven by its ed25519 signature over the message, and a key unique
   * to the payment's content (the signed message), for the service's ledger.
   */
  async function authenticate(payload: PaymentPayload, requirements: PaymentRequirements): Promise<AuthenticateResult> {
    let decoded: ReturnType<typeof decodeBase64Transaction>;
    try {
      decoded = decodeBase64Transaction(payload.payload?.transaction);
    } catch {
      return { ok: false, reason: Reason.svmTransactionUndecodable, message: "payload.transaction: could not be decoded" };
    }
    const ix = decoded.instructions[2];
    const transfer = ix ? parseTransferChecked(ix) : undefined;
    if (!transfer) return { ok: false, reason: Reason.svmNoTransferInstruction, message: "payload.transaction: the third instruction is not an SPL TransferChecked" };
    const tx = decoded.transaction;
    const sig = tx.signatures[toAddress(transfer.authority)];
    let valid = false;
    try {
      valid = !!sig && (await verifySignature(await getPublicKeyFromAddress(toAddress(transfer.authority)), sig, tx.messageBytes));
    } catch {
      valid = false;
    }
    if (!valid) return { ok: false, reason: Reason.svmSignature, message: "payload.transaction: the transfer authority's signature is missing or invalid" };
    return { ok: true, payer: transfer.authority, key: svmAuthorizationKey(requirements.network, tx.messageBytes) };
  }

  return {
    scheme: "exact",
    networks: [...chains.keys()] as Network[],
    signers: () => [feePayerAddress],
    kindExtra: () => ({ feePayer: feePayerAddress }),
    verify,
    settle,
    authenticate,
  };
}

function simulationFailure(err: ChainError, c: Checked): Failure {
  if (err.code === "AlreadyProcessed") return fail(Reason.duplicateSettlement, "transaction was already processed", c.payer);
  if (err.code === "BlockhashNotFound") return fail(Reason.svmBlockhashExpired, "payload.transaction: recent blockhash is expired or unknown", c.payer);
  // TokenError::InsufficientFunds (custom error 1) in the transfer instruction.
  if (err.code === "InstructionError" && /^\{"InstructionError":\[2,\{"Custom":1\}\]\}$/.test(err.message)) {
    return fail(Reason.insufficientFunds, "payer's token balance is below the amount", c.payer);
  }
  return fail(Reason.svmSimulationFailed, `simulation failed: ${err.message}`.slice(0, 300), c.payer);
}
