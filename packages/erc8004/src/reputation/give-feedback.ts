import { isAddressEqual, parseEventLogs, zeroHash, type Address, type Hex } from "viem";
import { reputationRegistryAbi } from "../abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "../addresses.ts";
import { parseFixedPoint } from "../value.ts";
import { sendContractWrite, type Erc8004Clients, type WriteResult } from "../write.ts";

export type GiveFeedbackParams = {
  agentId: bigint;
  /** A decimal string ("99.77", "-3.2") or the raw int128 value with `valueDecimals`. */
  value: string | bigint;
  /** Only with a bigint `value`; default 0. */
  valueDecimals?: number;
  tag1?: string;
  tag2?: string;
  /** The agent endpoint the feedback is about. */
  endpoint?: string;
  /** Off-chain feedback file (see feedback-proof.ts) and its keccak256. */
  feedbackUri?: string;
  feedbackHash?: Hex;
  registry?: Address;
};

/** Posts feedback from the wallet's account; returns its 1-based index for this client/agent pair. */
export async function giveFeedback(clients: Erc8004Clients, p: GiveFeedbackParams): Promise<WriteResult<{ feedbackIndex: bigint }>> {
  const registry = p.registry ?? ERC8004_MAINNET_ADDRESSES.reputationRegistry;
  const fixed = typeof p.value === "string" ? parseFixedPoint(p.value) : { value: p.value, valueDecimals: p.valueDecimals ?? 0 };
  const sent = await sendContractWrite(clients, {
    address: registry,
    abi: reputationRegistryAbi,
    functionName: "giveFeedback",
    args: [p.agentId, fixed.value, fixed.valueDecimals, p.tag1 ?? "", p.tag2 ?? "", p.endpoint ?? "", p.feedbackUri ?? "", p.feedbackHash ?? zeroHash],
  });
  if (!sent.ok) return sent;
  const [event] = parseEventLogs({ abi: reputationRegistryAbi, eventName: "NewFeedback", logs: sent.receipt.logs }).filter((e) => isAddressEqual(e.address, registry));
  if (event) return { ...sent, feedbackIndex: event.args.feedbackIndex };
  return { ok: false, reason: "no NewFeedback event", detail: `transaction ${sent.txHash} emitted no NewFeedback event` };
}
