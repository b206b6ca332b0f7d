/**
 * Test doubles for the resource-server tests: a scheme server pricing in a 6-decimal token,
 * and an in-process facilitator whose verdicts each test sets. No chain is involved; the
 * real schemes and facilitator are exercised by the integration tests.
 */
import { randomBytes } from "node:crypto";
import {
  decimalToAtomic,
  type FacilitatorCallOptions,
  parseMoney,
  type FacilitatorClient,
  type PaymentPayload,
  type PaymentRequirements,
  type SchemeClient,
  type SchemeServer,
  type SettleResponse,
  type SupportedResponse,
  type VerifyResponse,
} from "@tollgate/core";

export const ASSET = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
export const PAY_TO = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
export const PAYER = "0x857b06519E91e3A54538791bDbb0E22373e36b66";
export const TX = "0x" + "ab".repeat(32);

/** The facilitator's answer while a sent transaction has no receipt yet. */
export const PENDING: SettleResponse = {
  success: false,
  errorReason: "settlement_pending",
  transaction: "",
  network: "eip155:84532",
  payer: PAYER,
  extensions: { "tollgate-settlement": { status: "pending", transaction: TX } },
};

export const stubScheme: SchemeServer = {
  scheme: "exact",
  networks: ["eip155:*"],
  parsePrice(price) {
    if (typeof price !== "string") return price;
    const money = parseMoney(price);
    if (money.kind === "token" && money.symbol !== "USDC") throw new Error(`unknown token ${money.symbol}`);
    return { amount: decimalToAtomic(money.decimal, 6).toString(), asset: ASSET, extra: { name: "USDC", version: "2" } };
  },
  enhanceRequirements(requirements, kind) {
    return kind?.extra ? { ...requirements, extra: { ...requirements.extra, ...kind.extra } } : requirements;
  },
};

export interface StubFacilitator extends FacilitatorClient {
  verifyCalls: { payload: PaymentPayload; requirements: PaymentRequirements; options?: FacilitatorCallOptions }[];
  settleCalls: { payload: PaymentPayload; requirements: PaymentRequirements; options?: FacilitatorCallOptions }[];
  verifyResult: VerifyResponse;
  settleResult: SettleResponse | Error;
  /** Answers for the next settle calls, in order, before `settleResult` applies. */
  settleQueue: (SettleResponse | Error)[];
  /** How long each settle takes. */
  settleDelayMs: number;
  supportedResult: SupportedResponse;
  reset(): void;
}

export const SUPPORTED: SupportedResponse = {
  kinds: [
    { x402Version: 2, scheme: "exact", network: "eip155:84532" },
    { x402Version: 1, scheme: "exact", network: "base-sepolia" },
    { x402Version: 2, scheme: "exact", network: "eip155:8453", extra: { hint: "from-facilitator" } },
  ],
  extensions: [],
  signers: { "eip155:*": ["0x1234567890abcdef1234567890abcdef12345678"] },
};

export function stubFacilitator(): StubFacilitator {
  const f: StubFacilitator = {
    verifyCalls: [],
    settleCalls: [],
    verifyResult: { isValid: true, payer: PAYER },
    settleResult: { success: true, transaction: TX, network: "eip155:84532", payer: PAYER },
    settleQueue: [],
    settleDelayMs: 0,
    supportedResult: SUPPORTED,
    reset() {
      f.verifyCalls = [];
      f.settleCalls = [];
      f.verifyResult = { isValid: true, payer: PAYER };
      f.settleResult = { success: true, transaction: TX, network: "eip155:84532", payer: PAYER };
      f.settleQueue = [];
      f.settleDelayMs = 0;
      f.supportedResult = SUPPORTED;
    },
    async verify(payload, requirements, options) {
      f.verifyCalls.push({ payload, requirements, ...(options ? { options } : {}) });
      return f.verifyResult;
    },
    async settle(payload, requirements, options) {
      f.settleCalls.push({ payload, requirements, ...(options ? { options } : {}) });
      if (f.settleDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, f.settleDelayMs));
      const result = f.settleQueue.length > 0 ? f.settleQueue.shift()! : f.settleResult;
      if (result instanceof Error) throw result;
      return { ...result, network: result.network };
    },
    async supported() {
      return f.supportedResult;
    },
  };
  return f;
}

/**
 * A scheme client signing nothing: it returns a payload shaped like the spec's example (an
 * EIP-3009 authorization with a fresh nonce) and records every call, so a test can prove that
 * nothing was signed.
 */
export function stubSchemeClient(): SchemeClient & { calls: PaymentRequirements[] } {
  const calls: PaymentRequirements[] = [];
  return {
    scheme: "exact",
    networks: ["eip155:*"],
    calls,
    payer: () => PAYER,
    async createPayload(requirements) {
      calls.push(requirements);
      const now = Math.floor(Date.now() / 1000);
      return {
        signature: `0x${"2d".repeat(65)}`,
        authorization: {
          from: PAYER,
          to: requirements.payTo,
          value: requirements.amount,
          validAfter: String(now - 600),
          validBefore: String(now + requirements.maxTimeoutSeconds),
          nonce: `0x${randomBytes(32).toString("hex")}`,
        },
      };
    },
  };
}
