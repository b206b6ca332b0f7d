/**
 * `wrapFetch`: a fetch that pays. On a 402 it reads the payment requirements (v2:
 * PAYMENT-REQUIRED header; v1: JSON body), lets the payment client choose, check the policy
 * and sign, and retries the same request once with the payment header. The receipt from
 * PAYMENT-RESPONSE / X-PAYMENT-RESPONSE is available through `getPaymentReceipt(response)`.
 *
 * The request body is buffered before the first attempt, so the paid retry sends the same
 * bytes even when the caller passed a one-shot ReadableStream.
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
}

/** The paid retry did not succeed. `charged` says whether the server reported a settlement. */
export class PaymentFailedError extends Error {
  override name = "PaymentFailedError";
  /** The server's reason code (errorReason / error), or `http_<status>` / `network_error`. */
  readonly reason: string;
  readonly status: number | undefined;
  readonly receipt: SettleResponse | undefined;
  readonly requirements: PaymentRequirements;
  readonly payer: string;
  readonly charged: boolean;
  /** The failed retry's response (body unread unless it was needed to find the reason). */
  readonly response: Response | undefined;

  constructor(
    message: string,
    fields: { reason: string; status?: number; receipt?: SettleResponse; payment: Payment; charged: boolean; response?: Response },
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.reason = fields.reason;
    this.status = fields.status;
    this.receipt = fields.receipt;
    this.requirements = fields.payment.requirements;
    this.payer = fields.payment.payer;
    this.charged = fields.charged;
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
      payment.release();
      throw new PaymentFailedError(`paid retry failed before a response: ${(e as Error)?.message ?? String(e)}`, { reason: "network_error", payment, charged: false }, { cause: e });
    }

    const receipt = readReceipt(retry.headers);
    const charged = receipt?.success === true;
    if (retry.status >= 400) {
      if (charged) payment.commit();
      else payment.release();
      const reason = receipt?.errorReason || (await reasonOf(retry)) || `http_${retry.status}`;
      throw new PaymentFailedError(`payment failed: HTTP ${retry.status}, ${reason}${receipt?.errorMessage ? ` (${receipt.errorMessage})` : ""}`, {
        reason,
        status: retry.status,
        ...(receipt ? { receipt } : {}),
        payment,
        charged,
        response: retry,
      });
    }
    // A success without a receipt may still have been settled: keep it counted unless the server says otherwise.
    if (receipt && !receipt.success) payment.release();
    else payment.commit();
    const info: PaymentInfo = { x402Version: payment.x402Version, requirements: payment.requirements, payer: payment.payer, payload: payment.payload };
    if (receipt) info.receipt = receipt;
    receipts.set(retry, info);
    return retry;
  };
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
