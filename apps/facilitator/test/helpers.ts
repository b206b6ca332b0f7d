/**
 * Stub schemes and request builders for the facilitator's unit tests. Payloads are real EIP-3009
 * authorizations signed by a test key, and the stub authenticates them like the real `exact`
 * scheme does (ECDSA recovery, off-chain): the service keys nothing on an unsigned claim. The stub
 * checks what a real scheme would check (amount, recipient), counts calls, and "settles" by
 * returning a fake transaction hash after a short delay, so concurrency is real even though the
 * chain is not.
 */
import { randomBytes } from "node:crypto";
import { createFacilitator, Reason, type PaymentPayload, type PaymentRequirements, type SchemeFacilitator, type SettleResponse } from "@tollgate/core";
import { authenticateExactEvm, domainSeparator, hexBytes, signDigest, toTransferAuthorization, transferAuthorizationDigest } from "@tollgate/evm";
import { getAddress, type Address, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

export const NETWORK = "eip155:84532" as const;
export const CHAIN_ID = 84532;
export const ASSET = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
export const PAYEE = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
export const PAYER_KEY: Hex = "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba";
export const PAYER = privateKeyToAccount(PAYER_KEY).address;
export const OTHER_PAYER_KEY: Hex = "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e";
export const OTHER_PAYER = privateKeyToAccount(OTHER_PAYER_KEY).address;
export const FACILITATOR_SIGNER = "0x1111111111111111111111111111111111111111";

export interface StubScheme extends SchemeFacilitator {
  settleCalls: number;
  verifyCalls: number;
  /** Makes the next settles fail with this reason (no transaction). */
  failWith?: string;
  /** Makes the next settles answer as the `exact` scheme does for a mined revert (a transaction hash). */
  revertWith?: string;
  /** Makes the next verifies fail with this reason (e.g. the nonce is used on chain now). */
  verifyFailWith?: string;
  settleDelayMs: number;
}

export function stubScheme(settleDelayMs = 30): StubScheme {
  const scheme: StubScheme = {
    scheme: "exact",
    networks: [NETWORK],
    settleCalls: 0,
    verifyCalls: 0,
    settleDelayMs,
    signers: () => [FACILITATOR_SIGNER],
    async authenticate(payload, requirements) {
      const a = authenticateExactEvm(payload, requirements);
      return a.ok ? { ok: true, payer: a.payer, key: a.key } : a;
    },
    async verify(payload, requirements) {
      scheme.verifyCalls++;
      const auth = payload.payload.authorization as { from: string; value: string; to: string } | undefined;
      if (!auth || typeof payload.payload.signature !== "string") return { isValid: false, invalidReason: Reason.invalidPayload };
      if (scheme.verifyFailWith) return { isValid: false, invalidReason: scheme.verifyFailWith, payer: auth.from };
      if (auth.value !== requirements.amount) return { isValid: false, invalidReason: Reason.evmValueMismatch, payer: auth.from };
      if (auth.to.toLowerCase() !== requirements.payTo.toLowerCase()) return { isValid: false, invalidReason: Reason.evmRecipientMismatch, payer: auth.from };
      return { isValid: true, payer: auth.from };
    },
    async settle(payload, requirements): Promise<SettleResponse> {
      scheme.settleCalls++;
      const n = scheme.settleCalls;
      await new Promise((r) => setTimeout(r, scheme.settleDelayMs));
      const auth = payload.payload.authorization as { from: string };
      const hash = "0x" + n.toString(16).padStart(64, "0");
      if (scheme.revertWith) return { success: false, errorReason: scheme.revertWith, errorMessage: "the settlement transaction reverted", transaction: hash, network: requirements.network, payer: auth.from };
      if (scheme.failWith) return { success: false, errorReason: scheme.failWith, transaction: "", network: requirements.network, payer: auth.from };
      return { success: true, transaction: hash, network: requirements.network, payer: auth.from, amount: requirements.amount };
    },
  };
  return scheme;
}

export function stubFacilitator(scheme = stubScheme()) {
  return { scheme, facilitator: createFacilitator({ schemes: [scheme], extensions: ["payment-identifier"] }) };
}

export function requirements(amount = "10000"): PaymentRequirements {
  return { scheme: "exact", network: NETWORK, amount, asset: ASSET, payTo: PAYEE, maxTimeoutSeconds: 60, extra: { name: "USDC", version: "2" } };
}

export function nonce(): Hex {
  return `0x${randomBytes(32).toString("hex")}`;
}

/** EIP-3009 signature of `auth` for the test token's domain, synchronously. */
export function signAuthorization(key: Hex, auth: { from: string; to: string; value: string; validAfter: string; validBefore: string; nonce: string }): Hex {
  const separator = domainSeparator({ name: "USDC", version: "2", chainId: CHAIN_ID, verifyingContract: getAddress(ASSET) });
  const digest = transferAuthorizationDigest(separator.bytes, toTransferAuthorization({ ...auth, from: getAddress(auth.from), to: getAddress(auth.to), nonce: auth.nonce as Hex }));
  const sig = signDigest(digest, hexBytes(key));
  return `${sig.r}${sig.s.slice(2)}${(27 + sig.yParity).toString(16)}` as Hex;
}

export interface BodyOptions {
  amount?: string;
  nonce?: string;
  /** Signs with this key (default the test payer's). */
  key?: Hex;
  /** Claims this `from` whatever key signs: a forgery when it is not the signer's address. */
  from?: string;
  /** Replaces the signature (e.g. random bytes: an unsigned claim). */
  signature?: string;
  /** Varies the signed content without changing the authorization key. */
  validBefore?: string;
  id?: string;
}

/** A v2 /verify or /settle body with a signed EIP-3009 payload. */
export function body(o: BodyOptions = {}): { x402Version: 2; paymentPayload: PaymentPayload; paymentRequirements: PaymentRequirements } {
  const q = requirements(o.amount);
  const key = o.key ?? PAYER_KEY;
  const signer: Address = privateKeyToAccount(key).address;
  const authorization = { from: o.from ?? signer, to: PAYEE, value: q.amount, validAfter: "0", validBefore: o.validBefore ?? "99999999999", nonce: o.nonce ?? nonce() };
  return {
    x402Version: 2,
    paymentPayload: {
      x402Version: 2,
      resource: { url: "https://api.example.com/weather" },
      accepted: q,
      payload: { signature: o.signature ?? signAuthorization(key, authorization), authorization },
      ...(o.id ? { extensions: { "payment-identifier": { info: { required: false, id: o.id } } } } : {}),
    },
    paymentRequirements: q,
  };
}

/** The settle-once key the service derives for a body (network|asset|payer|nonce, lower-case). */
export function keyOf(b: ReturnType<typeof body>): string {
  const auth = b.paymentPayload.payload.authorization as { from: string; nonce: string };
  return `${b.paymentRequirements.network}|${b.paymentRequirements.asset.toLowerCase()}|${auth.from.toLowerCase()}|${auth.nonce.toLowerCase()}`;
}

export function post(path: string, value: unknown, headers: Record<string, string> = {}): Request {
  return new Request(`http://facilitator.test${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof value === "string" ? value : JSON.stringify(value),
  });
}
