/**
 * The A2A x402 extension on the wire (google-agentic-commerce/a2a-x402 spec v0.1 and v0.2, and
 * x402 specs/transports-v2/a2a.md): the extension URIs, the message metadata keys and values,
 * the error codes, the AP2 embedded form, and reading each of them back. Shared by the merchant
 * and client sides so each shape is written and read in one place.
 */
import type { AgentExtension, Artifact, Message, Part, Task } from "@a2a-js/sdk";
import { parseSettleResponse, Reason, type PaymentPayload, type PaymentRequired, type SettleResponse } from "@tollgate/core";

/** The v0.1 extension URI (a2a-x402 spec v0.1, and x402 specs/transports-v2/a2a.md). */
export const X402_EXTENSION_URI_V01 = "https://github.com/google-a2a/a2a-x402/v0.1";
/** The v0.2 extension URI (a2a-x402 spec v0.2: standalone and AP2-embedded flows). */
export const X402_EXTENSION_URI_V02 = "https://github.com/google-agentic-commerce/a2a-x402/blob/main/spec/v0.2";
/** Every URI this package answers to, newest last. */
export const X402_EXTENSION_URIS = [X402_EXTENSION_URI_V01, X402_EXTENSION_URI_V02] as const;
export type X402ExtensionUri = (typeof X402_EXTENSION_URIS)[number];

/** The activation header of A2A v0.3 (the spec's); A2A v1.0 names it `A2A-Extensions`. */
export const EXTENSIONS_HEADER = "X-A2A-Extensions";
export const EXTENSIONS_HEADER_V1 = "A2A-Extensions";

/** Message metadata keys. */
export const Meta = {
  status: "x402.payment.status",
  required: "x402.payment.required",
  payload: "x402.payment.payload",
  receipts: "x402.payment.receipts",
  error: "x402.payment.error",
} as const;

/** Values of `x402.payment.status`. */
export const PaymentStatus = {
  required: "payment-required",
  submitted: "payment-submitted",
  rejected: "payment-rejected",
  verified: "payment-verified",
  completed: "payment-completed",
  failed: "payment-failed",
} as const;
export type PaymentStatus = (typeof PaymentStatus)[keyof typeof PaymentStatus];

/** The extension's common error codes (spec v0.1 section 8.1, v0.2 section 9.1). */
export const ErrorCode = {
  insufficientFunds: "INSUFFICIENT_FUNDS",
  invalidSignature: "INVALID_SIGNATURE",
  expiredPayment: "EXPIRED_PAYMENT",
  duplicateNonce: "DUPLICATE_NONCE",
  networkMismatch: "NETWORK_MISMATCH",
  invalidAmount: "INVALID_AMOUNT",
  settlementFailed: "SETTLEMENT_FAILED",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * The one table from x402 reason codes (the facilitator's and the paywall's) to the extension's
 * codes. A reason not listed is SETTLEMENT_FAILED ("failed for a reason other than the above").
 */
const ERROR_CODES: Readonly<Record<string, ErrorCode>> = {
  [Reason.insufficientFunds]: ErrorCode.insufficientFunds,

  [Reason.evmSignature]: ErrorCode.invalidSignature,
  [Reason.svmSignature]: ErrorCode.invalidSignature,
  [Reason.evmContractWalletNotAllowed]: ErrorCode.invalidSignature,
  [Reason.evmTokenDomainMismatch]: ErrorCode.invalidSignature,
  [Reason.invalidPayload]: ErrorCode.invalidSignature,
  [Reason.svmTransactionUndecodable]: ErrorCode.invalidSignature,

  [Reason.evmValidBefore]: ErrorCode.expiredPayment,
  [Reason.evmValidAfter]: ErrorCode.expiredPayment,
  [Reason.evmValidityTooLong]: ErrorCode.expiredPayment,

  [Reason.evmNonceUsed]: ErrorCode.duplicateNonce,
  [Reason.duplicateSettlement]: ErrorCode.duplicateNonce,
  [Reason.authorizationReused]: ErrorCode.duplicateNonce,
  [Reason.paymentIdentifierConflict]: ErrorCode.duplicateNonce,

  [Reason.invalidNetwork]: ErrorCode.networkMismatch,
  [Reason.invalidScheme]: ErrorCode.networkMismatch,
  [Reason.unsupportedScheme]: ErrorCode.networkMismatch,

  [Reason.evmValueMismatch]: ErrorCode.invalidAmount,
  [Reason.svmAmountMismatch]: ErrorCode.invalidAmount,
  [Reason.amountBelowMinimum]: ErrorCode.invalidAmount,
  [Reason.amountZero]: ErrorCode.invalidAmount,
  [Reason.requirementsMismatch]: ErrorCode.invalidAmount,
  [Reason.evmRecipientMismatch]: ErrorCode.invalidAmount,
  [Reason.svmRecipientMismatch]: ErrorCode.invalidAmount,
  [Reason.svmMintMismatch]: ErrorCode.invalidAmount,
  [Reason.evmAssetNotAllowed]: ErrorCode.invalidAmount,
  [Reason.invalidPaymentRequirements]: ErrorCode.invalidAmount,
};

/** The reason code of a reason string ("code: message" as the paywall writes it). */
export function reasonCode(reason: string): string {
  const i = reason.indexOf(":");
  return (i < 0 ? reason : reason.slice(0, i)).trim();
}

/** The extension's error code for an x402 reason (or "code: message" text). */
export function errorCodeFor(reason: string): ErrorCode {
  return ERROR_CODES[reasonCode(reason)] ?? ErrorCode.settlementFailed;
}

/** The `capabilities.extensions` entries of an x402 merchant agent: both URIs (see `required` in the README). */
export function x402AgentExtensions(options: { description?: string; required?: boolean } = {}): AgentExtension[] {
  const description = options.description ?? "Supports payments using the x402 protocol for on-chain settlement.";
  return X402_EXTENSION_URIS.map((uri) => ({ uri, description, required: options.required ?? false, params: undefined }));
}

// ------------------------------------------------------------------ AP2 embedded form (v0.2)

export const AP2_CART_MANDATE = "ap2.mandates.CartMandate";
export const AP2_PAYMENT_MANDATE = "ap2.mandates.PaymentMandate";
/** `supported_methods` of the x402 payment method in an AP2 payment request. */
export const X402_PAYMENT_METHOD = "https://www.x402.org/";
export const CART_MANDATE_ARTIFACT_NAME = "AP2 CartMandate";

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function textPart(text: string): Part {
  return { content: { $case: "text", value: text }, metadata: undefined, filename: "", mediaType: "" };
}

export function dataPart(data: Record<string, unknown>): Part {
  return { content: { $case: "data", value: data }, metadata: undefined, filename: "", mediaType: "" };
}

function dataOf(part: Part | undefined): Record<string, unknown> | undefined {
  const content = part?.content;
  return content?.$case === "data" && isObject(content.value) ? content.value : undefined;
}

/** The x402 entry of an AP2 `method_data` list. */
function x402Method(methods: unknown): Record<string, unknown> | undefined {
  if (!Array.isArray(methods)) return undefined;
  return methods.find((m): m is Record<string, unknown> => isObject(m) && m.supported_methods === X402_PAYMENT_METHOD);
}

/**
 * The v0.2 embedded form of a PaymentRequired: an artifact carrying an AP2 CartMandate whose
 * payment request lists x402 as a method, with the PaymentRequired as that method's `data`
 * (shape of the spec's "Embedded Flow Example").
 */
export function cartMandateArtifact(required: PaymentRequired, cart: { id: string; orderId: string; total?: { currency: string; value: number } }): Artifact {
  const details: Record<string, unknown> = { id: cart.orderId };
  if (cart.total) details.total = { amount: cart.total };
  return {
    artifactId: `cart-mandate-${cart.id}`,
    name: CART_MANDATE_ARTIFACT_NAME,
    description: "",
    parts: [
      dataPart({
        [AP2_CART_MANDATE]: {
          id: cart.id,
          payment_request: { method_data: [{ supported_methods: X402_PAYMENT_METHOD, data: required }], details },
        },
        timestamp: new Date().toISOString(),
      }),
    ],
    metadata: undefined,
    extensions: [],
  };
}

/** The PaymentRequired inside a task's AP2 CartMandate artifact (v0.2 flow detection, step 3); not validated here. */
export function readEmbeddedRequired(artifacts: readonly Artifact[] | undefined): unknown {
  for (const artifact of artifacts ?? []) {
    for (const part of artifact.parts ?? []) {
      const cart = dataOf(part)?.[AP2_CART_MANDATE];
      if (!isObject(cart) || !isObject(cart.payment_request)) continue;
      const method = x402Method(cart.payment_request.method_data);
      if (method) return method.data;
    }
  }
  return undefined;
}

/** The v0.2 embedded form of a PaymentPayload: a data part carrying an AP2 PaymentMandate. */
export function paymentMandatePart(payload: PaymentPayload, details: { paymentRequestId?: string; cartMandate?: string } = {}): Part {
  return dataPart({
    [AP2_PAYMENT_MANDATE]: {
      payment_details: {
        ...(details.cartMandate !== undefined ? { cart_mandate: details.cartMandate } : {}),
        ...(details.paymentRequestId !== undefined ? { payment_request_id: details.paymentRequestId } : {}),
        payment_method: { supported_methods: X402_PAYMENT_METHOD, data: payload },
      },
      creation_time: new Date().toISOString(),
    },
  });
}

/** The x402 payload inside a message's AP2 PaymentMandate part, with its field path; undefined when none. */
export function readEmbeddedPayload(message: Message): { value: unknown; field: string } | undefined {
  const parts = message.parts ?? [];
  for (let i = 0; i < parts.length; i++) {
    const mandate = dataOf(parts[i])?.[AP2_PAYMENT_MANDATE];
    if (!isObject(mandate) || !isObject(mandate.payment_details)) continue;
    const method = mandate.payment_details.payment_method;
    if (isObject(method) && method.supported_methods === X402_PAYMENT_METHOD) {
      return { value: method.data, field: `message.parts[${i}].data["${AP2_PAYMENT_MANDATE}"].payment_details.payment_method.data` };
    }
  }
  return undefined;
}

// ------------------------------------------------------------------ reading tasks

export function isTask(result: unknown): result is Task {
  return isObject(result) && typeof result.id === "string" && !("messageId" in result);
}

/** The `x402.payment.status` of a task's status message. */
export function paymentStatusOf(task: Task): string | undefined {
  const status = task.status?.message?.metadata?.[Meta.status];
  return typeof status === "string" ? status : undefined;
}

/**
 * The PaymentRequired a task asks for, as the v0.2 flow detection reads it: only when the
 * status message says `payment-required`; from `x402.payment.required` (standalone) or else from
 * an AP2 CartMandate artifact (embedded). Not validated here: the payment client validates it
 * field by field before choosing anything.
 */
export function readPaymentRequired(task: Task): { value: unknown; embedded: boolean } | undefined {
  if (paymentStatusOf(task) !== PaymentStatus.required) return undefined;
  const metadata = task.status?.message?.metadata ?? {};
  if (Meta.required in metadata) return { value: metadata[Meta.required], embedded: false };
  const embedded = readEmbeddedRequired(task.artifacts);
  return embedded === undefined ? undefined : { value: embedded, embedded: true };
}

/** The valid entries of a task's `x402.payment.receipts` (the full settle history), oldest first. */
export function readReceipts(task: Task): SettleResponse[] {
  const raw = task.status?.message?.metadata?.[Meta.receipts];
  if (!Array.isArray(raw)) return [];
  const out: SettleResponse[] = [];
  for (const r of raw) {
    const parsed = parseSettleResponse(r);
    if (parsed.ok) out.push(parsed.value);
  }
  return out;
}

/** A task's `x402.payment.error` code, if any. */
export function readPaymentError(task: Task): string | undefined {
  const error = task.status?.message?.metadata?.[Meta.error];
  return typeof error === "string" ? error : undefined;
}
