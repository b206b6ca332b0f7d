/**
 * `wrapAxios`: an axios instance that pays. A response interceptor takes every 402 (rejected,
 * or resolved when `validateStatus` lets it through), and runs the same exchange as
 * `@tollgate/fetch`'s `wrapFetch` (`payAndRetry`): read the requirements, let the payment client
 * choose, check the policy and sign, send the request again once with the payment header, and
 * keep the budget counting whatever was handed over until it settled or expired. The receipt is
 * `getPaymentReceipt(response)`.
 *
 * One payment per request: a request that already carried a payment header (the paid retry, or
 * a caller's own) is never paid again; its 402 is the caller's.
 */
import { AxiosHeaders, isAxiosError, type AxiosInstance, type AxiosResponse, type InternalAxiosRequestConfig } from "axios";
import { createPaymentClient, Headers as X402Headers, type Extensions, type PaymentClient, type PaymentClientOptions } from "@tollgate/core";
import { payAndRetry, type PaymentInfo, type ResponseView } from "@tollgate/fetch";

// One import is enough for a paying app, as with @tollgate/fetch.
export {
  PaymentFailedError,
  PaymentRefusedError,
  InvalidPaymentRequiredError,
  RefusalCode,
  createPaymentClient,
  spendingPolicy,
  preferNetworks,
  cheapest,
  accountFromEnv,
  accountFromKeystore,
  DEFAULT_MAX_TIMEOUT_SECONDS,
  type Charged,
  type PaymentInfo,
  type PaymentClient,
  type PaymentClientOptions,
  type SpendingPolicy,
  type SpendingPolicyOptions,
  type OutstandingPayment,
} from "@tollgate/fetch";

export type WrapAxiosOptions = ({ client: PaymentClient } | PaymentClientOptions) & {
  /** Paid retries after a 402: 1 (default) or 0 (never pay; the 402 is left as axios gives it). */
  maxRetries?: 0 | 1;
  /** Extension data to add to every v2 payment (merged under the server's). */
  extensions?: Extensions;
};

const receipts = new WeakMap<AxiosResponse, PaymentInfo>();
const wrapped = new WeakSet<object>();

/** The payment made for `response` by a wrapped instance, or undefined if none was made. */
export function getPaymentReceipt(response: AxiosResponse): PaymentInfo | undefined {
  return receipts.get(response);
}

/**
 * Makes `instance` pay x402 402 responses and returns it. A failed paid retry rejects with
 * `PaymentFailedError` (its `response` is the AxiosResponse); a refused payment with
 * `PaymentRefusedError`; malformed requirements with `InvalidPaymentRequiredError`. Nothing is
 * signed in the last two cases.
 */
export function wrapAxios<T extends AxiosInstance>(instance: T, options: WrapAxiosOptions): T {
  if (typeof instance?.interceptors?.response?.use !== "function" || typeof instance.request !== "function") {
    throw new TypeError("wrapAxios: instance: expected an axios instance (axios.create())");
  }
  if (wrapped.has(instance)) throw new Error("wrapAxios: instance: already wrapped; a second wrapper would apply a second policy to the same 402s");
  if (typeof options !== "object" || options === null) throw new TypeError("wrapAxios: options: expected { schemes, policy? } or { client }");
  const maxRetries = options.maxRetries ?? 1;
  if (maxRetries !== 0 && maxRetries !== 1) throw new RangeError("wrapAxios: maxRetries must be 0 or 1");
  const client = "client" in options ? options.client : createPaymentClient(options);
  wrapped.add(instance);
  if (maxRetries === 0) return instance;

  async function pay(first: AxiosResponse, error: unknown): Promise<AxiosResponse> {
    const config = first.config;
    if (!config || carriesPayment(config)) return passOn(first, error);
    const result = await payAndRetry<AxiosResponse>({
      client,
      url: instance.getUri(config),
      ...(options.extensions ? { extensions: options.extensions } : {}),
      first: axiosView(first),
      view: axiosView,
      beforePaying: () => requireReplayable(config),
      send: (header) => resend(instance, config, header),
    });
    // A 402 that is not an x402 one: nothing to pay, axios's answer stands.
    if (result.kind === "not-x402") return passOn(first, error);
    receipts.set(result.response, result.info);
    return result.response;
  }

  instance.interceptors.response.use(
    (response) => (response.status === 402 ? pay(response, undefined) : response),
    (error: unknown) => (isAxiosError(error) && error.response?.status === 402 ? pay(error.response, error) : Promise.reject(error)),
  );
  return instance;
}

/** What axios would have answered without the wrapper: the response, or its rejection. */
function passOn(response: AxiosResponse, error: unknown): Promise<AxiosResponse> {
  return error === undefined ? Promise.resolve(response) : Promise.reject(error);
}

const PAYMENT_HEADERS = [X402Headers.v2.payment, X402Headers.v1.payment];

function carriesPayment(config: InternalAxiosRequestConfig): boolean {
  const headers = AxiosHeaders.from(config.headers);
  return PAYMENT_HEADERS.some((name) => headers.has(name));
}

/**
 * The paid retry sends `config.data` again, as axios already transformed it for the first
 * attempt; a stream was consumed by that attempt. Refused before anything is signed.
 */
function requireReplayable(config: InternalAxiosRequestConfig): void {
  const data: unknown = config.data;
  if (isStream(data)) {
    throw new TypeError("wrapAxios: config.data: a stream request body cannot be sent a second time with the payment; pass a string, Buffer, ArrayBuffer, FormData or URLSearchParams");
  }
}

/** The same request with the payment header; any HTTP answer resolves, only "no response at all" rejects. */
async function resend(instance: AxiosInstance, config: InternalAxiosRequestConfig, header: { name: string; value: string }): Promise<AxiosResponse> {
  // A copy: the first attempt's config (which the caller may hold through an error) stays unpaid.
  const headers = new AxiosHeaders(AxiosHeaders.from(config.headers)).set(header.name, header.value);
  try {
    return await instance.request({ ...config, headers });
  } catch (e) {
    if (isAxiosError(e) && e.response) return e.response;
    throw e;
  }
}

/** An AxiosResponse as the exchange reads it. */
function axiosView(response: AxiosResponse): ResponseView {
  return {
    status: response.status,
    header: (name) => headerValue(response, name),
    text: () => bodyText(response.data),
    discard: async () => {
      const data: unknown = response.data;
      if (isNodeStream(data)) data.destroy();
      else if (isWebStream(data)) await data.cancel();
    },
  };
}

function headerValue(response: AxiosResponse, name: string): string | null {
  const value = AxiosHeaders.from(response.headers as ConstructorParameters<typeof AxiosHeaders>[0]).get(name);
  if (value === undefined || value === null || value === false) return null;
  return Array.isArray(value) ? value.join(", ") : String(value);
}

/**
 * The body as text, from whatever axios made of it: a string, bytes, a Blob, or the object it
 * parsed from JSON (written back as JSON). A stream is left to the caller (read as "").
 */
async function bodyText(data: unknown): Promise<string> {
  if (typeof data === "string") return data;
  if (data === null || data === undefined || isStream(data)) return "";
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return new TextDecoder().decode(data);
  if (typeof Blob !== "undefined" && data instanceof Blob) return data.text();
  if (typeof data === "object") return JSON.stringify(data);
  return String(data);
}

function isNodeStream(value: unknown): value is { pipe: unknown; destroy(): void } {
  return typeof value === "object" && value !== null && typeof (value as { pipe?: unknown }).pipe === "function" && typeof (value as { destroy?: unknown }).destroy === "function";
}

function isWebStream(value: unknown): value is ReadableStream {
  return typeof value === "object" && value !== null && typeof (value as { getReader?: unknown }).getReader === "function";
}

function isStream(value: unknown): boolean {
  return (typeof value === "object" && value !== null && typeof (value as { pipe?: unknown }).pipe === "function") || isWebStream(value);
}
