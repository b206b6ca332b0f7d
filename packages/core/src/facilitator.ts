/**
 * The facilitator's protocol core: parses `/verify` and `/settle` bodies of either protocol
 * version, checks what is chain-independent, and routes to the scheme that serves the
 * (scheme, network) pair. Transport (HTTP), storage and chains live elsewhere.
 */
import type { Network } from "./caip2.ts";
import { Reason } from "./reasons.ts";
import type { Caller, SchemeFacilitator } from "./scheme.ts";
import { fastVerifyRequest, parseWith, verifyRequestSchema, verifyRequestV1Schema } from "./schemas.ts";
import type {
  PaymentPayload,
  PaymentRequirements,
  SettleResponse,
  SettleResponseV1,
  SupportedKind,
  SupportedResponse,
  VerifyRequest,
  VerifyRequestV1,
  VerifyResponse,
} from "./types.ts";
import { payloadFromV1, requirementsFromV1, settleResponseToV1, type V1NetworkNames, V1_NETWORKS, v1NameToNetwork, networkToV1Name } from "./v1.ts";

/** A `/verify` or `/settle` request, normalized to v2 shapes. */
export interface FacilitatorRequest {
  x402Version: 1 | 2;
  payload: PaymentPayload;
  requirements: PaymentRequirements;
  /** For v1 requests: the v1 network name to answer with. */
  v1Network?: string;
  /** Who asks (set by the service after authenticating them; parseRequest never sets it). */
  caller?: Caller;
}

export type ParsedFacilitatorRequest =
  | { ok: true; request: FacilitatorRequest }
  | { ok: false; reason: string; message: string };

export interface FacilitatorOptions {
  schemes: SchemeFacilitator[];
  /** Extension identifiers implemented (for `/supported`). */
  extensions?: string[];
  /** Extra v1 network names, e.g. `{ "my-chain": "eip155:1337" }`. */
  v1Networks?: V1NetworkNames;
}

export interface Facilitator {
  readonly schemes: readonly SchemeFacilitator[];
  supported(): SupportedResponse;
  /** Validates a request body of either version. Malformed input is reported, never thrown. */
  parseRequest(body: unknown): ParsedFacilitatorRequest;
  /** The scheme serving a request, or a reason why none does. */
  route(request: FacilitatorRequest): { ok: true; scheme: SchemeFacilitator } | { ok: false; reason: string; message: string };
  verify(request: FacilitatorRequest): Promise<VerifyResponse>;
  settle(request: FacilitatorRequest): Promise<SettleResponse>;
  /** Shapes a settle response for the request's protocol version (v1 names its network). */
  settleResponseFor(request: FacilitatorRequest, response: SettleResponse): SettleResponse | SettleResponseV1;
}

export function createFacilitator(options: FacilitatorOptions): Facilitator {
  const names: V1NetworkNames = { ...V1_NETWORKS, ...options.v1Networks };
  const byKey = new Map<string, SchemeFacilitator>();
  for (const s of options.schemes) for (const n of s.networks) byKey.set(`${s.scheme}|${n}`, s);

  function supported(): SupportedResponse {
    const kinds: SupportedKind[] = [];
    const signers: Record<string, string[]> = {};
    for (const s of options.schemes) {
      for (const network of s.networks) {
        const extra = s.kindExtra?.(network);
        kinds.push({ x402Version: 2, scheme: s.scheme, network, ...(extra ? { extra } : {}) });
        const v1 = networkToV1Name(network, names);
        if (v1) kinds.push({ x402Version: 1, scheme: s.scheme, network: v1, ...(extra ? { extra } : {}) });
        const family = `${network.split(":")[0]}:*`;
        const list = (signers[family] ??= []);
        for (const a of s.signers(network)) if (!list.includes(a)) list.push(a);
      }
    }
    return { kinds, extensions: [...(options.extensions ?? [])], signers };
  }

  function parseRequest(body: unknown): ParsedFacilitatorRequest {
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return { ok: false, reason: Reason.invalidPayload, message: "request body must be a JSON object" };
    }
    // Required at the top level (spec): the version decides how the rest is read, so it is never guessed.
    const version = (body as Record<string, unknown>).x402Version;
    if (version === undefined) {
      return { ok: false, reason: Reason.invalidX402Version, message: "x402Version: is required at the top level of the request (1 or 2)" };
    }
    if (version === 1) {
      const r = parseWith<VerifyRequestV1>(verifyRequestV1Schema, body);
      if (!r.ok) return { ok: false, reason: reasonFor(r.message), message: r.message };
      const { paymentPayload: p, paymentRequirements: q } = r.value;
      const network = v1NameToNetwork(q.network, names);
      if (!network) return { ok: false, reason: Reason.invalidNetwork, message: `paymentRequirements.network: unknown v1 network ${JSON.stringify(q.network)}` };
      if (p.network !== q.network) {
        return { ok: false, reason: Reason.invalidNetwork, message: "paymentPayload.network: differs from paymentRequirements.network" };
      }
      if (p.scheme !== q.scheme) {
        return { ok: false, reason: Reason.invalidScheme, message: "paymentPayload.scheme: differs from paymentRequirements.scheme" };
      }
      const requirements = requirementsFromV1(q, network);
      return { ok: true, request: { x402Version: 1, payload: payloadFromV1(p, requirements), requirements, v1Network: q.network } };
    }
    if (version !== 2) {
      return { ok: false, reason: Reason.invalidX402Version, message: `x402Version: unsupported version ${JSON.stringify(version)} (1 and 2 are supported)` };
    }
    // Valid bodies (the common case) skip zod; anything else gets zod's field-named message.
    const fast = fastVerifyRequest(body);
    if (fast) return { ok: true, request: { x402Version: 2, payload: fast.paymentPayload, requirements: fast.paymentRequirements } };
    const r = parseWith<VerifyRequest>(verifyRequestSchema, body);
    if (!r.ok) return { ok: false, reason: reasonFor(r.message), message: r.message };
    return { ok: true, request: { x402Version: 2, payload: r.value.paymentPayload, requirements: r.value.paymentRequirements } };
  }

  function route(request: FacilitatorRequest) {
    const { payload, requirements } = request;
    const a = payload.accepted;
    if (a.scheme !== requirements.scheme) {
      return { ok: false as const, reason: Reason.requirementsMismatch, message: "paymentPayload.accepted.scheme: differs from paymentRequirements.scheme" };
    }
    if (a.network !== requirements.network) {
      return { ok: false as const, reason: Reason.requirementsMismatch, message: "paymentPayload.accepted.network: differs from paymentRequirements.network" };
    }
    if (a.asset.toLowerCase() !== requirements.asset.toLowerCase()) {
      return { ok: false as const, reason: Reason.requirementsMismatch, message: "paymentPayload.accepted.asset: differs from paymentRequirements.asset" };
    }
    if (a.payTo.toLowerCase() !== requirements.payTo.toLowerCase()) {
      return { ok: false as const, reason: Reason.requirementsMismatch, message: "paymentPayload.accepted.payTo: differs from paymentRequirements.payTo" };
    }
    const scheme = byKey.get(`${requirements.scheme}|${requirements.network}`);
    if (scheme) return { ok: true as const, scheme };
    const knownScheme = options.schemes.some((s) => s.scheme === requirements.scheme);
    return knownScheme
      ? { ok: false as const, reason: Reason.invalidNetwork, message: `paymentRequirements.network: ${requirements.network} is not served by this facilitator` }
      : { ok: false as const, reason: Reason.unsupportedScheme, message: `paymentRequirements.scheme: ${JSON.stringify(requirements.scheme)} is not supported` };
  }

  async function verify(request: FacilitatorRequest): Promise<VerifyResponse> {
    const r = route(request);
    if (!r.ok) return { isValid: false, invalidReason: r.reason, invalidMessage: r.message };
    try {
      return await r.scheme.verify(request.payload, request.requirements);
    } catch (e) {
      return { isValid: false, invalidReason: Reason.unexpectedVerifyError, invalidMessage: safeMessage(e) };
    }
  }

  async function settle(request: FacilitatorRequest): Promise<SettleResponse> {
    const network = request.requirements.network as Network;
    const r = route(request);
    if (!r.ok) return { success: false, errorReason: r.reason, errorMessage: r.message, transaction: "", network };
    try {
      return await r.scheme.settle(request.payload, request.requirements, request.caller);
    } catch (e) {
      return { success: false, errorReason: Reason.unexpectedSettleError, errorMessage: safeMessage(e), transaction: "", network };
    }
  }

  function settleResponseFor(request: FacilitatorRequest, response: SettleResponse): SettleResponse | SettleResponseV1 {
    return request.x402Version === 1 ? settleResponseToV1(response, request.v1Network ?? response.network) : response;
  }

  return { schemes: options.schemes, supported, parseRequest, route, verify, settle, settleResponseFor };
}

/** Malformed requirements and malformed payloads get the spec's two distinct codes. */
function reasonFor(message: string): string {
  return message.startsWith("paymentRequirements") ? Reason.invalidPaymentRequirements : Reason.invalidPayload;
}

/** First line of an error's message, capped: enough to act on, nothing from deep inside (RPC bodies can echo inputs). */
export function safeMessage(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return (m.split("\n")[0] ?? "").slice(0, 300);
}
