/**
 * The settlement engine: what turns verified EIP-3009 authorizations into mined transactions
 * quickly and safely under load. It plugs into the exact facilitator's `submit` hook.
 *
 * Its actions live in their own modules, each a function of the shared context (state.ts):
 * - submit.ts: taking settlements in, group-commit batching, joining a repeated submit;
 * - dispatch.ts and plan.ts: simulate, cap, send (lanes.ts: nonces, signers, fees);
 * - poller.ts: following unmined nonces, fee bumps, the one report per nonce from its receipt;
 * - wait.ts: waitFor / reconcile for any hash; receipt.ts: the receipt reader shared with the
 *   facilitator's reconciler.
 * onSubmitted completes before a caller sees the hash; onFinal completes before the caller (or a
 * waitFor) sees the final result, so the hook can tell which results somebody still waits for.
 * Every result is a value (SettlementResult): the engine never throws at a caller of submit.
 */
import type { Network } from "@tollgate/core";
import type { Hex } from "viem";
import { createNetworkStates, engineOptions, sleep, type EngineContext } from "./state.ts";
import { pump, submit, submitPermit2 } from "./submit.ts";
import { fillNonces } from "./lanes.ts";
import type { EngineStats, NonceFill, NonceFiller, SettlementEngine, SettlementEngineConfig, WaitForOptions } from "./types.ts";
import { waitFor } from "./wait.ts";

export { detectPollingInterval } from "./poller.ts";
export { SettlementError } from "./settlement-error.ts";

export function createSettlementEngine(config: SettlementEngineConfig): SettlementEngine & NonceFiller {
  const ctx: EngineContext = {
    config,
    options: engineOptions(config),
    networks: createNetworkStates(config),
    stats: { transactions: 0, replacements: 0, items: 0 },
    dispatches: new Set(),
    finishing: new Set(),
    closing: false,
  };
  return {
    submit: (call) => submit(ctx, call),
    submitPermit2: (call) => submitPermit2(ctx, call),
    waitFor: (transaction, options) => waitFor(ctx, transaction, options),
    reconcile: (transaction: Hex | readonly Hex[], options: Omit<WaitForOptions, "timeoutMs"> & { network?: Network } = {}) =>
      waitFor(ctx, transaction, { ...options, timeoutMs: 0 }),
    stats: () => engineStats(ctx),
    close: (options) => close(ctx, options),
    consumeNonce: (network, signer, nonce) => consumeNonce(ctx, network, signer, nonce),
  };
}

async function consumeNonce(ctx: EngineContext, network: Network, signer: Hex, nonce: number): Promise<NonceFill> {
  const net = ctx.networks.get(network);
  const lane = net?.lanes.find((l) => l.account.address.toLowerCase() === signer.toLowerCase());
  if (!net || !lane) return "unknown";
  return fillNonces(ctx, net, lane, nonce);
}

/** Stops taking work, sends what is queued and waits (bounded) for it to be final. */
async function close(ctx: EngineContext, options: { timeoutMs?: number } = {}): Promise<void> {
  ctx.closing = true;
  // Closing makes every queued item due: all of it goes out now.
  for (const net of ctx.networks.values()) pump(ctx, net);
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    const open = [...ctx.networks.values()].some((n) => n.tracked.size > 0 || n.queues.size > 0);
    if (ctx.dispatches.size === 0 && ctx.finishing.size === 0 && !open) break;
    if (Date.now() >= deadline) break;
    await sleep(10);
  }
  for (const net of ctx.networks.values()) {
    clearTimeout(net.poller);
    net.poller = undefined;
    // Let hooks of finished work complete.
    await Promise.all([...net.tracked].map((t) => t.hooks));
    net.tracked.clear();
  }
}

function engineStats(ctx: EngineContext): EngineStats {
  let queued = 0;
  for (const net of ctx.networks.values()) for (const q of net.queues.values()) queued += q.items.length;
  return {
    ...ctx.stats,
    queued,
    signers: [...ctx.networks.values()].flatMap((net) => net.lanes.map((l) => ({ network: net.network, address: l.account.address, sent: l.sent, inFlight: l.inFlight }))),
  };
}
