// Open Payment Mandates (vct `mandate.payment.open.1`): issued by the user's key as an SD-JWT VC, naming
// the agent's key in `cnf.jwk` and the constraints any payment made under it must meet.
import { randomUUID } from "node:crypto";
import { parseAtomic, parseDecimal, USD_SCALE } from "./amount.ts";
import { exportPublicMandateJwk, importPublicMandateJwk, type PrivateMandateJwk, type PublicMandateJwk } from "./keys.ts";
import { decoderInstance, errorMessage, hasher, issuerInstance, verifierInstance } from "./sdjwt.ts";
import {
  OPEN_PAYMENT_MANDATE_VCT,
  type Frequency,
  type Merchant,
  type OpenPaymentMandate,
  type PaymentConstraint,
  type PaymentInstrument,
} from "./types.ts";

/** What the user allows, in this library's terms; `issueOpenMandate` turns it into AP2 constraints. */
export interface OpenMandateConstraints {
  /** Payee addresses (0x…) or ERC-8004 agent ids, or full AP2 Merchant objects. */
  allowedPayees?: Array<string | Merchant>;
  /** Per-payment range: USD decimal strings (for USD-stable assets listed in allowedAssets with usdDecimals),
   * or atomic integer strings of one asset on one network. */
  amountRange?: { currency: "USD"; min?: string; max: string } | { asset: string; network: string; min?: string; max: string };
  /** Total spend, per period when periodSeconds is set (else over the mandate's lifetime, as in AP2). */
  budget?: ({ currency: "USD"; max: string } | { asset: string; network: string; max: string }) & { periodSeconds?: number };
  recurrence?: { frequency: Frequency; maxOccurrences?: number };
  /** Execution window, Unix seconds (payment `at` must fall inside). notBefore is also the credential's `nbf`. */
  notBefore?: number;
  notAfter?: number;
  /** Networks (CAIP-2) and assets payments may use; omit `asset` to allow any asset on the network.
   * `usdDecimals` marks a USD-stable asset (e.g. 6 for USDC) so USD ranges and budgets apply to it. */
  allowedAssets?: Array<{ network: string; asset?: string; usdDecimals?: number; description?: string }>;
  /** AP2 `payment.reference` (digest of an open Checkout Mandate), when there is one. */
  conditionalTransactionId?: string;
}

export interface IssueOpenMandateOptions {
  userKey: PrivateMandateJwk;
  agentPublicJwk: PublicMandateJwk;
  constraints: OpenMandateConstraints;
  /** Unix seconds. */
  expiresAt: number;
  /** Mandate id (`jti`); a random UUID when omitted. */
  id?: string;
  /** Unix seconds; defaults to the current time. */
  issuedAt?: number;
}

const iso = (seconds: number) => new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");

function assertAmount(value: string | undefined, usd: boolean, what: string): void {
  if (value === undefined) return;
  const ok = usd ? parseDecimal(value, USD_SCALE) !== undefined : parseAtomic(value) !== undefined;
  if (!ok) throw new TypeError(`${what}: ${JSON.stringify(value)} is not ${usd ? "a decimal USD amount" : "an atomic integer amount"}`);
}

function assertSeconds(value: number | undefined, what: string): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) throw new TypeError(`${what}: expected Unix seconds`);
}

/** Builds the AP2 constraint array from the library's input (exported for inspection and tests). */
export function buildConstraints(c: OpenMandateConstraints): PaymentConstraint[] {
  const out: PaymentConstraint[] = [];
  if (c.allowedPayees) {
    out.push({
      type: "payment.allowed_payees",
      allowed: c.allowedPayees.map((p) => (typeof p === "string" ? { id: p, name: p } : { ...p })),
    });
  }
  if (c.allowedAssets) {
    out.push({
      type: "payment.allowed_payment_instruments",
      allowed: c.allowedAssets.map((a): PaymentInstrument => {
        const inst: PaymentInstrument = { id: a.asset ? `${a.network}/${a.asset}` : a.network, type: "x402", network: a.network };
        if (a.asset) inst.asset = a.asset;
        if (a.usdDecimals !== undefined) {
          if (!Number.isInteger(a.usdDecimals) || a.usdDecimals < 0 || a.usdDecimals > USD_SCALE) throw new TypeError("allowedAssets: usdDecimals must be an integer 0..18");
          if (!a.asset) throw new TypeError("allowedAssets: usdDecimals needs an asset");
          inst.currency = "USD";
          inst.decimals = a.usdDecimals;
        }
        if (a.description) inst.description = a.description;
        return inst;
      }),
    });
  }
  if (c.amountRange) {
    const r = c.amountRange;
    const usd = "currency" in r;
    assertAmount(r.max, usd, "amountRange.max");
    assertAmount(r.min, usd, "amountRange.min");
    out.push(
      usd
        ? { type: "payment.amount_range", currency: "USD", max: r.max, ...(r.min !== undefined ? { min: r.min } : {}) }
        : { type: "payment.amount_range", currency: r.asset, network: r.network, max: r.max, ...(r.min !== undefined ? { min: r.min } : {}) },
    );
  }
  if (c.budget) {
    const b = c.budget;
    const usd = "currency" in b;
    assertAmount(b.max, usd, "budget.max");
    if (b.periodSeconds !== undefined && (!Number.isSafeInteger(b.periodSeconds) || b.periodSeconds <= 0)) throw new TypeError("budget.periodSeconds must be a positive integer");
    out.push({
      type: "payment.budget",
      currency: usd ? "USD" : b.asset,
      ...(usd ? {} : { network: b.network }),
      max: b.max,
      ...(b.periodSeconds !== undefined ? { period_seconds: b.periodSeconds } : {}),
    });
  }
  if (c.recurrence) {
    out.push({
      type: "payment.agent_recurrence",
      frequency: c.recurrence.frequency,
      ...(c.recurrence.maxOccurrences !== undefined ? { max_occurrences: c.recurrence.maxOccurrences } : {}),
    });
  }
  assertSeconds(c.notBefore, "notBefore");
  assertSeconds(c.notAfter, "notAfter");
  if (c.notBefore !== undefined || c.notAfter !== undefined) {
    out.push({
      type: "payment.execution_date",
      ...(c.notBefore !== undefined ? { not_before: iso(c.notBefore) } : {}),
      ...(c.notAfter !== undefined ? { not_after: iso(c.notAfter) } : {}),
    });
  }
  if (c.conditionalTransactionId) out.push({ type: "payment.reference", conditional_transaction_id: c.conditionalTransactionId });
  return out;
}

/** Issues an open Payment Mandate: an SD-JWT VC signed ES256 by the user's key. Members of the
 * `allowed` arrays of allowed_payees and allowed_payment_instruments are selectively disclosable
 * (AP2 marks them `x-selectively-disclosable-array`); everything else is always disclosed. */
export async function issueOpenMandate(opts: IssueOpenMandateOptions): Promise<string> {
  const iat = opts.issuedAt ?? Math.floor(Date.now() / 1000);
  assertSeconds(iat, "issuedAt");
  assertSeconds(opts.expiresAt, "expiresAt");
  if (opts.expiresAt <= iat) throw new TypeError("expiresAt must be after issuedAt");
  const constraints = buildConstraints(opts.constraints);
  const payload = {
    vct: OPEN_PAYMENT_MANDATE_VCT,
    jti: opts.id ?? randomUUID(),
    iat,
    exp: opts.expiresAt,
    ...(opts.constraints.notBefore !== undefined ? { nbf: opts.constraints.notBefore } : {}),
    cnf: { jwk: importPublicMandateJwk(opts.agentPublicJwk) },
    constraints,
  };
  const frame: Record<string, unknown> = {};
  constraints.forEach((c, i) => {
    if ((c.type === "payment.allowed_payees" || c.type === "payment.allowed_payment_instruments") && c.allowed.length > 0) {
      frame[i] = { allowed: { _sd: c.allowed.map((_, j) => j) } };
    }
  });
  const sd = await issuerInstance(opts.userKey);
  const kid = exportPublicMandateJwk(opts.userKey).kid;
  return sd.issue(payload, (Object.keys(frame).length ? { constraints: frame } : undefined) as never, {
    header: kid ? { kid } : {},
  });
}

export type VerifyFailure =
  | "malformed"
  | "signature"
  | "expired"
  | "not_yet_valid"
  | "wrong_vct"
  | "tampered_disclosure"
  | "revoked"
  | "invalid_claims"
  | "key_binding";

export type VerifyOpenResult =
  | { ok: true; mandate: OpenPaymentMandate }
  | { ok: false; field: string; code: VerifyFailure; reason: string };

export interface VerifyOpenOptions {
  userPublicJwk: PublicMandateJwk;
  /** Unix seconds; defaults to the current time. */
  now?: number;
  /** Status check (e.g. a token status list lookup) by mandate id (`jti`). */
  isRevoked?: (id: string) => boolean | Promise<boolean>;
  /** Allowed clock skew, seconds (default 0). */
  skewSeconds?: number;
}

function collectDigests(value: unknown, into: Set<string>): void {
  if (Array.isArray(value)) {
    for (const v of value) {
      if (v && typeof v === "object" && !Array.isArray(v) && typeof (v as Record<string, unknown>)["..."] === "string" && Object.keys(v).length === 1) {
        into.add((v as Record<string, string>)["..."]!);
      } else collectDigests(v, into);
    }
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      if (k === "_sd" && Array.isArray(v)) for (const d of v) if (typeof d === "string") into.add(d);
      collectDigests(v, into);
    }
  }
}

/** Every disclosure must be referenced by a digest in the signed payload (or in another disclosure);
 * a disclosure whose bytes changed no longer hashes to any digest. */
export async function checkDisclosures(sdJwt: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    const decoded = await decoderInstance().decode(sdJwt);
    const referenced = new Set<string>();
    collectDigests(decoded.jwt?.payload, referenced);
    const disclosures = decoded.disclosures ?? [];
    for (const d of disclosures) collectDigests(d.value, referenced);
    for (const d of disclosures) {
      const digest = await d.digest({ hasher, alg: "sha-256" });
      if (!referenced.has(digest)) return { ok: false, reason: `disclosure ${digest} is not referenced by the signed payload` };
    }
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: errorMessage(e) };
  }
}

/** Parses and validates verified claims into an OpenPaymentMandate. */
export function parseOpenClaims(claims: unknown): { ok: true; mandate: OpenPaymentMandate } | { ok: false; field: string; reason: string } {
  const p = claims as Record<string, unknown>;
  if (typeof p !== "object" || p === null) return { ok: false, field: "payload", reason: "not an object" };
  if (typeof p.jti !== "string" || !p.jti) return { ok: false, field: "jti", reason: "missing mandate id" };
  if (!Number.isSafeInteger(p.iat)) return { ok: false, field: "iat", reason: "missing iat" };
  if (!Number.isSafeInteger(p.exp)) return { ok: false, field: "exp", reason: "an open Payment Mandate must expire" };
  let jwk: PublicMandateJwk;
  try {
    jwk = importPublicMandateJwk((p.cnf as { jwk?: unknown } | undefined)?.jwk);
  } catch (e) {
    return { ok: false, field: "cnf", reason: errorMessage(e) };
  }
  if (!Array.isArray(p.constraints)) return { ok: false, field: "constraints", reason: "missing constraints" };
  for (const raw of p.constraints as unknown[]) {
    if (typeof raw !== "object" || raw === null) return { ok: false, field: "constraints", reason: "constraint is not an object" };
    const c = raw as Record<string, unknown>;
    const t = c.type;
    if (t === "payment.amount_range" || t === "payment.budget") {
      const usd = c.currency === "USD";
      const parse = (v: unknown) => (typeof v === "string" ? (usd ? parseDecimal(v, USD_SCALE) : parseAtomic(v)) : undefined);
      if (parse(c.max) === undefined) return { ok: false, field: t, reason: "max is not a valid amount string" };
      if (t === "payment.amount_range" && c.min !== undefined && parse(c.min) === undefined) return { ok: false, field: t, reason: "min is not a valid amount string" };
      if (!usd && typeof c.network !== "string") return { ok: false, field: t, reason: "an atomic amount needs a network" };
      if (t === "payment.budget" && c.period_seconds !== undefined && !(Number.isSafeInteger(c.period_seconds) && (c.period_seconds as number) > 0)) {
        return { ok: false, field: t, reason: "period_seconds must be a positive integer" };
      }
    } else if (t === "payment.allowed_payees" || t === "payment.allowed_payment_instruments") {
      if (!Array.isArray(c.allowed)) return { ok: false, field: t, reason: "allowed must be an array" };
    } else if (typeof t !== "string") {
      return { ok: false, field: "constraints", reason: "constraint without a type" };
    }
  }
  const mandate: OpenPaymentMandate = {
    vct: OPEN_PAYMENT_MANDATE_VCT,
    jti: p.jti,
    iat: p.iat as number,
    exp: p.exp as number,
    cnf: { jwk },
    constraints: p.constraints as PaymentConstraint[],
  };
  if (Number.isSafeInteger(p.nbf)) mandate.nbf = p.nbf as number;
  return { ok: true, mandate };
}

/** Verifies an open Payment Mandate: user's ES256 signature, time validity, vct, disclosures, revocation,
 * and the claims' shape. Disclosures withheld by the holder are simply absent from the result. */
export async function verifyOpenMandate(sdJwt: string, opts: VerifyOpenOptions): Promise<VerifyOpenResult> {
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  if (typeof sdJwt !== "string" || sdJwt.split("~")[0]!.split(".").length !== 3) {
    return { ok: false, field: "sd-jwt", code: "malformed", reason: "not a compact SD-JWT" };
  }
  const disclosures = await checkDisclosures(sdJwt);
  if (!disclosures.ok) return { ok: false, field: "disclosures", code: "tampered_disclosure", reason: disclosures.reason };
  let payload: Record<string, unknown>;
  try {
    const sd = await verifierInstance(importPublicMandateJwk(opts.userPublicJwk));
    const res = await sd.verify(sdJwt, { currentDate: now, ...(opts.skewSeconds ? { skewSeconds: opts.skewSeconds } : {}) });
    payload = res.payload as Record<string, unknown>;
  } catch (e) {
    const msg = errorMessage(e);
    if (/expired/i.test(msg)) return { ok: false, field: "exp", code: "expired", reason: msg };
    if (/not yet valid/i.test(msg)) return { ok: false, field: "nbf", code: "not_yet_valid", reason: msg };
    if (/signature/i.test(msg)) return { ok: false, field: "signature", code: "signature", reason: msg };
    return { ok: false, field: "sd-jwt", code: "malformed", reason: msg };
  }
  if (payload.vct !== OPEN_PAYMENT_MANDATE_VCT) {
    return { ok: false, field: "vct", code: "wrong_vct", reason: `expected vct ${OPEN_PAYMENT_MANDATE_VCT}, got ${JSON.stringify(payload.vct)}` };
  }
  if (!Number.isSafeInteger(payload.exp)) return { ok: false, field: "exp", code: "invalid_claims", reason: "an open Payment Mandate must expire" };
  const parsed = parseOpenClaims(payload);
  if (!parsed.ok) return { ok: false, field: parsed.field, code: "invalid_claims", reason: parsed.reason };
  if (opts.isRevoked && (await opts.isRevoked(parsed.mandate.jti))) {
    return { ok: false, field: "status", code: "revoked", reason: `mandate ${parsed.mandate.jti} is revoked` };
  }
  return parsed;
}
