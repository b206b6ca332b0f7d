/**
 * Runtime validation of every x402 message that crosses a trust boundary. Each parser
 * returns a result instead of throwing, and its error names the field and the reason,
 * e.g. `paymentPayload.accepted.amount: expected a non-negative integer string`.
 * Unknown fields are kept (the protocol is extensible); known fields are checked strictly.
 */
import { z } from "zod";
import { isCaip2 } from "./caip2.ts";
import { isAtomic } from "./money.ts";
import type {
  PaymentPayload,
  PaymentPayloadV1,
  PaymentRequired,
  PaymentRequiredV1,
  PaymentRequirements,
  PaymentRequirementsV1,
  SettleResponse,
  SupportedResponse,
  VerifyResponse,
} from "./types.ts";

const str = (max: number) => z.string().min(1, "must not be empty").max(max, `must be at most ${max} characters`);
const atomic = z.string().refine(isAtomic, "expected a non-negative integer string of atomic units (at most uint256)");
const caip2 = z.string().max(64).refine(isCaip2, "expected a CAIP-2 network id such as eip155:8453");
const record = z.record(z.string(), z.unknown());
const timeout = z.number().int("must be a whole number of seconds").positive("must be positive").max(86_400 * 366, "is unreasonably large");

export const resourceInfoSchema = z.looseObject({
  url: z.string().max(4096),
  description: z.string().max(4096).optional(),
  mimeType: z.string().max(256).optional(),
});

export const paymentRequirementsSchema = z.looseObject({
  scheme: str(64),
  network: caip2,
  amount: atomic,
  asset: str(256),
  payTo: str(256),
  maxTimeoutSeconds: timeout,
  extra: record.optional(),
});

export const paymentRequiredSchema = z.looseObject({
  x402Version: z.literal(2, "must be 2"),
  error: z.string().max(4096).optional(),
  resource: resourceInfoSchema,
  accepts: z.array(paymentRequirementsSchema).min(1, "must list at least one way to pay").max(64),
  extensions: record.optional(),
});

export const paymentPayloadSchema = z.looseObject({
  x402Version: z.literal(2, "must be 2"),
  resource: resourceInfoSchema.optional(),
  accepted: paymentRequirementsSchema,
  payload: record,
  extensions: record.optional(),
});

export const paymentRequirementsV1Schema = z.looseObject({
  scheme: str(64),
  network: str(64),
  maxAmountRequired: atomic,
  resource: z.string().max(4096),
  description: z.string().max(4096).default(""),
  mimeType: z.string().max(256).default(""),
  outputSchema: record.nullish(),
  payTo: str(256),
  maxTimeoutSeconds: timeout,
  asset: str(256),
  extra: record.nullish(),
});

export const paymentRequiredV1Schema = z.looseObject({
  x402Version: z.literal(1, "must be 1"),
  error: z.string().max(4096).default(""),
  accepts: z.array(paymentRequirementsV1Schema).max(64),
});

export const paymentPayloadV1Schema = z.looseObject({
  x402Version: z.literal(1, "must be 1"),
  scheme: str(64),
  network: str(64),
  payload: record,
});

/**
 * What a facilitator is sent: requirements may carry `maxTimeoutSeconds: 0`. Servers send that for
 * operations that are not a paid request (`batch-settlement` claim, settle and refund: the reference
 * server's channel manager does), and no timeout is read from it there.
 */
const facilitatorRequirementsSchema = paymentRequirementsSchema.extend({
  maxTimeoutSeconds: z.number().int("must be a whole number of seconds").min(0, "must not be negative").max(86_400 * 366, "is unreasonably large"),
});

export const verifyRequestSchema = z.looseObject({
  x402Version: z.literal(2, "must be 2"),
  paymentPayload: paymentPayloadSchema.extend({ accepted: facilitatorRequirementsSchema }),
  paymentRequirements: facilitatorRequirementsSchema,
});

export const verifyRequestV1Schema = z.looseObject({
  x402Version: z.literal(1, "must be 1"),
  paymentPayload: paymentPayloadV1Schema,
  paymentRequirements: paymentRequirementsV1Schema,
});

const optStr = z.string().nullish().transform((v) => v ?? undefined);

export const verifyResponseSchema = z.looseObject({
  isValid: z.boolean(),
  invalidReason: optStr,
  invalidMessage: optStr,
  payer: optStr,
  extensions: record.nullish().transform((v) => v ?? undefined),
});

export const settleResponseSchema = z.looseObject({
  success: z.boolean(),
  errorReason: optStr,
  errorMessage: optStr,
  payer: optStr,
  transaction: z.string().max(256),
  network: z.string().max(64),
  amount: optStr,
  extensions: record.nullish().transform((v) => v ?? undefined),
});

export const supportedResponseSchema = z.looseObject({
  kinds: z.array(
    z.looseObject({
      x402Version: z.number().int(),
      scheme: z.string(),
      network: z.string(),
      extra: record.nullish().transform((v) => v ?? undefined),
    }),
  ),
  extensions: z.array(z.string()).default([]),
  signers: z.record(z.string(), z.array(z.string())).default({}),
});

// ------------------------------------------------------------------- results

export type ParseResult<T> = { ok: true; value: T } | { ok: false; message: string; issues: FieldIssue[] };
export interface FieldIssue {
  /** Dotted path of the offending field, e.g. `accepted.amount` (empty for the root). */
  field: string;
  reason: string;
}

/** Formats zod issues as `field: reason` with a dotted path, prefixed with `root` where given. */
export function describeIssues(error: z.ZodError, root = ""): FieldIssue[] {
  return error.issues.slice(0, 8).map((issue) => {
    const path = [root, ...issue.path.map(String)].filter(Boolean).join(".");
    let reason = issue.message;
    if (issue.code === "invalid_type" && /received undefined/.test(reason)) reason = "is required";
    return { field: path || "(root)", reason };
  });
}

export function parseWith<T>(schema: z.ZodType, value: unknown, root = ""): ParseResult<T> {
  const r = schema.safeParse(value);
  if (r.success) return { ok: true, value: r.data as T };
  const issues = describeIssues(r.error, root);
  return { ok: false, issues, message: issues.map((i) => `${i.field}: ${i.reason}`).join("; ") };
}

// ------------------------------------------------------- fast path (hot /verify)

const MAX_TIMEOUT_SECONDS = 86_400 * 366;

/** What zod's object/record accept, narrowed to the common case (anything unusual goes to zod). */
function plain(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return (proto === Object.prototype || proto === null) && !Object.hasOwn(v, "constructor") && !Object.hasOwn(v, "__proto__");
}
const optionalPlain = (v: unknown) => v === undefined || plain(v);
const sized = (v: unknown, min: number, max: number) => typeof v === "string" && v.length >= min && v.length <= max;
const optionalSized = (v: unknown, max: number) => v === undefined || sized(v, 0, max);

// Facilitator requests only (see facilitatorRequirementsSchema): a zero timeout is accepted.
function fastRequirements(q: unknown): boolean {
  return (
    plain(q) &&
    sized(q.scheme, 1, 64) &&
    sized(q.network, 0, 64) &&
    isCaip2(q.network as string) &&
    typeof q.amount === "string" &&
    isAtomic(q.amount) &&
    sized(q.asset, 1, 256) &&
    sized(q.payTo, 1, 256) &&
    typeof q.maxTimeoutSeconds === "number" &&
    Number.isSafeInteger(q.maxTimeoutSeconds) &&
    q.maxTimeoutSeconds >= 0 &&
    q.maxTimeoutSeconds <= MAX_TIMEOUT_SECONDS &&
    optionalPlain(q.extra)
  );
}

/**
 * verifyRequestSchema without zod, for the request path: the value when it is certainly valid,
 * undefined when anything is off (then parse with zod for the field-named message). Accepts
 * only what the schema accepts and gives what it gives (unknown fields kept), tested against it.
 */
export function fastVerifyRequest(body: unknown): { paymentPayload: PaymentPayload; paymentRequirements: PaymentRequirements } | undefined {
  if (!plain(body) || body.x402Version !== 2) return undefined;
  const p = body.paymentPayload;
  if (!plain(p) || p.x402Version !== 2 || !plain(p.payload) || !optionalPlain(p.extensions) || !fastRequirements(p.accepted)) return undefined;
  const r = p.resource;
  if (r !== undefined && !(plain(r) && sized(r.url, 0, 4096) && optionalSized(r.description, 4096) && optionalSized(r.mimeType, 256))) return undefined;
  if (!fastRequirements(body.paymentRequirements)) return undefined;
  return body as { paymentPayload: PaymentPayload; paymentRequirements: PaymentRequirements };
}

export const parsePaymentRequired = (v: unknown) => parseWith<PaymentRequired>(paymentRequiredSchema, v, "paymentRequired");
export const parsePaymentRequiredV1 = (v: unknown) => parseWith<PaymentRequiredV1>(paymentRequiredV1Schema, v, "paymentRequired");
export const parsePaymentPayload = (v: unknown, root = "paymentPayload") => parseWith<PaymentPayload>(paymentPayloadSchema, v, root);
export const parsePaymentPayloadV1 = (v: unknown, root = "paymentPayload") => parseWith<PaymentPayloadV1>(paymentPayloadV1Schema, v, root);
export const parsePaymentRequirements = (v: unknown, root = "paymentRequirements") =>
  parseWith<PaymentRequirements>(paymentRequirementsSchema, v, root);
export const parsePaymentRequirementsV1 = (v: unknown, root = "paymentRequirements") =>
  parseWith<PaymentRequirementsV1>(paymentRequirementsV1Schema, v, root);
export const parseVerifyResponse = (v: unknown) => parseWith<VerifyResponse>(verifyResponseSchema, v, "verifyResponse");
export const parseSettleResponse = (v: unknown) => parseWith<SettleResponse>(settleResponseSchema, v, "settleResponse");
export const parseSupportedResponse = (v: unknown) => parseWith<SupportedResponse>(supportedResponseSchema, v, "supported");
