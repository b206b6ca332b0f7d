/**
 * Client face of `upto` on EVM: signs a Permit2 `PermitWitnessTransferFrom` for the MAXIMUM the
 * server asks (`requirements.amount`), spender the x402 upto proxy, witness {payTo, the
 * facilitator the server advertised in `extra.facilitatorAddress`, validAfter}. The resource server
 * then charges at most that; only the named facilitator can submit it. Same domain, types and wire
 * form as the official client (interop).
 */
import type { Network, PaymentRequirements, SchemeClient } from "@tollgate/core";
import { getAddress, isAddress, type Hex } from "viem";
import { PERMIT2_ADDRESS, UPTO_PERMIT2_PROXY_ADDRESS, uptoPermit2WitnessTypes } from "../contracts/permit2-abi.ts";
import type { ExactEvmSigner } from "../exact/client.ts";
import { eip2612SponsoringExtension, type SponsoringReader } from "../exact/eip2612-sponsoring.ts";
import { erc20ApprovalSponsoringExtension } from "../exact/erc20-approval-sponsoring.ts";
import { payableChainId } from "../exact/payable.ts";
import { randomPermit2Nonce } from "../exact/permit2-client.ts";
import type { UptoPermit2Payload } from "./payload.ts";

export interface UptoEvmClientOptions {
  account: ExactEvmSigner;
  /** Unix seconds; for tests. */
  now?: () => number;
  /** Seconds `validAfter` is backdated for clock skew. Default 600. */
  validAfterSkewSeconds?: number;
  /**
   * Chain reads for the gas-sponsoring extensions (see exactEvmClient): eip2612GasSponsoring, and
   * erc20ApprovalGasSponsoring when the account also signs transactions and the payer has no
   * allowance, no EIP-2612 and no gas (the signed approve then covers the maximum: max uint256).
   */
  chainReader?: (network: Network) => SponsoringReader | undefined;
}

export function uptoEvmClient(options: UptoEvmClientOptions): SchemeClient {
  const { account } = options;
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  return {
    scheme: "upto",
    networks: ["eip155:*"],
    payer: () => account.address,
    async createPayload(requirements) {
      const payload = await signUptoPermit2Authorization(account, requirements, { now: now(), skew: options.validAfterSkewSeconds ?? 600 });
      return payload as unknown as Record<string, unknown>;
    },
    // The permit must cover the signed maximum (the proxy refuses any other value). Without a
    // permit, a signed approve whose gas the facilitator funds (erc20ApprovalGasSponsoring).
    payloadExtensions: async (requirements, payload, context) => {
      const reader = options.chainReader?.(requirements.network);
      return (
        (await eip2612SponsoringExtension(account, reader, requirements, payload, context.extensions)) ??
        (await erc20ApprovalSponsoringExtension(account, reader, requirements, context.extensions))
      );
    },
  };
}

/** Signs the upto authorization for `requirements` (amount = the maximum); throws naming what it cannot pay. */
export async function signUptoPermit2Authorization(
  account: ExactEvmSigner,
  requirements: PaymentRequirements,
  opts: { now?: number; skew?: number; nonce?: string } = {},
): Promise<UptoPermit2Payload> {
  const chainId = payableChainId(requirements, "upto");
  const facilitatorAddress = requirements.extra?.facilitatorAddress;
  if (typeof facilitatorAddress !== "string" || !isAddress(facilitatorAddress, { strict: false })) {
    throw new Error("requirements.extra.facilitatorAddress: required by the upto scheme (the server copies it from its facilitator's /supported kind)");
  }
  if (!Number.isInteger(requirements.maxTimeoutSeconds) || requirements.maxTimeoutSeconds <= 0) {
    throw new Error(`requirements.maxTimeoutSeconds: expected a positive integer, got ${JSON.stringify(requirements.maxTimeoutSeconds)}`);
  }
  const t = opts.now ?? Math.floor(Date.now() / 1000);
  const nonce = opts.nonce ?? randomPermit2Nonce();
  const from = getAddress(account.address);
  const token = getAddress(requirements.asset);
  const to = getAddress(requirements.payTo);
  const facilitator = getAddress(facilitatorAddress);
  const amount = BigInt(requirements.amount);
  const deadline = BigInt(t + requirements.maxTimeoutSeconds);
  const validAfter = BigInt(Math.max(0, t - (opts.skew ?? 600)));
  const signature = await account.signTypedData({
    domain: { name: "Permit2", chainId, verifyingContract: PERMIT2_ADDRESS },
    types: uptoPermit2WitnessTypes,
    primaryType: "PermitWitnessTransferFrom",
    message: { permitted: { token, amount }, spender: UPTO_PERMIT2_PROXY_ADDRESS, nonce: BigInt(nonce), deadline, witness: { to, facilitator, validAfter } },
  });
  return {
    signature: signature as Hex,
    permit2Authorization: {
      from,
      permitted: { token, amount: amount.toString() },
      spender: UPTO_PERMIT2_PROXY_ADDRESS,
      nonce,
      deadline: deadline.toString(),
      witness: { to, facilitator, validAfter: validAfter.toString() },
    },
  };
}
