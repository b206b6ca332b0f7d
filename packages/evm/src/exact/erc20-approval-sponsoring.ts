/**
 * Client side of the `erc20ApprovalGasSponsoring` extension (x402 specs/extensions/
 * erc20_gas_sponsoring.md): a payer who never approved Permit2 for a token without EIP-2612, and
 * who holds no native gas to approve it, signs (never sends) an ordinary `approve(Permit2, max)`
 * transaction; a facilitator that offers the extension funds the gas, broadcasts it, then settles.
 *
 * Added only when all of these hold: the server advertised the extension; the asset is paid with
 * Permit2; the account can sign transactions; a chain reader is given; the Permit2 allowance does
 * not cover the amount; EIP-2612 cannot stand in (not advertised, or the token has no `nonces`);
 * and the payer cannot pay the approval's gas itself. Every chain read that fails means "no
 * extension": the payment then goes without it (and a 412 `permit2_allowance_required` says why).
 *
 * The signed transaction is bounded by what this client chose: gas limit APPROVE_GAS_LIMIT and the
 * node's current fee estimate, so the most a facilitator can be asked to fund is their product.
 */
import { evmChainId, type Extensions, type PaymentRequirements } from "@tollgate/core";
import { encodeFunctionData, getAddress, maxUint256, type Address, type Hex, type LocalAccount, type PublicClient } from "viem";
import { PERMIT2_ADDRESS, erc20PermitAbi } from "../contracts/permit2-abi.ts";
import { EIP2612_GAS_SPONSORING } from "./eip2612-sponsoring.ts";
import { wantsPermit2 } from "./permit2-client.ts";

export const ERC20_APPROVAL_GAS_SPONSORING = "erc20ApprovalGasSponsoring";

/** Gas limit of the signed approve (an ERC-20 approve from a fresh allowance slot uses ~46k; the official client signs 70k too). */
export const APPROVE_GAS_LIMIT = 70_000n;

/** The info a client fills in, as the spec lists it. */
export interface Erc20ApprovalSponsoringInfo {
  from: Address;
  asset: Address;
  spender: Address;
  /** uint256 decimal: the approved amount (max uint256). */
  amount: string;
  /** The RLP-encoded signed EIP-1559 transaction calling `asset.approve(spender, amount)`. */
  signedTransaction: Hex;
  version: string;
}

/** Chain reads the extension needs (a viem PublicClient has them all). */
export type ApprovalSponsoringReader = Pick<PublicClient, "readContract" | "getBalance" | "getTransactionCount" | "estimateFeesPerGas">;

/** An account that can sign a transaction (a viem LocalAccount qualifies). */
export type TransactionSigner = Pick<LocalAccount, "address" | "signTransaction">;

function canReadForApproval(reader: unknown): reader is ApprovalSponsoringReader {
  const r = reader as Partial<Record<keyof ApprovalSponsoringReader, unknown>> | undefined;
  return !!r && typeof r.readContract === "function" && typeof r.getBalance === "function" && typeof r.getTransactionCount === "function" && typeof r.estimateFeesPerGas === "function";
}

function canSignTransactions(account: unknown): account is TransactionSigner {
  return typeof (account as { signTransaction?: unknown })?.signTransaction === "function";
}

/** The extension for this payment, or undefined when it does not apply (see the module comment). */
export async function erc20ApprovalSponsoringExtension(
  account: { address: string },
  reader: unknown,
  requirements: PaymentRequirements,
  advertised: Extensions | undefined,
): Promise<Extensions | undefined> {
  if (advertised?.[ERC20_APPROVAL_GAS_SPONSORING] === undefined || !wantsPermit2(requirements)) return undefined;
  if (!canSignTransactions(account) || !canReadForApproval(reader)) return undefined;
  const chainId = evmChainId(requirements.network);
  if (chainId === undefined) return undefined;
  const owner = getAddress(account.address);
  const token = getAddress(requirements.asset);
  let nonce: number;
  let fees: { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint };
  try {
    const allowance = await reader.readContract({ address: token, abi: erc20PermitAbi, functionName: "allowance", args: [owner, PERMIT2_ADDRESS] });
    if (allowance >= BigInt(requirements.amount)) return undefined;
    if (advertised[EIP2612_GAS_SPONSORING] !== undefined && (await hasPermit(reader, token, owner))) return undefined;
    const [balance, count, estimate] = await Promise.all([
      reader.getBalance({ address: owner }),
      reader.getTransactionCount({ address: owner, blockTag: "pending" }),
      reader.estimateFeesPerGas(),
    ]);
    // A payer who can pay the approval's gas needs no sponsor (and the facilitator would not fund it).
    if (balance >= APPROVE_GAS_LIMIT * estimate.maxFeePerGas) return undefined;
    nonce = count;
    fees = { maxFeePerGas: estimate.maxFeePerGas, maxPriorityFeePerGas: estimate.maxPriorityFeePerGas };
  } catch {
    return undefined;
  }
  const signedTransaction = await account.signTransaction({
    type: "eip1559",
    chainId,
    to: token,
    data: encodeFunctionData({ abi: erc20PermitAbi, functionName: "approve", args: [PERMIT2_ADDRESS, maxUint256] }),
    value: 0n,
    gas: APPROVE_GAS_LIMIT,
    nonce,
    ...fees,
  });
  const info: Erc20ApprovalSponsoringInfo = {
    from: owner,
    asset: token,
    spender: PERMIT2_ADDRESS,
    amount: maxUint256.toString(),
    signedTransaction: signedTransaction as Hex,
    version: "1",
  };
  return { [ERC20_APPROVAL_GAS_SPONSORING]: { info } };
}

/** Whether the token answers EIP-2612's `nonces(owner)` (then the eip2612 extension stands in). */
async function hasPermit(reader: ApprovalSponsoringReader, token: Address, owner: Address): Promise<boolean> {
  try {
    await reader.readContract({ address: token, abi: erc20PermitAbi, functionName: "nonces", args: [owner] });
    return true;
  } catch {
    return false;
  }
}
