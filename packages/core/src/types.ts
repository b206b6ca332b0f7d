/**
 * x402 wire types, protocol v2 (current) and v1 (legacy). Field names and meanings follow
 * specs/x402-specification-v2.md and -v1.md exactly; runtime validation lives in schemas.ts.
 */
import type { Network } from "./caip2.ts";

export type { Network };

export type Extensions = Record<string, unknown>;

export interface ResourceInfo {
  url: string;
  description?: string;
  mimeType?: string;
  /** Catalog metadata (bazaar): at most 32 printable ASCII characters. */
  serviceName?: string;
  /** Catalog metadata (bazaar): at most 5 short tags. */
  tags?: string[];
  /** Catalog metadata (bazaar): a public http(s) URL. */
  iconUrl?: string;
}

/** One acceptable way to pay (v2). `amount` is in atomic units of `asset`. */
export interface PaymentRequirements {
  scheme: string;
  network: Network;
  amount: string;
  asset: string;
  payTo: string;
  maxTimeoutSeconds: number;
  extra?: Record<string, unknown>;
}

/** The body of a 402 (v2: base64 in the PAYMENT-REQUIRED header). */
export interface PaymentRequired {
  x402Version: 2;
  error?: string;
  resource: ResourceInfo;
  accepts: PaymentRequirements[];
  extensions?: Extensions;
}

/** What the client sends (v2: base64 in the PAYMENT-SIGNATURE header). */
export interface PaymentPayload {
  x402Version: 2;
  resource?: ResourceInfo;
  accepted: PaymentRequirements;
  payload: Record<string, unknown>;
  extensions?: Extensions;
}

export interface VerifyRequest {
  x402Version: 2;
  paymentPayload: PaymentPayload;
  paymentRequirements: PaymentRequirements;
}
export type SettleRequest = VerifyRequest;

export interface VerifyResponse {
  isValid: boolean;
  invalidReason?: string;
  /** Human-readable detail; not in the spec's table but accepted by the reference clients. */
  invalidMessage?: string;
  payer?: string;
  extensions?: Extensions;
  /** Scheme-specific detail (`batch-settlement`: the on-chain channel snapshot). */
  extra?: Record<string, unknown>;
}

export interface SettleResponse {
  success: boolean;
  errorReason?: string;
  errorMessage?: string;
  payer?: string;
  /** Transaction hash; empty string when nothing was submitted. */
  transaction: string;
  network: Network;
  amount?: string;
  extensions?: Extensions;
  /** Scheme-specific detail (`batch-settlement`: `channelState`, `chargedAmount`). */
  extra?: Record<string, unknown>;
}

export interface SupportedKind {
  x402Version: 1 | 2;
  scheme: string;
  network: string;
  extra?: Record<string, unknown>;
}

export interface SupportedResponse {
  kinds: SupportedKind[];
  extensions: string[];
  signers: Record<string, string[]>;
}

// ---------------------------------------------------------------- v1 (legacy)

/** v1 requirements: named networks ("base-sepolia"), `maxAmountRequired`, resource inline. */
export interface PaymentRequirementsV1 {
  scheme: string;
  network: string;
  maxAmountRequired: string;
  resource: string;
  description: string;
  mimeType: string;
  outputSchema?: Record<string, unknown> | null;
  payTo: string;
  maxTimeoutSeconds: number;
  asset: string;
  extra?: Record<string, unknown> | null;
}

/** v1 402 body (JSON, not a header). */
export interface PaymentRequiredV1 {
  x402Version: 1;
  error: string;
  accepts: PaymentRequirementsV1[];
}

/** v1 payload, base64 in the X-PAYMENT header. */
export interface PaymentPayloadV1 {
  x402Version: 1;
  scheme: string;
  network: string;
  payload: Record<string, unknown>;
}

export interface VerifyRequestV1 {
  x402Version: 1;
  paymentPayload: PaymentPayloadV1;
  paymentRequirements: PaymentRequirementsV1;
}

/** v1 settle response: like v2 but `network` is a v1 name. X-PAYMENT-RESPONSE header. */
export interface SettleResponseV1 {
  success: boolean;
  errorReason?: string;
  payer?: string;
  transaction: string;
  network: string;
  /** Not in the v1 spec; our facilitator's `tollgate-settlement` (pending, replay) rides along. */
  extensions?: Extensions;
}

/** The HTTP header names of each protocol version. */
export const Headers = {
  v2: { required: "PAYMENT-REQUIRED", payment: "PAYMENT-SIGNATURE", response: "PAYMENT-RESPONSE" },
  v1: { payment: "X-PAYMENT", response: "X-PAYMENT-RESPONSE" },
} as const;
