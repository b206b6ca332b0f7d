/**
 * Client face of `exact` on EVM: signs an EIP-3009 `TransferWithAuthorization` for exactly
 * the required amount to exactly the required payee. The facilitator can only broadcast it.
 */
import type { Network, PayloadContext, PaymentRequirements, SchemeClient } from "@tollgate/core";
import { getAddress, toHex, type Address, type Hex, type LocalAccount } from "viem";
import { transferWithAuthorizationTypes } from "../contracts/abi.ts";
import type { ExactEvmPayload } from "./payload.ts";
import { payableChainId } from "./payable.ts";
import { signExactPermit2Authorization, wantsPermit2 } from "./permit2-client.ts";
import { eip2612SponsoringExtension, type SponsoringReader } from "./eip2612-sponsoring.ts";
import { erc20ApprovalSponsoringExtension } from "./erc20-approval-sponsoring.ts";

/** Anything that can sign EIP-712 typed data for an address (a viem LocalAccount qualifies). */
export type ExactEvmSigner = Pick<LocalAccount, "address" | "signTypedData">;

export interface ExactEvmClientOptions {
  account: ExactEvmSigner;
  /** Unix seconds; for tests. */
  now?: () => number;
  /** Seconds `validAfter` is backdated to absorb clock skew between client and chain. Default 600. */
  validAfterSkewSeconds?: number;
  /**
   * Chain reads per network (a viem PublicClient will do) for the `eip2612GasSponsoring`
   * extension: with one, a Permit2 payment whose server advertises the extension carries a signed
   * EIP-2612 permit when the payer's Permit2 allowance does not cover the amount. Without it
   * (default) the client reads nothing and never adds the extension. With a reader that also
   * answers getBalance / getTransactionCount / estimateFeesPerGas (a PublicClient does) and an
   * account that signs transactions, a payer with no allowance, no EIP-2612 and no gas signs an
   * `approve(Permit2)` for the `erc20ApprovalGasSponsoring` extension when it is advertised.
   */
  chainReader?: (network: Network) => SponsoringReader | undefined;
}

export function exactEvmClient(options: ExactEvmClientOptions): SchemeClient {
  const { account } = options;
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  const skew = options.validAfterSkewSeconds ?? 600;

  return {
    scheme: "exact",
    networks: ["eip155:*"],
    payer: (_network: Network) => account.address,
    async createPayload(requirements: PaymentRequirements, context?: PayloadContext) {
      // A nonce set by the caller (an AP2 mandate chain's hash) is signed as is: EIP-3009 takes the
      // 32 bytes, Permit2 the same value as a uint256.
      const nonce = context?.nonce;
      if (nonce !== undefined && !/^0x[0-9a-fA-F]{64}$/.test(nonce)) throw new Error("context.nonce: expected 0x + 64 hex digits");
      // The server picks the method per asset (extra.assetTransferMethod); EIP-3009 by default.
      const payload = wantsPermit2(requirements)
        ? await signExactPermit2Authorization(account, requirements, { now: now(), skew, ...(nonce ? { nonce: BigInt(nonce).toString() } : {}) })
        : await signExactEvmAuthorization(account, requirements, { now: now(), skew, ...(nonce ? { nonce: nonce as Hex } : {}) });
      return payload as unknown as Record<string, unknown>;
    },
    // A gasless approval of Permit2 when the payer has none: an EIP-2612 permit where the token has
    // one, else (erc20ApprovalGasSponsoring) a signed approve whose gas the facilitator funds.
    payloadExtensions: async (requirements, payload, context) => {
      const reader = options.chainReader?.(requirements.network);
      return (
        (await eip2612SponsoringExtension(account, reader, requirements, payload, context.extensions)) ??
        (await erc20ApprovalSponsoringExtension(account, reader, requirements, context.extensions))
      );
    },
  };
}

/** Signs the authorization for `requirements`; throws a descriptive error on requirements it cannot pay. */
export async function signExactEvmAuthorization(
  account: ExactEvmSigner,
  requirements: PaymentRequirements,
  opts: { now?: number; skew?: number; nonce?: Hex } = {},
): Promise<ExactEvmPayload> {
  const chainId = payableChainId(requirements);
  const name = requirements.extra?.name;
  const version = requirements.extra?.version;
  if (typeof name !== "string" || name === "" || typeof version !== "string" || version === "") {
    throw new Error(
      `requirements.extra.name and requirements.extra.version are required (the EIP-712 domain of token ${requirements.asset}); ` +
        `the server must advertise them`,
    );
  }
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const skew = opts.skew ?? 600;
  const nonce = opts.nonce ?? toHex(crypto.getRandomValues(new Uint8Array(32)));
  const message = {
    from: getAddress(account.address),
    to: getAddress(requirements.payTo),
    value: BigInt(requirements.amount),
    validAfter: BigInt(Math.max(0, now - skew)),
    validBefore: BigInt(now + requirements.maxTimeoutSeconds),
    nonce,
  };
  const signature = await account.signTypedData({
    domain: { name, version, chainId, verifyingContract: getAddress(requirements.asset) as Address },
    types: transferWithAuthorizationTypes,
    primaryType: "TransferWithAuthorization",
    message,
  });
  return {
    signature,
    authorization: {
      from: message.from,
      to: message.to,
      value: message.value.toString(),
      validAfter: message.validAfter.toString(),
      validBefore: message.validBefore.toString(),
      nonce,
    },
  };
}
