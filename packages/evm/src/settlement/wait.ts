/**
 * Following a transaction to its end: the poller's own result when this engine sent it (it also
 * knows about fee bumps), otherwise the shared receipt reader (receipt.ts) on the chain.
 */
import { Reason, type Network } from "@tollgate/core";
import { isHex, type Hex } from "viem";
import { pollingIntervalOf } from "./poller.ts";
import { firstReceipt, outcomeFromReceipt, shapeOutcome } from "./receipt.ts";
import { SettlementError } from "./settlement-error.ts";
import { sleep, type EngineContext, type NetworkState } from "./state.ts";
import type { TransactionOutcome, WaitForOptions } from "./types.ts";

function networkFor(ctx: EngineContext, options: { network?: Network } | undefined): NetworkState {
  if (options?.network) {
    const net = ctx.networks.get(options.network);
    if (!net) throw new SettlementError(Reason.invalidNetwork, `network: ${JSON.stringify(options.network)} is not served`);
    return net;
  }
  if (ctx.networks.size === 1) return [...ctx.networks.values()][0]!;
  throw new SettlementError(Reason.invalidNetwork, "network: required when the engine serves several networks");
}

export async function waitFor(ctx: EngineContext, transaction: Hex | readonly Hex[], options: WaitForOptions & { network?: Network } = {}): Promise<TransactionOutcome> {
  const hashes = (typeof transaction === "string" ? [transaction] : [...transaction]).map((h) => h.toLowerCase() as Hex);
  if (hashes.length === 0 || !hashes.every((h) => isHex(h) && h.length === 66)) {
    throw new SettlementError(Reason.invalidPayload, "transaction: expected 32-byte 0x-hex transaction hash(es)");
  }
  const net = networkFor(ctx, options);
  const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
  const pending = (): TransactionOutcome => ({ transaction: hashes[hashes.length - 1]!, status: "pending", items: [] });

  // Ours and still followed: share the poller's result (it also knows about replacements).
  const tracked = [...net.tracked].find((t) => t.sends.some((s) => hashes.includes(s.hash.toLowerCase() as Hex)));
  if (tracked) {
    if (deadline === Infinity) return shapeOutcome(await tracked.done.promise, options.item);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      tracked.done.promise,
      new Promise<undefined>((res) => (timer = setTimeout(() => res(undefined), Math.max(0, deadline - Date.now())))),
    ]);
    clearTimeout(timer);
    return r ? shapeOutcome(r, options.item) : pending();
  }
  for (;;) {
    const receipt = await firstReceipt(net.client, hashes);
    if (receipt) {
      // Without a token, the transaction's recipient: the token itself for a direct call.
      const token = options.token ?? receipt.to ?? undefined;
      if (token) return shapeOutcome(outcomeFromReceipt(receipt, token), options.item);
      return shapeOutcome({ transaction: receipt.transactionHash, status: receipt.status, blockNumber: receipt.blockNumber, items: [] }, options.item);
    }
    if (Date.now() >= deadline) return pending();
    await sleep(Math.min(await pollingIntervalOf(net), Math.max(0, deadline - Date.now())));
  }
}
