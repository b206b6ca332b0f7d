/**
 * Who signed an `exact` EVM (EIP-3009) payment, off-chain: the EIP-712 digest of the
 * authorization under the token's domain (from the requirements), recovered with secp256k1 and
 * compared with `authorization.from`. This is what the facilitator keys its ledger, claims,
 * rate limits and idempotency index on, so nothing is written for a payer who did not sign.
 *
 * Contract-wallet (ERC-1271) signatures cannot be judged off-chain: they are refused here unless
 * the facilitator opted into them (then the caller checks them on-chain).
 */
import { Reason, evmChainId, type AuthenticateResult, type PaymentPayload, type PaymentRequirements } from "@tollgate/core";
import { getAddress, hexToBytes, isAddress, size, type Address, type Hex } from "viem";
import { recoverAddress } from "../crypto/recover.ts";
import { domainSeparator, transferAuthorizationDigest } from "./digest.ts";
import { parseExactEvmPayload, toTransferAuthorization, type TransferAuthorization } from "./payload.ts";

/** secp256k1 group order; signatures with s above n/2 are the malleable twin (EIP-2). */
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const SECP256K1_HALF_N = SECP256K1_N / 2n;

/** The one format of an EIP-3009 authorization's settle-once key: `network|asset|payer|nonce`, lower-case. */
export function authorizationKey(network: string, asset: string, payer: string, nonce: string): string {
  return `${network}|${asset.toLowerCase()}|${payer.toLowerCase()}|${nonce.toLowerCase()}`;
}

/** Why a 65-byte ECDSA signature is unacceptable before recovery, or undefined. */
export function signatureProblem(signature: Hex): string | undefined {
  const r = BigInt("0x" + signature.slice(2, 66));
  const s = BigInt("0x" + signature.slice(66, 130));
  const v = parseInt(signature.slice(130, 132), 16);
  if (![0, 1, 27, 28].includes(v)) return `invalid recovery id v=${v}`;
  if (r === 0n || r >= SECP256K1_N || s === 0n) return "r or s out of range";
  if (s > SECP256K1_HALF_N) return "s is in the upper half of the curve order (malleable signature, EIP-2)";
  return undefined;
}

export type Recover = (separator: { bytes: Uint8Array; hex: Hex }, auth: TransferAuthorization, signature: Hex) => Address | undefined;

const recoverPlain: Recover = (separator, auth, signature) => recoverAddress(transferAuthorizationDigest(separator.bytes, auth), hexToBytes(signature));

export interface AuthenticatedAuthorization {
  ok: true;
  payer: string;
  key: string;
  /** The signer, checksummed. */
  from: Address;
  auth: TransferAuthorization;
  signature: Hex;
  /** False: a contract-wallet signature, not checked here (only when `contractWallets` is set). */
  ecdsa: boolean;
}

/**
 * Authenticates the payload's signer off-chain. With `contractWallets`, a signature that is not
 * the ECDSA signature of `from` is passed back with `ecdsa: false` for an on-chain check;
 * without, it is refused.
 */
export function authenticateExactEvm(
  payload: PaymentPayload,
  requirements: PaymentRequirements,
  options: { contractWallets?: boolean; recover?: Recover } = {},
): AuthenticatedAuthorization | Extract<AuthenticateResult, { ok: false }> {
  const parsed = parseExactEvmPayload(payload?.payload);
  if (!parsed.ok) return { ok: false, reason: Reason.invalidPayload, message: parsed.message };
  const chainId = evmChainId(requirements.network);
  if (chainId === undefined) return { ok: false, reason: Reason.invalidNetwork, message: `paymentRequirements.network: ${JSON.stringify(requirements.network)} is not an eip155 network` };
  if (!isAddress(requirements.asset, { strict: false })) return { ok: false, reason: Reason.invalidPaymentRequirements, message: "paymentRequirements.asset: not an address" };
  const name = requirements.extra?.name;
  const version = requirements.extra?.version;
  if (typeof name !== "string" || name === "" || typeof version !== "string" || version === "") {
    return {
      ok: false,
      reason: Reason.invalidPaymentRequirements,
      message: "paymentRequirements.extra.name and paymentRequirements.extra.version are required (the token's EIP-712 domain)",
    };
  }
  const wire = parsed.value.authorization;
  const signature = parsed.value.signature;
  const from = getAddress(wire.from);
  const auth = toTransferAuthorization({ ...wire, from, to: getAddress(wire.to) });
  const key = authorizationKey(requirements.network, requirements.asset, from, auth.nonce);
  const base = { payer: from.toLowerCase(), key, from, auth, signature };
  if (size(signature) === 65) {
    const problem = signatureProblem(signature);
    if (problem) return { ok: false, reason: Reason.evmSignature, message: `paymentPayload.payload.signature: ${problem}` };
    const separator = domainSeparator({ name, version, chainId, verifyingContract: getAddress(requirements.asset) });
    const recovered = (options.recover ?? recoverPlain)(separator, auth, signature);
    if (recovered && recovered.toLowerCase() === base.payer) return { ok: true, ...base, ecdsa: true };
  }
  if (options.contractWallets) return { ok: true, ...base, ecdsa: false };
  return size(signature) === 65
    ? { ok: false, reason: Reason.evmSignature, message: "paymentPayload.payload.signature: does not recover to authorization.from for this token, chain and message" }
    : {
        ok: false,
        reason: Reason.evmContractWalletNotAllowed,
        message: "paymentPayload.payload.signature: not a 65-byte ECDSA signature; this facilitator does not accept contract-wallet (ERC-1271) signatures",
      };
}
