// The agent's wallet side of AP2 mandates: a PaymentAuthorizer for @tollgate/core's payment client
// (so wrapFetch, axios, MCP and A2A clients all enforce it). For each payment, before anything is
// signed, it checks the open mandate's constraints against the persisted budget store (under its
// lock, so processes sharing one store cannot overspend), makes the closed mandate, and hands the
// client the nonce to sign (keccak256 of the chain) and the `ap2-mandate` payload extension.
import type { PaymentAuthorization, PaymentAuthorizer, PaymentPayload, PaymentRequirements } from "@tollgate/core";
import { budgetFor, checkPayment } from "./check.ts";
import { makeClosedMandate, mandateChain, mandateChainHash } from "./closed.ts";
import { AP2_MANDATE, mandateTransactionId } from "./extension.ts";
import { createBudgetStore, type BudgetStore, type ExpiredReservation } from "./budget-store.ts";
import { importMandateKey, mandateKeyThumbprint, type MandateKeyPair, type PrivateMandateJwk, type PublicMandateJwk } from "./keys.ts";
import { verifyOpenMandate } from "./open.ts";
import type { ConstraintType, MandatePayment, OpenPaymentMandate, Refusal, RefusalCode } from "./types.ts";

/** A payment outside the mandate, refused before anything was signed. `constraint` names the AP2 constraint. */
export class MandateRefusedError extends Error {
  override name = "MandateRefusedError";
  readonly constraint: ConstraintType;
  readonly code: RefusalCode;
  readonly requirements: PaymentRequirements;
  constructor(refusal: Refusal, requirements: PaymentRequirements) {
    super(`mandate refused the payment (${refusal.constraint}: ${refusal.code}): ${refusal.reason}; nothing was signed`);
    this.constraint = refusal.constraint;
    this.code = refusal.code;
    this.requirements = requirements;
  }
}

export type ExpiredAnswer = "unused" | "settled" | "unknown";

/** An expired handed-over payment, for a chain lookup (`exactEvmAuthorizationUnused(…)(payload, requirements)`). */
export interface ExpiredMandatePayment extends ExpiredReservation {
  payload?: PaymentPayload;
  requirements?: PaymentRequirements;
}

export interface MandateWalletOptions {
  /** The open mandate (SD-JWT VC) the user issued to this agent. */
  open: string;
  /** The user's public key (verifies the open mandate; sent to servers as the issuer key). */
  userPublicJwk: PublicMandateJwk;
  /** The agent's private key: its public half must be the mandate's `cnf.jwk`. */
  agentKey: PrivateMandateJwk | MandateKeyPair;
  /** The persisted budget store, or its file path. Share one file between all processes spending from the mandate. */
  store: BudgetStore | string;
  /**
   * Human in the loop: a payment outside the mandate is shown here instead of failing. `true` pays
   * it WITHOUT a mandate (it is outside it; a server that requires one will refuse it) and does not
   * count it against the mandate's budget. Absent or `false`: MandateRefusedError.
   */
  approve?: (outside: { refusal: Refusal; requirements: PaymentRequirements }) => boolean | Promise<boolean>;
  /**
   * A handed-over payment past its expiry (+ grace) either settled or never will. Answer from the
   * chain; "unknown" keeps it counted and asks again later. Without it, expiry releases it (as the
   * core spending policy does).
   */
  resolveExpired?: (payment: ExpiredMandatePayment) => Promise<ExpiredAnswer> | ExpiredAnswer;
  /** Seconds after expiry before an expired payment is resolved (clock skew). Default 60. */
  expiryGraceSeconds?: number;
  /** ERC-8004 agent id of the payee, when known (matched against allowed payees given as agent ids). */
  payeeAgentId?: (requirements: PaymentRequirements) => string | undefined;
  /** Unix seconds; for tests. */
  now?: () => number;
}

export interface MandateWallet extends PaymentAuthorizer {
  /** The verified open mandate. */
  mandate(): Promise<OpenPaymentMandate>;
  /** Resolves expired handed-over payments now (otherwise done before each payment). */
  sweep(): Promise<void>;
  readonly store: BudgetStore;
}

const NONCE_FIELDS = (payload: Record<string, unknown>): unknown[] => {
  const auth = payload.authorization as Record<string, unknown> | undefined;
  const permit = payload.permit2Authorization as Record<string, unknown> | undefined;
  return [auth?.nonce, permit?.nonce];
};

/** Whether the signed scheme payload carries `nonce` (EIP-3009 bytes32, or Permit2's uint256 of it). */
export function payloadCarriesNonce(payload: Record<string, unknown>, nonce: string): boolean {
  const want = BigInt(nonce);
  return NONCE_FIELDS(payload).some((v) => {
    if (typeof v !== "string" || !/^(0x[0-9a-fA-F]{1,64}|[0-9]{1,78})$/.test(v)) return false;
    return BigInt(v) === want;
  });
}

export function mandateWallet(opts: MandateWalletOptions): MandateWallet {
  const store = typeof opts.store === "string" ? createBudgetStore({ file: opts.store }) : opts.store;
  const now = opts.now ?? (() => Math.floor(Date.now() / 1000));
  const grace = opts.expiryGraceSeconds ?? 60;
  type Loaded = { mandate: OpenPaymentMandate; key: MandateKeyPair } | { refusal: Refusal };
  let loaded: Promise<Loaded> | undefined;

  async function load(): Promise<Loaded> {
    const res = await verifyOpenMandate(opts.open, { userPublicJwk: opts.userPublicJwk, now: now() });
    if (res.ok) return { mandate: res.mandate, key: await agentKeyFor(res.mandate) };
    // Out of its validity: every payment is refused (with the constraint named), nothing signed.
    if (res.code === "expired" || res.code === "not_yet_valid") return { refusal: { ok: false, constraint: "mandate.validity", code: res.code, reason: res.reason } };
    throw new TypeError(`mandateWallet: the open mandate does not verify (${res.field}: ${res.reason})`);
  }

  async function agentKeyFor(m: OpenPaymentMandate): Promise<MandateKeyPair> {
    const key = "privateJwk" in opts.agentKey ? opts.agentKey : await importMandateKey(opts.agentKey);
    if ((await mandateKeyThumbprint(key.publicJwk)) !== (await mandateKeyThumbprint(m.cnf.jwk))) {
      throw new TypeError("mandateWallet: agentKey is not the key the mandate names in cnf.jwk");
    }
    return key;
  }

  const ready = () => (loaded ??= load());

  async function sweep(): Promise<void> {
    const l = await ready();
    if ("refusal" in l) return;
    for (const e of await store.expired(l.mandate.jti, now() - grace)) {
      let answer: ExpiredAnswer = "unused";
      if (opts.resolveExpired) {
        const view: ExpiredMandatePayment = { ...e };
        if (e.ref?.payload) view.payload = JSON.parse(e.ref.payload) as PaymentPayload;
        if (e.ref?.requirements) view.requirements = JSON.parse(e.ref.requirements) as PaymentRequirements;
        answer = await Promise.resolve(opts.resolveExpired(view)).catch((): ExpiredAnswer => "unknown");
      }
      if (answer === "unused") await store.release(e.reservationId);
      else if (answer === "settled") await store.commit(e.reservationId);
    }
  }

  async function authorize(requirements: PaymentRequirements, context: { resource?: { url: string }; url?: string }): Promise<PaymentAuthorization> {
    const l = await ready();
    if ("refusal" in l) throw new MandateRefusedError(l.refusal, requirements);
    const { mandate, key } = l;
    await sweep();
    const at = now();
    const agentId = opts.payeeAgentId?.(requirements);
    const payment: MandatePayment = { payTo: requirements.payTo, amount: requirements.amount, asset: requirements.asset, network: requirements.network, at, ...(agentId ? { payeeAgentId: agentId } : {}) };

    const budget = budgetFor(mandate, payment);
    // A payment the budget cannot count (wrong asset or network) gets checkPayment's more specific refusal.
    const early = budget && "ok" in budget ? checkPayment(mandate, payment) : undefined;
    let refusal: Refusal | undefined = budget && "ok" in budget ? (early && !early.ok ? early : budget) : undefined;
    let reservationId: string | undefined;
    if (!refusal) {
      const b = budget && !("ok" in budget) ? budget : undefined;
      const res = await store.reserve(mandate.jti, b ? b.units : requirements.amount, b ? b.periodStart : 0, {
        at,
        ...(b ? { max: b.max } : {}),
        check: (spent) => {
          const r = checkPayment(mandate, payment, { amount: spent.amount, occurrences: spent.occurrences, ...(spent.lastPaymentAt !== undefined ? { lastPaymentAt: spent.lastPaymentAt } : {}) });
          return r.ok ? undefined : r;
        },
      });
      if (res.ok) reservationId = res.reservationId;
      else refusal = res as Refusal;
    }
    if (refusal) {
      if (opts.approve && (await opts.approve({ refusal, requirements }))) return { commit() {}, release() {} };
      throw new MandateRefusedError(refusal, requirements);
    }
    const id = reservationId!;
    const releaseQuietly = async () => void (await store.release(id).catch(() => false));
    try {
      const resourceUrl = context.resource?.url ?? context.url ?? "";
      const transactionId = mandateTransactionId(resourceUrl, requirements);
      const closed = await makeClosedMandate({ agentKey: key, open: opts.open, payment, transactionId, audience: requirements.payTo });
      const chain = mandateChain(opts.open, closed);
      const nonce = mandateChainHash(opts.open, closed);
      return {
        nonce,
        extensions: { [AP2_MANDATE]: { info: { chain, issuerJwk: opts.userPublicJwk } } },
        async handOver({ payload, validUntil }) {
          // The binding is the point: a scheme that did not sign our nonce must not send the payment.
          if (!payloadCarriesNonce(payload, nonce)) throw new Error("mandateWallet: the scheme client did not sign the mandate chain's hash as its nonce; the payment was not sent");
          const ref = { payload: JSON.stringify({ x402Version: 2, accepted: requirements, payload }), requirements: JSON.stringify(requirements) };
          await store.handOver(id, Math.ceil(validUntil), ref);
        },
        // A failed write leaves the reservation counted: the safe side.
        commit: async () => void (await store.commit(id).catch(() => false)),
        release: releaseQuietly,
      };
    } catch (e) {
      await releaseQuietly();
      throw e;
    }
  }

  async function mandate(): Promise<OpenPaymentMandate> {
    const l = await ready();
    if ("refusal" in l) throw new MandateRefusedError(l.refusal, {} as PaymentRequirements);
    return l.mandate;
  }

  return { authorize, sweep, store, mandate };
}
