/**
 * `wrapFetch`: a fetch that pays. On a 402 it reads the payment requirements (v2:
 * PAYMENT-REQUIRED header; v1: JSON body), lets the payment client choose, check the policy
 * and sign, and retries the same request once with the payment header. The receipt from
 * PAYMENT-RESPONSE / X-PAYMENT-RESPONSE is available through `getPaymentReceipt(response)`.
 *
 * The request body is buffered before the first attempt, so the paid retry sends the same
 * bytes even when the caller passed a one-shot ReadableStream.
 *
 * The budget counts what was handed over: once the paid retry is attempted, the signed header
 * is out of our hands (the server, a proxy, anyone on the path may hold it and settle it until
 * it expires). So nothing here ever releases a payment after sending it: a receipt that says
 * settled commits it; anything else leaves it counted until it expires (the policy releases it
 * then) or the caller proves it unusable (`policy.release(error.reservationId)`).
 */
import {
  createPaymentClient,
  decodeBase64Json,
  Headers as X402Headers,
  InvalidPaymentRequiredError,
  parseSettleResponse,
  type Extensions,
  type Payment,
  type PaymentClient,
  type PaymentClientOptions,
  type PaymentPayload,
  type PaymentPayloadV1,
  type PaymentRequired,
  type PaymentRequiredV1,
  type PaymentRequirements,
  type SettleResponse,
} from "@tollgate/core";

/**
 * Whether a failed paid request cost money: `true` the server reported the authorization
 * settled; `false` it reported it not settled; `"unknown"` it may have been: the settlement is
 * pending, the connection failed after the header was sent, or the server failed without a
 * receipt. `"unknown"` is truthy on purpose: code written for the old boolean that checks
 * `if (error.charged)` treats a maybe as charged, the safe side (do not pay twice).
 */
export type Charged = boolean | "unknown";

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export type WrapFetchOptions = ({ client: PaymentClient } | PaymentClientOptions) & {
  /** Paid retries after a 402: 1 (default) or 0 (never pay; the 402 is returned as is). */
  maxRetries?: 0 | 1;
  /** Extension data to add to every v2 payment (merged under the server's). */
  extensions?: Extensions;
};

/** What was paid for a response. `receipt` is undefined when the server sent no (readable) settlement header. */
export interface PaymentInfo {
  x402Version: 1 | 2;
  receipt?: SettleResponse;
  requirements: PaymentRequirements;
  payer: string;
  payload: PaymentPayload | PaymentPayloadV1;
  /** The payment's reservation in the policy (undefined without a policy). */
  reservationId?: string;
}

/**
 * The paid retry did not succeed. `charged` says whether it cost money (see Charged). Unless
 * `charged === true` (committed), its amount stays counted in the policy until `validUntil`
 * (plus the policy's grace), or until `policy.release(reservationId)` / `policy.commit(reservationId)`.
 */
export class PaymentFailedError extends Error {
  override name = "PaymentFailedError";
  /** The server's reason code (errorReason / error), or `http_<status>` / `network_error`. */
  readonly reason: string;
  readonly status: number | undefined;
  readonly receipt: SettleResponse | undefined;
  readonly requirements: PaymentRequirements;
  readonly payer: string;
  readonly charged: Charged;
  /** The payment's reservation in the policy (undefined without a policy). */
  readonly reservationId: string | undefined;
  /** Unix seconds after which the signed payment can no longer settle. */
  readonly validUntil: number;
  /** The failed retry's response (body unread unless it was needed to find the reason). */
  readonly response: Response | undefined;

  constructor(
    message: string,
    fields: { reason: string; status?: number; receipt?: SettleResponse; payment: Payment; charged: Charged; response?: Response },
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.reason = fields.reason;
    this.status = fields.status;
    this.receipt = fields.receipt;
    this.requirements = fields.payment.requirements;
    this.payer = fields.payment.payer;
    this.charged = fields.charged;
    this.reservationId = fields.payment.reservationId;
    this.validUntil = fields.payment.validUntil;
    this.response = fields.response;
  }
}

const receipts = new WeakMap<Response, PaymentInfo>();

/** The payment made for `response` by a wrapped fetch, or undefined if none was made. */
export function getPaymentReceipt(response: Response): PaymentInfo | undefined {
  return receipts.get(response);
}

/** v1 402 bodies larger than this are not parsed (a payment requirement is a few KiB). */
const MAX_BODY_CHARS = 256 * 1024;

export function wrapFetch(fetch: FetchLike, options: WrapFetchOptions): FetchLike {
  const client = "client" in options ? options.client : createPaymentClient(options);
  const maxRetries = options.maxRetries ?? 1;
  if (maxRetries !== 0 && maxRetries !== 1) throw new RangeError("wrapFetch: maxRetries must be 0 or 1");

  return async function paidFetch(input, init) {
    const request = await snapshot(input, init);
    const first = await fetch(request.url, request.init());
    if (first.status !== 402 || maxRetries === 0) return first;

    const required = await readPaymentRequired(first);
    if (!required) return first; // A 402 that is not an x402 one: nothing to pay.

    const payment = await client.pay(required, { url: request.url, ...(options.extensions ? { extensions: options.extensions } : {}) });

    let retry: Response;
    try {
      retry = await fetch(request.url, request.init(payment.header));
    } catch (e) {
      // The header may have reached the server (a reset after the request was written looks the
      // same as one before): the payment stays counted until it expires.
      throw new PaymentFailedError(`paid retry failed before a response: ${(e as Error)?.message ?? String(e)}${countedNote(payment)}`, { reason: "network_error", payment, charged: "unknown" }, { cause: e });
    }

    const receipt = readReceipt(retry.headers);
    if (retry.status >= 400) {
      const reason = receipt?.errorReason || (await reasonOf(retry)) || `http_${retry.status}`;
      const charged = chargedBy(retry.status, receipt, reason);
      if (charged === true) payment.commit();
      throw new PaymentFailedError(
        `payment failed: HTTP ${retry.status}, ${reason}${receipt?.errorMessage ? ` (${receipt.errorMessage})` : ""}${charged === true ? "" : countedNote(payment)}`,
        { reason, status: retry.status, ...(receipt ? { receipt } : {}), payment, charged, response: retry },
      );
    }
    // Served. A success without a receipt may still have been settled: count it as spent. A
    // receipt that says "not settled" on a served response leaves it counted until it expires.
    if (!receipt || chargedBy(retry.status, receipt, receipt.errorReason ?? "") === true) payment.commit();
    const info: PaymentInfo = { x402Version: payment.x402Version, requirements: payment.requirements, payer: payment.payer, payload: payment.payload };
    if (receipt) info.receipt = receipt;
    if (payment.reservationId !== undefined) info.reservationId = payment.reservationId;
    receipts.set(retry, info);
    return retry;
  };
}

/** Reasons after which the authorization may or may not have settled. */
const MAYBE_SETTLED = new Set(["settlement_pending", "settlement_timeout", "unexpected_settle_error"]);
/** The authorization settled before (another copy of the header won): the money moved. */
const ALREADY_SETTLED = "duplicate_settlement";

/** The reason code of a reason string: servers may append a message ("code: message"). */
function reasonCode(reason: string): string {
  const i = reason.indexOf(":");
  return (i < 0 ? reason : reason.slice(0, i)).trim();
}

/** The status in the facilitator's settlement extension ("settled" / "pending"), when present. */
function settlementStatus(receipt: SettleResponse | undefined): unknown {
  const ext = receipt?.extensions?.["tollgate-settlement"];
  return typeof ext === "object" && ext !== null ? (ext as { status?: unknown }).status : undefined;
}

/** Whether the paid request cost money, from what the server answered (see Charged). */
function chargedBy(status: number, receipt: SettleResponse | undefined, reason: string): Charged {
  if (receipt?.success === true) return true;
  const code = reasonCode(receipt?.errorReason || reason);
  const ext = settlementStatus(receipt);
  if (code === ALREADY_SETTLED || ext === "settled") return true;
  if (MAYBE_SETTLED.has(code) || ext === "pending") return "unknown";
  // A server error with no receipt says nothing about the settlement (it may have failed after it).
  if (status >= 500 && !receipt) return "unknown";
  return false;
}

/** Tells the caller how long a failed payment stays counted. */
function countedNote(payment: Payment): string {
  if (payment.reservationId === undefined) return "";
  return `; its amount stays counted until ${new Date(payment.validUntil * 1000).toISOString()} unless settled, or released by policy.release("${payment.reservationId}")`;
}

interface Snapshot {
  url: string;
  /** A fresh init for one attempt, with an optional payment header. */
  init(header?: { name: string; value: string }): RequestInit;
}

/** Normalizes (input, init) once and buffers the body so it can be sent twice. */
async function snapshot(input: string | URL | Request, init: RequestInit | undefined): Promise<Snapshot> {
  // Node needs `duplex: "half"` to accept a stream body.
  const streamed = init?.body != null && typeof (init.body as ReadableStream).getReader === "function";
  const request = new Request(input, streamed ? ({ ...init, duplex: "half" } as RequestInit) : init);
  const body = request.body ? await request.arrayBuffer() : undefined;
  const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined);
  const base: RequestInit = { ...init, method: request.method, redirect: request.redirect };
  delete (base as { duplex?: unknown }).duplex;
  if (signal) base.signal = signal;
  return {
    url: request.url,
    init(header) {
      const headers = new Headers(request.headers);
      if (header) headers.set(header.name, header.value);
      const out: RequestInit = { ...base, headers };
      if (body !== undefined) out.body = body.slice(0);
      else delete out.body;
      return out;
    },
  };
}

/**
 * The PaymentRequired of a 402: the PAYMENT-REQUIRED header (v2) if present, else an x402 JSON
 * body (v1). Undefined when the response carries neither (not an x402 402). A malformed header
 * or x402 body throws InvalidPaymentRequiredError naming the field (checked again by the client).
 */
async function readPaymentRequired(response: Response): Promise<PaymentRequired | PaymentRequiredV1 | undefined> {
  const header = response.headers.get(X402Headers.v2.required);
  if (header !== null) {
    await response.body?.cancel().catch(() => {});
    const decoded = decodeBase64Json(header, X402Headers.v2.required);
    if (!decoded.ok) throw new InvalidPaymentRequiredError(decoded.message, [{ field: X402Headers.v2.required, reason: decoded.message }]);
    return validate(decoded.value);
  }
  const text = await response
    .clone()
    .text()
    .catch(() => "");
  if (text.length > MAX_BODY_CHARS) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof body !== "object" || body === null || !("x402Version" in body)) return undefined;
  return validate(body);
}

function validate(value: unknown): PaymentRequired | PaymentRequiredV1 {
  // The client validates fully; here only the version decides which schema applies.
  if (typeof value !== "object" || value === null) throw new InvalidPaymentRequiredError("paymentRequired: expected an object", [{ field: "(root)", reason: "expected an object" }]);
  const version = (value as { x402Version?: unknown }).x402Version;
  if (version !== 1 && version !== 2) {
    throw new InvalidPaymentRequiredError(`paymentRequired.x402Version: unsupported version ${JSON.stringify(version)}`, [
      { field: "paymentRequired.x402Version", reason: "must be 1 or 2" },
    ]);
  }
  return value as PaymentRequired | PaymentRequiredV1;
}

function readReceipt(headers: Headers): SettleResponse | undefined {
  const name = headers.has(X402Headers.v2.response) ? X402Headers.v2.response : X402Headers.v1.response;
  const raw = headers.get(name);
  if (raw === null) return undefined;
  const decoded = decodeBase64Json(raw, name);
  if (!decoded.ok) return undefined;
  const parsed = parseSettleResponse(decoded.value);
  return parsed.ok ? parsed.value : undefined;
}

/** The server's reason in a failed retry: the `error` of a PAYMENT-REQUIRED header or of a JSON body. */
async function reasonOf(response: Response): Promise<string | undefined> {
  const header = response.headers.get(X402Headers.v2.required);
  if (header !== null) {
    const decoded = decodeBase64Json(header, X402Headers.v2.required);
    const error = decoded.ok ? (decoded.value as { error?: unknown })?.error : undefined;
    if (typeof error === "string" && error) return error;
  }
  const text = await response
    .clone()
    .text()
    .catch(() => "");
  if (!text || text.length > MAX_BODY_CHARS) return undefined;
  try {
    const body = JSON.parse(text) as { error?: unknown; errorReason?: unknown; invalidReason?: unknown };
    for (const v of [body.errorReason, body.invalidReason, body.error]) if (typeof v === "string" && v) return v;
  } catch {
    // not JSON
  }
  return undefined;
}
