/**
 * A `batch-settlement` request, from its voucher to the answer (spec "Request Processing"):
 *
 * 1. one request per channel at a time (hold.ts: this process's lock on the channel id, and the
 *    store's lease when several instances share the store; a second one is answered
 *    `invalid_batch_settlement_evm_channel_busy` at once);
 * 2. the voucher must be `chargedCumulativeAmount + amount`, or the client gets the corrective 402
 *    with `channelState` and `voucherState`;
 * 3. a deposit is verified and settled on chain before anything is served; a plain voucher is
 *    checked off-chain (signature of the channel's voucher signer, within the balance of a fresh
 *    snapshot), otherwise by the facilitator's /verify;
 * 4. the handler runs; only a success commits the new charged total, durably, BEFORE the response
 *    is released: a served voucher is never lost, and a failed handler charges nothing.
 */
import {
  encodeBase64Json,
  Headers as X402Headers,
  type ChannelPayment,
  type ChannelServerFace,
  type FacilitatorCallOptions,
  type PaymentRequirements,
  type SettleResponse,
} from "@tollgate/core";
import type { DecodedPayment, Offer } from "../payment.ts";
import { errorText, internalError, publicSettleResponse, responseTooLarge, type Respond } from "../responses.ts";
import { settleUntilFinal } from "../settlement.ts";
import type { Decision, PaidDecision } from "../types.ts";
import type { InFlight } from "../inflight.ts";
import type { Settings } from "../pipeline.ts";
import { ChannelReason, channelStateOf, parseSnapshot, type ChannelSnapshot } from "./snapshot.ts";
import type { ChannelRecord, ChannelStore } from "./store.ts";
import { refund } from "./refund.ts";
import { holdChannel, type ChannelHold } from "./hold.ts";
import { chargedRequirements } from "../charge.ts";
import { meteredTermsFor, type CompiledMetered } from "../metered/terms.ts";

/** What the channel branch needs from the pipeline. */
export interface ChannelPipe {
  settings: Settings;
  inflight: InFlight;
  store: ChannelStore;
  /** A voucher is checked off-chain only against a snapshot younger than this. */
  maxSnapshotAgeMs: number;
  maxResponseBytes: number;
  route: string;
  /** The route's metered-stream terms: a stream on a channel commits what it delivered. */
  metered?: CompiledMetered;
  /** A 402 for the page; `corrective` adds fields to one offer's `extra` (the corrective 402). */
  paymentRequired(error: string, corrective?: { offer: Offer; extra: Record<string, unknown> }, headers?: Record<string, string>): Respond;
  call: FacilitatorCallOptions | undefined;
  exposedHeaders: string;
}

export async function admitChannel(pipe: ChannelPipe, decoded: DecodedPayment): Promise<Decision> {
  const { offer, payload } = decoded;
  const face = offer.scheme.channels as ChannelServerFace;
  if (decoded.x402Version !== 2) return pipe.paymentRequired(errorText(ChannelReason.payloadType, "batch-settlement is an x402 v2 scheme"));
  const read = face.read(payload, offer.requirements);
  if (!read.ok) return pipe.paymentRequired(errorText(read.reason, `${read.field}: ${read.message}`));
  const payment = read.payment;
  // A voucher's signature does not depend on the channel's state, so it is checked before the
  // channel is locked: a channel's config is public on chain, and a stranger's forged vouchers must
  // not keep the payer's own requests answered channel_busy.
  const signed = payment.type === "refund" ? undefined : await face.checkVoucher(payment, offer.requirements.network);
  if (signed === false) return pipe.paymentRequired(errorText(ChannelReason.voucherSignature, "the voucher is not signed by the channel's voucher signer"));
  const hold = await holdChannel(pipe.inflight, pipe.store, payment.channelId, holdMsOf(offer.requirements), pipe.settings.onError);
  if (!hold) return pipe.paymentRequired(errorText(ChannelReason.channelBusy, "another request on this channel is being served; retry shortly"));
  try {
    const decision = await accept(pipe, decoded, face, payment, signed, hold);
    if (decision.kind !== "paid") await hold.release();
    return decision;
  } catch (e) {
    await hold.release();
    throw e;
  }
}

/**
 * How long a shared store holds a channel for one request: the route's time limit and a minute.
 * A handler still running then can no longer commit (holdLost): its response is never released.
 */
function holdMsOf(requirements: PaymentRequirements): number {
  return (requirements.maxTimeoutSeconds + 60) * 1000;
}

/** The channel's hold ran out before the charge was written: nothing was committed, so nothing is served. */
function holdLost(pipe: ChannelPipe): Respond {
  return pipe.paymentRequired(errorText(ChannelReason.channelBusy, "this request outlived its hold on the channel (maxTimeoutSeconds + 60 s), so nothing was charged or served; retry"));
}

/** `signed`: the voucher's off-chain signature check (admitChannel), undefined when it could not be decided here. */
async function accept(pipe: ChannelPipe, decoded: DecodedPayment, face: ChannelServerFace, payment: ChannelPayment, signed: boolean | undefined, hold: ChannelHold): Promise<Decision> {
  const { offer, payload } = decoded;
  const requirements = offer.requirements;
  const price = BigInt(requirements.amount);
  const known = await pipe.store.get(payment.channelId);
  // A refund is a payment operation, not a paid request: the resource is not run.
  if (payment.type === "refund") return refund(pipe, decoded, face, payment, known, () => corrective(pipe, offer, known), hold);
  if (known && payment.maxClaimableAmount !== BigInt(known.chargedCumulativeAmount) + price) return corrective(pipe, offer, known);

  let snapshot: ChannelSnapshot | undefined = known && snapshotOf(known);
  let settlement: SettleResponse | undefined;
  const fresh = known && Date.now() - known.onchainSyncedAt <= pipe.maxSnapshotAgeMs && known.withdrawRequestedAt === 0;
  // Served off-chain only for a good signature against a fresh snapshot; anything else asks /verify.
  const local = payment.type === "voucher" && fresh && signed === true ? true : undefined;
  if (local === undefined) {
    const verdict = await pipe.settings.facilitator.verify(payload, requirements, pipe.call);
    if (!verdict.isValid) return pipe.paymentRequired(errorText(verdict.invalidReason ?? ChannelReason.voucherPayload, verdict.invalidMessage));
    snapshot = parseSnapshot((verdict as { extra?: unknown }).extra) ?? snapshot;
  }
  if (!snapshot && payment.type === "voucher") return pipe.paymentRequired(errorText(ChannelReason.stateUnavailable, "the facilitator returned no channel snapshot"));
  // Server state loss (spec): without a record the on-chain claimed total is the baseline.
  const base = known ? BigInt(known.chargedCumulativeAmount) : (snapshot?.totalClaimed ?? 0n);
  if (!known && payment.maxClaimableAmount !== base + price) {
    return corrective(pipe, offer, undefined, snapshot && { ...snapshot, channelId: payment.channelId, chargedCumulativeAmount: base });
  }

  if (payment.type === "deposit") {
    const outcome = await settleUntilFinal(() => pipe.settings.facilitator.settle(payload, requirements, pipe.call), {
      timeoutMs: pipe.settings.settlementTimeoutMs,
      pollMs: pipe.settings.settlementPollMs,
    });
    if (outcome.kind === "unreachable") {
      pipe.settings.onError(outcome.error);
      return internalError("settle");
    }
    if (outcome.kind !== "settled") {
      const r = outcome.response;
      return pipe.paymentRequired(errorText(r.errorReason ?? ChannelReason.depositFailed, r.errorMessage), undefined, responseHeader(publicSettleResponse(r)));
    }
    settlement = outcome.response;
    const extra = (settlement as { extra?: Record<string, unknown> }).extra;
    snapshot = parseSnapshot(extra?.channelState) ?? snapshot;
  }
  if (!snapshot) return pipe.paymentRequired(errorText(ChannelReason.stateUnavailable, "no channel snapshot after the deposit"));
  // Nothing is served past the deposit; the facilitator checks this too, a local check must as well.
  if (payment.maxClaimableAmount > snapshot.balance) {
    return pipe.paymentRequired(errorText(ChannelReason.exceedsBalance, `the voucher's ${payment.maxClaimableAmount} is above the channel balance ${snapshot.balance}`));
  }
  if (payment.maxClaimableAmount <= snapshot.totalClaimed) return pipe.paymentRequired(errorText(ChannelReason.belowClaimed, "the voucher is not above the claimed total"));

  const record: ChannelRecord = {
    channelId: payment.channelId,
    network: requirements.network,
    channelConfig: payment.channelConfig,
    receiver: String(payment.channelConfig.receiver ?? "").toLowerCase(),
    token: String(payment.channelConfig.token ?? "").toLowerCase(),
    payer: payment.payer,
    chargedCumulativeAmount: base.toString(),
    signedMaxClaimable: known?.signedMaxClaimable ?? "0",
    signature: known?.signature ?? "",
    balance: snapshot.balance.toString(),
    totalClaimed: snapshot.totalClaimed.toString(),
    withdrawRequestedAt: snapshot.withdrawRequestedAt,
    refundNonce: snapshot.refundNonce.toString(),
    onchainSyncedAt: local === true && known ? known.onchainSyncedAt : Date.now(),
    lastRequestTimestamp: known?.lastRequestTimestamp ?? 0,
    ...(known?.unswept ? { unswept: true } : {}),
  };
  // A deposit landed whatever the handler does: its snapshot is kept even if nothing is charged.
  if (settlement && !(await hold.write(record))) return holdLost(pipe);
  return served(pipe, decoded, payment, record, settlement, hold);
}

/**
 * The handler may run; its success commits the charge before the response goes out. The charge is
 * the price the voucher signed, or less when the handler set one (charge.ts `setCharge`, or a
 * metered stream's delivered units): the voucher is a ceiling, the channel commits what was used.
 */
function served(pipe: ChannelPipe, decoded: DecodedPayment, payment: ChannelPayment, record: ChannelRecord, deposit: SettleResponse | undefined, hold: ChannelHold): PaidDecision {
  let called = false;
  const paid = { x402Version: 2 as const, route: pipe.route, requirements: decoded.offer.requirements, payload: decoded.payload, payer: payment.payer };
  const metered = pipe.metered && meteredTermsFor(pipe.metered, decoded.offer.requirements, pipe.settings.onError);
  return {
    kind: "paid",
    payment: paid,
    maxResponseBytes: pipe.maxResponseBytes,
    ...(metered ? { metered } : {}),
    async settle(held) {
      if (called) throw new Error("settle() was already called for this payment");
      called = true;
      try {
        if (held.aborted) return { kind: "ok", headers: {} };
        if (held.tooLarge) return responseTooLarge(pipe.maxResponseBytes);
        // The handler failed: nothing is charged; the client may send the same voucher again. A
        // deposit made for this request did land: its receipt (charged 0) goes with the error, so
        // the client keeps counting it instead of depositing again.
        if (held.status >= 400) return { kind: "ok", headers: deposit ? receiptHeaders(pipe, decoded, payment, record, deposit, 0n) : {} };
        // A charge that cannot be read within the price commits nothing, and nothing is served.
        const charge = chargedRequirements(paid, decoded.offer.scheme);
        if (!charge.ok) {
          pipe.settings.onError(charge.error);
          return internalError("settle");
        }
        const charged = BigInt(charge.requirements.amount);
        const committed: ChannelRecord = {
          ...record,
          chargedCumulativeAmount: (BigInt(record.chargedCumulativeAmount) + charged).toString(),
          signedMaxClaimable: payment.maxClaimableAmount.toString(),
          signature: payment.signature,
          lastRequestTimestamp: Date.now(),
        };
        // Write-ahead: durable before the response is released, and only while the channel is held.
        if (!(await hold.write(committed, { release: true }))) return holdLost(pipe);
        const headers = receiptHeaders(pipe, decoded, payment, committed, deposit, charged);
        return { kind: "ok", headers, settlement: receiptOf(decoded, payment, committed, deposit, charged) };
      } catch (e) {
        pipe.settings.onError(e);
        return internalError("settle");
      } finally {
        await hold.release();
      }
    },
  };
}

/** The channel receipt (spec): the deposit's transaction and amount when there was one, what this request charged, the channel after it. */
function receiptOf(decoded: DecodedPayment, payment: ChannelPayment, record: ChannelRecord, deposit: SettleResponse | undefined, charged: bigint): SettleResponse & { extra: Record<string, unknown> } {
  return {
    success: true,
    transaction: deposit?.transaction ?? "",
    network: decoded.offer.requirements.network,
    payer: payment.payer,
    amount: deposit ? (payment.depositAmount ?? 0n).toString() : "",
    extra: { chargedAmount: charged.toString(), channelState: channelStateOf(record) },
  };
}

function receiptHeaders(pipe: ChannelPipe, decoded: DecodedPayment, payment: ChannelPayment, record: ChannelRecord, deposit: SettleResponse | undefined, charged: bigint): Record<string, string> {
  return { ...responseHeader(receiptOf(decoded, payment, record, deposit, charged)), "Access-Control-Expose-Headers": pipe.exposedHeaders };
}

/** The corrective 402: the server's view of the channel and the voucher that backs it. */
function corrective(pipe: ChannelPipe, offer: Offer, known: ChannelRecord | undefined, fromChain?: ChannelSnapshot & { channelId: string; chargedCumulativeAmount: bigint }): Respond {
  const extra: Record<string, unknown> = {};
  if (known) {
    extra.channelState = channelStateOf(known);
    if (known.signature) extra.voucherState = { signedMaxClaimable: known.signedMaxClaimable, signature: known.signature };
  } else if (fromChain) {
    extra.channelState = {
      channelId: fromChain.channelId,
      balance: fromChain.balance.toString(),
      totalClaimed: fromChain.totalClaimed.toString(),
      withdrawRequestedAt: fromChain.withdrawRequestedAt,
      refundNonce: fromChain.refundNonce.toString(),
      chargedCumulativeAmount: fromChain.chargedCumulativeAmount.toString(),
    };
  }
  // The bare code: clients match the error string exactly.
  return pipe.paymentRequired(ChannelReason.cumulativeMismatch, { offer, extra });
}

function snapshotOf(r: ChannelRecord): ChannelSnapshot {
  return { balance: BigInt(r.balance), totalClaimed: BigInt(r.totalClaimed), withdrawRequestedAt: r.withdrawRequestedAt, refundNonce: BigInt(r.refundNonce) };
}

function responseHeader(settlement: SettleResponse): Record<string, string> {
  return { [X402Headers.v2.response]: encodeBase64Json(settlement) };
}

export type { PaymentRequirements };
