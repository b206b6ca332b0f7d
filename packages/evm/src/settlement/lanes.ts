/**
 * Lanes: one per (network, fee-paying key), each with a local nonce counter initialised from the
 * node's pending count. Signing and sending happen under the lane's lock, so nonces are handed
 * out in order and never skipped; a nonce error resyncs from the node and retries once.
 */
import { Reason, safeMessage } from "@tollgate/core";
import type { Address, Hex } from "viem";
import { keccak256Hex } from "../crypto/sign.ts";
import { answeredByNode, errorText, isNonceError } from "../errors.ts";
import { SettlementError } from "./settlement-error.ts";
import { report, min, type EngineContext, type Fees, type Lane, type NetworkState } from "./state.ts";
import { schedulePump } from "./submit.ts";

/**
 * Why a send did not go through. `inDoubt`: the request may have reached the node (the
 * connection failed, not the node's answer), so the signed transaction may still land; it is
 * kept (hash and bytes) to be followed and broadcast again.
 */
export class SendFailure extends Error {
  constructor(
    readonly reason: string,
    message: string,
    readonly inDoubt?: { hash: Hex; serialized: Hex },
  ) {
    super(message);
  }
}

/**
 * The lanes that may take new work (config.signerUsable). A lane usable again after a pause
 * re-reads its nonce from the node: someone else may have used the key meanwhile.
 */
export function usableLanes(ctx: EngineContext, net: NetworkState): Lane[] {
  const check = ctx.config.signerUsable;
  if (!check) return net.lanes;
  const usable: Lane[] = [];
  for (const lane of net.lanes) {
    let ok = false;
    try {
      ok = check(lane.account.address, net.network);
    } catch (e) {
      report(ctx, e, "signerUsable");
    }
    if (!ok) {
      lane.paused = true;
      continue;
    }
    if (lane.paused) {
      lane.paused = false;
      void withLock(lane, async () => {
        lane.nonce = undefined;
      });
    }
    usable.push(lane);
  }
  return usable;
}

export function noSignerMessage(net: NetworkState): string {
  return `no fee-paying signer is usable on ${net.network}; nothing was sent`;
}

/** An idle lane (nothing being sent or mined), round-robin so all signers take turns. */
export function idleLane(net: NetworkState, lanes: readonly Lane[]): Lane | undefined {
  const n = lanes.length;
  for (let k = 0; k < n; k++) {
    const i = (net.nextLane + k) % n;
    const lane = lanes[i]!;
    if (lane.inFlight === 0) {
      net.nextLane = (i + 1) % n;
      return lane;
    }
  }
  return undefined;
}

/** Least busy; ties go round-robin so idle signers all get used. */
export function pickLane(net: NetworkState, lanes: readonly Lane[]): Lane {
  let best: Lane | undefined;
  const n = lanes.length;
  for (let k = 0; k < n; k++) {
    const lane = lanes[(net.nextLane + k) % n]!;
    if (!best || lane.inFlight < best.inFlight) best = lane;
  }
  net.nextLane = (net.nextLane + 1) % n;
  return best!;
}

export function laneFreed(ctx: EngineContext, net: NetworkState, lane: Lane): void {
  lane.inFlight--;
  if (lane.inFlight === 0) schedulePump(ctx, net);
}

export function withLock<T>(lane: Lane, fn: () => Promise<T>): Promise<T> {
  const run = lane.lock.then(fn, fn);
  lane.lock = run.catch(() => {});
  return run;
}

export async function chainIdOf(net: NetworkState): Promise<number> {
  net.chainId ??= await net.client.getChainId();
  return net.chainId;
}

function pendingNonce(net: NetworkState, lane: Lane): Promise<number> {
  return net.direct.getTransactionCount({ address: lane.account.address, blockTag: "pending" });
}

export interface TxFields extends Fees {
  to: Address;
  data: Hex;
  gas: bigint;
}

/** Signs (the hash is known before sending) and sends. Throws SendFailure. */
export async function signAndSend(net: NetworkState, lane: Lane, tx: TxFields, nonce: number): Promise<Hex> {
  let serialized: Hex;
  try {
    serialized = await lane.account.signTransaction!({
      type: "eip1559",
      chainId: await chainIdOf(net),
      nonce,
      to: tx.to,
      data: tx.data,
      gas: tx.gas,
      maxFeePerGas: tx.maxFeePerGas,
      maxPriorityFeePerGas: tx.maxPriorityFeePerGas,
      value: 0n,
    });
  } catch (e) {
    // Nothing left this process. A signer may refuse with a reason (e.g. its lease is gone).
    if (e instanceof SettlementError) throw new SendFailure(e.reason, e.message);
    if (isNonceError(e)) throw e;
    throw new SendFailure(Reason.unexpectedSettleError, `signing the settlement failed: ${safeMessage(e)}`);
  }
  const hash = keccak256Hex(serialized);
  try {
    await net.direct.sendRawTransaction({ serializedTransaction: serialized });
  } catch (e) {
    // The node already has exactly this transaction: it was sent.
    if (/already known|known transaction|already imported/i.test(errorText(e))) return hash;
    if (isNonceError(e)) throw e;
    throw new SendFailure(Reason.unexpectedSettleError, `sending the settlement failed: ${safeMessage(e)}`, answeredByNode(e) ? undefined : { hash, serialized });
  }
  lane.sent++;
  return hash;
}

/**
 * Takes the lane's next nonce and sends; on a nonce error resyncs from the node and retries once.
 * A send in doubt (no answer from the node) keeps its nonce and comes back with `inDoubt`: the
 * transaction is signed, recorded and possibly in, so it is followed and broadcast again, never
 * replaced by a fresh one (that could settle the same payments twice over two nonces' gas).
 */
export function sendNew(net: NetworkState, lane: Lane, tx: TxFields): Promise<{ hash: Hex; nonce: number; inDoubt?: Hex }> {
  return withLock(lane, async () => {
    lane.nonce ??= await pendingNonce(net, lane);
    for (let attempt = 0; ; attempt++) {
      const nonce = lane.nonce;
      try {
        const hash = await signAndSend(net, lane, tx, nonce);
        lane.nonce = nonce + 1;
        return { hash, nonce };
      } catch (e) {
        if (e instanceof SendFailure && e.inDoubt) {
          lane.nonce = nonce + 1;
          return { hash: e.inDoubt.hash, nonce, inDoubt: e.inDoubt.serialized };
        }
        // Whatever else happened, the node's view is the truth for the next nonce.
        lane.nonce = undefined;
        if (attempt === 0 && isNonceError(e)) {
          lane.nonce = await pendingNonce(net, lane);
          continue;
        }
        if (e instanceof SendFailure) throw e;
        throw new SendFailure(Reason.unexpectedSettleError, `sending the settlement failed: ${safeMessage(e)}`);
      }
    }
  });
}

/** One fee lookup per second and network is plenty; concurrent callers share it. */
export function currentFees(ctx: EngineContext, net: NetworkState): Promise<Fees> {
  const now = Date.now();
  if (!net.fees || now - net.fees.at > 1_000) {
    const value = net.direct.estimateFeesPerGas().then((f) => capFees(ctx, f.maxFeePerGas, f.maxPriorityFeePerGas));
    net.fees = { at: now, value };
    value.catch(() => {
      if (net.fees?.value === value) net.fees = undefined;
    });
  }
  return net.fees.value;
}

export function capFees(ctx: EngineContext, maxFeePerGas: bigint, maxPriorityFeePerGas: bigint): Fees {
  const cap = ctx.options.maxFeePerGasCap;
  const maxFee = cap !== undefined && maxFeePerGas > cap ? cap : maxFeePerGas;
  return { maxFeePerGas: maxFee, maxPriorityFeePerGas: min(maxPriorityFeePerGas, maxFee) };
}

/**
 * Sends a 0-ETH transaction to itself at each of the node's free nonces up to `nonce` (at most
 * 16), under the lane's lock, so a nonce whose transaction may never have reached the node is
 * used for sure. If that transaction is in some mempool after all, one of the two lands: its
 * receipt then says so, and nothing is lost.
 */
export function fillNonces(ctx: EngineContext, net: NetworkState, lane: Lane, nonce: number): Promise<"filled" | "taken"> {
  return withLock(lane, async () => {
    const next = await pendingNonce(net, lane);
    if (next > nonce) return "taken";
    if (nonce - next >= 16) throw new Error(`nonce ${nonce} of ${lane.account.address} is ${nonce - next} past the node's next nonce; not filling that many`);
    const fees = await currentFees(ctx, net);
    for (let n = next; n <= nonce; n++) {
      await signAndSend(net, lane, { to: lane.account.address, data: "0x", gas: 21_000n, ...fees }, n);
    }
    // The node's count is the truth for this lane's next settlement.
    lane.nonce = undefined;
    return "filled";
  });
}
