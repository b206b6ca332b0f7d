/**
 * Stub schemes and request builders for the facilitator's unit tests. The stub checks what
 * a real scheme would check (amount, recipient, a well-formed signature), counts calls,
 * and "settles" by returning a fake transaction hash after a short delay, so concurrency
 * is real even though the chain is not.
 */
import { randomBytes } from "node:crypto";
import { createFacilitator, Reason, type PaymentPayload, type PaymentRequirements, type SchemeFacilitator, type SettleResponse } from "@tollgate/core";

export const NETWORK = "eip155:84532" as const;
export const ASSET = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
export const PAYEE = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
export const PAYER = "0x857b06519E91e3A54538791bDbb0E22373e36b66";
export const FACILITATOR_SIGNER = "0x1111111111111111111111111111111111111111";

export interface StubScheme extends SchemeFacilitator {
  settleCalls: number;
  verifyCalls: number;
  /** Makes the next settles fail with this reason (no transaction). */
  failWith?: string;
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
    async verify(payload, requirements) {
      scheme.verifyCalls++;
      const auth = payload.payload.authorization as { from: string; value: string; to: string } | undefined;
      if (!auth || typeof payload.payload.signature !== "string") return { isValid: false, invalidReason: Reason.invalidPayload };
      if (auth.value !== requirements.amount) return { isValid: false, invalidReason: Reason.evmValueMismatch, payer: auth.from };
      if (auth.to.toLowerCase() !== requirements.payTo.toLowerCase()) return { isValid: false, invalidReason: Reason.evmRecipientMismatch, payer: auth.from };
      return { isValid: true, payer: auth.from };
    },
    async settle(payload, requirements): Promise<SettleResponse> {
      scheme.settleCalls++;
      const n = scheme.settleCalls;
      await new Promise((r) => setTimeout(r, scheme.settleDelayMs));
      const auth = payload.payload.authorization as { from: string };
      if (scheme.failWith) return { success: false, errorReason: scheme.failWith, transaction: "", network: requirements.network, payer: auth.from };
      return { success: true, transaction: "0x" + n.toString(16).padStart(64, "0"), network: requirements.network, payer: auth.from, amount: requirements.amount };
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

export function signature(): string {
  return "0x" + randomBytes(65).toString("hex");
}

export function nonce(): string {
  return "0x" + randomBytes(32).toString("hex");
}

export interface BodyOptions {
  amount?: string;
  nonce?: string;
  signature?: string;
  from?: string;
  id?: string;
}

/** A v2 /verify or /settle body with an EIP-3009-shaped payload. */
export function body(o: BodyOptions = {}): { x402Version: 2; paymentPayload: PaymentPayload; paymentRequirements: PaymentRequirements } {
  const q = requirements(o.amount);
  return {
    x402Version: 2,
    paymentPayload: {
      x402Version: 2,
      resource: { url: "https://api.example.com/weather" },
      accepted: q,
      payload: {
        signature: o.signature ?? signature(),
        authorization: { from: o.from ?? PAYER, to: PAYEE, value: q.amount, validAfter: "0", validBefore: "99999999999", nonce: o.nonce ?? nonce() },
      },
      ...(o.id ? { extensions: { "payment-identifier": { info: { required: false, id: o.id } } } } : {}),
    },
    paymentRequirements: q,
  };
}

export function post(path: string, value: unknown, headers: Record<string, string> = {}): Request {
  return new Request(`http://facilitator.test${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof value === "string" ? value : JSON.stringify(value),
  });
}
