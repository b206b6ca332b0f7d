// Closed Payment Mandates (vct `mandate.payment.1`): the agent names one payment under an open mandate
// and binds it with the key-binding JWT of the SD-JWT library, signed by the key in the open mandate's
// `cnf.jwk`. The closed mandate's claims travel in that KB-JWT next to the standard iat/aud/nonce/sd_hash
// (sd_hash = digest of the open mandate as presented), which is how AP2 chains a closed mandate to its
// open one (a KB-SD-JWT signed by the previous hop's cnf key).
import { keccak256, toBytes, type Hex } from "viem";
import { checkPayment, instrumentFor, type SpentSoFar } from "./check.ts";
import { importMandateKey, type MandateKeyPair, type PrivateMandateJwk, type PublicMandateJwk } from "./keys.ts";
import { parseOpenClaims, verifyOpenMandate, type VerifyFailure } from "./open.ts";
import { decoderInstance, errorMessage, holderInstance, verifierInstance } from "./sdjwt.ts";
import type { SDJwtVcInstance } from "@sd-jwt/sd-jwt-vc";

type KbOptions = Parameters<SDJwtVcInstance["present"]>[2];
import {
  PAYMENT_MANDATE_VCT,
  type ClosedPaymentMandate,
  type ConstraintType,
  type MandatePayment,
  type Merchant,
  type OpenPaymentMandate,
  type PaymentInstrument,
  type RefusalCode,
} from "./types.ts";

export interface MakeClosedMandateOptions {
  /** The agent's private key; its public half must be the open mandate's `cnf.jwk`. */
  agentKey: PrivateMandateJwk | MandateKeyPair;
  /** The open mandate (SD-JWT VC) as the agent holds it. */
  open: string;
  payment: MandatePayment;
  /** AP2 `transaction_id`; also the KB-JWT `nonce`. For x402 use something unique per payment
   * (e.g. the hash of the PaymentRequirements or a server challenge). */
  transactionId: string;
  /** KB-JWT `aud`; defaults to the payee (payment.payTo). */
  audience?: string;
  /** KB-JWT `iat`, Unix seconds; defaults to payment.at. */
  issuedAt?: number;
}

/** The open mandate as the holder presents it: all disclosures, in a deterministic order. sd_hash is
 * computed over this string. */
async function presentOpen(open: string): Promise<string> {
  return decoderInstance().present(open.endsWith("~") ? open : `${open}~`);
}

/** Creates the closed Payment Mandate: a compact JWS (`typ: kb+jwt`) signed by the agent key. */
export async function makeClosedMandate(opts: MakeClosedMandateOptions): Promise<string> {
  const pair = "privateJwk" in opts.agentKey ? opts.agentKey : await importMandateKey(opts.agentKey);
  const claims = await decoderInstance().getClaims(opts.open);
  const parsed = parseOpenClaims(claims);
  if (!parsed.ok) throw new TypeError(`makeClosedMandate: open mandate ${parsed.field}: ${parsed.reason}`);
  const open = parsed.mandate;
  const p = opts.payment;
  const payee: Merchant =
    open.constraints
      .flatMap((c) => (c.type === "payment.allowed_payees" ? c.allowed : []))
      .find((m) => m.id.toLowerCase() === p.payTo.toLowerCase() || (p.payeeAgentId !== undefined && m.id === p.payeeAgentId)) ??
    { id: p.payTo, name: p.payTo };
  const instrument: PaymentInstrument = instrumentFor(open, p) ?? { id: `${p.network}/${p.asset}`, type: "x402", network: p.network, asset: p.asset };
  const payload = {
    iat: opts.issuedAt ?? p.at,
    aud: opts.audience ?? p.payTo,
    nonce: opts.transactionId,
    vct: PAYMENT_MANDATE_VCT,
    transaction_id: opts.transactionId,
    mandate_id: open.jti,
    payee,
    payment_amount: { amount: p.amount, currency: p.asset, network: p.network },
    payment_instrument: { ...instrument, ...(instrument.asset === undefined ? { asset: p.asset } : {}) },
  };
  const holder = await holderInstance(pair.privateJwk);
  const presented = await holder.present(await presentOpen(opts.open), undefined, { kb: { payload } as unknown as NonNullable<KbOptions>["kb"] });
  const kbJwt = presented.slice(presented.lastIndexOf("~") + 1);
  if (kbJwt.split(".").length !== 3) throw new Error("makeClosedMandate: the SD-JWT library produced no key-binding JWT");
  return kbJwt;
}

/** The serialized mandate chain, AP2-style: the tokens joined by "~~" (the open SD-JWT without its
 * trailing "~", then "~~", then the closed mandate). */
export function mandateChain(open: string, closed: string): string {
  return `${open.replace(/~+$/, "")}~~${closed}`;
}

/** keccak256 over the UTF-8 bytes of the chain, as AP2's x402 samples hash the mandate chain into the
 * EIP-3009 `nonce` (`Web3.keccak(text=mandate_chain)`). 0x + 64 hex digits. */
export function mandateChainHash(open: string, closed: string): Hex {
  return keccak256(toBytes(mandateChain(open, closed)));
}

export interface VerifyClosedOptions {
  open: string;
  /** Verifies the open mandate first; the agent key is taken from its `cnf.jwk`. */
  userPublicJwk: PublicMandateJwk;
  /** The payment the closed mandate must name. */
  payment: MandatePayment;
  /** Expected transaction id / KB nonce; when omitted the closed mandate's own is accepted. */
  transactionId?: string;
  /** Expected KB-JWT `aud`; when omitted, not checked beyond presence. */
  audience?: string;
  now?: number;
  spent?: SpentSoFar;
  isRevoked?: (id: string) => boolean | Promise<boolean>;
}

export type VerifyClosedResult =
  | { ok: true; open: OpenPaymentMandate; closed: ClosedPaymentMandate; budget?: { periodStart: number; units: bigint; max: bigint } }
  | { ok: false; field: string; code: VerifyFailure | "payment_mismatch"; reason: string }
  | { ok: false; constraint: ConstraintType; code: RefusalCode; reason: string };

function decodeJwtPayload(jwt: string): Record<string, unknown> | undefined {
  try {
    const part = jwt.split(".")[1];
    return part ? (JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Verifies a closed mandate against its open one and the payment being made: the open mandate (user
 * signature, validity, vct, disclosures, revocation), the key binding (agent signature with the open
 * mandate's cnf key, sd_hash, nonce), that payee / amount / asset / network are the payment's, and that
 * the payment fits the open mandate's constraints. */
export async function verifyClosedMandate(closed: string, opts: VerifyClosedOptions): Promise<VerifyClosedResult> {
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const openRes = await verifyOpenMandate(opts.open, { userPublicJwk: opts.userPublicJwk, now, ...(opts.isRevoked ? { isRevoked: opts.isRevoked } : {}) });
  if (!openRes.ok) return openRes;
  const open = openRes.mandate;

  const claimed = typeof closed === "string" && closed.split(".").length === 3 ? decodeJwtPayload(closed) : undefined;
  if (!claimed) return { ok: false, field: "closed", code: "malformed", reason: "not a compact JWS" };
  const nonce = opts.transactionId ?? (typeof claimed.nonce === "string" ? claimed.nonce : "");
  let kbPayload: Record<string, unknown>;
  try {
    const sd = await verifierInstance(opts.userPublicJwk);
    const res = await sd.verify(`${await presentOpen(opts.open)}${closed}`, { currentDate: now, keyBindingNonce: nonce });
    if (!res.kb) return { ok: false, field: "kb", code: "key_binding", reason: "no key-binding JWT" };
    kbPayload = res.kb.payload as unknown as Record<string, unknown>;
  } catch (e) {
    return { ok: false, field: "kb", code: "key_binding", reason: errorMessage(e) };
  }
  const c = kbPayload as unknown as ClosedPaymentMandate;
  if (c.vct !== PAYMENT_MANDATE_VCT) return { ok: false, field: "vct", code: "wrong_vct", reason: `expected vct ${PAYMENT_MANDATE_VCT}, got ${JSON.stringify(c.vct)}` };
  if (c.transaction_id !== c.nonce) return { ok: false, field: "transaction_id", code: "invalid_claims", reason: "transaction_id differs from the key-binding nonce" };
  if (c.mandate_id !== open.jti) return { ok: false, field: "mandate_id", code: "invalid_claims", reason: "closed mandate names another open mandate" };
  if (opts.audience !== undefined && c.aud !== opts.audience) return { ok: false, field: "aud", code: "invalid_claims", reason: `aud ${String(c.aud)} is not ${opts.audience}` };
  const p = opts.payment;
  const same = (a: unknown, b: string) => typeof a === "string" && (a.startsWith("0x") ? a.toLowerCase() === b.toLowerCase() : a === b);
  if (!c.payee || !(same(c.payee.id, p.payTo) || (p.payeeAgentId !== undefined && c.payee.id === p.payeeAgentId))) {
    return { ok: false, field: "payee", code: "payment_mismatch", reason: `closed mandate pays ${String(c.payee?.id)}, the payment goes to ${p.payTo}` };
  }
  const amt = c.payment_amount;
  if (!amt || amt.amount !== p.amount) return { ok: false, field: "payment_amount", code: "payment_mismatch", reason: `closed mandate amount ${String(amt?.amount)} is not the payment's ${p.amount}` };
  if (!same(amt.currency, p.asset) || amt.network !== p.network) {
    return { ok: false, field: "payment_amount", code: "payment_mismatch", reason: `closed mandate is for ${String(amt.network)}/${String(amt.currency)}, the payment uses ${p.network}/${p.asset}` };
  }
  const check = checkPayment(open, p, opts.spent);
  if (!check.ok) return check;
  return { ok: true, open, closed: c, ...(check.budget ? { budget: check.budget } : {}) };
}
