/**
 * A payment authorizer: a second gate after the spending policy, run for the chosen option
 * before anything is signed. It may refuse (throw: nothing is signed), and for a payment it
 * allows it says what the payment must carry: the nonce the scheme signs (so the on-chain
 * transfer names what authorized it) and extension data for the payload. An AP2 mandate wallet
 * (`@tollgate/mandates` `mandateWallet`) is one; the core knows nothing of mandates.
 *
 * Its bookkeeping follows the payment's: `handOver` once the signed payload is about to leave
 * the client (throw to drop it unsent), then `commit` (settled) or `release` (provably never
 * settles), as for the policy's reservation.
 */
import type { Extensions, PaymentRequirements, ResourceInfo } from "../types.ts";

export interface AuthorizeContext {
  x402Version: 1 | 2;
  /** The resource being paid for (v2: the 402's `resource`; v1: built from the option). */
  resource?: ResourceInfo;
  /** The request URL, when the transport has one. */
  url?: string;
  /** The address that will pay (the scheme client's). */
  payer: string;
}

export interface PaymentAuthorization {
  /** The nonce the scheme must sign (0x + 64 hex digits); see PayloadContext.nonce. */
  nonce?: string;
  /** Added to a v2 payload's `extensions`; its leaves win over the server's advertisement. */
  extensions?: Extensions;
  /** The signed payload is about to be sent; throw to refuse sending it (it is then dropped and released). */
  handOver?(info: { payload: Record<string, unknown>; validUntil: number }): void | Promise<void>;
  /** The payment settled. */
  commit(): void | Promise<void>;
  /** The payment can never settle (not sent, or shown unused). */
  release(): void | Promise<void>;
}

export interface PaymentAuthorizer {
  authorize(requirements: PaymentRequirements, context: AuthorizeContext): Promise<PaymentAuthorization>;
}
