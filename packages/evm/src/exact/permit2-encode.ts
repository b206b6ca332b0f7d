/**
 * The one encoder (and decoder) of the x402 exact Permit2 proxy calls: `settle`, and
 * `settleWithPermit` for the eip2612GasSponsoring extension. The facilitator's dry run, its
 * broadcast and the guarded signer's "which payment is this?" all go through here, so what was
 * verified is what is sent and what the ledger names.
 */
import { decodeErrorResult, decodeFunctionData, encodeFunctionData, getAddress, hexToString, type Address, type Hex } from "viem";
import { exactPermit2ProxyAbi, permit2Abi, uptoPermit2ProxyAbi } from "../contracts/permit2-abi.ts";
import { normalizeSignature } from "./encode.ts";
import { Permit2Reason, permit2PaymentKey, type Permit2Authorization } from "./permit2-payload.ts";

/** An EIP-2612 permit for Permit2 as the eip2612GasSponsoring extension carries it (validated). */
export interface Eip2612Permit {
  value: bigint;
  deadline: bigint;
  signature: Hex;
}

function settleArgs(a: Permit2Authorization, signature: Hex) {
  return [
    { permitted: { token: a.permitted.token, amount: BigInt(a.permitted.amount) }, nonce: BigInt(a.nonce), deadline: BigInt(a.deadline) },
    a.from,
    { to: a.witness.to, validAfter: BigInt(a.witness.validAfter) },
    // v = 0/1 (y-parity) becomes 27/28: Permit2's ecrecover takes only those, and v is not signed.
    normalizeSignature(signature),
  ] as const;
}

/** Calldata of the proxy call settling `a`: `settleWithPermit` when an EIP-2612 permit rides along. */
export function encodePermit2Settle(a: Permit2Authorization, signature: Hex, permit?: Eip2612Permit): Hex {
  if (!permit) return encodeFunctionData({ abi: exactPermit2ProxyAbi, functionName: "settle", args: settleArgs(a, signature) });
  return encodeFunctionData({ abi: exactPermit2ProxyAbi, functionName: "settleWithPermit", args: [permit2612Tuple(permit), ...settleArgs(a, signature)] });
}

/** The proxies' `EIP2612Permit` argument (value, deadline, r, s, v) from the extension's permit. */
export function permit2612Tuple(permit: Eip2612Permit): { value: bigint; deadline: bigint; r: Hex; s: Hex; v: number } {
  const sig = normalizeSignature(permit.signature);
  if (sig.length !== 132) throw new Error("eip2612GasSponsoring.info.signature: expected 65 bytes");
  return {
    value: permit.value,
    deadline: permit.deadline,
    r: `0x${sig.slice(2, 66)}` as Hex,
    s: `0x${sig.slice(66, 130)}` as Hex,
    v: parseInt(sig.slice(130, 132), 16),
  };
}

/**
 * The payment a proxy call carries, as its settle-once key, or undefined when `data` is not a
 * `settle`/`settleWithPermit` call of the proxy ABI (the caller must then refuse to sign it).
 */
export function decodePermit2SettleKey(network: string, data: Hex): { key: string; token: Address; owner: Address; nonce: bigint } | undefined {
  // The exact and upto proxies' calls have distinct selectors: a call decodes under one ABI only.
  let call;
  let upto = false;
  try {
    call = decodeFunctionData({ abi: exactPermit2ProxyAbi, data });
  } catch {
    try {
      call = decodeFunctionData({ abi: uptoPermit2ProxyAbi, data });
      upto = true;
    } catch {
      return undefined;
    }
  }
  if (call.functionName !== "settle" && call.functionName !== "settleWithPermit") return undefined;
  let args = call.args as readonly unknown[];
  if (call.functionName === "settleWithPermit") args = args.slice(1);
  // upto: (permit, amount, owner, witness, signature); exact: (permit, owner, witness, signature).
  if (upto) args = [args[0], ...args.slice(2)];
  const [permit, owner] = args as [{ permitted: { token: Address }; nonce: bigint }, Address];
  const token = getAddress(permit.permitted.token);
  return { key: permit2PaymentKey(network, token, owner, permit.nonce), token, owner: getAddress(owner), nonce: permit.nonce };
}

const errorsAbi = [...exactPermit2ProxyAbi, ...uptoPermit2ProxyAbi, ...permit2Abi].filter((i) => i.type === "error");

/** Maps a proxy / Permit2 / token revert to the official Permit2 reason codes, with a description. */
export function permit2RevertReason(data: Hex | undefined): { reason: string; description: string } {
  if (!data || data === "0x") return { reason: Permit2Reason.simulationFailed, description: "reverted without a reason" };
  let name: string;
  try {
    name = decodeErrorResult({ abi: errorsAbi, data }).errorName;
  } catch {
    let text = `reverted with data ${data.slice(0, 74)}`;
    try {
      if (data.startsWith("0x08c379a0")) text = hexToString(`0x${data.slice(138)}` as Hex).replace(/\0+$/, "");
    } catch {
      // not a readable Error(string)
    }
    return { reason: Permit2Reason.simulationFailed, description: text };
  }
  const byName: Record<string, string> = {
    InvalidNonce: Permit2Reason.invalidNonce,
    InvalidSignature: Permit2Reason.invalidSignature,
    InvalidSigner: Permit2Reason.invalidSignature,
    InvalidSignatureLength: Permit2Reason.invalidSignature,
    InvalidContractSignature: Permit2Reason.invalidSignature,
    SignatureExpired: Permit2Reason.deadlineExpired,
    PaymentTooEarly: Permit2Reason.paymentTooEarly,
    Permit2612AmountMismatch: Permit2Reason.eip2612AmountMismatch,
    // The upto proxy's own refusals (the official SDK's codes).
    AmountExceedsPermitted: "upto_amount_exceeds_permitted",
    UnauthorizedFacilitator: "upto_unauthorized_facilitator",
  };
  return { reason: byName[name] ?? Permit2Reason.simulationFailed, description: name };
}
