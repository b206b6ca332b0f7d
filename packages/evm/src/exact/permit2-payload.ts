/**
 * The `exact` EVM payload for the Permit2 asset transfer method (`extra.assetTransferMethod:
 * "permit2"`), its runtime schema and its settle-once key. On the wire every number is a decimal
 * string (the Permit2 nonce is a uint256 in decimal, not hex), as the official SDK sends it.
 */
import { isAtomic, parseWith, type ParseResult } from "@tollgate/core";
import { getAddress, isAddress, type Address, type Hex } from "viem";
import { z } from "zod";

/** The reason codes of the Permit2 method: the official SDK's strings, kept verbatim for interop. */
export const Permit2Reason = {
  /** The payer has not approved Permit2 for at least the amount, and no gas-sponsoring extension covers it. */
  allowanceRequired: "permit2_allowance_required",
  invalidSpender: "invalid_permit2_spender",
  recipientMismatch: "invalid_permit2_recipient_mismatch",
  deadlineExpired: "permit2_deadline_expired",
  notYetValid: "permit2_not_yet_valid",
  amountMismatch: "permit2_amount_mismatch",
  tokenMismatch: "permit2_token_mismatch",
  invalidSignature: "invalid_permit2_signature",
  insufficientBalance: "permit2_insufficient_balance",
  simulationFailed: "permit2_simulation_failed",
  proxyNotDeployed: "permit2_proxy_not_deployed",
  invalidNonce: "permit2_invalid_nonce",
  paymentTooEarly: "permit2_payment_too_early",
  /** eip2612GasSponsoring: the extension's fields are missing or malformed. */
  eip2612InvalidFormat: "invalid_eip2612_extension_format",
  eip2612FromMismatch: "eip2612_from_mismatch",
  eip2612AssetMismatch: "eip2612_asset_mismatch",
  eip2612SpenderNotPermit2: "eip2612_spender_not_permit2",
  eip2612DeadlineExpired: "eip2612_deadline_expired",
  eip2612AmountMismatch: "permit2_2612_amount_mismatch",
  /** This facilitator does not take Permit2 payloads (the official SDK's code for a payload type it does not handle). */
  unsupported: "unsupported_payload_type",
} as const;

export interface Permit2Authorization {
  from: Address;
  permitted: { token: Address; amount: string };
  /** The x402 exact Permit2 proxy (never the facilitator). */
  spender: Address;
  /** uint256, decimal string: Permit2's unordered nonce (word = nonce >> 8, bit = nonce & 255). */
  nonce: string;
  /** Unix seconds, decimal string. */
  deadline: string;
  /** `facilitator`: the `upto` scheme's witness only (the one account allowed to settle). */
  witness: { to: Address; validAfter: string; facilitator?: Address };
}

export interface ExactPermit2Payload {
  signature: Hex;
  permit2Authorization: Permit2Authorization;
}

const address = z.string().refine((v) => isAddress(v, { strict: false }), "expected a 0x-prefixed 20-byte address");
const uint = z.string().refine(isAtomic, "expected a non-negative integer string (at most uint256)");
const signature = z
  .string()
  .regex(/^0x([0-9a-fA-F]{2})*$/, "expected 0x-prefixed hex bytes")
  .refine((v) => v.length >= 2 + 128, "expected at least 64 bytes")
  .refine((v) => v.length <= 2 + 2 * 8192, "is too long (more than 8192 bytes)");

/** The field validators of Permit2 payloads (shared by the `exact` and `upto` schemas). */
export const permit2Fields = { address, uint, signature } as const;

export const exactPermit2PayloadSchema = z.looseObject({
  signature,
  permit2Authorization: z.looseObject({
    from: address,
    permitted: z.looseObject({ token: address, amount: uint }),
    spender: address,
    nonce: uint,
    deadline: uint,
    witness: z.looseObject({ to: address, validAfter: uint }),
  }),
});

/** Whether an untrusted `payload` claims the Permit2 method (it has `permit2Authorization`); not yet validated. */
export function isPermit2Payload(value: unknown): boolean {
  return typeof value === "object" && value !== null && "permit2Authorization" in value;
}

/** Validates an untrusted payload; errors name the field, e.g. `paymentPayload.payload.permit2Authorization.nonce: ...`. */
export function parseExactPermit2Payload(value: unknown, root = "paymentPayload.payload"): ParseResult<ExactPermit2Payload> {
  const r = parseWith<ExactPermit2Payload>(exactPermit2PayloadSchema, value, root);
  if (!r.ok) return r;
  const a = r.value.permit2Authorization;
  const witness = { to: getAddress(a.witness.to), validAfter: a.witness.validAfter };
  return { ok: true, value: { signature: r.value.signature, permit2Authorization: checksummedPermit2Authorization(a, witness) } };
}

/**
 * A validated Permit2 authorization with every address checksummed once (so every later comparison
 * and encoding sees one spelling) and only the known fields kept; `witness` is the scheme's own,
 * already checksummed (exact: `{to, validAfter}`; upto adds `facilitator`).
 */
export function checksummedPermit2Authorization<W>(
  a: { from: string; permitted: { token: string; amount: string }; spender: string; nonce: string; deadline: string },
  witness: W,
) {
  return {
    from: getAddress(a.from),
    permitted: { token: getAddress(a.permitted.token), amount: a.permitted.amount },
    spender: getAddress(a.spender),
    nonce: a.nonce,
    deadline: a.deadline,
    witness,
  };
}

/**
 * The settle-once key of a Permit2 payment: `network|token|owner|permit2-nonce`, lower-case, the
 * nonce in decimal. Permit2 nonces are per owner across all tokens, so this names one payment;
 * written in decimal it can never equal an EIP-3009 key of the same payer (0x-hex nonce).
 */
export function permit2PaymentKey(network: string, token: string, owner: string, nonce: string | bigint): string {
  return `${network}|${token.toLowerCase()}|${owner.toLowerCase()}|${BigInt(nonce).toString()}`;
}
