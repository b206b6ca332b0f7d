/**
 * Everything that can be judged without the chain, cheapest first, each failure with the most
 * specific reason code: payload shape, scheme, network, amount, asset allowlist, the token's
 * domain fields, and the authorization against the requirements (recipient, value, time window).
 * Nothing here makes an RPC call, so a zero amount or a foreign "token" costs nothing.
 */
import { isAtomic, Reason, type PaymentPayload, type PaymentRequirements } from "@tollgate/core";
import { getAddress, isAddress, isAddressEqual, type Address, type Hex } from "viem";
import { parseExactEvmPayload, toTransferAuthorization, type ExactEvmAuthorization, type TransferAuthorization } from "../payload.ts";
import type { FacilitatorContext, NetworkState } from "./context.ts";

export type Failure = { ok: false; reason: string; message: string; payer?: Address };

/** A payload whose claims hold up against the requirements (the signature is not checked yet). */
export interface Request {
  ok: true;
  net: NetworkState;
  asset: Address;
  payer: Address;
  auth: TransferAuthorization;
  wire: ExactEvmAuthorization;
  signature: Hex;
  /** The token's EIP-712 domain as the requirements name it. */
  name: string;
  version: string;
}

export function fail(reason: string, message: string, payer?: Address): Failure {
  return { ok: false, reason, message, ...(payer ? { payer } : {}) };
}

export function checkRequirements(ctx: FacilitatorContext, payload: PaymentPayload, requirements: PaymentRequirements): Request | Failure {
  const parsed = parseExactEvmPayload(payload?.payload);
  if (!parsed.ok) return fail(Reason.invalidPayload, parsed.message);
  const wire = parsed.value.authorization;
  const payer = getAddress(wire.from);
  const auth = toTransferAuthorization({ ...wire, from: payer, to: getAddress(wire.to) });

  const target = checkTarget(ctx, payload, requirements, payer);
  if (!target.ok) return target;
  const { net, asset } = target;
  const name = requirements.extra?.name;
  const version = requirements.extra?.version;
  if (typeof name !== "string" || name === "" || typeof version !== "string" || version === "") {
    return fail(Reason.invalidPaymentRequirements, "paymentRequirements.extra.name and paymentRequirements.extra.version are required (the token's EIP-712 domain)", payer);
  }
  const mismatch = checkAuthorization(ctx, auth, requirements, payer);
  if (mismatch) return mismatch;
  const until = ctx.backoff.suspendedUntil(net.network, payer);
  if (until !== undefined) {
    return fail(Reason.payerSuspended, `authorization.from: a settlement by this payer reverted on chain; refused until ${new Date(until).toISOString()}`, payer);
  }
  return { ok: true, net, asset, payer, auth, wire: { ...wire, from: payer, to: auth.to }, signature: parsed.value.signature, name, version };
}

/** Scheme, network, amount, asset: what the requirements ask for, before the payload's content. */
export function checkTarget(
  ctx: FacilitatorContext,
  payload: PaymentPayload,
  requirements: PaymentRequirements,
  payer: Address,
  scheme: "exact" | "upto" = "exact",
): { ok: true; net: NetworkState; asset: Address } | Failure {
  if (requirements.scheme !== scheme) return fail(Reason.invalidScheme, `paymentRequirements.scheme: expected ${JSON.stringify(scheme)}`, payer);
  if (payload.accepted && payload.accepted.network !== requirements.network) {
    return fail(Reason.invalidNetwork, "paymentPayload.accepted.network: differs from paymentRequirements.network", payer);
  }
  const net = ctx.nets.get(requirements.network);
  if (!net) return fail(Reason.invalidNetwork, `paymentRequirements.network: ${JSON.stringify(requirements.network)} is not served`, payer);
  if (typeof requirements.amount !== "string" || !isAtomic(requirements.amount)) {
    return fail(Reason.invalidPaymentRequirements, "paymentRequirements.amount: expected a non-negative integer string of atomic units", payer);
  }
  // Nothing to pay for, and the fee payer would spend gas moving nothing.
  if (BigInt(requirements.amount) === 0n) return fail(Reason.amountZero, "paymentRequirements.amount: zero; nothing to settle", payer);
  if (!isAddress(requirements.asset, { strict: false })) return fail(Reason.invalidPaymentRequirements, "paymentRequirements.asset: not an address", payer);
  if (!isAddress(requirements.payTo, { strict: false })) return fail(Reason.invalidPaymentRequirements, "paymentRequirements.payTo: not an address", payer);
  const asset = getAddress(requirements.asset);
  if (!net.assets.has(asset.toLowerCase())) {
    const accepted = [...net.assets.values()].map((a) => a.address).join(", ") || "none configured (list this network's tokens in `assets`)";
    return fail(Reason.evmAssetNotAllowed, `paymentRequirements.asset: ${asset} is not accepted on ${net.network} (accepted: ${accepted})`, payer);
  }
  return { ok: true, net, asset };
}

/** The signed authorization against the requirements: recipient, value, and its time window. */
function checkAuthorization(ctx: FacilitatorContext, auth: TransferAuthorization, requirements: PaymentRequirements, payer: Address): Failure | undefined {
  if (!isAddressEqual(auth.to, requirements.payTo as Address)) {
    return fail(Reason.evmRecipientMismatch, `paymentPayload.payload.authorization.to: ${auth.to} is not payTo ${getAddress(requirements.payTo)}`, payer);
  }
  if (auth.value !== BigInt(requirements.amount)) {
    return fail(Reason.evmValueMismatch, `paymentPayload.payload.authorization.value: ${auth.value} differs from the required amount ${requirements.amount}`, payer);
  }
  const t = BigInt(Math.floor(ctx.now()));
  if (auth.validAfter > t) return fail(Reason.evmValidAfter, `paymentPayload.payload.authorization.validAfter: not valid until ${auth.validAfter} (now ${t})`, payer);
  if (auth.validBefore < t + ctx.minValidity) {
    return fail(Reason.evmValidBefore, `paymentPayload.payload.authorization.validBefore: ${auth.validBefore} is expired or closer than ${ctx.minValidity}s (now ${t})`, payer);
  }
  // What matters is how far into the future the authorization reaches (validAfter <= now here):
  // a validAfter in the past, such as the official client's 0, grants nothing more than "from now".
  const reach = auth.validBefore - t;
  if (ctx.tolerance !== null && reach > BigInt(requirements.maxTimeoutSeconds + ctx.tolerance)) {
    return fail(
      Reason.evmValidityTooLong,
      `paymentPayload.payload.authorization.validBefore: valid for ${reach}s more, beyond maxTimeoutSeconds ${requirements.maxTimeoutSeconds} + ${ctx.tolerance}s`,
      payer,
    );
  }
  return undefined;
}
