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
import { createPaymentClient, type Extensions, type PaymentClient, type PaymentClientOptions, type PaymentRequired } from "@tollgate/core";
import { PaymentFailedError, payAndRetry, type PaidResult, type PaymentInfo, type ResponseView } from "./exchange.ts";

export { PaymentFailedError, type Charged, type PaymentInfo } from "./exchange.ts";

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export type WrapFetchOptions = ({ client: PaymentClient } | PaymentClientOptions) & {
  /** Paid retries after a 402: 1 (default) or 0 (never pay; the 402 is returned as is). */
  maxRetries?: 0 | 1;
  /**
   * After a URL was paid with a scheme that allows it (`batch-settlement` vouchers), send the
   * next payment for the same method and URL with the first request: one round trip instead of
   * two. A server that answers 402 anyway is paid the usual way. Default true.
   */
  payUpFront?: boolean;
  /** Extension data to add to every v2 payment (merged under the server's). */
  extensions?: Extensions;
};

const receipts = new WeakMap<Response, PaymentInfo>();
/** URLs remembered for paying up front, per wrapped fetch; the oldest is forgotten beyond this. */
const MAX_REMEMBERED = 1_000;

/** The payment made for `response` by a wrapped fetch, or undefined if none was made. */
export function getPaymentReceipt(response: Response): PaymentInfo | undefined {
  return receipts.get(response);
}

export function wrapFetch(fetch: FetchLike, options: WrapFetchOptions): FetchLike {
  const client = "client" in options ? options.client : createPaymentClient(options);
  const maxRetries = options.maxRetries ?? 1;
  if (maxRetries !== 0 && maxRetries !== 1) throw new RangeError("wrapFetch: maxRetries must be 0 or 1");

  /** `METHOD url` → the requirements it was last paid with, for schemes that allow paying up front. */
  const upFront = new Map<string, PaymentRequired>();

  return async function paidFetch(input, init) {
    const request = await snapshot(input, init);
    const key = `${request.method} ${request.url}`;
    const exchange = {
      client,
      url: request.url,
      ...(options.extensions ? { extensions: options.extensions } : {}),
      view: fetchView,
      send: (header: { name: string; value: string }) => fetch(request.url, request.init(header)),
    };
    const remember = (result: Extract<PaidResult<Response>, { kind: "paid" }>) => {
      receipts.set(result.response, result.info);
      // Only a payment the server acknowledged with a receipt is worth sending up front again (a
      // route that stopped charging would otherwise be "paid" on every request).
      if (options.payUpFront === false || !result.payUpFront || result.required.x402Version !== 2 || !result.info.receipt) {
        upFront.delete(key);
        return result.response;
      }
      upFront.delete(key);
      upFront.set(key, result.required);
      if (upFront.size > MAX_REMEMBERED) upFront.delete(upFront.keys().next().value!);
      return result.response;
    };

    const known = maxRetries === 1 ? upFront.get(key) : undefined;
    if (known) {
      try {
        const result = await payAndRetry<Response>({ ...exchange, required: known, upFront: true });
        if (result.kind === "paid") return remember(result);
      } catch (e) {
        // Asked to pay differently (the price or the route changed): forget, and pay that 402 as usual.
        if (!(e instanceof PaymentFailedError) || e.status !== 402 || !e.response) throw e;
        upFront.delete(key);
        return payFirst(e.response as Response);
      }
    }
    const first = await fetch(request.url, request.init());
    if (first.status !== 402 || maxRetries === 0) return first;
    return payFirst(first);

    async function payFirst(first: Response): Promise<Response> {
      const result = await payAndRetry<Response>({ ...exchange, first: fetchView(first) });
      // A 402 that is not an x402 one: nothing to pay.
      if (result.kind === "not-x402") return first;
      return remember(result);
    }
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
  method: string;
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
    method: request.method,
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
