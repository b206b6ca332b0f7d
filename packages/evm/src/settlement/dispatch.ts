/**
 * One dispatch: plan (simulate) the items on a lane, refuse what is over the gas cap, send, then
 * hand the transaction to the poller. Every item gets its answer as a value: "failed" when
 * nothing was sent for it, "pending" when a send may have reached the node, otherwise the
 * poller's verdict from the receipt.
 */
import { Reason, safeMessage } from "@tollgate/core";
import type { Address, Hex } from "viem";
import { currentFees, laneFreed, sendNew, SendFailure } from "./lanes.ts";
import { plan } from "./plan.ts";
import { ensurePoller, finalize } from "./poller.ts";
import { firstReceipt } from "./receipt.ts";
import { settlementFailed, type SettlementResult } from "./result.ts";
import { deferred, min, report, type EngineContext, type Item, type Lane, type NetworkState, type Send, type Tracked } from "./state.ts";

export function startDispatch(ctx: EngineContext, net: NetworkState, lane: Lane, asset: Address, items: Item[]): void {
  // Counted busy right away, so the next pick this turn sees it.
  lane.inFlight++;
  const p = dispatch(ctx, net, lane, asset, items).catch((e: unknown) => {
    const failed = settlementFailed(Reason.unexpectedSettleError, `settlement failed: ${safeMessage(e)}`);
    for (const i of items) i.final.resolve(failed);
  });
  ctx.dispatches.add(p);
  void p.finally(() => ctx.dispatches.delete(p));
}

async function dispatch(ctx: EngineContext, net: NetworkState, lane: Lane, asset: Address, items: Item[]): Promise<void> {
  let handedOver = false;
  try {
    // Fees (cached per second) are read while the simulation runs, not after it.
    const feesRead = currentFees(ctx, net);
    feesRead.catch(() => {});
    const planned = await plan(ctx, net, lane, asset, items);
    if ("refused" in planned) return answerAll(items, planned.refused);
    const { live, to, data, gasUsed } = planned;
    if (live.length === 0) return;
    const gasCap = ctx.options.maxGasPerSettlement * BigInt(live.length);
    if (gasUsed > gasCap) {
      return answerAll(live, settlementFailed(Reason.unexpectedSettleError, `estimated gas ${gasUsed} exceeds the cap of ${gasCap} for ${live.length} settlement(s); nothing was sent`));
    }
    // Headroom over the simulated use: refunds are paid only at the end, and with try/catch per
    // item a tight limit would starve the last items instead of reverting.
    const gas = min((gasUsed * 13n) / 10n + 10_000n, gasCap);
    const fees = await feesRead;
    let sent: { hash: Hex; nonce: number; inDoubt?: Hex };
    try {
      sent = await sendNew(net, lane, { to, data, gas, ...fees });
    } catch (e) {
      if (!(e instanceof SendFailure)) throw e;
      return answerAll(live, settlementFailed(e.reason, e.message));
    }
    const t = track(ctx, net, lane, asset, live, { to, data, gas }, { hash: sent.hash, ...fees }, sent.nonce);
    handedOver = true;
    // In doubt: followed like any send, and broadcast again by the poller until the node has it.
    if (sent.inDoubt) t.rebroadcast = sent.inDoubt;
    const hook = runSubmittedHook(ctx, net, t, t.sends[0]!, undefined);
    // Callers see the hash only once the ledger has it; one in doubt is "pending" to them at once.
    void hook.then(() => {
      for (const i of live) (sent.inDoubt ? i.inDoubt : i.sent).resolve(sent.hash);
    });
    lookUpAtOnce(ctx, net, t, sent.hash);
    ensurePoller(ctx, net);
  } finally {
    if (!handedOver) laneFreed(ctx, net, lane);
  }
}

function answerAll(items: readonly Item[], result: SettlementResult): void {
  for (const i of items) i.final.resolve(result);
}

function track(
  ctx: EngineContext,
  net: NetworkState,
  lane: Lane,
  token: Address,
  items: Item[],
  tx: { to: Address; data: Hex; gas: bigint },
  send: Send,
  nonce: number,
): Tracked {
  const t: Tracked = { lane, nonce, items, token, ...tx, sends: [send], lastSendAt: Date.now(), bumping: false, hooks: Promise.resolve(), done: deferred() };
  net.tracked.add(t);
  ctx.stats.transactions++;
  for (const i of items) i.transaction = send.hash;
  return t;
}

/**
 * On an instantly mining chain the receipt is there as soon as the node accepted the
 * transaction: ask for it right away instead of at the poller's first tick. The poller still
 * follows it (and takes over if this lookup finds nothing or fails); marked looked up, its first
 * tick reads the block number before looking again, by when this one has answered.
 */
function lookUpAtOnce(ctx: EngineContext, net: NetworkState, t: Tracked, hash: Hex): void {
  t.looked = true;
  void firstReceipt(net.direct, [hash]).then(
    (receipt) => receipt && finalize(ctx, net, t, receipt),
    () => {},
  );
}

export function runSubmittedHook(ctx: EngineContext, net: NetworkState, t: Tracked, send: Send, replaces: Hex | undefined): Promise<void> {
  const run = async () => {
    try {
      await ctx.config.onSubmitted?.({
        items: t.items.map((i) => i.call),
        transaction: send.hash,
        signer: t.lane.account.address,
        nonce: t.nonce,
        network: net.network,
        maxFeePerGas: send.maxFeePerGas,
        maxPriorityFeePerGas: send.maxPriorityFeePerGas,
        ...(replaces ? { replaces } : {}),
      });
    } catch (e) {
      report(ctx, e, "onSubmitted");
    }
  };
  t.hooks = t.hooks.then(run);
  return t.hooks;
}
