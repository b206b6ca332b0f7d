// AP2 v0.2 Payment Mandate shapes (code/sdk/schemas/ap2/open_payment_mandate.json and
// payment_mandate.json in google-agentic-commerce/AP2), with the x402 extensions this package adds.
// Extensions are extra members on AP2 objects; every AP2 member name is kept as the schema spells it.
import type { PublicMandateJwk } from "./keys.ts";

export const OPEN_PAYMENT_MANDATE_VCT = "mandate.payment.open.1";
export const PAYMENT_MANDATE_VCT = "mandate.payment.1";

export type Frequency = "ON_DEMAND" | "DAILY" | "WEEKLY" | "BIWEEKLY" | "MONTHLY" | "QUARTERLY" | "ANNUALLY";

/** AP2 `types/merchant.json`. For x402 `id` is the payee address (0x…, compared case-insensitively) or an
 * ERC-8004 agent id (any other string, e.g. "eip155:8453:0x8004A1…#42"), matched against `payment.payeeAgentId`. */
export interface Merchant {
  id: string;
  name: string;
  website?: string;
}

/** AP2 `types/payment_instrument.json`; `type: "x402"` instruments carry `network` (CAIP-2) and, optionally,
 * `asset` (absent: any asset on that network). `currency: "USD"` + `decimals` mark a USD-stable asset so
 * USD-denominated ranges and budgets can be applied to it. */
export interface PaymentInstrument {
  id: string;
  type: string;
  description?: string;
  network?: string;
  asset?: string;
  currency?: string;
  decimals?: number;
}

/** `currency: "USD"`: min/max are decimal strings in dollars. Otherwise `currency` is the asset (token
 * address or mint), `network` its CAIP-2 network, and min/max integer strings in atomic units. */
export interface AmountRangeConstraint {
  type: "payment.amount_range";
  currency: string;
  network?: string;
  max: string;
  min?: string;
}

/** AP2 budget; `period_seconds` (extension) makes it a budget per period (periods aligned on the Unix epoch,
 * `floor(at / period_seconds) * period_seconds`); absent, it is AP2's total over the mandate's lifetime. */
export interface BudgetConstraint {
  type: "payment.budget";
  currency: string;
  network?: string;
  max: string;
  period_seconds?: number;
}

export interface AllowedPayeesConstraint {
  type: "payment.allowed_payees";
  allowed: Merchant[];
}

export interface AllowedPaymentInstrumentsConstraint {
  type: "payment.allowed_payment_instruments";
  allowed: PaymentInstrument[];
}

export interface AgentRecurrenceConstraint {
  type: "payment.agent_recurrence";
  frequency: Frequency;
  max_occurrences?: number;
}

/** AP2 execution window, ISO 8601 strings (we write `YYYY-MM-DDTHH:MM:SSZ`). */
export interface ExecutionDateConstraint {
  type: "payment.execution_date";
  not_before?: string;
  not_after?: string;
}

export interface PaymentReferenceConstraint {
  type: "payment.reference";
  conditional_transaction_id: string;
}

export type PaymentConstraint =
  | AllowedPayeesConstraint
  | AllowedPaymentInstrumentsConstraint
  | AmountRangeConstraint
  | BudgetConstraint
  | AgentRecurrenceConstraint
  | ExecutionDateConstraint
  | PaymentReferenceConstraint;

export type ConstraintType = PaymentConstraint["type"] | "mandate.validity";

/** The disclosed claims of a verified open Payment Mandate. */
export interface OpenPaymentMandate {
  vct: typeof OPEN_PAYMENT_MANDATE_VCT;
  /** Mandate id (`jti`); the budget store and revocation key on it. */
  jti: string;
  iat: number;
  exp: number;
  nbf?: number;
  cnf: { jwk: PublicMandateJwk };
  constraints: PaymentConstraint[];
}

/** AP2 `types/amount.json` for x402: `amount` is an atomic-unit integer string, `currency` the asset,
 * `network` (extension) its CAIP-2 network. */
export interface PaymentAmount {
  amount: string;
  currency: string;
  network: string;
}

/** The claims of a closed Payment Mandate (carried in the agent's key-binding JWT). */
export interface ClosedPaymentMandate {
  vct: typeof PAYMENT_MANDATE_VCT;
  transaction_id: string;
  payee: Merchant;
  payment_amount: PaymentAmount;
  payment_instrument: PaymentInstrument;
  /** Key-binding claims (RFC 9901 §4.3). */
  iat: number;
  aud: string;
  nonce: string;
  sd_hash: string;
  /** Extension: the open mandate's `jti`. */
  mandate_id: string;
}

/** One x402 payment as the checks see it. */
export interface MandatePayment {
  payTo: string;
  /** Atomic units, integer string. */
  amount: string;
  asset: string;
  /** CAIP-2, e.g. "eip155:8453". */
  network: string;
  /** Unix seconds. */
  at: number;
  /** ERC-8004 agent id of the payee, when the resource server advertises one. */
  payeeAgentId?: string;
}

export type Refusal = { ok: false; constraint: ConstraintType; code: RefusalCode; reason: string };

export type RefusalCode =
  | "payee_not_allowed"
  | "amount_below_range"
  | "amount_above_range"
  | "currency_mismatch"
  | "budget_exceeded"
  | "network_not_allowed"
  | "asset_not_allowed"
  | "expired"
  | "not_yet_valid"
  | "too_frequent"
  | "occurrences_exceeded"
  | "invalid_amount";
