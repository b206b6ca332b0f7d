/**
 * Client face of `exact` on EVM with the Permit2 asset transfer method: signs Permit2's
 * `PermitWitnessTransferFrom` for exactly the required amount of the required token, with the x402
 * exact proxy as spender and a witness naming the payee, so the facilitator can only submit it.
 * Same domain, types and wire form as the official client (interop).
 */
import { isAtomic, type PaymentRequirements } from "@tollgate/core";
import { getAddress, toHex, type Hex } from "viem";
import { EXACT_PERMIT2_PROXY_ADDRESS, PERMIT2_ADDRESS, permit2WitnessTypes } from "../contracts/permit2-abi.ts";
import type { ExactEvmSigner } from "./client.ts";
import { payableChainId } from "./payable.ts";
import type { ExactPermit2Payload } from "./permit2-payload.ts";

/** Whether requirements ask for the Permit2 method (`extra.assetTransferMethod: "permit2"`). */
export function wantsPermit2(requirements: PaymentRequirements): boolean {
  return requirements.extra?.assetTransferMethod === "permit2";
}

/** A random uint256 Permit2 nonce (unordered: any unused one will do), in decimal. */
export function randomPermit2Nonce(): string {
  return BigInt(toHex(crypto.getRandomValues(new Uint8Array(32)))).toString();
}

/**
 * Signs the Permit2 authorization for `requirements`; throws a descriptive error on requirements
 * it cannot pay. `validAfter` is backdated by `skew` seconds for clock skew (the official client
 * uses 0; both are accepted: what matters is the deadline).
 */
export async function signExactPermit2Authorization(
  account: ExactEvmSigner,
  requirements: PaymentRequirements,
  opts: { now?: number; skew?: number; nonce?: string } = {},
): Promise<ExactPermit2Payload> {
  const chainId = payableChainId(requirements);
  if (!Number.isInteger(requirements.maxTimeoutSeconds) || requirements.maxTimeoutSeconds <= 0) {
    throw new Error(`requirements.maxTimeoutSeconds: expected a positive integer, got ${JSON.stringify(requirements.maxTimeoutSeconds)}`);
  }
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const skew = opts.skew ?? 600;
  const nonce = opts.nonce ?? randomPermit2Nonce();
  if (!isAtomic(nonce)) throw new Error(`nonce: expected a uint256 decimal string`);
  const from = getAddress(account.address);
  const token = getAddress(requirements.asset);
  const to = getAddress(requirements.payTo);
  const amount = BigInt(requirements.amount);
  const deadline = BigInt(now + requirements.maxTimeoutSeconds);
  const validAfter = BigInt(Math.max(0, now - skew));
  const signature = await account.signTypedData({
    domain: { name: "Permit2", chainId, verifyingContract: PERMIT2_ADDRESS },
    types: permit2WitnessTypes,
    primaryType: "PermitWitnessTransferFrom",
    message: { permitted: { token, amount }, spender: EXACT_PERMIT2_PROXY_ADDRESS, nonce: BigInt(nonce), deadline, witness: { to, validAfter } },
  });
  return {
    signature: signature as Hex,
    permit2Authorization: {
      from,
      permitted: { token, amount: amount.toString() },
      spender: EXACT_PERMIT2_PROXY_ADDRESS,
      nonce,
      deadline: deadline.toString(),
      witness: { to, validAfter: validAfter.toString() },
    },
  };
}
