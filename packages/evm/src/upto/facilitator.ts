/**
 * Facilitator face of `upto` on EVM (x402 specs/schemes/upto/scheme_upto_evm.md). The payer signed
 * a Permit2 transfer of at most `permitted.amount` that only this facilitator (witness.facilitator)
 * can submit, through the x402 upto proxy.
 *
 * - verify: requirements.amount is the maximum and must equal the signed amount; the Permit2 checks
 *   shared with `exact` (exact/facilitator/permit2-check.ts: signature, allowance or 412
 *   `permit2_allowance_required`, balance, window, token, nonce, dry run of `settle` for the full
 *   maximum), plus witness.facilitator being this facilitator.
 * - settle: requirements.amount is the charge the resource server decided. Above the signed amount:
 *   `invalid_upto_evm_payload_settlement_exceeds_amount`, before any chain call. The payment is
 *   re-checked against the SIGNED amount (the signature covers permitted.amount, never the charge).
 *   Zero: nothing is sent (`transaction: ""`, `amount: "0"`). Otherwise one proxy call moving the
 *   charge; the response's `amount` is the charge.
 */
import { type AuthenticateResult, type Network, type PaymentPayload, type PaymentRequirements, type SchemeFacilitator, type SettleResponse, type VerifyResponse } from "@tollgate/core";
import { authenticatePermit2 } from "../exact/facilitator/permit2-authenticate.ts";
import { createContext, type FacilitatorContext } from "../exact/facilitator/context.ts";
import { checkPermit2 } from "../exact/facilitator/permit2-check.ts";
import { uptoPermit2Method } from "../exact/facilitator/permit2-method.ts";
import { builtInPermit2Submit, settlePermit2Payment } from "../exact/facilitator/permit2-settle.ts";
import type { ExactEvmFacilitatorConfig } from "../exact/facilitator/types.ts";
import { uptoSettleAmount } from "./charge.ts";

/**
 * The exact scheme's facilitator options apply (networks and their asset allowlists, the signer,
 * `submitPermit2` for a settlement engine, time margins, backoff). `signer` is the facilitator
 * address published in `/supported` (`extra.facilitatorAddress`): clients name it in the witness,
 * and only it can send the settlement.
 */
export type UptoEvmFacilitatorConfig = Omit<ExactEvmFacilitatorConfig, "submit" | "permit2">;

const method = uptoPermit2Method;

/** The requirements as the payer signed them: the maximum in `amount` (what verify saw). */
function signedRequirements(payload: PaymentPayload, requirements: PaymentRequirements): PaymentRequirements {
  const permitted = (payload?.payload as { permit2Authorization?: { permitted?: { amount?: unknown } } } | undefined)?.permit2Authorization?.permitted?.amount;
  return typeof permitted === "string" ? { ...requirements, amount: permitted } : requirements;
}

export function uptoEvmFacilitator(config: UptoEvmFacilitatorConfig): SchemeFacilitator {
  const ctx: FacilitatorContext = createContext(config);
  const submit = config.submitPermit2 ?? builtInPermit2Submit(ctx, config);

  async function verify(payload: PaymentPayload, requirements: PaymentRequirements): Promise<VerifyResponse> {
    const p = await checkPermit2(ctx, payload, requirements, true, { method });
    if (!p.ok) return { isValid: false, invalidReason: p.reason, invalidMessage: p.message, ...(p.payer ? { payer: p.payer } : {}) };
    return { isValid: true, payer: p.payer };
  }

  async function settle(payload: PaymentPayload, requirements: PaymentRequirements): Promise<SettleResponse> {
    const network = requirements.network;
    const refuse = (reason: string, message: string, payer?: string): SettleResponse => ({ success: false, errorReason: reason, errorMessage: message, transaction: "", network, ...(payer ? { payer } : {}) });
    // The one decision of what moves (shared with the gas-sponsoring wrapper): refusals before any chain call.
    const amount = uptoSettleAmount(payload, requirements);
    if (!amount.ok) return refuse(amount.reason, amount.message, amount.payer);
    const { charge, asSigned } = amount;
    if (amount.sends) return settlePermit2Payment(ctx, submit, payload, asSigned, { method, charge });
    // Zero: nothing moves and no transaction is sent; the payment is still judged (a forged or
    // foreign one is not answered "success"), without the dry run a zero transfer cannot have.
    const r = await checkPermit2(ctx, payload, asSigned, false, { method, charge });
    if (!r.ok) return refuse(r.reason, r.message, r.payer);
    return { success: true, transaction: "", network, payer: r.payer, amount: "0" };
  }

  return {
    scheme: "upto",
    networks: [...ctx.nets.keys()] as Network[],
    signers: (network: Network) => (ctx.nets.has(network) ? [ctx.signer.address] : []),
    // The spec: the facilitator announces the address clients must name as witness.facilitator.
    kindExtra: (network: Network) => (ctx.nets.has(network) ? { facilitatorAddress: ctx.signer.address } : undefined),
    verify,
    settle,
    // At settle the requirements carry the charge: the payer and key come from what was signed.
    authenticate: (payload, requirements): Promise<AuthenticateResult> => authenticatePermit2(ctx, payload, signedRequirements(payload, requirements), { method }),
  };
}
