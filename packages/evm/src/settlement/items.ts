/** A submitted call checked and turned into an engine item (or the reason it cannot be one). */
import { Reason } from "@tollgate/core";
import { isAddress, type Hex } from "viem";
import { settlementFailed, type SettlementResult } from "./result.ts";
import { deferred, type Item } from "./state.ts";
import type { SettlementCall } from "./types.ts";

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
