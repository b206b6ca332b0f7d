/**
 * `/verify` and `/settle`, whatever server received them (node's own in server.ts, hono in
 * app.ts). Plain functions over a `PaymentDeps` value, one step each:
 *
 *   answerPayment   API key, per-IP limit, bounded body          (401, 429, 413: transport)
 *   handlePayment   read the request, amount, route, authenticate (400 malformed; 200 refusals)
 *                   per-payer limit keyed on the VERIFIED signer  (429)
 *   verifyPayment / settlePayment                                  (200 for every protocol outcome)
 *
 * Nothing is written or rate-limited for a payer whose signature did not check out: such a
 * request is answered with the scheme's reason and leaves an anonymous event at most.
 */
import { timingSafeEqual, createHash } from "node:crypto";
import { Reason, safeMessage, type Caller, type Facilitator, type FacilitatorRequest, type Network, type SettleResponse, type VerifyResponse } from "@tollgate/core";
import { extensionTransaction, settlementResult, settledForRetry } from "./answers.ts";
import type { AuditQueue } from "./audit.ts";
import type { Catalog } from "./discovery/catalog.ts";
import { catalogHeaders } from "./discovery/on-payment.ts";
import type { Ledger, LedgerEvent, PaymentEntry } from "./ledger/ledger.ts";
import type { Logger } from "./logger.ts";
import { sentAlready, type MandateGate } from "./mandates.ts";
import type { FacilitatorMetrics } from "./metrics.ts";
import { amountRefusal, identifyPayment, paymentEntry, type MinAmount, type PaymentIdentityResult } from "./payment.ts";
import type { RateLimiter } from "./rate-limit.ts";
import { readPaymentRequest } from "./read-request.ts";
import type { SettlementCoordinator, SettleOutcome } from "./settle.ts";

export type Kind = "verify" | "settle";

/** What `/verify` and `/settle` need from an HTTP request, whatever server received it. */
export interface PaymentHttpRequest {
  kind: Kind;
  header(name: "authorization" | "content-type"): string | undefined;
  /** The client's address (for per-IP limits); only called when a limit is configured. */
  clientIp(): string;
  /** The body as text, or `undefined` when it is larger than `maxBytes` (read no further). */
  readBody(maxBytes: number): Promise<string | undefined>;
}

export interface PaymentHttpResponse {
  /** 200 for every protocol outcome; the others are transport errors. */
  status: 200 | 400 | 401 | 413 | 429 | 500 | 503;
  headers: Record<string, string>;
  /** JSON text. */
  body: string;
}

export interface PaymentDeps {
  facilitator: Facilitator;
  ledger: Ledger;
  coordinator: SettlementCoordinator;
  audit: AuditQueue;
  metrics: FacilitatorMetrics;
  logger: Logger;
  /** The configured API keys (none: /verify and /settle are open). */
  apiKeys: readonly KeyEntry[];
  ipLimiter?: RateLimiter;
  payerLimiter?: RateLimiter;
  minAmount?: MinAmount;
  maxBodyBytes: number;
  /** The discovery catalog: declarations in paid requests are cataloged (discovery/). */
  catalog?: Catalog;
  /** AP2 mandates (mandates.ts): checked before anything settles. */
  mandates?: MandateGate;
}

/** A readable request whose signer checked out (or whose scheme cannot say: identity undefined). */
interface PaymentContext {
  kind: Kind;
  request: FacilitatorRequest;
  identifier: string | undefined;
  identity: PaymentIdentityResult | undefined;
  started: number;
}

// ----------------------------------------------------------------------------- answers

export function json(status: PaymentHttpResponse["status"], body: unknown, headers: Record<string, string> = {}): PaymentHttpResponse {
  return { status, headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) };
}

export function errorFor(kind: Kind, status: PaymentHttpResponse["status"], reason: string, message: string, network = "", headers?: Record<string, string>): PaymentHttpResponse {
  return kind === "verify"
    ? json(status, { isValid: false, invalidReason: reason, invalidMessage: message } satisfies VerifyResponse, headers)
    : json(status, { success: false, errorReason: reason, errorMessage: message, transaction: "", network: network as Network } satisfies SettleResponse, headers);
}

export function internalError(kind: Kind): PaymentHttpResponse {
  return errorFor(kind, 500, kind === "verify" ? Reason.unexpectedVerifyError : Reason.unexpectedSettleError, "internal error");
}

function count(deps: PaymentDeps, kind: Kind, result: string, reason: string | undefined): void {
  (kind === "verify" ? deps.metrics.verifyOutcomes : deps.metrics.settleOutcomes).inc({ result, reason: reason ?? "" });
}

/** Queues an audit event; waits only when the queue is full (backpressure). */
async function note(deps: PaymentDeps, event: LedgerEvent): Promise<void> {
  await deps.audit.addEvent(event);
}

// ----------------------------------------------------------------------------- steps

/** Authentication and per-IP limits before the body is read, then the payment. */
export async function answerPayment(deps: PaymentDeps, req: PaymentHttpRequest): Promise<PaymentHttpResponse> {
  const { kind } = req;
  try {
    const caller = deps.apiKeys.length > 0 ? callerOf(req.header("authorization"), deps.apiKeys) : undefined;
    if (deps.apiKeys.length > 0 && !caller) {
      count(deps, kind, "rejected", Reason.unauthorized);
      return errorFor(kind, 401, Reason.unauthorized, "authorization: expected `Bearer <api key>` with a valid key", "", { "www-authenticate": 'Bearer realm="tollgate-facilitator"' });
    }
    if (deps.ipLimiter && !deps.ipLimiter.take(`ip:${req.clientIp()}`)) {
      count(deps, kind, "rejected", Reason.rateLimited);
      return errorFor(kind, 429, Reason.rateLimited, "too many requests from this address; slow down", "", { "retry-after": "1" });
    }
    const text = await req.readBody(deps.maxBodyBytes);
    if (text === undefined) return errorFor(kind, 413, Reason.invalidPayload, `body: larger than ${deps.maxBodyBytes} bytes`);
    return await handlePayment(deps, kind, req.header("content-type"), text, caller);
  } catch (e) {
    deps.logger.error({ path: `/${kind}`, err: safeMessage(e) }, "unhandled error");
    return internalError(kind);
  }
}

async function handlePayment(deps: PaymentDeps, kind: Kind, contentType: string | undefined, text: string, caller: Caller | undefined): Promise<PaymentHttpResponse> {
  const started = performance.now();
  const read = readPaymentRequest(deps.facilitator, text, contentType);
  if (!read.ok) return malformed(deps, kind, read.reason, read.message, read.network);
  const { request, identifier } = read;
  // Who asks goes with the request to the scheme (a scoped key's receivers); never from the body.
  if (caller) request.caller = caller;
  // Refused before any chain call, and before anything is keyed on a payer. Except an `upto`
  // charge of zero at settle: valid, and it moves nothing (the scheme answers without a transaction).
  const zeroCharge = isZeroUptoCharge(kind, request);
  const amount = zeroCharge ? undefined : amountRefusal(request.requirements, deps.minAmount);
  if (amount) return refuse(deps, kind, request, amount.reason, amount.message, started);
  const routed = deps.facilitator.route(request);
  if (!routed.ok) return refuse(deps, kind, request, routed.reason, routed.message, started);
  const auth = await identifyPayment(routed.scheme, request.payload, request.requirements);
  if (auth && !auth.ok) return refuse(deps, kind, request, auth.reason, auth.message, started);
  const identity = auth?.ok ? { payer: auth.payer, key: auth.key } : undefined;
  if (identity && deps.payerLimiter && !deps.payerLimiter.take(`payer:${request.requirements.network}|${identity.payer}`)) {
    count(deps, kind, "rejected", Reason.rateLimited);
    return errorFor(kind, 429, Reason.rateLimited, "too many requests for this payer; slow down", request.requirements.network, { "retry-after": "1" });
  }
  // AP2 mandates: refused here, before the scheme, the ledger claim or any chain call.
  const mandate = await deps.mandates?.check(request);
  if (mandate && !(await sentAlready(deps.ledger, deps.logger, identity ? paymentEntry(request, identity, identifier) : undefined))) {
    return refuse(deps, kind, request, mandate.reason, mandate.message, started);
  }
  const ctx: PaymentContext = { kind, request, identifier, identity, started };
  if (zeroCharge) return settleZeroCharge(deps, ctx);
  return kind === "verify" ? verifyPayment(deps, ctx) : settlePayment(deps, ctx);
}

function isZeroUptoCharge(kind: Kind, request: FacilitatorRequest): boolean {
  const q = request.requirements;
  return kind === "settle" && q.scheme === "upto" && typeof q.amount === "string" && /^0+$/.test(q.amount);
}

/**
 * `upto` settled for zero: the scheme judges the payment (signer, window, nonce) and sends
 * nothing, so there is nothing to claim, write ahead or reconcile; the event is audited.
 */
async function settleZeroCharge(deps: PaymentDeps, { request, identity, started }: PaymentContext): Promise<PaymentHttpResponse> {
  const network = request.requirements.network;
  const response = await deps.facilitator.settle(request);
  await note(deps, {
    kind: "settle",
    network,
    outcome: response.success ? "settled" : "failed",
    ...(identity ? { key: identity.key, payer: identity.payer } : {}),
    ...(response.errorReason ? { reason: response.errorReason } : {}),
  });
  deps.metrics.settleDuration.observe((performance.now() - started) / 1000, { result: response.success ? "success" : "failure" });
  count(deps, "settle", response.success ? "success" : "failure", response.errorReason);
  return json(200, deps.facilitator.settleResponseFor(request, response));
}

/** 400: the request could not be read. */
function malformed(deps: PaymentDeps, kind: Kind, reason: string, message: string, network?: string): PaymentHttpResponse {
  count(deps, kind, "malformed", reason);
  deps.logger.debug({ route: kind, status: 400, reason, message }, "malformed request");
  return errorFor(kind, 400, reason, message, network);
}

/** 200 refusal before the payer is known: nothing keyed on anyone, an anonymous event only. */
async function refuse(deps: PaymentDeps, kind: Kind, request: FacilitatorRequest, reason: string, message: string, started: number): Promise<PaymentHttpResponse> {
  const network = request.requirements.network;
  await note(deps, { kind, network, outcome: kind === "verify" ? "invalid" : "rejected", reason });
  const seconds = (performance.now() - started) / 1000;
  if (kind === "verify") {
    deps.metrics.verifyDuration.observe(seconds, { result: "invalid" });
    count(deps, kind, "invalid", reason);
    return json(200, { isValid: false, invalidReason: reason, invalidMessage: message } satisfies VerifyResponse);
  }
  deps.metrics.settleDuration.observe(seconds, { result: "failure" });
  count(deps, kind, "failure", reason);
  const response: SettleResponse = { success: false, errorReason: reason, errorMessage: message, transaction: "", network };
  return json(200, deps.facilitator.settleResponseFor(request, response));
}

async function verifyPayment(deps: PaymentDeps, { request, identifier, identity, started }: PaymentContext): Promise<PaymentHttpResponse> {
  const network = request.requirements.network;
  const entry = identity ? paymentEntry(request, identity, identifier) : undefined;
  let response = await deps.facilitator.verify(request);
  // The ledger only on the failure path: the valid path costs no store round trip.
  if (!response.isValid && entry) response = await settledRetry(deps, entry, response);
  // The answer does not depend on the record (settlement does, and fails closed there): write it
  // behind, group-committed by the audit queue; a promise comes back only when it is full.
  const reason = response.invalidReason;
  const full = [
    entry ? deps.audit.addVerify({ entry, valid: response.isValid, ...(reason ? { reason } : {}) }) : undefined,
    deps.audit.addEvent({ kind: "verify", network, outcome: response.isValid ? "valid" : "invalid", ...(entry ? { key: entry.key, payer: entry.payer } : {}), ...(reason ? { reason } : {}) }),
  ];
  if (full[0] || full[1]) await Promise.all(full);
  const seconds = (performance.now() - started) / 1000;
  deps.metrics.verifyDuration.observe(seconds, { result: response.isValid ? "valid" : "invalid" });
  count(deps, "verify", response.isValid ? "valid" : "invalid", reason);
  // Per request at debug: counts and durations are in /metrics; info is for what an operator acts on.
  if (deps.logger.isLevelEnabled("debug")) {
    deps.logger.debug({ route: "verify", network, scheme: request.requirements.scheme, payer: entry?.payer, key: entry?.key, isValid: response.isValid, reason, ms: Math.round(seconds * 1000) }, "verify");
  }
  return json(200, response, await catalogHeaders(deps.catalog, deps.logger, "verify", request, false));
}

/** The scheme said invalid; valid after all when the ledger holds this payload settled for a retry. */
async function settledRetry(deps: PaymentDeps, entry: PaymentEntry, response: VerifyResponse): Promise<VerifyResponse> {
  try {
    if (settledForRetry(await deps.ledger.get(entry.key), entry)) return { isValid: true, payer: response.payer ?? entry.payer };
  } catch (e) {
    deps.logger.warn({ err: safeMessage(e) }, "verify: could not read the ledger; answering the scheme's verdict");
  }
  return response;
}

async function settlePayment(deps: PaymentDeps, { request, identifier, identity, started }: PaymentContext): Promise<PaymentHttpResponse> {
  const network = request.requirements.network;
  const o = identity ? await deps.coordinator.settle(request, paymentEntry(request, identity, identifier)) : await settleUnkeyed(deps, request);
  const { response } = o;
  const transaction = response.transaction || extensionTransaction(response);
  await note(deps, {
    kind: "settle",
    network,
    outcome: o.outcome,
    ...(identity ? { key: identity.key, payer: identity.payer } : {}),
    ...(response.errorReason ? { reason: response.errorReason } : {}),
    ...(transaction ? { transaction } : {}),
  });
  const seconds = (performance.now() - started) / 1000;
  deps.metrics.settleDuration.observe(seconds, { result: response.success ? "success" : "failure" });
  count(deps, "settle", response.success ? (o.outcome === "replay" ? "replay" : "success") : "failure", response.errorReason);
  if (deps.logger.isLevelEnabled("debug")) {
    deps.logger.debug(
      { route: "settle", network, scheme: request.requirements.scheme, payer: identity?.payer, key: identity?.key, success: response.success, outcome: o.outcome, reason: response.errorReason, transaction: transaction || undefined, status: o.status, ms: Math.round(seconds * 1000) },
      "settle",
    );
  }
  return json(o.status, deps.facilitator.settleResponseFor(request, response), await catalogHeaders(deps.catalog, deps.logger, "settle", request, response.success));
}

/**
 * A scheme without `authenticate` gives no authorization key to settle once on: the scheme itself
 * is its only guard, so the log says so.
 */
async function settleUnkeyed(deps: PaymentDeps, request: FacilitatorRequest): Promise<SettleOutcome> {
  const raw = await deps.facilitator.settle(request);
  const result = settlementResult(raw, { network: request.requirements.network, payer: raw.payer ?? "" });
  // batch-settlement needs no key: each of its operations can move money once by contract (an
  // EIP-3009/Permit2 nonce, cumulative claims, a sweep, a refund nonce) and is simulated first.
  if (result.status === "settled" && request.requirements.scheme !== "batch-settlement") {
    deps.logger.warn({ network: request.requirements.network, scheme: request.requirements.scheme }, "settled a payment without an authorization key; not deduplicated");
  }
  return { status: 200, outcome: result.status, response: result.response };
}

// ----------------------------------------------------------------------------- API keys

export function digest(key: string): Buffer {
  return createHash("sha256").update(key).digest();
}

/**
 * An API key as configured. A bare key acts for any receiver (the operator's own servers); with
 * `receivers`, for those `payTo` addresses only: the facilitator's delegated receiver authorizer
 * signs claims and refunds for their channels alone, and the key does not open the dashboard.
 */
export type ApiKey = string | { key: string; receivers: readonly string[] };

/** A configured key as the routes compare it: its digest, and who presenting it makes the caller. */
export interface KeyEntry {
  digest: Buffer;
  caller: Caller;
}

export const apiKeySecret = (k: ApiKey): string => (typeof k === "string" ? k : k.key);

export function keyEntries(keys: readonly ApiKey[]): KeyEntry[] {
  return keys.map((k) => ({ digest: digest(apiKeySecret(k)), caller: typeof k === "string" ? {} : { receivers: k.receivers.map((r) => r.toLowerCase()) } }));
}

/** The keys that act for every receiver: the operator's, the only ones that open the dashboard (it shows every payer and payee). */
export function operatorKeyDigests(keys: readonly KeyEntry[]): Buffer[] {
  return keys.filter((k) => !k.caller.receivers).map((k) => k.digest);
}

/** The caller a bearer key makes; undefined when none matches. Constant-time over every configured key, so timing says nothing about which matched. */
function callerOf(header: string | undefined, keys: readonly KeyEntry[]): Caller | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  if (!m) return undefined;
  const given = digest(m[1]!);
  let found: Caller | undefined;
  for (const k of keys) {
    const same = timingSafeEqual(given, k.digest);
    found ??= same ? k.caller : undefined;
  }
  return found;
}
