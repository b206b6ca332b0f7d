// Reading settlement results back from receipts and revert data. The token's own
// `AuthorizationUsed(authorizer, nonce)` log is the proof an item settled; BatchSettler's
// `ItemFailed(reason)` only explains a failure.
import { Reason } from "@tollgate/core";
import {
  BaseError,
  decodeErrorResult,
  decodeEventLog,
  getAddress,
  hexToString,
  toEventSelector,
  type Hex,
  type TransactionReceipt,
} from "viem";
import { batchSettlerAbi, eip3009Abi } from "../contracts/abi.ts";
import type { ReceiptItem, TransactionOutcome } from "./types.ts";

const AUTHORIZATION_USED = toEventSelector("AuthorizationUsed(address,bytes32)");
const ITEM_FAILED = toEventSelector("ItemFailed(bytes32,address,address,uint256,bytes)");

export function outcomeFromReceipt(receipt: TransactionReceipt): TransactionOutcome {
  const items: ReceiptItem[] = [];
  if (receipt.status === "success") {
    for (const log of receipt.logs) {
      const topic = log.topics[0];
      try {
        if (topic === AUTHORIZATION_USED && log.topics.length === 3) {
          // Both arguments are indexed: read from the topics (one per settled item, on the hot path).
          items.push({ from: getAddress(`0x${log.topics[1]!.slice(26)}`), nonce: log.topics[2]!, status: "success" });
        } else if (topic === ITEM_FAILED) {
          const { args } = decodeEventLog({ abi: batchSettlerAbi, eventName: "ItemFailed", data: log.data, topics: log.topics });
          items.push({ from: args.from, nonce: args.nonce, status: "reverted", reason: reasonFromRevertData(args.reason) });
        }
      } catch {
        // A log with a matching topic but another layout is not ours.
      }
    }
  }
  return { transaction: receipt.transactionHash, status: receipt.status, blockNumber: receipt.blockNumber, items };
}

/** This item's status in a mined transaction: settled only if the token logged its authorization. */
export function itemStatus(
  outcome: TransactionOutcome,
  from: string,
  nonce: string,
): { status: "success" | "reverted"; reason?: string } {
  const f = from.toLowerCase();
  const n = nonce.toLowerCase();
  const mine = outcome.items.filter((i) => i.from.toLowerCase() === f && i.nonce.toLowerCase() === n);
  if (mine.some((i) => i.status === "success")) return { status: "success" };
  const failed = mine.find((i) => i.status === "reverted");
  if (failed) return { status: "reverted", reason: failed.reason ?? Reason.invalidTransactionState };
  return { status: "reverted", reason: Reason.invalidTransactionState };
}

/** Maps a token revert (TollgateUSD custom errors, OpenZeppelin errors, FiatToken strings) to a reason code. */
export function reasonFromRevertData(data: Hex | undefined): string {
  if (!data || data === "0x") return Reason.invalidTransactionState;
  let name: string | undefined;
  let message = "";
  try {
    const decoded = decodeErrorResult({ abi: eip3009Abi, data });
    name = decoded.errorName;
    if (name === "Error" && decoded.args) message = String(decoded.args[0]);
  } catch {
    // Error(string) is built into decodeErrorResult; anything else stays unknown.
    try {
      if (data.startsWith("0x08c379a0")) message = hexToString(`0x${data.slice(138)}` as Hex);
    } catch {
      message = "";
    }
  }
  switch (name) {
    case "InvalidSignature":
      return Reason.evmSignature;
    case "AuthorizationNotYetValid":
      return Reason.evmValidAfter;
    case "AuthorizationExpired":
      return Reason.evmValidBefore;
    case "AuthorizationUsedOrCanceled":
      return Reason.evmNonceUsed;
    case "ERC20InsufficientBalance":
      return Reason.insufficientFunds;
  }
  const m = message.toLowerCase();
  if (m.includes("signature")) return Reason.evmSignature;
  if (m.includes("used or canceled") || m.includes("already used")) return Reason.evmNonceUsed;
  if (m.includes("expired")) return Reason.evmValidBefore;
  if (m.includes("not yet valid")) return Reason.evmValidAfter;
  if (m.includes("exceeds balance") || m.includes("insufficient")) return Reason.insufficientFunds;
  return Reason.invalidTransactionState;
}

/** The raw revert data inside a viem error (eth_call / eth_estimateGas failures), if any. */
export function revertDataOf(error: unknown): Hex | undefined {
  if (!(error instanceof BaseError)) return undefined;
  const found = error.walk((e) => typeof (e as { data?: unknown }).data === "string");
  const data = (found as { data?: unknown } | null)?.data;
  return typeof data === "string" && data.startsWith("0x") ? (data as Hex) : undefined;
}

export function shortMessage(error: unknown): string {
  if (error instanceof BaseError) return error.shortMessage;
  return error instanceof Error ? error.message : String(error);
}
