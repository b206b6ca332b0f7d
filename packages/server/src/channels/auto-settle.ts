/**
 * Claim and settle on a timer, so committed vouchers become money without the operator writing a
 * loop (spec "Claim & Settlement Strategy"). Two passes of claimAndSettle:
 *
 * - every `everyMs` (default 5 min), every channel with unclaimed charges;
 * - every `withdrawalsEveryMs` (default 30 s), the channels whose last snapshot shows a pending
 *   withdrawal: a payer's timed withdrawal finalizes `withdrawDelay` after it was asked for, and
 *   whatever is unclaimed then goes back to the payer.
 *
 * A channel with nothing new to claim is never touched, so an idle loop sends nothing. Passes never
 * overlap (a tick that finds one running is skipped), a group that failed is tried again on the
 * next pass, and `stop({ flush: true })` runs one last full pass (a shutdown that leaves nothing
 * unclaimed). The full pass must come round sooner than the shortest withdraw delay (the spec's
 * minimum is 15 minutes): a longer `everyMs` is refused. Instances sharing a store (its leases)
 * take turns: a pass that finds another instance's pass running is skipped.
 */
import { randomUUID } from "node:crypto";
import { claimAndSettle, type ClaimGroupResult, type ClaimOptions } from "./claim.ts";
import type { ChannelStore } from "./store.ts";

/** The spec's smallest `withdrawDelay` (batch-settlement: 900 s). */
export const MIN_WITHDRAW_DELAY_MS = 900_000;

export interface ChannelSettlementOptions extends Omit<ClaimOptions, "filter"> {
  /** A full pass this often. Default 5 min; at most 14 min (below the smallest withdraw delay). */
  everyMs?: number;
  /** A pass over channels with a pending withdrawal this often. Default 30 s. */
  withdrawalsEveryMs?: number;
  /** Each pass's results (groups claimed or swept; a group's `error` says what failed). */
  onResult?: (results: ClaimGroupResult[], pass: "all" | "withdrawals") => void;
  /** A pass that threw (the store failed, ...); the loop goes on. */
  onError?: (error: unknown) => void;
}

export interface ChannelSettlement {
  /** One full pass now (waits for a running one first); its results. */
  runNow(): Promise<ClaimGroupResult[]>;
  /** Stops the timers and waits for a running pass; `flush`: then one last full pass. */
  stop(options?: { flush?: boolean }): Promise<void>;
}

export function settleChannelsEvery(o: ChannelSettlementOptions): ChannelSettlement {
  const everyMs = o.everyMs ?? 5 * 60_000;
  const withdrawalsEveryMs = o.withdrawalsEveryMs ?? 30_000;
  if (!Number.isFinite(everyMs) || everyMs < 10 || everyMs >= MIN_WITHDRAW_DELAY_MS - 60_000) {
    throw new RangeError(`settleChannelsEvery: everyMs must be at least 10 and below ${MIN_WITHDRAW_DELAY_MS - 60_000} (14 min): a channel must be claimed before a withdrawal can finalize (withdrawDelay is at least 15 min); got ${everyMs}`);
  }
  if (!Number.isFinite(withdrawalsEveryMs) || withdrawalsEveryMs < 10 || withdrawalsEveryMs > everyMs) {
    throw new RangeError(`settleChannelsEvery: withdrawalsEveryMs must be at least 10 and at most everyMs (${everyMs}); got ${withdrawalsEveryMs}`);
  }
  const { everyMs: _every, withdrawalsEveryMs: _withdrawals, onResult, onError, ...claim } = o;
  /** The pass in progress (settles, never rejects); undefined when none runs. */
  let running: Promise<void> | undefined;

  const pass = (kind: "all" | "withdrawals"): Promise<ClaimGroupResult[]> => {
    const run = oneInstanceAtATime(claim.store, () => claimAndSettle(kind === "all" ? claim : { ...claim, filter: (r) => r.withdrawRequestedAt > 0 }), onError).then((results) => {
      if (results.length > 0) onResult?.(results, kind);
      return results;
    });
    const tracked: Promise<void> = run.then(
      () => undefined,
      () => undefined,
    ).finally(() => {
      if (running === tracked) running = undefined;
    });
    running = tracked;
    return run;
  };
  const tick = (kind: "all" | "withdrawals") => {
    if (running) return; // the running pass covers what this one would
    pass(kind).catch((e: unknown) => onError?.(e));
  };
  const timers = [setInterval(() => tick("all"), everyMs), setInterval(() => tick("withdrawals"), withdrawalsEveryMs)];
  for (const t of timers) t.unref();

  async function settled(): Promise<void> {
    while (running) await running;
  }

  return {
    async runNow() {
      await settled();
      return pass("all");
    },
    async stop(options = {}) {
      for (const t of timers) clearInterval(t);
      await settled();
      if (options.flush) await pass("all");
    },
  };
}

/** The lease name passes take in a shared store: no channel id looks like it. */
const PASS_LEASE = "tollgate:claim-pass";
/** Long enough for a pass's claims and sweeps; a pass still running then only overlaps, harmlessly (a claim of nothing new sends nothing). */
const PASS_HOLD_MS = 120_000;

/** Runs `pass` unless another instance sharing the store runs one now (then: no results). */
async function oneInstanceAtATime(store: ChannelStore, pass: () => Promise<ClaimGroupResult[]>, onError: ((e: unknown) => void) | undefined): Promise<ClaimGroupResult[]> {
  const leases = store.leases;
  if (!leases) return pass();
  const owner = randomUUID();
  if (!(await leases.take(PASS_LEASE, owner, PASS_HOLD_MS))) return [];
  try {
    return await pass();
  } finally {
    await leases.release(PASS_LEASE, owner).catch((e: unknown) => onError?.(e));
  }
}
