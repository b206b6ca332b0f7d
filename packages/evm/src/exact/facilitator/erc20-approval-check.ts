/**
 * Facilitator side of `erc20ApprovalGasSponsoring` (x402 specs/extensions/erc20_gas_sponsoring.md),
 * the part that decides BEFORE anything is spent: the payer's signed `approve(Permit2, amount)` is
 * decoded and held to every field, the chain is read (nonce, balance, base fee), and the whole
 * sequence (funding, approve, settle) is simulated in one `eth_simulateV1` block. Only a payment
 * that passes all of it may cost the fee payer anything; the result says exactly how much
 * (`funding`, at most the policy's cap).
 *
 * Why so strict: the facilitator funds gas it does not control. A transaction to another contract,
 * with a value, a higher gas limit or fee than the policy allows, another chain, or a nonce that is
 * not the payer's next one would spend that funding on something else, or never mine and leave the
 * funding with the payer. Those are refused here, by name.
 *
 * Not here: sending. erc20-approval-sponsor.ts (withErc20ApprovalSponsoring) runs this check at
 * /verify and /settle and, at /settle only, funds the payer from a dedicated sponsor key (written
 * ahead), broadcasts the approve, waits for it, then settles as any Permit2 payment. The service
 * lists the extension in /supported only with a sponsor key (`gasSponsoring`); without one a payer
 * lacking the allowance gets `permit2_allowance_required` (HTTP 412 at the paywall).
 */
import type { PaymentPayload } from "@tollgate/core";
import {
  decodeFunctionData,
  encodeFunctionData,
  getAddress,
  isAddressEqual,
  keccak256,
  parseTransaction,
  recoverTransactionAddress,
  type Address,
  type Hex,
  type TransactionSerializableEIP1559,
} from "viem";
import { PERMIT2_ADDRESS, erc20PermitAbi } from "../../contracts/permit2-abi.ts";
import { ERC20_APPROVAL_GAS_SPONSORING } from "../erc20-approval-sponsoring.ts";
import type { NetworkState } from "./context.ts";
import { fail, type Failure } from "./requirements.ts";

/** Reason codes: the official SDK's where it has one, ours (same prefix) for the policy checks it lacks. */
export const Erc20ApprovalReason = {
  invalidFormat: "invalid_erc20_approval_extension_format",
  fromMismatch: "erc20_approval_from_mismatch",
  assetMismatch: "erc20_approval_asset_mismatch",
  spenderNotPermit2: "erc20_approval_spender_not_permit2",
  parseFailed: "erc20_approval_tx_parse_failed",
  wrongTarget: "erc20_approval_tx_wrong_target",
  wrongSelector: "erc20_approval_tx_wrong_selector",
  wrongSpender: "erc20_approval_tx_wrong_spender",
  invalidCalldata: "erc20_approval_tx_invalid_calldata",
  signerMismatch: "erc20_approval_tx_signer_mismatch",
  invalidSignature: "erc20_approval_tx_invalid_signature",
  /** Not EIP-1559, another chain, a value, or an access list. */
  invalidFields: "erc20_approval_tx_invalid_fields",
  amountTooLow: "erc20_approval_amount_too_low",
  gasOverPolicy: "erc20_approval_tx_gas_over_policy",
  feeOutOfRange: "erc20_approval_tx_fee_out_of_range",
  nonceMismatch: "erc20_approval_tx_nonce_mismatch",
  fundingOverPolicy: "erc20_approval_funding_over_policy",
  simulationFailed: "erc20_approval_simulation_failed",
} as const;

/** What the facilitator is willing to fund for one approval. */
export interface ApprovalSponsoringPolicy {
  /** Highest gas limit accepted on the signed approve. Default 100_000. */
  maxGas?: bigint;
  /** Highest maxFeePerGas accepted (wei), whatever the network asks. Required: the funding is gas × this. */
  maxFeePerGas: bigint;
  /** Most wei sent to one payer for one approval. Default maxGas × maxFeePerGas. */
  maxFunding?: bigint;
}

/** A signed approve that held up off-chain. */
export interface ApprovalClaim {
  payer: Address;
  asset: Address;
  /** The approved amount (≥ the charge). */
  amount: bigint;
  serialized: Hex;
  hash: Hex;
  nonce: number;
  gas: bigint;
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
}

/** A claim the chain agreed with: what the facilitator must send the payer first (0n: nothing). */
export interface ApprovalPlan extends ApprovalClaim {
  funding: bigint;
}

const AT = `paymentPayload.extensions.${ERC20_APPROVAL_GAS_SPONSORING}.info`;
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const UINT = /^[0-9]{1,78}$/;
const HEX = /^0x[0-9a-fA-F]+$/;
const VERSION = /^[0-9]+(\.[0-9]+)*$/;
/** Far above any signed EIP-1559 approve (~110 bytes + signature): a bound on what is parsed. */
const MAX_TX_HEX = 2 + 2 * 1024;
const DEFAULT_MAX_GAS = 100_000n;

/**
 * The payload's signed approve checked off-chain, a Failure naming the field, or undefined when
 * the payload carries none (or only the server's advertisement echoed back unfilled).
 */
export async function readErc20ApprovalClaim(
  payload: PaymentPayload,
  expected: { payer: Address; asset: Address; chainId: number; charge: bigint },
  policy: ApprovalSponsoringPolicy,
): Promise<ApprovalClaim | Failure | undefined> {
  const { payer, asset, chainId, charge } = expected;
  const ext = (payload.extensions as Record<string, unknown> | undefined)?.[ERC20_APPROVAL_GAS_SPONSORING] as { info?: unknown } | undefined;
  if (ext === undefined || ext === null) return undefined;
  const info = ext.info as Record<string, unknown> | undefined;
  if (typeof info !== "object" || info === null) return fail(Erc20ApprovalReason.invalidFormat, `${AT}: expected an object`, payer);
  if (info.signedTransaction === undefined && info.from === undefined) return undefined;
  for (const f of ["from", "asset", "spender"]) if (typeof info[f] !== "string" || !ADDRESS.test(info[f] as string)) return fail(Erc20ApprovalReason.invalidFormat, `${AT}.${f}: expected an address`, payer);
  if (typeof info.amount !== "string" || !UINT.test(info.amount)) return fail(Erc20ApprovalReason.invalidFormat, `${AT}.amount: expected a decimal integer string`, payer);
  if (typeof info.version !== "string" || !VERSION.test(info.version)) return fail(Erc20ApprovalReason.invalidFormat, `${AT}.version: expected a version like "1"`, payer);
  const serialized = info.signedTransaction;
  if (typeof serialized !== "string" || !HEX.test(serialized) || serialized.length > MAX_TX_HEX) {
    return fail(Erc20ApprovalReason.invalidFormat, `${AT}.signedTransaction: expected 0x-hex of at most ${(MAX_TX_HEX - 2) / 2} bytes`, payer);
  }
  if (!isAddressEqual(info.from as Address, payer)) return fail(Erc20ApprovalReason.fromMismatch, `${AT}.from: is not the payer ${payer}`, payer);
  if (!isAddressEqual(info.asset as Address, asset)) return fail(Erc20ApprovalReason.assetMismatch, `${AT}.asset: is not the asset ${asset}`, payer);
  if (!isAddressEqual(info.spender as Address, PERMIT2_ADDRESS)) return fail(Erc20ApprovalReason.spenderNotPermit2, `${AT}.spender: is not Permit2 ${PERMIT2_ADDRESS}`, payer);
  const amount = BigInt(info.amount);
  if (amount < charge) return fail(Erc20ApprovalReason.amountTooLow, `${AT}.amount: ${amount} is below the ${charge} to settle`, payer);
  return checkSignedApprove(serialized as Hex, { payer, asset, chainId, amount }, policy);
}

/** Every field of the signed transaction, and who signed it. */
async function checkSignedApprove(
  serialized: Hex,
  expected: { payer: Address; asset: Address; chainId: number; amount: bigint },
  policy: ApprovalSponsoringPolicy,
): Promise<ApprovalClaim | Failure> {
  const { payer, asset, chainId, amount } = expected;
  const at = `${AT}.signedTransaction`;
  let tx: ReturnType<typeof parseTransaction>;
  try {
    tx = parseTransaction(serialized);
  } catch {
    return fail(Erc20ApprovalReason.parseFailed, `${at}: not an RLP-encoded signed transaction`, payer);
  }
  if (tx.type !== "eip1559") return fail(Erc20ApprovalReason.invalidFields, `${at}: type ${tx.type}, expected an EIP-1559 transaction`, payer);
  const t = tx as TransactionSerializableEIP1559;
  if (t.chainId !== chainId) return fail(Erc20ApprovalReason.invalidFields, `${at}: chainId ${t.chainId}, expected ${chainId}`, payer);
  if (!t.to || !isAddressEqual(t.to, asset)) return fail(Erc20ApprovalReason.wrongTarget, `${at}: calls ${t.to ?? "nothing (a deployment)"}, expected the asset ${asset}`, payer);
  if ((t.value ?? 0n) !== 0n) return fail(Erc20ApprovalReason.invalidFields, `${at}: sends ${t.value} wei along, expected 0`, payer);
  if (t.accessList && t.accessList.length > 0) return fail(Erc20ApprovalReason.invalidFields, `${at}: carries an access list, expected none`, payer);
  const data = t.data ?? "0x";
  if (!data.toLowerCase().startsWith("0x095ea7b3")) return fail(Erc20ApprovalReason.wrongSelector, `${at}: calldata is not approve(address,uint256)`, payer);
  let args: readonly unknown[];
  try {
    const decoded = decodeFunctionData({ abi: erc20PermitAbi, data });
    if (decoded.functionName !== "approve") throw new Error("not approve");
    args = decoded.args;
    // Exactly the ABI encoding: no trailing bytes riding along.
    if (encodeFunctionData({ abi: erc20PermitAbi, functionName: "approve", args: args as [Address, bigint] }).toLowerCase() !== data.toLowerCase()) throw new Error("trailing data");
  } catch {
    return fail(Erc20ApprovalReason.invalidCalldata, `${at}: calldata does not decode as approve(address,uint256)`, payer);
  }
  if (!isAddressEqual(args[0] as Address, PERMIT2_ADDRESS)) return fail(Erc20ApprovalReason.wrongSpender, `${at}: approves ${getAddress(args[0] as Address)}, expected Permit2 ${PERMIT2_ADDRESS}`, payer);
  if ((args[1] as bigint) !== amount) return fail(Erc20ApprovalReason.invalidCalldata, `${at}: approves ${args[1]}, but info.amount says ${amount}`, payer);
  const gas = t.gas ?? 0n;
  const maxGas = policy.maxGas ?? DEFAULT_MAX_GAS;
  if (gas === 0n || gas > maxGas) return fail(Erc20ApprovalReason.gasOverPolicy, `${at}: gas limit ${gas}, this facilitator funds at most ${maxGas}`, payer);
  const maxFeePerGas = t.maxFeePerGas ?? 0n;
  const maxPriorityFeePerGas = t.maxPriorityFeePerGas ?? 0n;
  if (maxFeePerGas === 0n || maxFeePerGas > policy.maxFeePerGas || maxPriorityFeePerGas > maxFeePerGas) {
    return fail(Erc20ApprovalReason.feeOutOfRange, `${at}: maxFeePerGas ${maxFeePerGas} (tip ${maxPriorityFeePerGas}), this facilitator funds at most ${policy.maxFeePerGas} per gas`, payer);
  }
  let signer: Address;
  try {
    signer = await recoverTransactionAddress({ serializedTransaction: serialized as Parameters<typeof recoverTransactionAddress>[0]["serializedTransaction"] });
  } catch {
    return fail(Erc20ApprovalReason.invalidSignature, `${at}: the signature does not recover`, payer);
  }
  if (!isAddressEqual(signer, payer)) return fail(Erc20ApprovalReason.signerMismatch, `${at}: signed by ${signer}, not the payer ${payer}`, payer);
  return { payer, asset, amount, serialized, hash: keccak256(serialized), nonce: t.nonce ?? 0, gas, maxFeePerGas, maxPriorityFeePerGas };
}

type SimulatedCall = { status?: Hex; error?: { message?: string } };

/**
 * The chain's word on a claim: the nonce must be the payer's next (mined and pending alike), the
 * fee one the network takes now, the funding within the cap, and the
 * block [approve from the payer, then `settle` from the fee payer] must succeed with the payer
 * holding exactly what the approve may cost. `settle` is the proxy call (to, data) that would follow.
 */
export async function judgeErc20Approval(
  net: Pick<NetworkState, "client">,
  claim: ApprovalClaim,
  settle: { from: Address; to: Address; data: Hex },
  policy: ApprovalSponsoringPolicy,
): Promise<ApprovalPlan | Failure> {
  const { payer } = claim;
  const at = `${AT}.signedTransaction`;
  const [mined, pending, balance, block] = await Promise.all([
    net.client.getTransactionCount({ address: payer, blockTag: "latest" }),
    net.client.getTransactionCount({ address: payer, blockTag: "pending" }),
    net.client.getBalance({ address: payer }),
    net.client.getBlock({ blockTag: "latest" }),
  ]);
  if (claim.nonce !== mined || mined !== pending) {
    return fail(Erc20ApprovalReason.nonceMismatch, `${at}: nonce ${claim.nonce}, the payer's next is ${mined}${pending !== mined ? ` (${pending - mined} pending)` : ""}`, payer);
  }
  // Above the policy's cap was refused off-chain; below the base fee it would sit unmined while
  // the funding stays with the payer.
  const baseFee = block.baseFeePerGas ?? 0n;
  if (claim.maxFeePerGas < baseFee) return fail(Erc20ApprovalReason.feeOutOfRange, `${at}: maxFeePerGas ${claim.maxFeePerGas} is below the base fee ${baseFee}: it would not be mined`, payer);
  const cost = claim.gas * claim.maxFeePerGas;
  const funding = balance >= cost ? 0n : cost - balance;
  const cap = policy.maxFunding ?? (policy.maxGas ?? DEFAULT_MAX_GAS) * policy.maxFeePerGas;
  if (funding > cap) return fail(Erc20ApprovalReason.fundingOverPolicy, `${at}: needs ${funding} wei of funding, this facilitator funds at most ${cap}`, payer);
  const calls = await simulateApproveThenSettle(net, claim, settle, balance + funding);
  if (typeof calls === "string") return fail(Erc20ApprovalReason.simulationFailed, calls, payer);
  return { ...claim, funding };
}

/** One simulated block: the payer's approve, then the settlement. A string says what failed. */
async function simulateApproveThenSettle(net: Pick<NetworkState, "client">, claim: ApprovalClaim, settle: { from: Address; to: Address; data: Hex }, payerBalance: bigint): Promise<true | string> {
  const approveData = encodeFunctionData({ abi: erc20PermitAbi, functionName: "approve", args: [PERMIT2_ADDRESS, claim.amount] });
  let blocks: { calls?: SimulatedCall[] }[];
  try {
    blocks = (await net.client.request({
      method: "eth_simulateV1",
      params: [
        {
          blockStateCalls: [
            {
              stateOverrides: { [claim.payer]: { balance: `0x${payerBalance.toString(16)}` } },
              calls: [
                { from: claim.payer, to: claim.asset, data: approveData, gas: `0x${claim.gas.toString(16)}` },
                { from: settle.from, to: settle.to, data: settle.data },
              ],
            },
          ],
          validation: false,
        },
        "latest",
      ],
    } as never)) as { calls?: SimulatedCall[] }[];
  } catch (e) {
    // No way to simulate the sequence: nothing may be funded on a guess.
    return `the node could not simulate approve + settle (eth_simulateV1): ${(e as Error)?.message?.split("\n")[0] ?? "unknown error"}`;
  }
  const [approve, settled] = blocks?.[0]?.calls ?? [];
  if (approve?.status !== "0x1") return `the approve would fail: ${approve?.error?.message ?? "reverted"}`;
  if (settled?.status !== "0x1") return `the settlement after the approve would fail: ${settled?.error?.message ?? "reverted"}`;
  return true;
}
