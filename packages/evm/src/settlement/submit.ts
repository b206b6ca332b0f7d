/**
 * Taking settlements in. Batching is group commit (Nagle): a settlement that finds a lane idle
 * goes out at once, alone. While every lane has a transaction being planned, sent or mined,
 * arrivals for the same (network, token) queue up and leave together as one `BatchSettler.settle`
 * call the moment a lane frees up. A full batch, or one whose oldest item has waited `maxWaitMs`,
 * does not wait for a free lane: it goes to the least busy one (its next nonce). So low load pays
 * no waiting and high load gets large batches. Without batching, work goes to the least busy lane.
 *
 * The engine does not decide whether an authorization may settle (the caller's ledger does). It
 * only avoids sending one authorization twice at once: the same item submitted again while the
 * first is not final joins it (one send, the same result for both); other content for the same
 * authorization waits until the first is final, then is judged on its own.
 */
import { Reason } from "@tollgate/core";
import type { Address } from "viem";
import { startDispatch } from "./dispatch.ts";
import { idleLane, noSignerMessage, pickLane, usableLanes } from "./lanes.ts";
import { toItem, toPermit2Item } from "./items.ts";
import { settlementFailed, type SettlementResult } from "./result.ts";
import { sleep, type EngineContext, type Item, type NetworkState } from "./state.ts";
import type { EngineCall, Permit2SettlementCall, SettlementCall } from "./types.ts";

export function submit(ctx: EngineContext, call: SettlementCall): Promise<SettlementResult> {
  return submitWith(ctx, call, toItem);
}

/** A Permit2 proxy call: the same path as an EIP-3009 authorization, always dispatched alone. */
export function submitPermit2(ctx: EngineContext, call: Permit2SettlementCall): Promise<SettlementResult> {
  return submitWith(ctx, call, toPermit2Item);
}

async function submitWith<C extends EngineCall>(ctx: EngineContext, call: C, build: (call: C) => Item | SettlementResult): Promise<SettlementResult> {
  if (ctx.closing) return settlementFailed(Reason.facilitatorNotReady, "the settlement engine is closing; nothing was sent");
  const net = ctx.networks.get(call?.network);
  if (!net) return settlementFailed(Reason.invalidNetwork, `network: ${JSON.stringify(call?.network)} is not served`);
  const item = build(call);
  if (!("key" in item)) return item;
  for (;;) {
    const existing = net.active.get(item.key);
    if (!existing) break;
    if (existing.content === item.content) return awaitResult(ctx, existing);
    // Other content, same authorization nonce: only one of them can ever land. Judge this one once
    // the first is final (its nonce is then used, or free again), within the usual bound.
    const done = await Promise.race([existing.final.promise.then(() => true), sleep(ctx.options.receiptTimeoutMs).then(() => false)]);
    if (!done) return settlementFailed(Reason.evmNonceUsed, "authorization.nonce: a transaction carrying this nonce with other content is not final yet; nothing was sent");
  }
  let lanes = usableLanes(ctx, net);
  // An upto proxy call is only accepted from the facilitator its payer named: that lane or none.
  const sender = item.permit2?.sender?.toLowerCase();
  if (sender) lanes = lanes.filter((l) => l.account.address.toLowerCase() === sender);
  if (lanes.length === 0) {
    return settlementFailed(Reason.facilitatorNotReady, sender ? `the signer ${item.permit2!.sender} named by witness.facilitator is not usable on ${net.network}; nothing was sent` : noSignerMessage(net));
  }
  net.active.set(item.key, item);
  void item.final.promise.then(() => {
    if (net.active.get(item.key) === item) net.active.delete(item.key);
  });
  ctx.stats.items++;
  if (batches(ctx, net) && !item.call.contractWallet && !item.permit2) {
    enqueue(ctx, net, item);
  } else {
    // A contract wallet's transfer always goes alone: its gas use is the wallet's to decide.
    // A Permit2 payment too: a proxy call settles one payment, and BatchSettler takes only EIP-3009.
    startDispatch(ctx, net, pickLane(net, lanes), item.call.asset, [item]);
  }
  return awaitResult(ctx, item);
}

function batches(ctx: EngineContext, net: NetworkState): boolean {
  return ctx.options.batching && net.config.batchSettler !== undefined && ctx.options.maxBatchSize > 1;
}

function enqueue(ctx: EngineContext, net: NetworkState, item: Item): void {
  const key = item.call.asset.toLowerCase();
  let queue = net.queues.get(key);
  if (!queue) net.queues.set(key, (queue = { asset: item.call.asset as Address, items: [] }));
  item.queuedAt = performance.now();
  queue.items.push(item);
  // Not synchronously: settlements arriving in the same turn of the event loop share a batch.
  schedulePump(ctx, net);
}

/**
 * The item's final result, or "pending" with its hash once `receiptTimeoutMs` has passed, or at
 * once when its send is in doubt (the node did not answer; the engine keeps broadcasting it).
 */
async function awaitResult(ctx: EngineContext, item: Item): Promise<SettlementResult> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), ctx.options.receiptTimeoutMs)));
  const inDoubt = item.inDoubt.promise.then((transaction): SettlementResult => ({ status: "pending", transaction }));
  try {
    const first = await Promise.race([item.final.promise, inDoubt, timedOut]);
    if (first !== "timeout") return first;
    // Past the bound: answer with the hash once there is one (sending itself is not bounded here).
    const hashOrFinal = await Promise.race([item.sent.promise, item.final.promise]);
    if (typeof hashOrFinal !== "string") return hashOrFinal;
    return { status: "pending", transaction: item.transaction ?? hashOrFinal };
  } finally {
    clearTimeout(timer);
  }
}

export function schedulePump(ctx: EngineContext, net: NetworkState): void {
  if (net.pumpScheduled || net.queues.size === 0) return;
  net.pumpScheduled = true;
  setImmediate(() => pump(ctx, net));
}

/**
 * Hands queued settlements to lanes: everything (up to maxBatchSize) to an idle lane; to a busy
 * lane only a full batch, or one whose oldest item is due (maxWaitMs) or when closing.
 */
export function pump(ctx: EngineContext, net: NetworkState): void {
  net.pumpScheduled = false;
  const now = performance.now();
  const { maxBatchSize, maxWaitMs } = ctx.options;
  const lanes = usableLanes(ctx, net);
  for (const [key, queue] of net.queues) {
    clearTimeout(queue.timer);
    queue.timer = undefined;
    if (lanes.length === 0) {
      // Every signer was withdrawn while these waited: nothing was sent for them.
      net.queues.delete(key);
      const failed = settlementFailed(Reason.facilitatorNotReady, noSignerMessage(net));
      for (const i of queue.items) i.final.resolve(failed);
      continue;
    }
    while (queue.items.length > 0) {
      const idle = idleLane(net, lanes);
      const full = queue.items.length >= maxBatchSize;
      const due = ctx.closing || now - queue.items[0]!.queuedAt >= maxWaitMs;
      if (!idle && !full && !due) break;
      startDispatch(ctx, net, idle ?? pickLane(net, lanes), queue.asset, queue.items.splice(0, maxBatchSize));
    }
    if (queue.items.length === 0) net.queues.delete(key);
    else queue.timer = setTimeout(() => pump(ctx, net), Math.max(0, queue.items[0]!.queuedAt + maxWaitMs - now));
  }
}
