/**
 * The deposit half of a `batch-settlement` deposit payload: the payer's authorization to move
 * `amount` into the channel, made out to the canonical deposit collector of the method the server
 * names (`extra.assetTransferMethod`): an ERC-3009 `ReceiveWithAuthorization` (default; its nonce
 * binds it to the channel) or a Permit2 witness transfer (any ERC-20; the witness is the channel id).
 */
import type { PaymentRequirements } from "@tollgate/core";
import { getAddress, toHex, type Hex } from "viem";
import { PERMIT2_DEPOSIT_COLLECTOR_ADDRESS } from "../contracts/batch-settlement-abi.ts";
import { PERMIT2_ADDRESS } from "../contracts/permit2-abi.ts";
import { ERC3009_DEPOSIT_COLLECTOR_ADDRESS, depositNonce, receiveWithAuthorizationTypes } from "./client-typed-data.ts";
import { depositPermit2WitnessTypes } from "./eip712.ts";
import type { BatchSettlementSigner } from "./client.ts";

export interface DepositTarget {
  chainId: number;
  channelId: Hex;
  amount: bigint;
  /** Unix seconds. */
  now: number;
}

export async function signDeposit(account: BatchSettlementSigner, r: PaymentRequirements, t: DepositTarget) {
  const method = r.extra?.assetTransferMethod ?? "eip3009";
  if (method === "permit2") return signPermit2Deposit(account, r, t);
  if (method !== "eip3009") throw new Error(`requirements.extra.assetTransferMethod: ${JSON.stringify(method)} is neither "eip3009" nor "permit2"`);
  return signErc3009Deposit(account, r, t);
}

async function signErc3009Deposit(account: BatchSettlementSigner, r: PaymentRequirements, { chainId, channelId, amount, now }: DepositTarget) {
  const name = r.extra?.name;
  const version = r.extra?.version;
  if (typeof name !== "string" || !name || typeof version !== "string" || !version) {
    throw new Error(`requirements.extra.name and requirements.extra.version are required (the EIP-712 domain of token ${r.asset})`);
  }
  const salt = BigInt(toHex(crypto.getRandomValues(new Uint8Array(32))));
  const validBefore = BigInt(now + r.maxTimeoutSeconds);
  const signature = await account.signTypedData({
    domain: { name, version, chainId, verifyingContract: getAddress(r.asset) },
    types: receiveWithAuthorizationTypes,
    primaryType: "ReceiveWithAuthorization",
    message: { from: getAddress(account.address), to: ERC3009_DEPOSIT_COLLECTOR_ADDRESS, value: amount, validAfter: 0n, validBefore, nonce: depositNonce(channelId, salt) },
  });
  return { amount: amount.toString(), authorization: { erc3009Authorization: { validAfter: "0", validBefore: validBefore.toString(), salt: toHex(salt, { size: 32 }), signature } } };
}

/** The payer must have approved Permit2 for the token (or the facilitator sponsors it). */
async function signPermit2Deposit(account: BatchSettlementSigner, r: PaymentRequirements, { chainId, channelId, amount, now }: DepositTarget) {
  const nonce = BigInt(toHex(crypto.getRandomValues(new Uint8Array(32))));
  const deadline = BigInt(now + r.maxTimeoutSeconds);
  const token = getAddress(r.asset);
  const signature = await account.signTypedData({
    domain: { name: "Permit2", chainId, verifyingContract: PERMIT2_ADDRESS },
    types: depositPermit2WitnessTypes,
    primaryType: "PermitWitnessTransferFrom",
    message: { permitted: { token, amount }, spender: PERMIT2_DEPOSIT_COLLECTOR_ADDRESS, nonce, deadline, witness: { channelId } },
  });
  return {
    amount: amount.toString(),
    authorization: {
      permit2Authorization: {
        from: getAddress(account.address),
        permitted: { token, amount: amount.toString() },
        spender: PERMIT2_DEPOSIT_COLLECTOR_ADDRESS,
        nonce: nonce.toString(),
        deadline: deadline.toString(),
        witness: { channelId },
        signature,
      },
    },
  };
}
