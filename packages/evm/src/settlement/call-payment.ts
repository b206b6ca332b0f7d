/**
 * What payment an engine call carries, whichever method it uses: its settle-once key (the one the
 * facilitator's ledger claims and the guarded signer writes ahead), the payer and the amount. So
 * the engine's hooks name an EIP-3009 authorization and a Permit2 payment the same way.
 */
import { authorizationKey } from "../exact/authenticate.ts";
import type { EngineCall, Permit2SettlementCall } from "./types.ts";

export interface EngineCallPayment {
  key: string;
  /** As signed (checksummed or not: compare lower-case). */
  payer: string;
  /** Atomic units, decimal string. */
  amount: string;
  permit2: boolean;
}

/** Whether a call is a Permit2 proxy call (its authorization has `permitted`; EIP-3009's has `value`). */
export function isPermit2Call(call: EngineCall): call is Permit2SettlementCall {
  return typeof (call.authorization as { permitted?: unknown }).permitted === "object";
}

export function engineCallPayment(network: string, call: EngineCall): EngineCallPayment {
  // upto: what moves is the charge, at most the signed amount.
  if (isPermit2Call(call)) return { key: call.key, payer: call.authorization.from, amount: String(call.amount ?? call.authorization.permitted.amount), permit2: true };
  const a = call.authorization;
  return { key: authorizationKey(network, call.asset, a.from, a.nonce), payer: a.from, amount: String(a.value), permit2: false };
}
