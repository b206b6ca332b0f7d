/**
 * One request per payment at a time, in this process. Copies of one payment (the same
 * authorization, however re-encoded) sent concurrently would all pass `/verify` while the first
 * is still being settled; only one may reach a handler. The key is held from before `/verify`
 * until the settlement outcome is final, and the copies are refused without a facilitator call.
 *
 * This is not what makes a payment settle once: the facilitator's ledger decides that. It
 * guarantees one handler run per payment in this process, which the ledger cannot see.
 */
import { createHash } from "node:crypto";
import { canonicalJson, type PaymentPayload, type PaymentRequirements, type SchemeServer } from "@tollgate/core";

export interface InFlight {
  /** Takes `key`; returns its release (idempotent), or undefined when another request holds it. */
  acquire(key: string): (() => void) | undefined;
  readonly size: number;
}

export function createInFlight(): InFlight {
  const held = new Set<string>();
  return {
    acquire(key) {
      if (held.has(key)) return undefined;
      held.add(key);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        held.delete(key);
      };
    },
    get size() {
      return held.size;
    },
  };
}

/**
 * The authorization a payload carries: the scheme's key (EVM network|asset|payer|nonce, Solana
 * the signed message), else a hash of the canonical payload. Throws `CanonicalJsonError` for a
 * payload nested too deeply to hash.
 */
export function authorizationKeyOf(scheme: SchemeServer, payload: PaymentPayload, requirements: PaymentRequirements): string {
  const key = scheme.authorizationKey?.(payload, requirements);
  if (key) return `${scheme.scheme}|${key}`;
  return `${scheme.scheme}|${requirements.network}|sha256:${payloadHash(payload)}`;
}

/** sha256 of the canonical JSON of the scheme payload (what the client signed). */
export function payloadHash(payload: PaymentPayload): string {
  return createHash("sha256").update(canonicalJson(payload.payload)).digest("hex");
}
