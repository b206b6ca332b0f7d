/**
 * Client side of the `eip2612GasSponsoring` extension (x402 specs/extensions/eip2612_gas_sponsoring.md):
 * a payer who never approved Permit2 for a token signs an EIP-2612 permit instead, and the
 * facilitator submits it with the payment (`settleWithPermit`), paying the gas. Added only when
 * the server advertised the extension, the asset is paid with Permit2, and the chain says the
 * payer's Permit2 allowance does not cover the amount (a permit would otherwise be needless).
 *
 * The permit is for exactly the amount (the proxy refuses any other value, so no standing
 * allowance rides along) and expires with the Permit2 authorization.
 */
import { evmChainId, type Extensions, type PaymentRequirements } from "@tollgate/core";
import { getAddress, type Address, type Hex, type PublicClient } from "viem";
import { PERMIT2_ADDRESS, eip2612PermitTypes, erc20PermitAbi } from "../contracts/permit2-abi.ts";
import type { ExactEvmSigner } from "./client.ts";
import { wantsPermit2 } from "./permit2-client.ts";
import type { ExactPermit2Payload } from "./permit2-payload.ts";

export const EIP2612_GAS_SPONSORING = "eip2612GasSponsoring";

/** Chain reads the client needs for the extension (allowance, the token's permit nonce). */
export type SponsoringReader = Pick<PublicClient, "readContract">;

/** The info a client fills in, as the spec lists it (every number a decimal string). */
export interface Eip2612SponsoringInfo {
  from: Address;
  asset: Address;
  spender: Address;
  amount: string;
  nonce: string;
  deadline: string;
  signature: Hex;
  version: string;
}

/**
 * The extension for this payment, or undefined when it does not apply: not Permit2, not
 * advertised, no reader for the network, the allowance already covers the amount, the token's
 * EIP-712 domain is not advertised, or the chain could not be read (the payment then goes
 * without it, and a facilitator answers `permit2_allowance_required` if it is really needed).
 */
export async function eip2612SponsoringExtension(
  account: ExactEvmSigner,
  reader: SponsoringReader | undefined,
  requirements: PaymentRequirements,
  payload: Record<string, unknown>,
  advertised: Extensions | undefined,
): Promise<Extensions | undefined> {
  if (!reader || !wantsPermit2(requirements) || advertised?.[EIP2612_GAS_SPONSORING] === undefined) return undefined;
  const name = requirements.extra?.name;
  const version = requirements.extra?.version;
  const chainId = evmChainId(requirements.network);
  const authorization = (payload as unknown as Partial<ExactPermit2Payload>).permit2Authorization;
  if (typeof name !== "string" || typeof version !== "string" || chainId === undefined || !authorization) return undefined;
  const owner = getAddress(account.address);
  const token = getAddress(requirements.asset);
  const amount = BigInt(requirements.amount);
  let nonce: bigint;
  try {
    const allowance = await reader.readContract({ address: token, abi: erc20PermitAbi, functionName: "allowance", args: [owner, PERMIT2_ADDRESS] });
    if (allowance >= amount) return undefined;
    nonce = await reader.readContract({ address: token, abi: erc20PermitAbi, functionName: "nonces", args: [owner] });
  } catch {
    return undefined;
  }
  const deadline = BigInt(authorization.deadline);
  const signature = await account.signTypedData({
    domain: { name, version, chainId, verifyingContract: token },
    types: eip2612PermitTypes,
    primaryType: "Permit",
    message: { owner, spender: PERMIT2_ADDRESS, value: amount, nonce, deadline },
  });
  const info: Eip2612SponsoringInfo = {
    from: owner,
    asset: token,
    spender: PERMIT2_ADDRESS,
    amount: amount.toString(),
    nonce: nonce.toString(),
    deadline: deadline.toString(),
    signature: signature as Hex,
    version: "1",
  };
  return { [EIP2612_GAS_SPONSORING]: { info } };
}
