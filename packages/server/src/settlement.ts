/**
 * Asking the facilitator to settle until the answer is final. A pending settlement is not a
 * failure: the transaction was sent and may still land, and answering "failed" then would
 * charge the payer without the resource. So `settlement_pending` is polled (same payload; the
 * facilitator hands the success to the first /settle after the transaction landed) until it
 * is final or the deadline passes, and a facilitator that did not answer is asked again.
 */
import { FacilitatorError, Reason, type SettleResponse, type VerifyResponse } from "@tollgate/core";

/** The facilitator's extension on settle responses: `status` pending | settled, `replay`, `transaction`. */
export const SETTLEMENT_EXTENSION = "tollgate-settlement";

export type SettleOutcome =
  /** Settled. `replay`: the facilitator had already handed this success out (payment-identifier replay). */
  | { kind: "settled"; response: SettleResponse; replay: boolean }
  /** Final failure, including `duplicate_settlement`: nothing (more) will move for it. */
  | { kind: "failed"; response: SettleResponse }
  /** Still pending at the deadline: the payment may still land; the client can retry the same payload. */
  | { kind: "pending"; response: SettleResponse }
  /** The facilitator could not be asked, or its answers were not facilitator answers, until the deadline. */
  | { kind: "unreachable"; error: unknown };

export interface SettleLoopOptions {
  /** Overall deadline. */
  timeoutMs: number;
  /** Pause between polls of a pending settlement. */
  pollMs: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

interface SettlementExtension {
  status?: unknown;
  replay?: unknown;
  transaction?: unknown;
}

function extensionOf(response: SettleResponse | VerifyResponse): SettlementExtension | undefined {
  const ext = response.extensions?.[SETTLEMENT_EXTENSION];
  return ext && typeof ext === "object" && !Array.isArray(ext) ? (ext as SettlementExtension) : undefined;
}

export function isPending(response: SettleResponse): boolean {
  return !response.success && (response.errorReason === Reason.settlementPending || extensionOf(response)?.status === "pending");
}

export function isReplay(response: SettleResponse): boolean {
  return response.success && extensionOf(response)?.replay === true;
}

/**
 * A verify answer saying this payment was settled and its success already handed out (a
 * payment-identifier replay). Such a payment is settled before any handler runs: the settle
 * answer (a replay) is served from the cache or refused, and no handler runs for nothing.
 */
export function isReplayVerdict(verdict: VerifyResponse): boolean {
  return verdict.isValid && extensionOf(verdict)?.replay === true;
}

/** Worth asking again: no answer at all, or the facilitator failing (5xx), not a refusal of the request. */
function retryable(e: unknown): boolean {
  return e instanceof FacilitatorError && (e.status === undefined || e.status >= 500);
}

export async function settleUntilFinal(settle: () => Promise<SettleResponse>, options: SettleLoopOptions): Promise<SettleOutcome> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const deadline = now() + options.timeoutMs;
  let lastPending: SettleResponse | undefined;
  let lastError: unknown;
  for (;;) {
    try {
      const response = await settle();
      if (response.success) return { kind: "settled", response, replay: isReplay(response) };
      if (!isPending(response)) return { kind: "failed", response };
      lastPending = response;
    } catch (e) {
      if (!retryable(e)) return { kind: "unreachable", error: e };
      lastError = e;
    }
    const left = deadline - now();
    if (left <= 0) break;
    await sleep(Math.min(options.pollMs, left));
  }
  // A pending answer seen at any time means money may move: the client must hear "pending", not "error".
  if (lastPending) return { kind: "pending", response: lastPending };
  return { kind: "unreachable", error: lastError };
}
