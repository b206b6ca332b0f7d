/**
 * Settling a verified Permit2 payment: one transaction calling the x402 exact Permit2 proxy
 * (`settle`, or `settleWithPermit` with the eip2612GasSponsoring permit). The scheme does not
 * decide whether a payment may settle again (the facilitator's ledger does, keyed by
 * permit2PaymentKey); the chain refuses a used nonce anyway.
 *
 * A custom submitter (`submitPermit2`) gets the call; without one, a small built-in sender uses
 * the scheme's signer, one transaction at a time per network (so two settlements never take the
 * same account nonce), and judges the receipt by the token's own Transfer log.
 */
import { Reason, safeMessage, type PaymentPayload, type PaymentRequirements, type SettleResponse } from "@tollgate/core";
import type { Hex, TransactionReceipt } from "viem";
import { revertDataOf } from "../../errors.ts";
import { permit2ReceiptSettled } from "../../settlement/receipt.ts";
import { settleResponseOf, settlementFailed, type SettlementResult } from "../../settlement/result.ts";
import { permit2RevertReason } from "../permit2-encode.ts";
import { permit2PaymentKey } from "../permit2-payload.ts";
import type { FacilitatorContext, NetworkState } from "./context.ts";
import { checkPermit2, type Permit2CheckOptions } from "./permit2-check.ts";
import type { ExactEvmFacilitatorConfig, ExactPermit2SettlementCall, ExactPermit2Submit } from "./types.ts";

/**
 * Checks and submits one Permit2 payment. `opts` (upto): the scheme and the charge; `requirements`
 * then carry the signed maximum, so the payment is judged against what the payer signed. The
 * response's `amount` is what moved.
 */
export async function settlePermit2Payment(ctx: FacilitatorContext, submit: ExactPermit2Submit, payload: PaymentPayload, requirements: PaymentRequirements, opts: Permit2CheckOptions = {}): Promise<SettleResponse> {
  const network = requirements.network;
  const r = await checkPermit2(ctx, payload, requirements, ctx.settleDryRun, opts);
  if (!r.ok) return { success: false, errorReason: r.reason, errorMessage: r.message, transaction: "", network, ...(r.payer ? { payer: r.payer } : {}) };
  const call: ExactPermit2SettlementCall = {
    network,
    asset: r.asset,
    to: r.method.proxy,
    data: r.data,
    key: permit2PaymentKey(network, r.asset, r.payer, r.auth.nonce),
    authorization: r.auth,
    signature: r.signature,
    ...(r.eip2612 ? { eip2612: true } : {}),
    ...(r.contractWallet ? { contractWallet: true } : {}),
    // upto: the proxy moves the charge, and only witness.facilitator may send the call.
    ...(r.method.scheme === "upto" ? { amount: r.charge.toString(), sender: r.auth.witness.facilitator! } : {}),
  };
  let result: SettlementResult;
  try {
    result = await submit(call);
  } catch (e) {
    result = settlementFailed(Reason.unexpectedSettleError, `settlement submitter failed: ${safeMessage(e)}`);
  }
  if (result.status === "failed" && result.transaction) ctx.backoff.suspend(network, r.payer);
  return settleResponseOf(result, { network, payer: r.payer, amount: r.charge.toString() });
}

/**
 * Settled iff the transaction succeeded, the proxy logged Settled/SettledWithPermit AND the token
 * itself logged Transfer(owner → witness.to, amount): the settlement engine's own rule (one reader).
 */
export function permit2Settled(
  receipt: TransactionReceipt,
  call: Pick<ExactPermit2SettlementCall, "asset" | "authorization"> & Partial<Pick<ExactPermit2SettlementCall, "to" | "amount">>,
): boolean {
  const a = call.authorization;
  return permit2ReceiptSettled(receipt, { token: call.asset, from: a.from, to: a.witness.to, amount: call.amount ?? a.permitted.amount, ...(call.to ? { proxy: call.to } : {}) });
}

/** The built-in sender (no settlement engine): sequential per network, simulated by gas estimation. */
export function builtInPermit2Submit(ctx: FacilitatorContext, config: ExactEvmFacilitatorConfig): ExactPermit2Submit {
  const locks = new Map<string, Promise<unknown>>();
  return async (call) => {
    const net = ctx.nets.get(call.network);
    if (!net) return settlementFailed(Reason.invalidNetwork, `network: ${call.network} is not served`);
    const previous = locks.get(call.network) ?? Promise.resolve();
    const sent = previous.then(() => sendOne(ctx, config, net, call));
    // The next send waits only until this one reached the node (its nonce is then "pending").
    locks.set(call.network, sent.catch(() => undefined));
    const hash = await sent;
    if (typeof hash !== "string") return hash;
    return awaitReceipt(net, config, call, hash);
  };
}

async function sendOne(ctx: FacilitatorContext, config: ExactEvmFacilitatorConfig, net: NetworkState, call: ExactPermit2SettlementCall): Promise<Hex | SettlementResult> {
  const from = ctx.signer.address;
  let gas: bigint;
  try {
    gas = await net.client.estimateGas({ account: from, to: call.to, data: call.data });
  } catch (e) {
    const revert = revertDataOf(e);
    if (revert === undefined) return settlementFailed(Reason.unexpectedSettleError, `gas estimation failed: ${safeMessage(e)}; nothing was sent`);
    const r = permit2RevertReason(revert);
    return settlementFailed(r.reason, `settlement would revert: ${r.description}; nothing was sent`);
  }
  if (gas > ctx.maxGasPerSettlement) return settlementFailed(Reason.unexpectedSettleError, `estimated gas ${gas} exceeds the cap of ${ctx.maxGasPerSettlement}; nothing was sent`);
  const fees = await net.client.estimateFeesPerGas();
  const cap = config.maxFeePerGasCap;
  const maxFeePerGas = cap !== undefined && fees.maxFeePerGas > cap ? cap : fees.maxFeePerGas;
  const maxPriorityFeePerGas = fees.maxPriorityFeePerGas > maxFeePerGas ? maxFeePerGas : fees.maxPriorityFeePerGas;
  const nonce = await net.client.getTransactionCount({ address: from, blockTag: "pending" });
  const serialized = await ctx.signer.signTransaction({
    type: "eip1559",
    chainId: net.chainId,
    to: call.to,
    data: call.data,
    gas: (gas * 13n) / 10n + 10_000n,
    nonce,
    maxFeePerGas,
    maxPriorityFeePerGas,
  });
  try {
    return await net.client.sendRawTransaction({ serializedTransaction: serialized });
  } catch (e) {
    return settlementFailed(Reason.unexpectedSettleError, `the node refused the settlement transaction: ${safeMessage(e)}`);
  }
}

async function awaitReceipt(net: NetworkState, config: ExactEvmFacilitatorConfig, call: ExactPermit2SettlementCall, hash: Hex): Promise<SettlementResult> {
  let receipt: TransactionReceipt;
  try {
    receipt = await net.client.waitForTransactionReceipt({ hash, timeout: config.receiptTimeoutMs ?? 30_000, pollingInterval: config.pollingIntervalMs ?? 200 });
  } catch {
    // Not final in time (or the node is unreachable): it may still land, so never "failed".
    return { status: "pending", transaction: hash };
  }
  if (permit2Settled(receipt, call)) return { status: "settled", transaction: hash };
  return settlementFailed(Reason.invalidTransactionState, "the settlement transaction was mined but did not transfer the payment", hash);
}
