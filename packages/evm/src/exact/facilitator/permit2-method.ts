/**
 * What differs between the two schemes that pay through a Permit2 witness transfer: `exact`
 * (witness {to, validAfter}, the exact proxy, always the signed amount) and `upto` (witness {to,
 * facilitator, validAfter}, the upto proxy, any amount up to the signed one, settled only by the
 * named facilitator). Everything else (payload checks, signature, window, nonce, balance,
 * allowance, EIP-2612 sponsoring, dry run) is decided once, in permit2-check.ts, for both.
 */
import type { ParseResult } from "@tollgate/core";
import { hashTypedData, isAddressEqual, type Address, type Hex } from "viem";
import { EXACT_PERMIT2_PROXY_ADDRESS, PERMIT2_ADDRESS, UPTO_PERMIT2_PROXY_ADDRESS, permit2WitnessTypes, uptoPermit2WitnessTypes } from "../../contracts/permit2-abi.ts";
import { encodeUptoSettle } from "../../upto/encode.ts";
import { parseUptoPermit2Payload, UptoReason } from "../../upto/payload.ts";
import { encodePermit2Settle, type Eip2612Permit } from "../permit2-encode.ts";
import { parseExactPermit2Payload, type ExactPermit2Payload, type Permit2Authorization } from "../permit2-payload.ts";
import type { FacilitatorContext } from "./context.ts";
import { fail, type Failure } from "./requirements.ts";

export interface Permit2Method {
  scheme: "exact" | "upto";
  /** The spender every signature must name, and the contract settlement calls. */
  proxy: Address;
  proxyName: string;
  parse(value: unknown): ParseResult<ExactPermit2Payload>;
  /** The EIP-712 digest the payer signed (canonical Permit2 domain, the scheme's witness). */
  digest(chainId: number, a: Permit2Authorization): Hex;
  /** Calldata of the proxy call moving `amount` (exact: always the permitted amount). */
  encode(a: Permit2Authorization, signature: Hex, amount: bigint, eip2612?: Eip2612Permit): Hex;
  /** Scheme-specific off-chain refusal, after the shared ones. */
  check?(ctx: FacilitatorContext, a: Permit2Authorization, payer: Address): Failure | undefined;
}

const domain = (chainId: number) => ({ name: "Permit2", chainId, verifyingContract: PERMIT2_ADDRESS }) as const;
const base = (a: Permit2Authorization) => ({
  permitted: { token: a.permitted.token, amount: BigInt(a.permitted.amount) },
  spender: a.spender,
  nonce: BigInt(a.nonce),
  deadline: BigInt(a.deadline),
});

export const exactPermit2Method: Permit2Method = {
  scheme: "exact",
  proxy: EXACT_PERMIT2_PROXY_ADDRESS,
  proxyName: "the x402 exact Permit2 proxy",
  parse: (value) => parseExactPermit2Payload(value),
  digest: (chainId, a) =>
    hashTypedData({
      domain: domain(chainId),
      types: permit2WitnessTypes,
      primaryType: "PermitWitnessTransferFrom",
      message: { ...base(a), witness: { to: a.witness.to, validAfter: BigInt(a.witness.validAfter) } },
    }),
  encode: (a, signature, _amount, eip2612) => encodePermit2Settle(a, signature, eip2612),
};

export const uptoPermit2Method: Permit2Method = {
  scheme: "upto",
  proxy: UPTO_PERMIT2_PROXY_ADDRESS,
  proxyName: "the x402 upto Permit2 proxy",
  parse: (value) => parseUptoPermit2Payload(value),
  digest: (chainId, a) =>
    hashTypedData({
      domain: domain(chainId),
      types: uptoPermit2WitnessTypes,
      primaryType: "PermitWitnessTransferFrom",
      message: { ...base(a), witness: { to: a.witness.to, facilitator: a.witness.facilitator!, validAfter: BigInt(a.witness.validAfter) } },
    }),
  encode: (a, signature, amount, eip2612) => encodeUptoSettle(a, signature, amount, eip2612),
  // The proxy lets only witness.facilitator settle: a payment naming another could never be
  // settled here, so it is refused before anything is keyed or read.
  check: (ctx, a, payer) =>
    a.witness.facilitator && isAddressEqual(a.witness.facilitator, ctx.signer.address)
      ? undefined
      : fail(UptoReason.facilitatorMismatch, `paymentPayload.payload.permit2Authorization.witness.facilitator: ${a.witness.facilitator} is not this facilitator (${ctx.signer.address})`, payer),
};
