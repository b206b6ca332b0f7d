/**
 * A contract wallet's (ERC-1271) signature, judged on chain the way a mined transaction would
 * see it. A plain eth_call runs with gas price 0 and no fee fields, and a wallet can tell: one
 * that answers "valid" when `tx.gasprice == 0` (or on a zero base fee) and reverts, or burns its
 * gas, once mined would pass a fee-less dry run every time and cost the fee payer gas on every
 * attempt. So both checks here carry the chain's real fee fields, the fee payer as sender and
 * the gas cap as limit: the wallet's `isValidSignature`, then the transfer itself.
 * What still gets through (a wallet gated on something no call can reproduce) reverts once;
 * the payer is then backed off (payer-backoff.ts).
 */
import { Reason, safeMessage } from "@tollgate/core";
import { decodeFunctionResult, encodeFunctionData, toHex, type Address, type Hex } from "viem";
import { ERC1271_MAGIC_VALUE, erc1271Abi } from "../../contracts/abi.ts";
import { answeredByNode, revertDataOf } from "../../errors.ts";
import { describeRevert } from "../../settlement/receipt.ts";
import { domainSeparator, transferAuthorizationDigest } from "../digest.ts";
import type { FacilitatorContext, NetworkState } from "./context.ts";
import { chainFees } from "./network.ts";
import { fail, type Failure, type Request } from "./requirements.ts";

export async function judgeContractWallet(ctx: FacilitatorContext, req: Request, transferData: Hex): Promise<Failure | undefined> {
  const refused = await walletRefusal(ctx, req);
  if (refused) return fail(Reason.evmSignature, refused, req.payer);
  try {
    await callWithFees(ctx, req.net, req.asset, transferData);
  } catch (e) {
    const revert = revertDataOf(e);
    if (revert === undefined && !answeredByNode(e)) throw e;
    const why = revert !== undefined ? describeRevert(revert) : safeMessage(e);
    return fail(Reason.evmSimulationFailed, `transferWithAuthorization would fail when mined (dry run with fee fields): ${why}`, req.payer);
  }
  return undefined;
}

/**
 * Why the wallet does not accept the signature for this authorization (asked with fee fields),
 * or undefined when it does. Also what `authenticate` asks for an opted-in contract wallet:
 * nothing is keyed on a payer that did not sign.
 */
export async function walletRefusal(ctx: FacilitatorContext, req: Pick<Request, "net" | "asset" | "payer" | "auth" | "signature" | "name" | "version">): Promise<string | undefined> {
  const { net } = req;
  const separator = domainSeparator({ name: req.name, version: req.version, chainId: net.chainId, verifyingContract: req.asset });
  const digest = toHex(transferAuthorizationDigest(separator.bytes, req.auth));
  const isValid = encodeFunctionData({ abi: erc1271Abi, functionName: "isValidSignature", args: [digest, req.signature] });
  try {
    const out = (await callWithFees(ctx, net, req.payer, isValid)).data ?? "0x";
    const magic = decodeFunctionResult({ abi: erc1271Abi, functionName: "isValidSignature", data: out });
    return magic.toLowerCase() === ERC1271_MAGIC_VALUE ? undefined : "paymentPayload.payload.signature: the wallet's isValidSignature does not accept it";
  } catch (e) {
    // A revert, an error the node answered (out of gas…) or an undecodable answer is a verdict; a transport failure is not.
    if (revertDataOf(e) === undefined && !answeredByNode(e) && !/decode|returned no data/i.test(safeMessage(e))) throw e;
    return `paymentPayload.payload.signature: the wallet's isValidSignature refused it (${safeMessage(e)})`;
  }
}

/** An eth_call as a mined transaction would run it: from the fee payer, the gas cap as limit, the chain's fees. */
async function callWithFees(ctx: FacilitatorContext, net: NetworkState, to: Address, data: Hex) {
  const fees = await chainFees(net);
  return net.client.call({ account: ctx.signer.address, to, data, gas: ctx.maxGasPerSettlement, maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas });
}
