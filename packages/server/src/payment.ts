/**
 * Reading the payment a request carries (v2 PAYMENT-SIGNATURE or v1 X-PAYMENT) and matching it
 * to one of the route's offers. The facilitator is always asked about the server's own
 * requirements, never the client's copy: the copy must equal an offer field by field.
 */
import {
  canonicalJson,
  decodeBase64Json,
  Headers as X402Headers,
  parsePaymentPayload,
  parsePaymentPayloadV1,
  payloadFromV1,
  Reason,
  v1NameToNetwork,
  type PaymentPayload,
  type PaymentRequirements,
  type V1NetworkNames,
} from "@tollgate/core";
import type { HeaderLookup } from "./request.ts";
import type { CompiledRequirement } from "./routes.ts";
import { invalidPayload, type Respond } from "./responses.ts";

/** An offer as finished with the facilitator's `/supported` kinds. */
export interface Offer extends CompiledRequirement {
  /** The facilitator serves this (scheme, network) as a v1 kind only, under this v1 network name. */
  facilitatorV1Network?: string;
}

export interface DecodedPayment {
  x402Version: 1 | 2;
  payload: PaymentPayload;
  offer: Offer;
  /** v1 clients: the network name they paid on (their receipt names it the same way). */
  v1Name?: string;
}

export type PaymentRead =
  | { kind: "none" }
  | { kind: "ok"; payment: DecodedPayment }
  | { kind: "invalid"; respond: Respond }
  /** Readable, but for none of the offers: a 402 with this error. */
  | { kind: "mismatch"; error: string };

export function readPayment(headers: HeaderLookup, offers: readonly Offer[], names: V1NetworkNames): PaymentRead {
  const v2Header = headers(X402Headers.v2.payment);
  if (v2Header) return readV2(v2Header, offers);
  const v1Header = headers(X402Headers.v1.payment);
  if (v1Header) return readV1(v1Header, offers, names);
  return { kind: "none" };
}

function readV2(header: string, offers: readonly Offer[]): PaymentRead {
  const decoded = decodeBase64Json(header, X402Headers.v2.payment);
  if (!decoded.ok) return { kind: "invalid", respond: invalidPayload(decoded.message, X402Headers.v2.payment) };
  const parsed = parsePaymentPayload(decoded.value);
  if (!parsed.ok) return { kind: "invalid", respond: invalidPayload(parsed.message, parsed.issues[0]?.field ?? "paymentPayload", parsed.issues) };
  const match = findOffer(offers, parsed.value.accepted);
  if (!match.ok) return { kind: "mismatch", error: `${Reason.requirementsMismatch}: ${match.message}` };
  // From here the payload carries the offer as its `accepted` (unsigned, and the copy contains it):
  // the facilitator sees one consistent pair, never fields a client added or an address's casing.
  return { kind: "ok", payment: { x402Version: 2, payload: { ...parsed.value, accepted: match.offer.requirements }, offer: match.offer } };
}

function readV1(header: string, offers: readonly Offer[], names: V1NetworkNames): PaymentRead {
  const decoded = decodeBase64Json(header, X402Headers.v1.payment);
  if (!decoded.ok) return { kind: "invalid", respond: invalidPayload(decoded.message, X402Headers.v1.payment) };
  const parsed = parsePaymentPayloadV1(decoded.value);
  if (!parsed.ok) return { kind: "invalid", respond: invalidPayload(parsed.message, parsed.issues[0]?.field ?? "paymentPayload", parsed.issues) };
  const p = parsed.value;
  const network = v1NameToNetwork(p.network, names);
  // v1 payloads carry no copy of the requirements: scheme and network select one.
  const offer = network && offers.find((o) => o.requirements.scheme === p.scheme && o.requirements.network === network);
  if (!offer) return { kind: "mismatch", error: `${Reason.requirementsMismatch}: scheme ${p.scheme} on network ${p.network} is not accepted for this resource` };
  return { kind: "ok", payment: { x402Version: 1, payload: payloadFromV1(p, offer.requirements), offer, v1Name: p.network } };
}

type OfferMatch = { ok: true; offer: Offer } | { ok: false; message: string };

/** The offer the payment's `accepted` copies exactly; otherwise the first field that differs. */
export function findOffer(offers: readonly Offer[], accepted: PaymentRequirements): OfferMatch {
  let closest: string | undefined;
  for (const offer of offers) {
    const diff = firstDifference(offer.requirements, accepted);
    if (!diff) return { ok: true, offer };
    if (!closest && offer.requirements.scheme === accepted.scheme && offer.requirements.network === accepted.network) closest = diff;
  }
  return { ok: false, message: closest ?? `scheme ${accepted.scheme} on network ${accepted.network} is not accepted for this resource` };
}

function firstDifference(required: PaymentRequirements, accepted: PaymentRequirements): string | undefined {
  // EVM addresses are hex and case-insensitive (checksum casing); other chains' are not.
  const evm = required.network.startsWith("eip155:");
  const same = (a: string, b: string) => (evm ? a.toLowerCase() === b.toLowerCase() : a === b);
  const fields: [keyof PaymentRequirements, boolean][] = [
    ["scheme", required.scheme === accepted.scheme],
    ["network", required.network === accepted.network],
    ["asset", same(required.asset, accepted.asset)],
    ["payTo", same(required.payTo, accepted.payTo)],
    ["amount", required.amount === accepted.amount],
    ["maxTimeoutSeconds", required.maxTimeoutSeconds === accepted.maxTimeoutSeconds],
    ["extra", containsExtra(required.extra ?? {}, accepted.extra)],
  ];
  const bad = fields.find(([, ok]) => !ok);
  if (!bad) return undefined;
  const [field] = bad;
  if (field === "extra") {
    const copy = (accepted.extra ?? {}) as Record<string, unknown>;
    const key = Object.keys(required.extra ?? {}).find((k) => !containsExtra({ [k]: required.extra![k] }, copy))!;
    return `accepted.extra.${key}: ${truncate(JSON.stringify(copy[key]))} differs from the required ${truncate(JSON.stringify(required.extra![key]))}`;
  }
  return `accepted.${field}: ${truncate(JSON.stringify(accepted[field]))} differs from the required ${JSON.stringify(required[field])}`;
}

/**
 * The copy's `extra` holds every field of the offer's, equal by value (not key order). Fields the
 * client added are ignored, as the reference server does: the facilitator is only ever asked about
 * the offer, so they cannot change what is verified or settled, and a client that echoes what a
 * 402 told it (batch-settlement's corrective `channelState`) is not refused for it. A value nested
 * past the depth bound is simply different.
 */
function containsExtra(required: Record<string, unknown>, accepted: unknown): boolean {
  if (typeof accepted !== "object" || accepted === null || Array.isArray(accepted)) return Object.keys(required).length === 0;
  const copy = accepted as Record<string, unknown>;
  try {
    return Object.keys(required).every((k) => Object.hasOwn(copy, k) && canonicalJson(required[k]) === canonicalJson(copy[k]));
  } catch {
    return false;
  }
}

function truncate(s: string | undefined, max = 120): string {
  if (s === undefined) return "undefined";
  return s.length <= max ? s : `${s.slice(0, max - 3)}...`;
}
