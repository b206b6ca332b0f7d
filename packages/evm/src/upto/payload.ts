/**
 * The `upto` EVM payload (x402 specs/schemes/upto/scheme_upto_evm.md): a Permit2
 * `PermitWitnessTransferFrom` of at most `permitted.amount`, spender the x402 upto proxy, witness
 * `{to, facilitator, validAfter}`. Same wire form as the exact scheme's Permit2 payload plus
 * `witness.facilitator`; every number a decimal string.
 */
import { parseWith, type ParseResult } from "@tollgate/core";
import { getAddress } from "viem";
import { z } from "zod";
import { checksummedPermit2Authorization, permit2Fields, type ExactPermit2Payload } from "../exact/permit2-payload.ts";

/** Reason codes of `upto` beyond the Permit2 ones (exact/permit2-payload.ts Permit2Reason): the spec's and the official SDK's strings. */
export const UptoReason = {
  /** The spec's code: the server asked to settle more than the payer signed. */
  settlementExceedsAmount: "invalid_upto_evm_payload_settlement_exceeds_amount",
  /** witness.facilitator is not this facilitator: only the named one can settle, so it refuses at once. */
  facilitatorMismatch: "upto_facilitator_mismatch",
  /** The proxy's AmountExceedsPermitted revert. */
  amountExceedsPermitted: "upto_amount_exceeds_permitted",
  /** The proxy's UnauthorizedFacilitator revert. */
  unauthorizedFacilitator: "upto_unauthorized_facilitator",
} as const;

/** An upto payload: its authorization always carries `witness.facilitator`. */
export type UptoPermit2Payload = ExactPermit2Payload & { permit2Authorization: { witness: { facilitator: `0x${string}` } } };

const { address, uint, signature } = permit2Fields;

export const uptoPermit2PayloadSchema = z.looseObject({
  signature,
  permit2Authorization: z.looseObject({
    from: address,
    permitted: z.looseObject({ token: address, amount: uint }),
    spender: address,
    nonce: uint,
    deadline: uint,
    witness: z.looseObject({ to: address, facilitator: address, validAfter: uint }),
  }),
});

/** Validates an untrusted upto payload; errors name the field, e.g. `paymentPayload.payload.permit2Authorization.witness.facilitator: ...`. */
export function parseUptoPermit2Payload(value: unknown, root = "paymentPayload.payload"): ParseResult<UptoPermit2Payload> {
  const r = parseWith<UptoPermit2Payload>(uptoPermit2PayloadSchema, value, root);
  if (!r.ok) return r;
  const a = r.value.permit2Authorization;
  const witness = { to: getAddress(a.witness.to), facilitator: getAddress(a.witness.facilitator), validAfter: a.witness.validAfter };
  return { ok: true, value: { signature: r.value.signature, permit2Authorization: checksummedPermit2Authorization(a, witness) } };
}
