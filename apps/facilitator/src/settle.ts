/**
 * Settle at most once, answer a success at most once, per authorization. The decision is the
 * ledger's (claim.ts): whoever claims the row runs the settlement and hands out its result; every
 * other request reads the row and is told what it says. No in-process map decides anything, so
 * one process and several sharing PostgreSQL behave alike.
 *
 * What a request that did not claim is told, from the row:
 * - other content for this authorization: `invalid_payment_identifier_conflict` (same id) or
 *   `invalid_payload_authorization_reused`;
 * - settled, success not handed out yet (the chain finished it after a pending answer): the
 *   success, to the first that asks (ledger.answer);
 * - settled and answered: the stored success marked `replay` for the same payment-identifier,
 *   otherwise `duplicate_settlement` naming the first transaction;
 * - failed for good (an attempt reverted on-chain): that failure;
 * - pending: wait for it (bounded by waitMs), then `settlement_pending`.
 */
import { randomUUID } from "node:crypto";
import { Reason, safeMessage, type Facilitator, type FacilitatorRequest, type SettleResponse } from "@tollgate/core";
import { duplicateResponse, failedAnswer, failureResponse, pendingResponse, replayResponse, settlementResult } from "./answers.ts";
import type { Ledger, PaymentEntry, PaymentRecord, SettlementResult } from "./ledger/ledger.ts";
import type { FacilitatorMetrics } from "./metrics.ts";


export interface SettleOutcome {
  /** HTTP status: 200 for every protocol outcome, 503 when the store is unavailable. */
  status: 200 | 503;
  response: SettleResponse;
  /** How this request was answered. */
  outcome: "settled" | "replay" | "duplicate" | "conflict" | "pending" | "failed" | "unavailable";
}

export interface SettlementCoordinatorOptions {
  facilitator: Facilitator;
  ledger: Ledger;
  metrics?: FacilitatorMetrics;
  /** How long a claim is held before another process may take over a dead settler's row. */
  leaseMs?: number;
  /** How long a request for a row being settled waits for it before answering `settlement_pending`. */
  waitMs?: number;
  pollMs?: number;
  onStoreError?: (message: string, error: unknown) => void;
}

export interface SettlementCoordinator {
  settle(request: FacilitatorRequest, entry: PaymentEntry): Promise<SettleOutcome>;
}

/** What a request that did not claim does next: answer, wait for the row, or claim again now. */
type Judgement = SettleOutcome | "wait" | "retry";

const ok = (outcome: SettleOutcome["outcome"], response: SettleResponse): SettleOutcome => ({ status: 200, outcome, response });

/** The coordinator's settings, passed to each step. */
interface Coordinator {
  facilitator: Facilitator;
  ledger: Ledger;
  metrics: FacilitatorMetrics | undefined;
  leaseMs: number;
  waitMs: number;
  pollMs: number;
  storeError(message: string, e?: unknown): void;
}

export function createSettlementCoordinator(options: SettlementCoordinatorOptions): SettlementCoordinator {
  const c: Coordinator = {
    facilitator: options.facilitator,
    ledger: options.ledger,
    metrics: options.metrics,
    leaseMs: options.leaseMs ?? 120_000,
    waitMs: options.waitMs ?? 60_000,
    pollMs: options.pollMs ?? 100,
    storeError: (message, e) => options.onStoreError?.(message, e),
  };
  return {
    async settle(request, entry) {
      try {
        return await settleOnce(c, request, entry);
      } catch (e) {
        // The claim itself failed: nothing was sent.
        c.storeError("settlement store unavailable", e);
        return { status: 503, outcome: "unavailable", response: failureResponse(entry, Reason.facilitatorNotReady, "the payments store is unavailable; nothing was settled") };
      }
    },
  };
}

/**
 * Claims; when the row is someone else's, answers from it, or waits for it by reading it (a
 * waiter does not claim again: the result it waited on is its answer, even a failure).
 */
async function settleOnce(c: Coordinator, request: FacilitatorRequest, entry: PaymentEntry): Promise<SettleOutcome> {
  const deadline = Date.now() + c.waitMs;
  let claims = 0;
  let waited = false;
  for (;;) {
    let record: PaymentRecord | undefined;
    if (!waited) {
      const token = randomUUID();
      const claim = await c.ledger.claim(entry, token, c.leaseMs);
      claims++;
      if (claim.claimed) return settleClaimed(c, request, entry, token);
      if (claim.identifierConflict) return conflict(entry, Reason.paymentIdentifierConflict);
      record = claim.record;
    } else {
      record = await c.ledger.get(entry.key);
    }
    const next = await judge(c, record, entry, waited || claims > 1);
    if (typeof next === "object") return next;
    // The row changed under the claim (it may be claimable now): claim again, a few times at most.
    if (next === "retry" && claims < 3) {
      waited = false;
      continue;
    }
    if (Date.now() >= deadline) return ok("pending", pendingResponse(entry.network, entry.payer, record?.transaction ?? ""));
    await sleep(c.pollMs);
    waited = true;
  }
}

/**
 * The answer a row gives a request that did not claim it (see the header). `seenBefore`: this
 * request waited for the row or was refused by the claim twice, so a failure it finds is final.
 */
async function judge(c: Coordinator, record: PaymentRecord | undefined, entry: PaymentEntry, seenBefore: boolean): Promise<Judgement> {
  // No row, or one the claim may take (it changed in between): claim again.
  if (!record || record.status === "verified") return "retry";
  if (record.requestHash !== entry.requestHash) {
    // A failed row with other content may have been claimable a moment ago: look twice.
    if (record.status === "failed" && !seenBefore) return "retry";
    const sameId = entry.paymentIdentifier !== undefined && record.paymentIdentifier === entry.paymentIdentifier;
    return conflict(entry, sameId ? Reason.paymentIdentifierConflict : Reason.authorizationReused);
  }
  switch (record.status) {
    case "settled":
      return answerSettled(c, record, entry);
    case "failed":
      // The attempt this request waited on, or one the claim refuses to repeat (it reverted on-chain).
      return seenBefore ? ok("failed", failedAnswer(record.response ?? failureResponse(entry, record.reason ?? Reason.unexpectedSettleError, "settlement failed"))) : "retry";
    case "pending":
      return "wait";
  }
}

async function answerSettled(c: Coordinator, record: PaymentRecord, entry: PaymentEntry): Promise<SettleOutcome> {
  if (!record.answered) {
    const first = await c.ledger.answer(entry.key, entry.requestHash);
    if (first) return ok("settled", first);
    record = (await c.ledger.get(entry.key)) ?? record; // answered by another request meanwhile
  }
  if (entry.paymentIdentifier !== undefined && record.paymentIdentifier === entry.paymentIdentifier && record.response?.success) {
    return ok("replay", replayResponse(record.response));
  }
  return ok("duplicate", duplicateResponse(record));
}

function conflict(entry: PaymentEntry, reason: string): SettleOutcome {
  const message =
    reason === Reason.paymentIdentifierConflict
      ? "paymentPayload.extensions.payment-identifier.info.id: already used by this payer for a different payment"
      : "paymentPayload.payload: this authorization was already submitted for settlement with different content";
  return ok("conflict", failureResponse(entry, reason, message));
}

/** This request holds the claim: settle, store the result under the claim, answer it. */
async function settleClaimed(c: Coordinator, request: FacilitatorRequest, entry: PaymentEntry, token: string): Promise<SettleOutcome> {
  const result = settlementResult(await runScheme(c, request, entry), entry);
  const stored = await store(c, entry.key, token, result);
  if (result.status === "pending") return ok("pending", result.response);
  if (stored === "unavailable") {
    // Money may have moved and the row could not say so: pending, never a second success
    // (the row stays claimed until its lease ends, then the reconciler reads the chain).
    return result.status === "settled" ? ok("pending", pendingResponse(entry.network, entry.payer, result.transaction)) : ok("failed", result.response);
  }
  if (stored && result.status === "settled") return ok("settled", result.response);
  if (stored) return ok("failed", result.response);
  // Not stored: the claim was lost (lease ended, another settler or the reconciler finished the
  // row), or a failure was refused because something sent for it may still land.
  return afterUnstored(c, entry, result);
}

async function runScheme(c: Coordinator, request: FacilitatorRequest, entry: PaymentEntry): Promise<SettleResponse> {
  c.metrics?.pending.inc();
  try {
    return await c.facilitator.settle(request);
  } catch (e) {
    return failureResponse(entry, Reason.unexpectedSettleError, safeMessage(e));
  } finally {
    c.metrics?.pending.dec();
  }
}

/** complete(), retried once; "unavailable" when the store does not answer. */
async function store(c: Coordinator, key: string, token: string, result: SettlementResult): Promise<boolean | "unavailable"> {
  for (let attempt = 1; ; attempt++) {
    try {
      const written = await c.ledger.complete(key, token, result);
      if (!written) c.storeError("settlement claim was taken over before completion");
      return written;
    } catch (e) {
      c.storeError("could not store settlement result", e);
      if (attempt >= 2) return "unavailable";
      await sleep(c.pollMs);
    }
  }
}

async function afterUnstored(c: Coordinator, entry: PaymentEntry, result: SettlementResult): Promise<SettleOutcome> {
  try {
    const row = await c.ledger.get(entry.key);
    if (row?.status === "settled" && row.requestHash === entry.requestHash) return await answerSettled(c, row, entry);
    if (row?.status === "pending") return ok("pending", pendingResponse(entry.network, entry.payer, row.transaction ?? result.transaction));
    if (row?.status === "failed" && row.response) return ok("failed", failedAnswer(row.response));
  } catch (e) {
    c.storeError("could not read settlement result", e);
  }
  return result.status === "settled" ? ok("pending", pendingResponse(entry.network, entry.payer, result.transaction)) : ok("failed", result.response);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
