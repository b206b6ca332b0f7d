/**
 * Why the client refused to pay. Every refusal happens before anything is sent (all but one
 * before anything is signed: a payload signed beyond the validity cap is dropped unsent), so a
 * refused payment never leaves a usable authorization behind.
 */
import type { FieldIssue } from "../schemas.ts";
import type { PaymentRequirements } from "../types.ts";

export const RefusalCode = {
  /** No `accepts` entry matches a configured scheme client (scheme name + network). */
  noSupportedOption: "no_supported_option",
  maxPerRequest: "max_per_request",
  budgetExceeded: "budget_exceeded",
  networkNotAllowed: "network_not_allowed",
  assetNotAllowed: "asset_not_allowed",
  payeeNotAllowed: "payee_not_allowed",
  /** A limit is set but none of them can value this asset (not a known USD asset, no per-asset limit). */
  unknownAssetValue: "unknown_asset_value",
  /**
   * The option asks for a validity (`maxTimeoutSeconds`) above the policy's cap, or the scheme
   * client signed one: a long-lived authorization stays settleable, and counted, that long.
   */
  maxTimeoutExceeded: "max_timeout_exceeded",
} as const;

export type RefusalCode = (typeof RefusalCode)[keyof typeof RefusalCode];

/** One option turned down, and why. */
export interface Refusal {
  code: RefusalCode;
  message: string;
  requirements?: PaymentRequirements;
}

export class PaymentRefusedError extends Error {
  override name = "PaymentRefusedError";
  readonly code: RefusalCode;
  /** Every option considered and the rule that turned it down (server order). */
  readonly refusals: readonly Refusal[];

  constructor(code: RefusalCode, message: string, refusals: readonly Refusal[] = []) {
    super(message);
    this.code = code;
    this.refusals = refusals;
  }
}

/** A 402's payment requirements failed validation; `issues` name the fields. Nothing was signed. */
export class InvalidPaymentRequiredError extends Error {
  override name = "InvalidPaymentRequiredError";
  readonly reason = "invalid_payment_requirements";
  readonly issues: readonly FieldIssue[];

  constructor(message: string, issues: readonly FieldIssue[] = []) {
    super(message);
    this.issues = issues;
  }
}
