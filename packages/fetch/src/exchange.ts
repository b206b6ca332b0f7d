/**
 * The paying side of one x402 exchange, whatever HTTP client carries it: read the 402, let the
 * payment client choose, check the policy and sign, send the request again once with the
 * payment header, and account for what the answer says about the money. `wrapFetch` and
 * `@tollgate/axios` both run this one function; they only say how to look at a response
 * (`ResponseView`) and how to send the paid retry.
 *
 * The budget counts what was handed over: once the paid retry is attempted, the signed header
 * is out of our hands (the server, a proxy, anyone on the path may hold it and settle it until
 * it expires). So nothing here ever releases a payment after sending it: a receipt that says
 * settled commits it; anything else leaves it counted until it expires (the policy releases it
 * then) or the caller proves it unusable (`policy.release(error.reservationId)`).
 */
import {
  decodeBase64Json,
  Headers as X402Headers,
  InvalidPaymentRequiredError,
  parseSettleResponse,
  type Extensions,
  type Payment,
  type PaymentClient,
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
 * `R` is the HTTP client's response type (fetch: `Response`; axios: `AxiosResponse`).
 */
export class PaymentFailedError<R = Response> extends Error {
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
  readonly response: R | undefined;

  constructor(
    message: string,
    fields: { reason: string; status?: number; receipt?: SettleResponse; payment: Payment; charged: Charged; response?: R },
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

/** How the exchange looks at an HTTP response, whichever client produced it. */
export interface ResponseView {
  readonly status: number;
  /** A response header, case-insensitively; null when absent. */
  header(name: string): string | null;
  /** The body as text ("" when it cannot be read); may be called more than once and must leave the body readable for the caller. */
  text(): Promise<string>;
  /** Frees a body nobody will read (a fetch stream); a no-op where there is nothing to free. */
  discard(): Promise<void>;
}

export interface PaidRetry<R> {
  client: PaymentClient;
  /** The request's full URL (it goes into the v2 payload's `resource`). */
  url: string;
  /** Extension data to add to a v2 payment (merged under the server's). */
  extensions?: Extensions;
  /** The 402 that asked for payment (unless `required` is given). */
  first?: ResponseView;
  view(response: R): ResponseView;
  /**
   * Called once the 402 was read as an x402 one and before anything is signed: throw to refuse
   * paying (e.g. a request body that cannot be sent a second time). Nothing is reserved then.
   */
  beforePaying?(): void;
  /**
   * Sends the same request again with the payment header and resolves with whatever response
   * comes back, error statuses included; rejects only when no response came at all.
   */
  send(header: { name: string; value: string }): Promise<R>;
  /** Internal: the requirements to pay (a scheme's recovery), instead of reading `first`. */
  required?: PaymentRequired;
  /**
   * Internal: `required` are the ones this URL asked for last time, paid with the first request
   * (no 402 yet): the scheme may still recover once from a corrective 402.
   */
  upFront?: boolean;
}

/** `required`: what was paid (v2: narrowed to the chosen option); `payUpFront`: the scheme lets this be sent up front next time. */
export type PaidResult<R> = { kind: "not-x402" } | { kind: "paid"; response: R; info: PaymentInfo; required: PaymentRequired | PaymentRequiredV1; payUpFront: boolean };

/**
 * One payment for one 402, retried once. Resolves `not-x402` for a 402 that carries no x402
 * requirements (nothing is paid), or with the paid response and what was paid. Throws
 * InvalidPaymentRequiredError (malformed requirements, nothing signed), the client's
 * PaymentRefusedError (the policy said no, nothing signed), or PaymentFailedError (the paid
 * retry failed: see `charged`).
 */
export async function payAndRetry<R>(o: PaidRetry<R>): Promise<PaidResult<R>> {
  const required = o.required ?? (o.first ? await readPaymentRequired(o.first) : undefined);
  if (!required) return { kind: "not-x402" };
  o.beforePaying?.();

  // Every answer below reaches payment.observe (status 0 when none came): stateful schemes may sequence on it.
  const payment = await o.client.pay(required, { url: o.url, observesAnswers: true, ...(o.extensions ? { extensions: o.extensions } : {}) });

  let retry: R;
  try {
    retry = await o.send(payment.header);
  } catch (e) {
    // The header may have reached the server (a reset after the request was written looks the
    // same as one before): the payment stays counted until it expires. A stateful scheme hears
    // that no answer came (status 0), so it does not wait for one.
    await payment.observe?.({ status: 0 }).catch(() => undefined);
    throw new PaymentFailedError<R>(`paid retry failed before a response: ${(e as Error)?.message ?? String(e)}${countedNote(payment)}`, { reason: "network_error", payment, charged: "unknown" }, { cause: e });
  }

  const view = o.view(retry);
  const receipt = readReceipt(view);
  // A stateful scheme (batch-settlement) learns the answer; after a corrective 402 it pays once more.
  const again = await payment.observe?.({ status: view.status, ...(receipt ? { receipt } : {}), ...(view.status === 402 ? { required: await correctiveOf(view) } : {}) });
  if (again && (!o.required || o.upFront)) {
    await view.discard().catch(() => {});
    return payAndRetry({ ...o, required: again, upFront: false });
  }
  if (view.status >= 400) {
    const reason = receipt?.errorReason || (await reasonOf(view)) || `http_${view.status}`;
    const charged = chargedBy(view.status, receipt, reason);
    if (charged === true) await payment.commit();
    throw new PaymentFailedError<R>(
      `payment failed: HTTP ${view.status}, ${reason}${receipt?.errorMessage ? ` (${receipt.errorMessage})` : ""}${charged === true ? "" : countedNote(payment)}`,
      { reason, status: view.status, ...(receipt ? { receipt } : {}), payment, charged, response: retry },
    );
  }
  // Served. A success without a receipt may still have been settled: count it as spent. A
  // receipt that says "not settled" on a served response leaves it counted until it expires.
  if (!receipt || chargedBy(view.status, receipt, receipt.errorReason ?? "") === true) await payment.commit();
  const info: PaymentInfo = { x402Version: payment.x402Version, requirements: payment.requirements, payer: payment.payer, payload: payment.payload };
  if (receipt) info.receipt = receipt;
  if (payment.reservationId !== undefined) info.reservationId = payment.reservationId;
  const paid = required.x402Version === 2 ? { ...required, accepts: [payment.requirements] } : required;
  return { kind: "paid", response: retry, info, required: paid, payUpFront: payment.payUpFront === true };
}

/** Reasons after which the authorization may or may not have settled. */
const MAYBE_SETTLED = new Set(["settlement_pending", "settlement_timeout", "unexpected_settle_error"]);
/** The authorization settled before (another copy of the header won): the money moved. */
const ALREADY_SETTLED = "duplicate_settlement";
/** v1 402 bodies larger than this are not parsed (a payment requirement is a few KiB). */
const MAX_BODY_CHARS = 256 * 1024;

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

/**
 * The PaymentRequired of a 402: the PAYMENT-REQUIRED header (v2) if present, else an x402 JSON
 * body (v1). Undefined when the response carries neither (not an x402 402). A malformed header
 * or x402 body throws InvalidPaymentRequiredError naming the field (checked again by the client).
 */
async function readPaymentRequired(response: ResponseView): Promise<PaymentRequired | PaymentRequiredV1 | undefined> {
  const header = response.header(X402Headers.v2.required);
  if (header !== null) {
    await response.discard().catch(() => {});
    const decoded = decodeBase64Json(header, X402Headers.v2.required);
    if (!decoded.ok) throw new InvalidPaymentRequiredError(decoded.message, [{ field: X402Headers.v2.required, reason: decoded.message }]);
    return validate(decoded.value);
  }
  const text = await response.text().catch(() => "");
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

/** The v2 PaymentRequired of a 402 answer to a paid request, when readable. */
async function correctiveOf(view: ResponseView): Promise<PaymentRequired | undefined> {
  // The header only: the body stays unread for the caller.
  const header = view.header(X402Headers.v2.required);
  const decoded = header === null ? undefined : decodeBase64Json(header, X402Headers.v2.required);
  const value = decoded?.ok ? (decoded.value as { x402Version?: unknown }) : undefined;
  return value?.x402Version === 2 ? (value as PaymentRequired) : undefined;
}

function readReceipt(response: ResponseView): SettleResponse | undefined {
  const v2 = response.header(X402Headers.v2.response);
  const name = v2 !== null ? X402Headers.v2.response : X402Headers.v1.response;
  const raw = v2 ?? response.header(X402Headers.v1.response);
  if (raw === null) return undefined;
  const decoded = decodeBase64Json(raw, name);
  if (!decoded.ok) return undefined;
  const parsed = parseSettleResponse(decoded.value);
  return parsed.ok ? parsed.value : undefined;
}

/** The server's reason in a failed retry: the `error` of a PAYMENT-REQUIRED header or of a JSON body. */
async function reasonOf(response: ResponseView): Promise<string | undefined> {
  const header = response.header(X402Headers.v2.required);
  if (header !== null) {
    const decoded = decodeBase64Json(header, X402Headers.v2.required);
    const error = decoded.ok ? (decoded.value as { error?: unknown })?.error : undefined;
    if (typeof error === "string" && error) return error;
  }
  const text = await response.text().catch(() => "");
  if (!text || text.length > MAX_BODY_CHARS) return undefined;
  try {
    const body = JSON.parse(text) as { error?: unknown; errorReason?: unknown; invalidReason?: unknown };
    for (const v of [body.errorReason, body.invalidReason, body.error]) if (typeof v === "string" && v) return v;
  } catch {
    // not JSON
  }
  return undefined;
}
