/**
 * Settling a checked Solana payment, and every answer as a value. A transaction's id is the fee
 * payer's signature, deterministic (ed25519) for a given message: the same payment always has the
 * same id, so "the chain already has this id" is a fact about THIS payment.
 *
 * - Already on chain (before this settle, or sent by this process moments ago): not sent again.
 *   The answer is `duplicate_settlement` (the spec's code; the facilitator's ledger decides which
 *   /settle gets the one success) with what the chain says in our extension: `status: "settled"`
 *   and the id when it landed (so a ledger that answered "pending" earlier learns it settled),
 *   `failed` when it failed, `pending` while not confirmed.
 * - Concurrent settles of one transaction in this process share one send and one answer.
 * - Sent and not confirmed in time: `settlement_pending` (it may still land), never a failure.
 */
import { Reason, type Network, type PaymentRequirements, type SettleResponse } from "@tollgate/core";
import type { SignatureStatus, SolanaChain } from "../../chain.ts";
import { SETTLEMENT_CACHE_MS } from "../../constants.ts";
import type { Checked, Failure } from "./check.ts";

/** Our documented extension carrying a settlement's state and id (see the README). */
export const SETTLEMENT_EXTENSION = "tollgate-settlement";

type Outcome = { status: "settled"; transaction: string } | { status: "failed"; reason: string; message: string; transaction?: string } | { status: "pending"; transaction: string };

export interface SettleContext {
  chains: ReadonlyMap<string, SolanaChain>;
  confirmTimeoutMs: number;
  pollIntervalMs: number;
  /** Transaction ids being settled by this process: copies join the first. */
  inFlight: Map<string, Promise<SettleResponse>>;
  /** Ids this process sent recently (ms expiry): an RPC may not show a fresh id's status yet. */
  recent: Map<string, number>;
}

/** Settles `c` once per process at a time; concurrent copies get the same answer. */
export function settleChecked(ctx: SettleContext, c: Checked, requirements: PaymentRequirements): Promise<SettleResponse> {
  const joined = ctx.inFlight.get(c.signature);
  if (joined) return joined;
  const run = settleOnce(ctx, c, requirements).finally(() => ctx.inFlight.delete(c.signature));
  ctx.inFlight.set(c.signature, run);
  return run;
}

async function settleOnce(ctx: SettleContext, c: Checked, requirements: PaymentRequirements): Promise<SettleResponse> {
  const network = requirements.network;
  const chain = ctx.chains.get(network)!;
  const answer = (o: Outcome) => settleAnswer(o, { network, payer: c.payer, amount: requirements.amount });
  const known = await chain.getSignatureStatus(c.signature);
  if (known || isRecent(ctx, c.signature)) return duplicate(network, c, known ?? (await confirm(ctx, chain, c.signature)));
  const sim = await chain.simulateTransaction(c.wire);
  if (sim.err) return failureAnswer(simulationFailure(sim.err, c), network);
  const sent = await chain.sendTransaction(c.wire);
  if ("error" in sent) {
    const e = sent.error;
    if (e.code === "AlreadyProcessed") return duplicate(network, c, await chain.getSignatureStatus(c.signature));
    const reason = e.code === "BlockhashNotFound" ? Reason.svmBlockhashExpired : Reason.svmTransactionFailed;
    return answer({ status: "failed", reason, message: `submission rejected: ${e.message}`.slice(0, 300) });
  }
  ctx.recent.set(c.signature, Date.now() + SETTLEMENT_CACHE_MS);
  const status = await confirm(ctx, chain, c.signature);
  return answer(outcomeOf(status, c.signature));
}

function isRecent(ctx: SettleContext, signature: string): boolean {
  const now = Date.now();
  for (const [k, exp] of ctx.recent) if (exp <= now) ctx.recent.delete(k);
  return ctx.recent.has(signature);
}

/** Polls the id's status until confirmed, failed, or the bound (then whatever it is: maybe null). */
async function confirm(ctx: SettleContext, chain: SolanaChain, signature: string): Promise<SignatureStatus | null> {
  const deadline = Date.now() + ctx.confirmTimeoutMs;
  for (;;) {
    const status = await chain.getSignatureStatus(signature);
    if (status?.err || status?.confirmationStatus === "confirmed" || status?.confirmationStatus === "finalized") return status;
    if (Date.now() >= deadline) return status;
    await new Promise((res) => setTimeout(res, ctx.pollIntervalMs));
  }
}

function outcomeOf(status: SignatureStatus | null, signature: string): Outcome {
  if (status?.err) return { status: "failed", reason: Reason.svmTransactionFailed, message: `transaction failed on chain: ${status.err.message}`.slice(0, 300), transaction: signature };
  if (status && (status.confirmationStatus === "confirmed" || status.confirmationStatus === "finalized")) return { status: "settled", transaction: signature };
  return { status: "pending", transaction: signature };
}

/** The chain already has this payment's transaction: not sent again; what the chain says rides along. */
function duplicate(network: Network, c: Checked, status: SignatureStatus | null): SettleResponse {
  const o = outcomeOf(status, c.signature);
  return {
    success: false,
    errorReason: Reason.duplicateSettlement,
    errorMessage: `transaction ${c.signature} was already submitted; it is not sent again`,
    transaction: "",
    network,
    payer: c.payer,
    extensions: { [SETTLEMENT_EXTENSION]: { status: o.status, transaction: c.signature } },
  };
}

/** A settlement outcome as the `/settle` answer: failed and pending ones carry `transaction: ""` and the id in our extension. */
export function settleAnswer(o: Outcome, context: { network: Network; payer: string; amount: string }): SettleResponse {
  const { network, payer, amount } = context;
  if (o.status === "settled") return { success: true, transaction: o.transaction, network, payer, amount };
  if (o.status === "pending") {
    return {
      success: false,
      errorReason: Reason.settlementPending,
      errorMessage: `transaction ${o.transaction} was sent and is not confirmed yet; it may still land; retry /settle with the same payload`,
      transaction: "",
      network,
      payer,
      extensions: { [SETTLEMENT_EXTENSION]: { status: "pending", transaction: o.transaction } },
    };
  }
  return {
    success: false,
    errorReason: o.reason,
    errorMessage: o.message,
    transaction: "",
    network,
    payer,
    ...(o.transaction ? { extensions: { [SETTLEMENT_EXTENSION]: { status: "failed", transaction: o.transaction } } } : {}),
  };
}

export function failureAnswer(f: Failure, network: Network): SettleResponse {
  return { success: false, errorReason: f.reason, errorMessage: f.message, transaction: "", network, ...(f.payer ? { payer: f.payer } : {}) };
}

export function simulationFailure(err: { code: string; message: string }, c: { payer: string }): Failure {
  const fail = (reason: string, message: string): Failure => ({ ok: false, reason, message, payer: c.payer });
  if (err.code === "AlreadyProcessed") return fail(Reason.duplicateSettlement, "transaction was already processed");
  if (err.code === "BlockhashNotFound") return fail(Reason.svmBlockhashExpired, "payload.transaction: recent blockhash is expired or unknown");
  // TokenError::InsufficientFunds (custom error 1) in the transfer instruction.
  if (err.code === "InstructionError" && /^\{"InstructionError":\[2,\{"Custom":1\}\]\}$/.test(err.message)) return fail(Reason.insufficientFunds, "payer's token balance is below the amount");
  return fail(Reason.svmSimulationFailed, `simulation failed: ${err.message}`.slice(0, 300));
}

