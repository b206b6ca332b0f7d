/**
 * AP2 mandates at the facilitator (docs/extensions/ap2-mandate.md, "Facilitator verification"),
 * for resource servers that delegate the check instead of running it in their paywall.
 *
 * Two rules, decided here and nowhere else:
 *  - a payment that CARRIES a mandate chain is always verified; a present but invalid one is
 *    refused (an agent that sends one means to be held to it);
 *  - a payment that carries none is refused when this facilitator's own config requires one for
 *    its payee (`require: "all"` or a payee list), or when the payload echoes a 402 that asked for
 *    one (`info.required: true`). The echo comes from the client, which can strip it, so only the
 *    config is a guarantee; the echo just catches honest clients early.
 *
 * The requirements are the server's (what it sent to /verify or /settle), so payee, amount, asset
 * and network are bound to what the server charges. The resource URL is the payload's
 * `resource.url`, which the client names: the facilitator binds the closed mandate to the resource
 * the payment names, not necessarily the one the server served (see the doc).
 */
import { safeMessage, type FacilitatorRequest } from "@tollgate/core";
import {
  AP2_MANDATE,
  importPublicMandateJwk,
  MandateReason,
  readAp2MandateInfo,
  statusListRevocation,
  verifyMandatedPayment,
  type PublicMandateJwk,
} from "@tollgate/mandates";
import type { Ledger, PaymentEntry } from "./ledger/ledger.ts";
import type { Logger } from "./logger.ts";

export { AP2_MANDATE };

export interface FacilitatorMandateOptions {
  /**
   * Which payments must carry a mandate: `"all"`, `"none"` (default: only verify those that carry
   * one), or the payees (`payTo`) that require one. Channel (`batch-settlement`) operations carry
   * no mandate: do not list a payee that is paid through channels, and do not use `"all"` with them.
   */
  require?: "all" | "none" | readonly string[];
  /** User keys whose mandates are accepted. Absent: any issuer key the payment presents (see the doc). */
  trustedIssuers?: readonly PublicMandateJwk[];
  /** A published status list (`{ type: "tollgate-mandate-status-list", revoked: [...] }`); unreachable = revoked. */
  statusListUrl?: string;
  /** Or any revocation lookup by mandate id (tests, a database). */
  isRevoked?: (mandateId: string) => boolean | Promise<boolean>;
}

export type MandateRefusal = { reason: string; message: string };

export interface MandateGate {
  /** Why this payment is refused, or undefined when it may go on (no mandate needed, or one that verifies). */
  check(request: FacilitatorRequest): Promise<MandateRefusal | undefined>;
}

export function createMandateGate(options: FacilitatorMandateOptions = {}): MandateGate {
  if (options.statusListUrl !== undefined && options.isRevoked !== undefined) throw new TypeError("mandates: give statusListUrl or isRevoked, not both");
  // A bad trusted key fails here, at start, not as an error on every payment.
  const trustedIssuers = options.trustedIssuers?.map((k, i) => {
    try {
      return importPublicMandateJwk(k);
    } catch (e) {
      throw new TypeError(`mandates.trustedIssuers[${i}]: ${(e as Error).message}`);
    }
  });
  const isRevoked = options.isRevoked ?? (options.statusListUrl !== undefined ? statusListRevocation(options.statusListUrl) : undefined);
  const require = options.require ?? "none";
  const payees = Array.isArray(require) ? new Set(require.map(payeeKey)) : undefined;
  const requiredByConfig = (payTo: string) => require === "all" || (payees?.has(payeeKey(payTo)) ?? false);

  return {
    async check({ payload, requirements }) {
      const info = readAp2MandateInfo(payload.extensions);
      if (info === undefined) {
        if (requiredByConfig(requirements.payTo)) {
          return { reason: MandateReason.required, message: `this facilitator requires an AP2 mandate for payments to ${requirements.payTo}: paymentPayload.extensions["${AP2_MANDATE}"].info.chain is missing` };
        }
        if (echoesRequired(payload.extensions)) {
          return { reason: MandateReason.required, message: `the resource requires an AP2 mandate (its 402 said so): paymentPayload.extensions["${AP2_MANDATE}"].info.chain is missing` };
        }
        return undefined;
      }
      const resourceUrl = payload.resource?.url;
      if (typeof resourceUrl !== "string" || resourceUrl === "") {
        return { reason: MandateReason.malformed, message: "paymentPayload.resource.url: required to check the closed mandate's transaction_id" };
      }
      try {
        const res = await verifyMandatedPayment(payload, requirements, {
          resourceUrl,
          ...(trustedIssuers ? { trustedIssuers } : {}),
          ...(isRevoked ? { isRevoked } : {}),
        });
        return res.ok ? undefined : { reason: res.reason, message: res.message };
      } catch {
        // Input the verifier could not read: refused (fail closed), nothing internal echoed.
        return { reason: MandateReason.malformed, message: `paymentPayload.extensions["${AP2_MANDATE}"].info: the mandate chain could not be read` };
      }
    },
  };
}

/** EVM addresses are case-insensitive hex; other chains' addresses are compared exactly. */
function payeeKey(payTo: string): string {
  return /^0x[0-9a-fA-F]{40}$/.test(payTo) ? payTo.toLowerCase() : payTo;
}

/** The client echoed a 402 advertisement with `info.required: true` (and no chain). */
function echoesRequired(extensions: unknown): boolean {
  const ext = (extensions as Record<string, unknown> | undefined)?.[AP2_MANDATE] as { info?: { required?: unknown } } | undefined;
  return ext?.info?.required === true;
}

/**
 * A refused mandate does not stop a request for a payment this facilitator already SENT (pending
 * or settled, same content): that request only asks for the outcome (a settle retry, a verify
 * after a lost answer), and the mandate verified when it was sent. Refusing it now (the mandate
 * revoked or expired since) would charge the payer without the resource. The ledger is read only
 * on this failure path; a read error keeps the refusal (fail closed).
 */
export async function sentAlready(ledger: Ledger, logger: Logger, entry: PaymentEntry | undefined): Promise<boolean> {
  if (!entry) return false;
  try {
    const record = await ledger.get(entry.key);
    return record !== undefined && (record.status === "pending" || record.status === "settled") && record.requestHash === entry.requestHash;
  } catch (e) {
    logger.warn({ err: safeMessage(e) }, "mandates: could not read the ledger; keeping the refusal");
    return false;
  }
}

/** The service config's `mandates` block as options (config.ts validated it). */
export function mandateOptionsFrom(config: { require: "all" | "none" | string[]; trustedIssuers?: PublicMandateJwk[] | undefined; statusListUrl?: string | undefined }): FacilitatorMandateOptions {
  return {
    require: config.require,
    ...(config.trustedIssuers ? { trustedIssuers: config.trustedIssuers } : {}),
    ...(config.statusListUrl ? { statusListUrl: config.statusListUrl } : {}),
  };
}
