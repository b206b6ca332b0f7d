/**
 * Settling a verified payment: hand the encoded call to the submitter and turn its result (a
 * value: settled, failed, pending) into the `/settle` answer. The scheme does not decide whether
 * an authorization may settle again (the facilitator's ledger does), nor keep any in-flight set:
 * the chain's state and the submitter's own merging of a repeated item are the only other facts.
 *
 * Without a custom submitter, a private settlement engine for the scheme's signer sends (batching
 * off): the same simulation, gas cap, fee cap and receipt handling as the facilitator's engine.
 */
import { Reason, safeMessage, type Network, type PaymentPayload, type PaymentRequirements, type SettleResponse } from "@tollgate/core";
import { createSettlementEngine } from "../../settlement/engine.ts";
import { settleResponseOf, settlementFailed, type SettlementResult } from "../../settlement/result.ts";
import type { SettlementEngine } from "../../settlement/types.ts";
import { guardedCheck } from "./check.ts";
import type { FacilitatorContext } from "./context.ts";
import type { ExactEvmFacilitatorConfig, ExactEvmSettlementCall, ExactEvmSubmit } from "./types.ts";

export async function settlePayment(ctx: FacilitatorContext, submit: ExactEvmSubmit, payload: PaymentPayload, requirements: PaymentRequirements): Promise<SettleResponse> {
  const network = requirements.network;
  // The dry run is skipped only when `submit` simulates what it sends (see settleDryRun).
  const r = await guardedCheck(ctx, payload, requirements, Reason.unexpectedSettleError, ctx.settleDryRun);
  if (!r.ok) return { success: false, errorReason: r.reason, errorMessage: r.message, transaction: "", network, ...(r.payer ? { payer: r.payer } : {}) };
  const call: ExactEvmSettlementCall = {
    network,
    asset: r.asset,
    authorization: r.wire,
    signature: r.signature,
    data: r.data,
    ...(r.contractWallet ? { contractWallet: true } : {}),
  };
  const result = await submitSafely(submit, call);
  // Mined and not settled: the fee payer paid for nothing. Not again for a while from this payer.
  if (result.status === "failed" && result.transaction) ctx.backoff.suspend(network, r.payer);
  return settleResponseOf(result, { network, payer: r.payer, amount: requirements.amount });
}

async function submitSafely(submit: ExactEvmSubmit, call: ExactEvmSettlementCall): Promise<SettlementResult> {
  try {
    return await submit(call);
  } catch (e) {
    // A submitter should answer with a value; one that throws tells nothing about the chain.
    return settlementFailed(Reason.unexpectedSettleError, `settlement submitter failed: ${safeMessage(e)}`);
  }
}

/** The built-in submitter: a settlement engine for the scheme's own signer, created on first use. */
export function builtInSubmit(ctx: FacilitatorContext, config: ExactEvmFacilitatorConfig): ExactEvmSubmit {
  let engine: SettlementEngine | undefined;
  return (call) => {
    engine ??= createSettlementEngine({
      networks: [...ctx.nets.values()].map((n) => ({ network: n.network as Network, client: n.client })),
      signers: [ctx.signer],
      batching: false,
      maxGasPerSettlement: ctx.maxGasPerSettlement,
      ...(config.maxFeePerGasCap !== undefined ? { maxFeePerGasCap: config.maxFeePerGasCap } : {}),
      receiptTimeoutMs: config.receiptTimeoutMs ?? 30_000,
      ...(config.pollingIntervalMs !== undefined ? { pollingIntervalMs: config.pollingIntervalMs } : {}),
    });
    return engine.submit(call);
  };
}
