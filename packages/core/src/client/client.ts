/**
 * The transport-agnostic paying client: given a 402's `PaymentRequired` (v2 or v1), choose an
 * option, hold its amount against the spending policy, have the scheme sign it, and return
 * the header to send. Selection and policy run before any signing, so a refusal never
 * produces an authorization. No chain code here: signing is the scheme client's job.
 *
 * A payment returned by `pay` has been handed over: the caller holds a signed authorization
 * that anyone who sees it can settle until it expires, so the policy keeps counting it until
 * `commit()`, its expiry, or a `release()` that the caller can justify (see Payment.release).
 */
import { networkMatches } from "../caip2.ts";
import { encodeBase64Json } from "../codec.ts";
import { parsePaymentRequired, parsePaymentRequiredV1 } from "../schemas.ts";
import type { PayloadContext, SchemeClient } from "../scheme.ts";
import {
  Headers,
  type Extensions,
  type PaymentPayload,
  type PaymentPayloadV1,
  type PaymentRequired,
  type PaymentRequiredV1,
  type PaymentRequirements,
  type PaymentRequirementsV1,
  type ResourceInfo,
  type SettleResponse,
} from "../types.ts";
import { requirementsFromV1, V1_NETWORKS, v1NameToNetwork, type V1NetworkNames } from "../v1.ts";
import { serverOrder, type ChooseContext, type Chooser } from "./choose.ts";
import { InvalidPaymentRequiredError, PaymentRefusedError, RefusalCode, type Refusal } from "./errors.ts";
import type { PaymentAuthorization, PaymentAuthorizer } from "./authorizer.ts";
import { DEFAULT_MAX_TIMEOUT_SECONDS, signedValidityRefusal, timeoutRefusal, type HandOver, type Reservation, type SpendingPolicy } from "./policy.ts";

export interface PaymentClientOptions {
  schemes: readonly SchemeClient[];
  /**
   * Limits and budget. Without one nothing is counted, but the validity cap still applies with
   * its default (DEFAULT_MAX_TIMEOUT_SECONDS); a policy's `maxTimeoutSeconds` changes it.
   */
  policy?: SpendingPolicy;
  /** Orders the acceptable options; default: the server's order. */
  choose?: Chooser;
  /** v1 network names to CAIP-2 ids; default: core's V1_NETWORKS. */
  v1Networks?: V1NetworkNames;
  /**
   * A second gate after the policy, before signing (e.g. an AP2 mandate wallet): may refuse with
   * its own typed error (nothing signed), set the nonce to sign and add payload extensions.
   */
  authorizer?: PaymentAuthorizer;
}

export interface PayContext {
  /** The URL being paid for (passed to the chooser; fallback resource for v1). */
  url?: string;
  /**
   * Extension data to add to the payload (e.g. a `payment-identifier` id). Merged under the
   * server's: the client may append but never overwrite what the server sent.
   */
  extensions?: Extensions;
  /** The caller will pass every answer to `Payment.observe` (PayloadContext.observesAnswers). */
  observesAnswers?: boolean;
}

export interface Payment {
  x402Version: 1 | 2;
  /** The request header carrying the payment: PAYMENT-SIGNATURE (v2) or X-PAYMENT (v1). */
  header: { name: "PAYMENT-SIGNATURE" | "X-PAYMENT"; value: string };
  payload: PaymentPayload | PaymentPayloadV1;
  /** The chosen option in v2 shape (v1 options are converted). */
  requirements: PaymentRequirements;
  /** The chosen option as the v1 server sent it. */
  requirementsV1?: PaymentRequirementsV1;
  payer: string;
  /** Its reservation in the policy (`policy.outstanding()`, `policy.release(id)`); undefined without a policy. */
  reservationId?: string;
  /**
   * Unix seconds after which the signed payload can no longer settle (EVM: its `validBefore`;
   * otherwise the time of signing + its validity). Until then (plus the policy's grace) its
   * amount counts against the budget unless committed or released.
   */
  validUntil: number;
  /**
   * Return the amount to the budget because this payment can never settle: its header was never
   * sent, or the authorization was cancelled on chain (or the chain shows it unused after
   * `validUntil`). A server saying "failed" is not enough: whoever holds the header can still
   * settle it. Idempotent; a no-op after commit. The promise (when an authorizer keeps a
   * persisted count) resolves once recorded.
   */
  release(): void | Promise<void>;
  /** The payment was charged. Idempotent; after either call the other is a no-op. */
  commit(): void | Promise<void>;
  /**
   * Tells the scheme what the server answered (SchemeClient.onPaymentResponse; status 0: no
   * answer came); resolves with a PaymentRequired to pay once more when the scheme recovered from
   * the answer (a corrective 402). Stateful schemes wait for it: call it once per sent payment.
   */
  observe?(answer: { status: number; receipt?: SettleResponse; required?: PaymentRequired }): Promise<PaymentRequired | undefined>;
  /** The scheme lets a client that knows the URL's requirements send the next payment up front (SchemeClient.payUpFront). */
  payUpFront?: true;
}

export interface PaymentClient {
  pay(required: PaymentRequired | PaymentRequiredV1, context?: PayContext): Promise<Payment>;
  readonly policy?: SpendingPolicy;
}

interface Option {
  requirements: PaymentRequirements;
  v1?: PaymentRequirementsV1;
  scheme?: SchemeClient;
  unsupported?: string;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Deep merge where `base` (the server's data) wins on every leaf both define. */
export function mergeExtensions(base: Extensions | undefined, added: Extensions | undefined): Extensions | undefined {
  if (!added) return base;
  if (!base) return added;
  const out: Record<string, unknown> = { ...added };
  for (const [k, v] of Object.entries(base)) {
    const a = out[k];
    out[k] = isPlainObject(v) && isPlainObject(a) ? mergeExtensions(v, a) : v;
  }
  return out;
}

export function createPaymentClient(options: PaymentClientOptions): PaymentClient {
  const { schemes, policy } = options;
  const choose = options.choose ?? serverOrder;
  const v1Networks = options.v1Networks ?? V1_NETWORKS;
  if (!schemes || schemes.length === 0) throw new TypeError("createPaymentClient: schemes must list at least one SchemeClient");

  const findScheme = (r: PaymentRequirements) =>
    schemes.find((s) => s.scheme === r.scheme && s.networks.some((p) => networkMatches(p, r.network)));

  function parse(required: unknown): { version: 1 | 2; options: Option[]; resource?: ResourceInfo; extensions?: Extensions } {
    const version = isPlainObject(required) ? required.x402Version : undefined;
    if (version === 1) {
      const r = parsePaymentRequiredV1(required);
      if (!r.ok) throw new InvalidPaymentRequiredError(r.message, r.issues);
      return {
        version: 1,
        options: r.value.accepts.map((v1) => {
          const network = v1NameToNetwork(v1.network, v1Networks);
          if (!network) {
            // Keep a placeholder so refusals still name it; it can never be chosen.
            return { requirements: requirementsFromV1(v1, `v1:${v1.network}`), v1, unsupported: `unknown v1 network name ${JSON.stringify(v1.network)}` };
          }
          const requirements = requirementsFromV1(v1, network);
          return { requirements, v1, scheme: findScheme(requirements) };
        }),
      };
    }
    const r = parsePaymentRequired(required);
    if (!r.ok) throw new InvalidPaymentRequiredError(r.message, r.issues);
    return {
      version: 2,
      options: r.value.accepts.map((requirements) => ({ requirements, scheme: findScheme(requirements) })),
      resource: r.value.resource,
      extensions: r.value.extensions,
    };
  }

  async function pay(required: PaymentRequired | PaymentRequiredV1, context: PayContext = {}): Promise<Payment> {
    const parsed = parse(required);
    const supported = parsed.options.filter((o) => o.scheme);
    if (supported.length === 0) {
      const offered = parsed.options.map((o) => `${o.requirements.scheme} on ${o.v1?.network ?? o.requirements.network}`).join(", ") || "nothing";
      const have = schemes.map((s) => `${s.scheme} on ${s.networks.join("|")}`).join(", ");
      throw new PaymentRefusedError(
        RefusalCode.noSupportedOption,
        `no_supported_option: no configured scheme can pay any offered option (offered: ${offered}; supported: ${have})`,
        parsed.options.map((o) => ({ code: RefusalCode.noSupportedOption, message: o.unsupported ?? "no scheme client for this scheme and network", requirements: o.requirements })),
      );
    }

    const refusals: Refusal[] = [];
    const acceptable = new Map<PaymentRequirements, Option>();
    for (const o of supported) {
      const refusal = policy ? policy.check(o.requirements) : timeoutRefusal(o.requirements, DEFAULT_MAX_TIMEOUT_SECONDS);
      if (refusal) refusals.push(refusal);
      else acceptable.set(o.requirements, o);
    }
    if (acceptable.size === 0) throw refusedBy(refusals);

    const v1Resource = (o: Option): ResourceInfo | undefined =>
      o.v1 ? { url: o.v1.resource || context.url || "", description: o.v1.description, mimeType: o.v1.mimeType } : undefined;
    const chooseContext: ChooseContext = { x402Version: parsed.version, url: context.url };
    const resource = parsed.resource ?? (parsed.version === 1 ? v1Resource(supported[0]!) : undefined);
    if (resource) chooseContext.resource = resource;
    const ordered = choose([...acceptable.keys()], chooseContext).filter((r) => acceptable.has(r));
    if (ordered.length === 0) {
      throw new PaymentRefusedError(RefusalCode.noSupportedOption, "no_supported_option: the chooser declined every acceptable option", refusals);
    }

    // Reserve synchronously (no await since the checks above), so concurrent pays cannot overspend.
    let chosen: Option | undefined;
    let reservation: Reservation | undefined;
    for (const r of ordered) {
      if (!policy) {
        chosen = acceptable.get(r);
        break;
      }
      const res = policy.reserve(r);
      if (res.ok) {
        chosen = acceptable.get(r);
        reservation = res.reservation;
        break;
      }
      refusals.push(res.refusal);
    }
    if (!chosen) throw refusedBy(refusals);

    const scheme = chosen.scheme!;
    const requirements = chosen.requirements;
    const optionResource = chosen.v1 ? v1Resource(chosen) : parsed.resource;
    let extensions = parsed.version === 2 ? mergeExtensions(parsed.extensions, context.extensions) : undefined;
    let signed: Record<string, unknown> | undefined;
    /**
     * A signed payload that never leaves the client: the scheme hears "no answer" (status 0), so a
     * stateful one (batch-settlement) neither waits for it nor builds on it.
     */
    const droppedUnsent = async () => {
      if (signed === undefined || parsed.version !== 2 || !scheme.onPaymentResponse) return;
      try {
        await scheme.onPaymentResponse({ requirements, payload: signed, status: 0 });
      } catch {
        // the payment is refused either way
      }
    };
    let payer: string;
    let authorization: PaymentAuthorization | undefined;
    try {
      payer = scheme.payer(requirements.network);
      // The authorizer runs before signing: its refusal (a throw) leaves nothing signed.
      authorization = await options.authorizer?.authorize(requirements, {
        x402Version: parsed.version,
        payer,
        ...(optionResource ? { resource: optionResource } : {}),
        ...(context.url !== undefined ? { url: context.url } : {}),
      });
      const payloadContext: PayloadContext = {
        x402Version: parsed.version,
        ...(optionResource ? { resource: optionResource } : {}),
        ...(extensions ? { extensions } : {}),
        ...(authorization?.nonce !== undefined ? { nonce: authorization.nonce } : {}),
        ...(context.observesAnswers ? { observesAnswers: true } : {}),
      };
      signed = await scheme.createPayload(requirements, payloadContext);
      // What the scheme signed for an extension wins over the server's advertisement of it; so does the authorizer's.
      if (parsed.version === 2 && scheme.payloadExtensions) extensions = mergeExtensions(await scheme.payloadExtensions(requirements, signed, payloadContext), extensions);
      if (parsed.version === 2 && authorization?.extensions) extensions = mergeExtensions(authorization.extensions, extensions);
    } catch (e) {
      reservation?.release(); // nothing was handed over
      await authorization?.release();
      await droppedUnsent();
      throw e;
    }
    const inner = signed;

    // From here the signed payload leaves the client: the policy counts it until it settles or expires.
    const handOver = handOverOf(inner, requirements, payer);
    let validUntil: number;
    if (reservation) {
      const handed = reservation.handOver(handOver);
      if (!handed.ok) {
        reservation.release(); // dropped unsent
        await droppedUnsent();
        throw refusedBy([handed.refusal]);
      }
      validUntil = handed.validUntil;
    } else {
      const now = Date.now() / 1000;
      const refusal = signedValidityRefusal(handOver, now, DEFAULT_MAX_TIMEOUT_SECONDS, requirements);
      if (refusal) {
        await droppedUnsent();
        throw refusedBy([refusal]);
      }
      validUntil = handOver.validBefore ?? now + handOver.validForSeconds;
    }
    if (authorization?.handOver) {
      try {
        await authorization.handOver({ payload: inner, validUntil });
      } catch (e) {
        reservation?.release(); // dropped unsent
        await authorization.release();
        await droppedUnsent();
        throw e;
      }
    }

    let payload: PaymentPayload | PaymentPayloadV1;
    let header: Payment["header"];
    if (parsed.version === 2) {
      const p: PaymentPayload = { x402Version: 2, resource: parsed.resource, accepted: requirements, payload: inner };
      if (extensions) p.extensions = extensions;
      payload = p;
      header = { name: Headers.v2.payment, value: encodeBase64Json(p) };
    } else {
      const p: PaymentPayloadV1 = { x402Version: 1, scheme: requirements.scheme, network: chosen.v1!.network, payload: inner };
      payload = p;
      header = { name: Headers.v1.payment, value: encodeBase64Json(p) };
    }
    const payment: Payment = {
      x402Version: parsed.version,
      header,
      payload,
      requirements,
      payer,
      validUntil,
      release: () => {
        reservation?.release();
        return authorization?.release();
      },
      commit: () => {
        reservation?.commit();
        return authorization?.commit();
      },
    };
    if (reservation) payment.reservationId = reservation.id;
    if (scheme.onPaymentResponse && parsed.version === 2) payment.observe = (answer) => scheme.onPaymentResponse!({ requirements, payload: inner, ...answer });
    if (chosen.v1) payment.requirementsV1 = chosen.v1;
    if (scheme.payUpFront && parsed.version === 2) payment.payUpFront = true;
    return payment;
  }

  return policy ? { pay, policy } : { pay };
}

/**
 * A Solana transaction stays valid while its blockhash does: 151 blocks, about 60–90 s at 400 ms
 * slots with some skipped. Counted at least this long whatever `maxTimeoutSeconds` says.
 */
export const SOLANA_BLOCKHASH_LIFETIME_SECONDS = 150;

/**
 * How long a signed payload stays settleable. EVM `exact` (EIP-3009) carries it:
 * `authorization.validBefore`. Solana: the blockhash's lifetime. Otherwise: `maxTimeoutSeconds`,
 * the validity the scheme was asked to sign.
 */
export function handOverOf(inner: Record<string, unknown>, requirements: PaymentRequirements, payer?: string): HandOver {
  const base: HandOver = { validForSeconds: requirements.maxTimeoutSeconds, payload: inner };
  if (payer !== undefined) base.payer = payer;
  if (requirements.network.startsWith("solana:")) base.validForSeconds = Math.max(requirements.maxTimeoutSeconds, SOLANA_BLOCKHASH_LIFETIME_SECONDS);
  const auth = inner.authorization;
  if (requirements.network.startsWith("eip155:") && isPlainObject(auth)) {
    const v = auth.validBefore;
    // A decimal string (the wire format); Number() of a huge one is Infinity, which the cap refuses.
    if (typeof v === "string" && /^\d+$/.test(v)) base.validBefore = Number(v);
    else if (typeof v === "number" || typeof v === "bigint") base.validBefore = Number(v);
  }
  return base;
}

/** The refusal to report: the first option's (server order), with all of them attached. */
function refusedBy(refusals: readonly Refusal[]): PaymentRefusedError {
  const first = refusals[0];
  if (!first) return new PaymentRefusedError(RefusalCode.noSupportedOption, "no_supported_option: nothing to pay with", refusals);
  const rest = refusals.length > 1 ? ` (and ${refusals.length - 1} other option(s) refused: ${refusals.slice(1).map((r) => r.code).join(", ")})` : "";
  return new PaymentRefusedError(first.code, `${first.code}: ${first.message}${rest}`, refusals);
}
