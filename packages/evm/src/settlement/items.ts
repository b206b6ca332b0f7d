/** A submitted call checked and turned into an engine item (or the reason it cannot be one). */
import { Reason } from "@tollgate/core";
import { decodeFunctionData, isAddress, isAddressEqual, toHex, type Address, type Hex } from "viem";
import { EXACT_PERMIT2_PROXY_ADDRESS, UPTO_PERMIT2_PROXY_ADDRESS, exactPermit2ProxyAbi, uptoPermit2ProxyAbi } from "../contracts/permit2-abi.ts";
import { permit2PaymentKey } from "../exact/permit2-payload.ts";
import { settlementFailed, type SettlementResult } from "./result.ts";
import { deferred, type Item } from "./state.ts";
import type { Permit2SettlementCall, SettlementCall } from "./types.ts";

const MAX_UINT256 = (1n << 256n) - 1n;

class InvalidCall extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export function toItem(call: SettlementCall): Item | SettlementResult {
  try {
    return buildItem(call);
  } catch (e) {
    if (e instanceof InvalidCall) return settlementFailed(e.reason, e.message);
    throw e;
  }
}

/** A Permit2 proxy call checked and turned into an engine item (or the reason it cannot be one). */
export function toPermit2Item(call: Permit2SettlementCall): Item | SettlementResult {
  try {
    return buildPermit2Item(call);
  } catch (e) {
    if (e instanceof InvalidCall) return settlementFailed(e.reason, e.message);
    throw e;
  }
}

function buildItem(call: SettlementCall): Item {
  if (!call || typeof call !== "object") throw new InvalidCall(Reason.invalidPayload, "call: expected an object");
  if (typeof call.asset !== "string" || !isAddress(call.asset, { strict: false })) throw new InvalidCall(Reason.invalidPayload, "asset: not an address");
  const a = call.authorization;
  if (!a || typeof a !== "object") throw new InvalidCall(Reason.invalidPayload, "authorization: expected an object");
  for (const field of ["from", "to"] as const) {
    if (typeof a[field] !== "string" || !isAddress(a[field], { strict: false })) throw new InvalidCall(Reason.invalidPayload, `authorization.${field}: not an address`);
  }
  if (typeof a.nonce !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(a.nonce)) throw new InvalidCall(Reason.invalidPayload, "authorization.nonce: expected 32 bytes of 0x-hex");
  if (typeof call.signature !== "string" || !/^0x([0-9a-fA-F]{2})+$/.test(call.signature) || call.signature.length < 132) {
    throw new InvalidCall(Reason.evmSignature, "signature: expected at least 65 bytes of 0x-hex");
  }
  const value = uint(a.value, "authorization.value");
  const validAfter = uint(a.validAfter, "authorization.validAfter");
  const validBefore = uint(a.validBefore, "authorization.validBefore");
  const signature = call.signature.toLowerCase() as Hex;
  return {
    call,
    from: a.from,
    to: a.to,
    value,
    validAfter,
    validBefore,
    nonce: a.nonce,
    signature: call.signature,
    key: `${call.asset.toLowerCase()}|${a.from.toLowerCase()}|${a.nonce.toLowerCase()}`,
    content: `${a.to.toLowerCase()}|${value}|${validAfter}|${validBefore}|${signature}|${call.contractWallet ? 1 : 0}`,
    queuedAt: 0,
    sent: deferred(),
    inDoubt: deferred(),
    final: deferred(),
  };
}

function uint(value: unknown, field: string): bigint {
  let v: bigint | undefined;
  if (typeof value === "bigint") v = value;
  else if (typeof value === "string" && /^(0|[1-9][0-9]{0,77})$/.test(value)) v = BigInt(value);
  if (v === undefined || v < 0n || v > MAX_UINT256) throw new InvalidCall(Reason.invalidPayload, `${field}: expected an unsigned integer (decimal string)`);
  return v;
}

function address(value: unknown, field: string): Address {
  if (typeof value !== "string" || !isAddress(value, { strict: false })) throw new InvalidCall(Reason.invalidPayload, `${field}: not an address`);
  return value as Address;
}

/**
 * The engine sends a proxy call as it is, so it first proves the call is what the payment says:
 * addressed to the proxy, a `settle`/`settleWithPermit` whose owner, token, amount, nonce,
 * deadline and witness are the authorization's, under the payment's settle-once key. The receipt
 * is later judged against the authorization, so a call that moved something else can never be
 * read as this payment settled.
 */
function buildPermit2Item(call: Permit2SettlementCall): Item {
  if (!call || typeof call !== "object") throw new InvalidCall(Reason.invalidPayload, "call: expected an object");
  const asset = address(call.asset, "asset");
  const proxy = address(call.to, "to");
  const upto = isAddressEqual(proxy, UPTO_PERMIT2_PROXY_ADDRESS);
  if (!upto && !isAddressEqual(proxy, EXACT_PERMIT2_PROXY_ADDRESS)) {
    throw new InvalidCall(Reason.invalidPayload, `to: not the x402 exact Permit2 proxy ${EXACT_PERMIT2_PROXY_ADDRESS} (nor the upto one ${UPTO_PERMIT2_PROXY_ADDRESS})`);
  }
  if (typeof call.data !== "string" || !/^0x([0-9a-fA-F]{2})+$/.test(call.data)) throw new InvalidCall(Reason.invalidPayload, "data: expected 0x-hex calldata");
  if (typeof call.signature !== "string" || !/^0x([0-9a-fA-F]{2})+$/.test(call.signature)) throw new InvalidCall(Reason.invalidPayload, "signature: expected 0x-hex bytes");
  const a = call.authorization;
  if (!a || typeof a !== "object" || !a.permitted || !a.witness) throw new InvalidCall(Reason.invalidPayload, "authorization: expected a Permit2 authorization");
  const from = address(a.from, "authorization.from");
  const to = address(a.witness.to, "authorization.witness.to");
  if (!isAddressEqual(address(a.permitted.token, "authorization.permitted.token"), asset)) throw new InvalidCall(Reason.invalidPayload, "authorization.permitted.token: is not the asset");
  const amount = uint(a.permitted.amount, "authorization.permitted.amount");
  const nonce = uint(a.nonce, "authorization.nonce");
  const deadline = uint(a.deadline, "authorization.deadline");
  const validAfter = uint(a.witness.validAfter, "authorization.witness.validAfter");
  // upto: the call moves the charge (0 < charge <= signed maximum), sent by witness.facilitator only.
  let charge = amount;
  let facilitator: Address | undefined;
  if (upto) {
    charge = uint(call.amount, "amount");
    if (charge === 0n || charge > amount) throw new InvalidCall(Reason.invalidPayload, "amount: expected more than zero and at most authorization.permitted.amount");
    facilitator = address(a.witness.facilitator, "authorization.witness.facilitator");
    if (!isAddressEqual(address(call.sender, "sender"), facilitator)) throw new InvalidCall(Reason.invalidPayload, "sender: is not authorization.witness.facilitator");
  }
  const mismatch = permit2CallMismatch(call.data as Hex, { from, asset, to, amount, nonce, deadline, validAfter, ...(upto ? { upto: { charge, facilitator: facilitator! } } : {}) });
  if (mismatch) throw new InvalidCall(Reason.invalidPayload, `data: ${mismatch}`);
  const key = permit2PaymentKey(call.network, asset, from, nonce);
  if (call.key !== key) throw new InvalidCall(Reason.invalidPayload, "key: is not this payment's settle-once key");
  return {
    call,
    permit2: { to: upto ? UPTO_PERMIT2_PROXY_ADDRESS : EXACT_PERMIT2_PROXY_ADDRESS, data: call.data as Hex, ...(upto ? { sender: facilitator! } : {}) },
    from,
    to,
    // What the token's Transfer log must show for this payment to count as settled.
    value: charge,
    validAfter,
    validBefore: deadline,
    nonce: toHex(nonce, { size: 32 }),
    signature: call.signature as Hex,
    // Never the key of an EIP-3009 item (its nonce is 0x-hex, this one decimal).
    key: `permit2|${key}`,
    content: call.data.toLowerCase(),
    queuedAt: 0,
    sent: deferred(),
    inDoubt: deferred(),
    final: deferred(),
  };
}

interface Permit2Fields {
  from: Address;
  asset: Address;
  to: Address;
  amount: bigint;
  nonce: bigint;
  deadline: bigint;
  validAfter: bigint;
  /** upto: the charge the call must move and the facilitator its witness must name. */
  upto?: { charge: bigint; facilitator: Address };
}

/** Why `data` is not the proxy call settling exactly `want`, or undefined. */
function permit2CallMismatch(data: Hex, want: Permit2Fields): string | undefined {
  let decoded;
  try {
    decoded = want.upto ? decodeFunctionData({ abi: uptoPermit2ProxyAbi, data }) : decodeFunctionData({ abi: exactPermit2ProxyAbi, data });
  } catch {
    return `not a call of the x402 ${want.upto ? "upto" : "exact"} Permit2 proxy`;
  }
  if (decoded.functionName !== "settle" && decoded.functionName !== "settleWithPermit") return `refusing to send the proxy's ${decoded.functionName}`;
  let args = (decoded.functionName === "settle" ? decoded.args : decoded.args.slice(1)) as readonly unknown[];
  if (want.upto) {
    // (permit, amount, owner, witness, signature): the amount and the witness's facilitator are upto's own.
    const [, charge, , w] = args as [unknown, bigint, Address, { facilitator: Address }];
    if (charge !== want.upto.charge || !isAddressEqual(w.facilitator, want.upto.facilitator)) return "does not settle the charge and facilitator the call names";
    args = [args[0], ...args.slice(2)];
  }
  const [permit, owner, witness] = args as [{ permitted: { token: Address; amount: bigint }; nonce: bigint; deadline: bigint }, Address, { to: Address; validAfter: bigint }];
  const same =
    isAddressEqual(owner, want.from) &&
    isAddressEqual(permit.permitted.token, want.asset) &&
    permit.permitted.amount === want.amount &&
    permit.nonce === want.nonce &&
    permit.deadline === want.deadline &&
    isAddressEqual(witness.to, want.to) &&
    witness.validAfter === want.validAfter;
  return same ? undefined : "does not settle the payment its authorization describes";
}
