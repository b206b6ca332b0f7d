/**
 * The `payment-identifier` extension (x402 specs/extensions/payment_identifier.md): advertised
 * in every v2 PaymentRequired (optional for clients), read from payloads as an idempotency key.
 */
import type { PaymentPayload } from "@tollgate/core";

export const PAYMENT_IDENTIFIER = "payment-identifier";

/** The advertisement, exactly as the extension's spec shows it. */
export const PAYMENT_IDENTIFIER_ADVERTISEMENT = {
  info: { required: false },
  schema: {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    type: "object",
    properties: {
      required: { type: "boolean" },
      id: { type: "string", minLength: 16, maxLength: 128 },
    },
    required: ["required"],
  },
} as const;

/** Spec: 16-128 characters, alphanumeric, hyphens, underscores. */
const ID_FORMAT = /^[A-Za-z0-9_-]{16,128}$/;

export type IdentifierRead = { ok: true; id: string | undefined } | { ok: false; field: string; message: string };

/** The payload's `payment-identifier` id, if any, validated; errors name the field. */
export function readPaymentIdentifier(payload: PaymentPayload): IdentifierRead {
  const field = `paymentPayload.extensions.${PAYMENT_IDENTIFIER}`;
  const ext = payload.extensions?.[PAYMENT_IDENTIFIER];
  if (ext === undefined || ext === null) return { ok: true, id: undefined };
  if (typeof ext !== "object" || Array.isArray(ext)) return { ok: false, field, message: `${field}: expected an object` };
  const info = (ext as { info?: unknown }).info;
  if (info === undefined || info === null) return { ok: true, id: undefined };
  if (typeof info !== "object" || Array.isArray(info)) return { ok: false, field: `${field}.info`, message: `${field}.info: expected an object` };
  const id = (info as { id?: unknown }).id;
  if (id === undefined) return { ok: true, id: undefined };
  if (typeof id !== "string" || !ID_FORMAT.test(id)) {
    return { ok: false, field: `${field}.info.id`, message: `${field}.info.id: expected 16-128 letters, digits, '-' or '_'` };
  }
  return { ok: true, id };
}
