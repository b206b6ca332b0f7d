/**
 * A cooperative refund (spec "Cooperative refund flow"): the payer sends a zero-charge voucher
 * (`maxClaimableAmount` = the charged total) with `type: "refund"` and an optional amount. The
 * protected resource is not run. The paywall completes the payload (the amount when omitted, the
 * refund nonce, the claim of what it charged so the refund cannot take it back) and has the
 * facilitator submit it; the server signs with its own receiver-authorizer key when its scheme
 * holds one, otherwise the facilitator signs as the delegated receiver authorizer.
 */
import { encodeBase64Json, Headers as X402Headers, type ChannelPayment, type ChannelServerFace, type SettleResponse } from "@tollgate/core";
import type { DecodedPayment } from "../payment.ts";
import { errorText, internalError, publicSettleResponse, type Respond } from "../responses.ts";
import { settleUntilFinal } from "../settlement.ts";
import type { ChannelPipe } from "./admit.ts";
import { ChannelReason, channelStateOf, parseSnapshot } from "./snapshot.ts";
import type { ChannelRecord } from "./store.ts";
import type { ChannelHold } from "./hold.ts";

export async function refund(pipe: ChannelPipe, decoded: DecodedPayment, face: ChannelServerFace, payment: ChannelPayment, known: ChannelRecord | undefined, corrective: () => Respond, hold: ChannelHold): Promise<Respond> {
  const { offer, payload } = decoded;
  if (!known) return pipe.paymentRequired(errorText(ChannelReason.missingChannel, "this server has no record of the channel"));
  if (payment.maxClaimableAmount !== BigInt(known.chargedCumulativeAmount)) return corrective();
  const verdict = await pipe.settings.facilitator.verify(payload, offer.requirements, pipe.call);
  if (!verdict.isValid) return pipe.paymentRequired(errorText(verdict.invalidReason ?? ChannelReason.refundPayload, verdict.invalidMessage));
  const snapshot = parseSnapshot((verdict as { extra?: unknown }).extra);
  const balance = snapshot?.balance ?? BigInt(known.balance);
  const charged = BigInt(known.chargedCumulativeAmount);
  const remainder = balance - charged;
  if (remainder <= 0n) return pipe.paymentRequired(errorText(ChannelReason.refundNoBalance, "nothing in the channel is left to refund"));
  const amount = payment.refundAmount ?? remainder;
  if (amount > remainder) return pipe.paymentRequired(errorText(ChannelReason.refundAmountInvalid, `at most ${remainder} can be refunded`));

  // The receiver's authorizations are the server's (its own key) or the facilitator's (delegated)
  // to add, never the payer's: a payer-supplied one would replace them at /settle.
  const { refundAuthorizerSignature: _refundSig, claimAuthorizerSignature: _claimSig, ...inner } = payload.payload as Record<string, unknown>;
  const refundNonce = snapshot ? snapshot.refundNonce : BigInt(known.refundNonce);
  // What was charged is claimed in the same transaction: the refund can never take it back.
  const claim = { channelConfig: payment.channelConfig, signedMaxClaimable: payment.maxClaimableAmount, signature: payment.signature, chargedCumulativeAmount: charged };
  const network = offer.requirements.network;
  const own = face.authorizeRefund && face.authorizeClaims
    ? {
        refundAuthorizerSignature: await face.authorizeRefund({ channelId: payment.channelId, refundNonce, amount }, network),
        claimAuthorizerSignature: await face.authorizeClaims([claim], network),
      }
    : {};
  const completed = {
    ...payload,
    payload: { ...inner, amount: amount.toString(), refundNonce: refundNonce.toString(), claims: [face.claimEntry(claim)], ...own },
  };
  const outcome = await settleUntilFinal(() => pipe.settings.facilitator.settle(completed, offer.requirements, pipe.call), {
    timeoutMs: pipe.settings.settlementTimeoutMs,
    pollMs: pipe.settings.settlementPollMs,
  });
  if (outcome.kind === "unreachable") {
    pipe.settings.onError(outcome.error);
    return internalError("settle");
  }
  if (outcome.kind !== "settled") {
    const r = outcome.response;
    return pipe.paymentRequired(errorText(r.errorReason ?? ChannelReason.refundFailed, r.errorMessage), undefined, { [X402Headers.v2.response]: encodeBase64Json(publicSettleResponse(r)) });
  }
  const settled = outcome.response as SettleResponse & { extra?: Record<string, unknown> };
  const after = parseSnapshot(settled.extra?.channelState);
  const record: ChannelRecord = {
    ...known,
    balance: (after?.balance ?? balance - amount).toString(),
    totalClaimed: (after?.totalClaimed ?? charged).toString(),
    withdrawRequestedAt: after?.withdrawRequestedAt ?? known.withdrawRequestedAt,
    refundNonce: (after?.refundNonce ?? BigInt(known.refundNonce) + 1n).toString(),
    onchainSyncedAt: Date.now(),
    // The refund's claim left claimed funds to sweep (claimAndSettle).
    unswept: true,
  };
  // The refund is on chain either way; a hold that ran out leaves the mirror to the next snapshot.
  await hold.write(record);
  const receipt = { ...settled, extra: { ...(settled.extra ?? {}), channelState: channelStateOf(record) } };
  return {
    kind: "respond",
    status: 200,
    headers: { "Content-Type": "application/json", "Cache-Control": "no-store", [X402Headers.v2.response]: encodeBase64Json(receipt), "Access-Control-Expose-Headers": pipe.exposedHeaders },
    body: JSON.stringify({ refunded: amount.toString(), transaction: settled.transaction }),
  };
}
