// Reading settlement results back from receipts and revert data: the one reader shared by the
// engine (its poller and waitFor) and the facilitator's reconciler, so both judge a receipt the
// same way.
//
// The proof an item settled is the token's own `AuthorizationUsed(authorizer, nonce)` log, and
// only a log emitted BY THE TOKEN counts: any contract a transaction touches can emit an event
// with that signature (a hostile token's hook, a wallet), and a forged one must not turn an
// unsettled payment into "settled". BatchSettler's `ItemFailed` only explains a failure, and is
// read only from the contract the transaction called.
import { Reason } from "@tollgate/core";
import {
  decodeErrorResult,
  decodeEventLog,
  formatTransactionReceipt,
  getAddress,
  hexToString,
  toEventSelector,
  type Address,
  type Hex,
  type PublicClient,
  type TransactionReceipt,
} from "viem";
import { batchSettlerAbi, eip3009Abi } from "../contracts/abi.ts";
import { EXACT_PERMIT2_PROXY_ADDRESS } from "../contracts/permit2-abi.ts";
import type { ReceiptItem, TransactionOutcome } from "./types.ts";

const AUTHORIZATION_USED = toEventSelector("AuthorizationUsed(address,bytes32)");
const ITEM_FAILED = toEventSelector("ItemFailed(bytes32,address,address,uint256,bytes)");
const PROXY_SETTLED = [toEventSelector("Settled()"), toEventSelector("SettledWithPermit()")];
const TRANSFER = toEventSelector("Transfer(address,address,uint256)");

/** A Permit2 payment as its receipt must show it: the token, owner → witness.to, the amount. */
export interface Permit2ReceiptPayment {
  token: string;
  from: string;
  to: string;
  amount: bigint | string;
  /** The proxy the transaction called; default the canonical x402 exact Permit2 proxy. */
  proxy?: string;
}

/**
 * Whether a receipt proves a Permit2 payment (one per transaction): the transaction succeeded,
 * the proxy itself logged Settled or SettledWithPermit, and the token itself logged
 * Transfer(owner → witness.to, amount). Logs of any other emitter are ignored (a hostile token or
 * wallet hook could forge either event's signature).
 */
export function permit2ReceiptSettled(receipt: Pick<TransactionReceipt, "status" | "logs">, payment: Permit2ReceiptPayment): boolean {
  if (receipt.status !== "success") return false;
  const proxy = (payment.proxy ?? EXACT_PERMIT2_PROXY_ADDRESS).toLowerCase();
  const token = payment.token.toLowerCase();
  const from = payment.from.toLowerCase();
  const to = payment.to.toLowerCase();
  const amount = BigInt(payment.amount);
  let proxyLogged = false;
  let transferred = false;
  for (const log of receipt.logs) {
    const emitter = log.address.toLowerCase();
    const topic = log.topics[0];
    if (emitter === proxy && topic !== undefined && PROXY_SETTLED.includes(topic) && log.topics.length === 1) proxyLogged = true;
    if (emitter === token && topic === TRANSFER && log.topics.length === 3 && log.data.length === 66) {
      const [f, t] = [`0x${log.topics[1]!.slice(26)}`.toLowerCase(), `0x${log.topics[2]!.slice(26)}`.toLowerCase()];
      if (f === from && t === to && BigInt(log.data) === amount) transferred = true;
    }
  }
  return proxyLogged && transferred;
}

/** A Permit2 payment's outcome from a receipt (for the engine's poller and the reconciler alike). */
export function permit2Outcome(receipt: TransactionReceipt, payment: Permit2ReceiptPayment): TransactionOutcome {
  const settled = permit2ReceiptSettled(receipt, payment);
  return {
    transaction: receipt.transactionHash,
    status: settled ? "success" : "reverted",
    ...(settled ? {} : { reason: Reason.invalidTransactionState }),
    blockNumber: receipt.blockNumber,
    ...gasOf(receipt),
    items: [],
  };
}

/** The receipt's gas figures, when the node gave them. */
function gasOf(receipt: TransactionReceipt): { gasUsed?: bigint; effectiveGasPrice?: bigint } {
  return {
    ...(typeof receipt.gasUsed === "bigint" ? { gasUsed: receipt.gasUsed } : {}),
    ...(typeof receipt.effectiveGasPrice === "bigint" ? { effectiveGasPrice: receipt.effectiveGasPrice } : {}),
  };
}

/** One look at a Permit2 payment's hashes (all sent for one nonce): its outcome if one was mined, else "pending". */
export async function readPermit2Outcome(client: PublicClient, hashes: readonly Hex[], payment: Permit2ReceiptPayment): Promise<TransactionOutcome> {
  const receipt = await firstReceipt(client, hashes);
  if (!receipt) return { transaction: hashes[hashes.length - 1]!, status: "pending", items: [] };
  return permit2Outcome(receipt, payment);
}

/** The items a receipt reports on; `token` is the EIP-3009 token whose logs prove settlement. */
export function outcomeFromReceipt(receipt: TransactionReceipt, token: Address): TransactionOutcome {
  const items: ReceiptItem[] = [];
  if (receipt.status === "success") {
    const tokenAddress = token.toLowerCase();
    const called = receipt.to?.toLowerCase();
    for (const log of receipt.logs) {
      const topic = log.topics[0];
      const emitter = log.address.toLowerCase();
      try {
        if (topic === AUTHORIZATION_USED && log.topics.length === 3 && emitter === tokenAddress) {
          // Both arguments are indexed: read from the topics (one per settled item, on the hot path).
          items.push({ from: getAddress(`0x${log.topics[1]!.slice(26)}`), nonce: log.topics[2]!, status: "success" });
        } else if (topic === ITEM_FAILED && emitter === called) {
          const { args } = decodeEventLog({ abi: batchSettlerAbi, eventName: "ItemFailed", data: log.data, topics: log.topics });
          items.push({ from: args.from, nonce: args.nonce, status: "reverted", reason: reasonFromRevertData(args.reason) });
        }
      } catch {
        // A log with a matching topic but another layout is not ours.
      }
    }
  }
  return { transaction: receipt.transactionHash, status: receipt.status, blockNumber: receipt.blockNumber, ...gasOf(receipt), items };
}

/** This item's status in a mined transaction: settled only if the token logged its authorization. */
export function itemStatus(outcome: TransactionOutcome, from: string, nonce: string): { status: "success" | "reverted"; reason?: string } {
  const f = from.toLowerCase();
  const n = nonce.toLowerCase();
  const mine = outcome.items.filter((i) => i.from.toLowerCase() === f && i.nonce.toLowerCase() === n);
  if (mine.some((i) => i.status === "success")) return { status: "success" };
  const failed = mine.find((i) => i.status === "reverted");
  return { status: "reverted", reason: failed?.reason ?? Reason.invalidTransactionState };
}

/**
 * The first receipt among `hashes` (all hashes sent for one nonce: at most one can land), or
 * undefined. Not deduplicated (viem's getTransactionReceipt is): a lookup already in flight may
 * have started before the caller's view of the head, and its "not found" says nothing about it.
 */
export async function firstReceipt(client: PublicClient, hashes: readonly Hex[]): Promise<TransactionReceipt | undefined> {
  const receipts = await Promise.all(
    hashes.map(async (hash) => {
      const raw = await client.request({ method: "eth_getTransactionReceipt", params: [hash] }, { dedupe: false });
      return raw ? formatTransactionReceipt(raw) : undefined;
    }),
  );
  return receipts.find((r) => r !== undefined);
}

export interface ReadOutcomeOptions {
  /** The EIP-3009 token the settlement called (directly or through BatchSettler). */
  token: Address;
  /** Report this item's status rather than the transaction's. */
  item?: { from: string; nonce: string };
}

/** One look: the outcome if one of `hashes` was mined, else "pending" (with the last hash). */
export async function readSettlementOutcome(client: PublicClient, hashes: readonly Hex[], options: ReadOutcomeOptions): Promise<TransactionOutcome> {
  const receipt = await firstReceipt(client, hashes);
  if (!receipt) return { transaction: hashes[hashes.length - 1]!, status: "pending", items: [] };
  return shapeOutcome(outcomeFromReceipt(receipt, options.token), options.item);
}

/** With `item`, the outcome's status (and reason) is that item's. */
export function shapeOutcome(outcome: TransactionOutcome, item: { from: string; nonce: string } | undefined): TransactionOutcome {
  return item && outcome.status !== "pending" ? { ...outcome, ...itemStatus(outcome, item.from, item.nonce) } : outcome;
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

/** A human description of revert data (decoded error name and arguments when the ABI knows it). */
export function describeRevert(data: Hex | undefined): string {
  if (!data || data === "0x") return "reverted without a reason";
  try {
    const e = decodeErrorResult({ abi: eip3009Abi, data });
    const args = (e.args ?? []) as readonly unknown[];
    if ((e.errorName as string) === "Error" && typeof args[0] === "string") return args[0];
    return `${e.errorName}(${args.map(String).join(", ")})`;
  } catch {
    return `reverted with data ${data.slice(0, 74)}`;
  }
}
