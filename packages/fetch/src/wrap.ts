/**
 * `wrapFetch`: a fetch that pays. On a 402 it reads the payment requirements (v2:
 * PAYMENT-REQUIRED header; v1: JSON body), lets the payment client choose, check the policy
 * and sign, and retries the same request once with the payment header. The receipt from
 * PAYMENT-RESPONSE / X-PAYMENT-RESPONSE is available through `getPaymentReceipt(response)`.
 *
 * The request body is buffered before the first attempt, so the paid retry sends the same
 * bytes even when the caller passed a one-shot ReadableStream.
 *
 * The exchange itself (what is paid, when the budget counts it, what a failed retry cost) is
 * `payAndRetry` in exchange.ts, shared with @tollgate/axios; this file is what is fetch's own.
 */
import { createPaymentClient, type Extensions, type PaymentClient, type PaymentClientOptions } from "@tollgate/core";
import { PaymentFailedError, payAndRetry, type PaymentInfo, type ResponseView } from "./exchange.ts";

export { PaymentFailedError, type Charged, type PaymentInfo } from "./exchange.ts";

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export type WrapFetchOptions = ({ client: PaymentClient } | PaymentClientOptions) & {
  /** Paid retries after a 402: 1 (default) or 0 (never pay; the 402 is returned as is). */
  maxRetries?: 0 | 1;
  /** Extension data to add to every v2 payment (merged under the server's). */
  extensions?: Extensions;
};

const receipts = new WeakMap<Response, PaymentInfo>();

/** The payment made for `response` by a wrapped fetch, or undefined if none was made. */
export function getPaymentReceipt(response: Response): PaymentInfo | undefined {
  return receipts.get(response);
}

export function wrapFetch(fetch: FetchLike, options: WrapFetchOptions): FetchLike {
  const client = "client" in options ? options.client : createPaymentClient(options);
  const maxRetries = options.maxRetries ?? 1;
  if (maxRetries !== 0 && maxRetries !== 1) throw new RangeError("wrapFetch: maxRetries must be 0 or 1");

  return async function paidFetch(input, init) {
    const request = await snapshot(input, init);
    const first = await fetch(request.url, request.init());
    if (first.status !== 402 || maxRetries === 0) return first;

    const result = await payAndRetry<Response>({
      client,
      url: request.url,
      ...(options.extensions ? { extensions: options.extensions } : {}),
      first: fetchView(first),
      view: fetchView,
      send: (header) => fetch(request.url, request.init(header)),
    });
    // A 402 that is not an x402 one: nothing to pay.
    if (result.kind === "not-x402") return first;
    receipts.set(result.response, result.info);
    return result.response;
  };
}

/** A fetch Response as the exchange reads it: bodies through clones, so the caller can still read them. */
function fetchView(response: Response): ResponseView {
  return {
    status: response.status,
    header: (name) => response.headers.get(name),
    text: async () => response.clone().text(),
    discard: async () => {
      await response.body?.cancel();
    },
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
