// What a client checks before signing any `exact` EVM payment (EIP-3009 or Permit2).
import { evmChainId, isAtomic, type PaymentRequirements } from "@tollgate/core";
import { isAddress } from "viem";

/**
 * The chain id of `exact` requirements a client can sign for, whatever the transfer method;
 * throws naming the field it cannot pay (scheme, network, asset, payTo, amount).
 */
export function payableChainId(requirements: PaymentRequirements, scheme: "exact" | "upto" = "exact"): number {
  if (requirements.scheme !== scheme) throw new Error(`requirements.scheme: expected ${JSON.stringify(scheme)}, got ${JSON.stringify(requirements.scheme)}`);
  const chainId = evmChainId(requirements.network);
  if (chainId === undefined) throw new Error(`requirements.network: ${JSON.stringify(requirements.network)} is not an eip155 network`);
  if (!isAddress(requirements.asset, { strict: false })) throw new Error(`requirements.asset: not an address: ${JSON.stringify(requirements.asset)}`);
  if (!isAddress(requirements.payTo, { strict: false })) throw new Error(`requirements.payTo: not an address: ${JSON.stringify(requirements.payTo)}`);
  if (!isAtomic(requirements.amount)) throw new Error(`requirements.amount: not an atomic amount: ${JSON.stringify(requirements.amount)}`);
  return chainId;
}
