/**
 * What an `upto` settlement would move, decided in ONE place for everyone who acts on it: the
 * scheme's settle (upto/facilitator.ts) and the erc20ApprovalGasSponsoring wrapper, which must
 * never fund gas for a settlement that would send nothing or that is refused.
 *
 * At /settle `requirements.amount` is the charge the resource server decided. It is refused when
 * it is not an atomic amount, when the payload does not parse, or when it exceeds the signed
 * maximum (`invalid_upto_evm_payload_settlement_exceeds_amount`), all before any chain call. A
 * charge of zero is valid and sends no transaction (`sends: false`).
 */
import { isAtomic, Reason, type PaymentPayload, type PaymentRequirements } from "@tollgate/core";
import { parseUptoPermit2Payload, UptoReason, type UptoPermit2Payload } from "./payload.ts";

export type UptoSettleAmount =
  | { ok: false; reason: string; message: string; payer?: string }
  | {
      ok: true;
      payload: UptoPermit2Payload;
      /** The charge, at most `signed`. */
      charge: bigint;
      /** The signed maximum (permitted.amount). */
      signed: bigint;
      /** The requirements as the payer signed them (amount = the maximum): what verify judges. */
      asSigned: PaymentRequirements;
      /** Whether settling sends a transaction: false exactly when the charge is zero. */
      sends: boolean;
    };

/** The charge of an upto settlement, judged off-chain (see the module comment). */
export function uptoSettleAmount(payload: PaymentPayload, requirements: PaymentRequirements): UptoSettleAmount {
  if (typeof requirements.amount !== "string" || !isAtomic(requirements.amount)) {
    return { ok: false, reason: Reason.invalidPaymentRequirements, message: "paymentRequirements.amount: expected the charge as a non-negative integer string of atomic units" };
  }
  const parsed = parseUptoPermit2Payload(payload?.payload);
  if (!parsed.ok) return { ok: false, reason: Reason.invalidPayload, message: parsed.message };
  const a = parsed.value.permit2Authorization;
  const charge = BigInt(requirements.amount);
  const signed = BigInt(a.permitted.amount);
  if (charge > signed) {
    return { ok: false, reason: UptoReason.settlementExceedsAmount, message: `paymentRequirements.amount: the charge ${charge} exceeds the ${signed} the payer authorized; nothing was sent`, payer: a.from };
  }
  return { ok: true, payload: parsed.value, charge, signed, asSigned: { ...requirements, amount: a.permitted.amount }, sends: charge > 0n };
}
