/**
 * A poller per network follows every unmined nonce, fee-bumps stuck ones (same nonce, all hashes
 * followed) and reports each nonce exactly once, from whichever hash landed. Its period comes
 * from the chain unless configured: fast on a local dev chain, a quarter block otherwise.
 */
import { Reason } from "@tollgate/core";
import type { Hex, PublicClient, TransactionReceipt } from "viem";
import { errorText, isNonceError } from "../errors.ts";
import { runSubmittedHook } from "./dispatch.ts";
import { capFees, chainIdOf, currentFees, laneFreed, SendFailure, signAndSend } from "./lanes.ts";
import { firstReceipt, itemStatus, outcomeFromReceipt, permit2Outcome } from "./receipt.ts";
import { settlementFailed, type SettlementResult } from "./result.ts";
import { max, report, type EngineContext, type NetworkState, type Tracked } from "./state.ts";
import type { ItemResult } from "./types.ts";

export function ensurePoller(ctx: EngineContext, net: NetworkState): void {
  if (net.poller || net.tracked.size === 0) return;
  void pollingIntervalOf(net); // detect while the first transaction is on its way
  net.poller = setTimeout(() => void poll(ctx, net), 0);
}

/**
 * A receipt polling period that fits the chain behind `client`: 10 ms on a local dev chain (chain
 * id 31337/1337, or an anvil/hardhat/ganache node: blocks come as soon as a transaction does),
 * otherwise a quarter of the mean block time over the last 20 blocks, within [50 ms, 1 s].
 */
export async function detectPollingInterval(client: PublicClient, chainId?: number): Promise<number> {
  const id = chainId ?? (await client.getChainId());
  if (id === 31337 || id === 1337) return 10;
  const version = await client.request({ method: "web3_clientVersion" }, { retryCount: 0 }).catch(() => "");
  if (typeof version === "string" && /anvil|hardhat|ganache/i.test(version)) return 10;
  const latest = await client.getBlock({ blockTag: "latest" });
  const span = latest.number < 20n ? latest.number : 20n;
  if (span === 0n) return 100;
  const past = await client.getBlock({ blockNumber: latest.number - span });
  const blockMs = (Number(latest.timestamp - past.timestamp) * 1000) / Number(span);
  return Math.min(1_000, Math.max(50, Math.round(blockMs / 4)));
}

/** The configured period, else one detected from the chain (100 ms while unknown). */
export async function pollingIntervalOf(net: NetworkState): Promise<number> {
  if (net.pollMs !== undefined) return net.pollMs;
  const now = Date.now();
  // A failed detection is retried a minute later, not on every tick.
  if (!net.pollDetect || now - net.pollDetect.at > 60_000) {
    const value = chainIdOf(net)
      .then((chainId) => detectPollingInterval(net.client, chainId))
      .then((ms) => (net.pollMs = ms));
    net.pollDetect = { at: now, value: value.catch(() => 100) };
  }
  return net.pollDetect.value;
}

async function poll(ctx: EngineContext, net: NetworkState): Promise<void> {
  try {
    // Everything finished before this tick (e.g. by the lookup right after sending).
    if (net.tracked.size === 0) return;
    // A transaction not looked up yet is looked up together with eth_blockNumber (one JSON-RPC
    // batch, one round trip): on an instantly mining chain its receipt is already there.
    const fresh = new Set([...net.tracked].filter((t) => !t.looked));
    const early = [...fresh].map(async (t) => {
      const receipt = await firstReceipt(net.client, t.sends.map((s) => s.hash));
      t.looked = true;
      if (receipt) finalize(ctx, net, t, receipt);
    });
    // Receipts only change with a new block; bumps are due on time regardless.
    const [block] = await Promise.all([net.client.getBlockNumber({ cacheTime: 0 }), ...early]);
    const landed = await landedSince(net, block);
    await Promise.all([...net.tracked].map((t) => checkTracked(ctx, net, t, block, landed, fresh)));
    // Only after every lookup succeeded: a failed tick is scanned again.
    net.scannedBlock = block;
  } catch (e) {
    report(ctx, e, "poll");
  } finally {
    net.poller = undefined;
    const interval = await pollingIntervalOf(net);
    if (net.tracked.size > 0 && !net.poller) net.poller = setTimeout(() => void poll(ctx, net), interval);
  }
}

/**
 * With a few new blocks, their transaction hashes (one cheap call per block, batched), so only
 * our receipts among them are looked up, instead of every tracked one on every block.
 */
async function landedSince(net: NetworkState, block: bigint): Promise<Set<string> | undefined> {
  const from = net.scannedBlock;
  if (from === undefined || block <= from || block - from > 16n) return undefined;
  const blocks = await Promise.all(Array.from({ length: Number(block - from) }, (_, k) => net.client.getBlock({ blockNumber: from + 1n + BigInt(k) })));
  return new Set(blocks.flatMap((b) => b.transactions.map((h) => h.toLowerCase())));
}

async function checkTracked(ctx: EngineContext, net: NetworkState, t: Tracked, block: bigint, landed: Set<string> | undefined, fresh: Set<Tracked>): Promise<void> {
  // Not gated for the fresh ones: their lookup may have run before `block` was mined.
  if (t.checkedBlock !== block && !fresh.has(t)) {
    // The scan covers it only if it was looked up at or after the scan's first block.
    const from = net.scannedBlock;
    const covered = landed !== undefined && from !== undefined && t.checkedBlock !== undefined && t.checkedBlock >= from;
    if (covered && !t.sends.some((x) => landed!.has(x.hash.toLowerCase()))) {
      t.checkedBlock = block;
    } else {
      // Issued together: the client sends them as one JSON-RPC batch.
      const receipt = await firstReceipt(net.client, t.sends.map((x) => x.hash));
      if (receipt) return finalize(ctx, net, t, receipt);
      // Only a completed lookup counts as checked, so an RPC error is retried next tick. And a
      // miss counts only the second time at the same head: a node can report a new block before
      // its receipts are readable (anvil under load did; so can a load-balanced RPC), and a block
      // counted as checked too early is never looked at again on a chain that then goes quiet.
      if (t.missedAt === block) t.checkedBlock = block;
      else t.missedAt = block;
    }
  }
  if (t.rebroadcast) await rebroadcast(ctx, net, t);
  const replacement = ctx.options.replacement;
  if (replacement && !t.bumping && Date.now() - t.lastSendAt >= replacement.bumpAfterMs) await bump(ctx, net, t);
}

/**
 * A send the node never acknowledged, broadcast again (the same signed bytes: idempotent). Done
 * once the node takes it, knows it, or says its nonce is used (then a receipt, or the
 * facilitator's reconciler, tells whether ours or another transaction took it).
 */
async function rebroadcast(ctx: EngineContext, net: NetworkState, t: Tracked): Promise<void> {
  const serialized = t.rebroadcast!;
  try {
    await net.direct.sendRawTransaction({ serializedTransaction: serialized });
    t.rebroadcast = undefined;
  } catch (e) {
    if (isNonceError(e) || /already known|known transaction|already imported/i.test(errorText(e))) t.rebroadcast = undefined;
    else report(ctx, e, "rebroadcast");
  }
}

/** Frees the lane at once; runs onFinal, then answers the waiting callers. Never awaited by the poller. */
export function finalize(ctx: EngineContext, net: NetworkState, t: Tracked, receipt: TransactionReceipt): void {
  if (t.outcome) return;
  const outcome = outcomeFromReceipt(receipt, t.token);
  t.outcome = outcome;
  net.tracked.delete(t);
  // A replaced nonce leaves the lane's counter right (the nonce was used either way).
  laneFreed(ctx, net, t.lane);
  const hash = receipt.transactionHash;
  const results: ItemResult[] = t.items.map((i) => {
    const s = i.permit2 ? permit2Outcome(receipt, { token: t.token, from: i.from, to: i.to, amount: i.value, proxy: i.permit2.to }) : itemStatus(outcome, i.from, i.nonce);
    const status = s.status === "success" ? "success" : "reverted";
    return { call: i.call, status, ...(status === "reverted" ? { reason: s.reason ?? Reason.invalidTransactionState } : {}) };
  });
  for (const i of t.items) i.transaction = hash;
  const done = t.hooks
    .then(async () => {
      try {
        await ctx.config.onFinal?.({
          items: results,
          transaction: hash,
          status: receipt.status,
          network: net.network,
          blockNumber: receipt.blockNumber,
          gasUsed: receipt.gasUsed,
          effectiveGasPrice: receipt.effectiveGasPrice,
        });
      } catch (e) {
        report(ctx, e, "onFinal");
      }
    })
    .then(() => {
      // Only now: whoever waits sees a result the hook has already recorded.
      t.items.forEach((i, k) => i.final.resolve(itemResult(results[k]!, hash)));
      t.done.resolve(outcome);
    });
  t.hooks = done;
  ctx.finishing.add(done);
  void done.finally(() => ctx.finishing.delete(done));
}

function itemResult(r: ItemResult, transaction: Hex): SettlementResult {
  if (r.status === "success") return { status: "settled", transaction };
  return settlementFailed(r.reason ?? Reason.invalidTransactionState, "the settlement transaction was mined but this authorization did not settle in it", transaction);
}

async function bump(ctx: EngineContext, net: NetworkState, t: Tracked): Promise<void> {
  const last = t.sends[t.sends.length - 1]!;
  t.bumping = true;
  try {
    const pct = BigInt(Math.ceil(ctx.options.bumpPercent * 100));
    const raise = (x: bigint) => (x * (10_000n + pct) + 9_999n) / 10_000n;
    const fresh = await currentFees(ctx, net);
    const { maxFeePerGas, maxPriorityFeePerGas } = capFees(ctx, max(raise(last.maxFeePerGas), fresh.maxFeePerGas), max(raise(last.maxPriorityFeePerGas), fresh.maxPriorityFeePerGas));
    // Nodes refuse a replacement that raises either fee by less than 12.5% (geth: 10%).
    const enough = (next: bigint, prev: bigint) => next * 8n >= prev * 9n;
    if (!enough(maxFeePerGas, last.maxFeePerGas) || !enough(maxPriorityFeePerGas, last.maxPriorityFeePerGas)) {
      report(ctx, new Error(`nonce ${t.nonce} of ${t.lane.account.address} is stuck at the fee cap`), "replacement");
      return;
    }
    if (t.outcome) return;
    const fields = { to: t.to, data: t.data, gas: t.gas, maxFeePerGas, maxPriorityFeePerGas };
    let hash: Hex;
    try {
      hash = await signAndSend(net, t.lane, fields, t.nonce);
      t.rebroadcast = undefined; // superseded by the replacement the node took
    } catch (e) {
      // The replacement may have reached the node: follow its hash too, or its receipt is missed.
      if (!(e instanceof SendFailure && e.inDoubt)) throw e;
      hash = e.inDoubt.hash;
      t.rebroadcast = e.inDoubt.serialized;
      report(ctx, e, "replacement");
    }
    const send = { hash, maxFeePerGas, maxPriorityFeePerGas };
    t.sends.push(send);
    ctx.stats.replacements++;
    for (const i of t.items) i.transaction = hash;
    void runSubmittedHook(ctx, net, t, send, last.hash);
  } catch (e) {
    // "nonce too low": one of our hashes for this nonce was mined; the next poll finds it.
    if (!isNonceError(e)) report(ctx, e, "replacement");
  } finally {
    t.lastSendAt = Date.now();
    t.bumping = false;
  }
}
