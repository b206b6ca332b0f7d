/**
 * Settle at most once per authorization. Within a process, requests for one key share one
 * promise; across processes, the ledger row is the lock (see Ledger.claim). Whoever loses
 * waits for the winner's stored response and answers with exactly that.
 */
import { randomUUID } from "node:crypto";
import { Reason, safeMessage, type Facilitator, type FacilitatorRequest, type SettleResponse } from "@tollgate/core";
import type { Ledger, PaymentEntry } from "./ledger/ledger.ts";
import type { FacilitatorMetrics } from "./metrics.ts";

export interface SettleOutcome {
  /** HTTP status: 200, 409 (content conflict), 503 (store unavailable). */
  status: 200 | 409 | 503;
  response: SettleResponse;
  /** How this request was answered: it settled, replayed a stored result, or was refused. */
  outcome: "settled" | "replay" | "conflict" | "pending" | "unavailable";
}

export interface SettlementCoordinatorOptions {
  facilitator: Facilitator;
  ledger: Ledger;
  metrics?: FacilitatorMetrics;
  /** How long a claim is held before another process may take over a dead settler's row. */
  leaseMs?: number;
  /** How long a duplicate request waits for another settler before answering `settlement_pending`. */
  waitMs?: number;
  pollMs?: number;
  onStoreError?: (message: string, error: unknown) => void;
}

export interface SettlementCoordinator {
  settle(request: FacilitatorRequest, entry: PaymentEntry): Promise<SettleOutcome>;
  /** Settlements this process is running or waiting on. */
  readonly inFlight: number;
}

export function createSettlementCoordinator(options: SettlementCoordinatorOptions): SettlementCoordinator {
  const { facilitator, ledger, metrics } = options;
  const leaseMs = options.leaseMs ?? 120_000;
  const waitMs = options.waitMs ?? 60_000;
  const pollMs = options.pollMs ?? 100;
  const inflight = new Map<string, { hash: string; promise: Promise<SettleOutcome> }>();

  const failure = (entry: PaymentEntry, reason: string, message: string): SettleResponse => ({
    success: false,
    errorReason: reason,
    errorMessage: message,
    payer: entry.payer,
    transaction: "",
    network: entry.network as SettleResponse["network"],
  });

  const reused = (entry: PaymentEntry): SettleOutcome => ({
    status: 409,
    outcome: "conflict",
    response: failure(entry, Reason.authorizationReused, "paymentPayload.payload: this authorization was already submitted for settlement with different content"),
  });

  async function run(request: FacilitatorRequest, entry: PaymentEntry): Promise<SettleOutcome> {
    if (entry.paymentIdentifier) {
      const held = await ledger.findByIdentifier(entry.payer, entry.paymentIdentifier);
      if (held && (held.key !== entry.key || held.requestHash !== entry.requestHash)) {
        return {
          status: 409,
          outcome: "conflict",
          response: failure(entry, Reason.paymentIdentifierConflict, "paymentPayload.extensions.payment-identifier.info.id: already used for a different payment"),
        };
      }
    }
    const deadline = Date.now() + waitMs;
    let waited = false;
    for (;;) {
      const token = randomUUID();
      const claim = await ledger.claim(entry, token, leaseMs);
      if (claim.claimed) return settleClaimed(request, entry, token);
      if (claim.identifierConflict) {
        return {
          status: 409,
          outcome: "conflict",
          response: failure(entry, Reason.paymentIdentifierConflict, "paymentPayload.extensions.payment-identifier.info.id: already used for a different payment"),
        };
      }
      const record = claim.record;
      if (record && (record.status === "pending" || record.status === "settled") && record.requestHash !== entry.requestHash) return reused(entry);
      if (record?.status === "settled" && record.response) return { status: 200, outcome: "replay", response: record.response };
      // A failure we waited on is this request's answer; a failure found cold is retried by the claim.
      if (record?.status === "failed" && record.response && waited) return { status: 200, outcome: "replay", response: record.response };
      if (Date.now() >= deadline) {
        const tx = record?.transaction ?? "";
        return {
          status: 200,
          outcome: "pending",
          response: tx ? pendingResponse(entry.network, entry.payer, tx) : failure(entry, Reason.settlementPending, "settlement of this authorization is still in progress; retry with the same payload"),
        };
      }
      waited = true;
      await sleep(pollMs);
    }
  }

  async function settleClaimed(request: FacilitatorRequest, entry: PaymentEntry, token: string): Promise<SettleOutcome> {
    metrics?.pending.inc();
    let response: SettleResponse;
    try {
      response = await facilitator.settle(request);
    } catch (e) {
      response = failure(entry, Reason.unexpectedSettleError, safeMessage(e));
    } finally {
      metrics?.pending.dec();
    }
    // Round-trip through JSON so the winner answers byte-for-byte what the ledger replays.
    const stored = JSON.parse(JSON.stringify(response)) as SettleResponse;
    let written = false;
    try {
      written = await ledger.complete(entry.key, token, stored);
      if (!written) options.onStoreError?.("settlement claim was taken over before completion", undefined);
    } catch (e) {
      // Money may have moved: report the result anyway; the row stays pending until its lease ends.
      options.onStoreError?.("could not store settlement result", e);
      return { status: 200, outcome: "settled", response: stored };
    }
    if (written && stored.success) return { status: 200, outcome: "settled", response: stored };
    // A failure is only final when nothing sent for it may still land (the ledger decides), and the
    // chain may have finished it first: answer with whatever the row now says.
    try {
      const row = await ledger.get(entry.key);
      if (row?.status === "pending") {
        const tx = row.transaction ?? stored.transaction;
        return { status: 200, outcome: "pending", response: tx ? pendingResponse(entry.network, entry.payer, tx) : stored };
      }
      if (row?.response && (row.status === "settled" || row.status === "failed")) return { status: 200, outcome: "settled", response: row.response };
    } catch (e) {
      options.onStoreError?.("could not read settlement result", e);
    }
    return { status: 200, outcome: "settled", response: stored };
  }

  return {
    async settle(request, entry) {
      const joined = inflight.get(entry.key);
      if (joined) {
        if (joined.hash !== entry.requestHash) return reused(entry);
        const o = await joined.promise;
        return o.outcome === "settled" ? { ...o, outcome: "replay" } : o;
      }
      const promise = run(request, entry).catch((e): SettleOutcome => {
        options.onStoreError?.("settlement store unavailable", e);
        return { status: 503, outcome: "unavailable", response: failure(entry, Reason.facilitatorNotReady, "the payments store is unavailable; nothing was settled") };
      });
      inflight.set(entry.key, { hash: entry.requestHash, promise });
      try {
        return await promise;
      } finally {
        inflight.delete(entry.key);
      }
    },
    get inFlight() {
      return inflight.size;
    },
  };
}

/** Our documented extension: the settlement was sent but is not final yet (spec: settlement_pending). */
export const SETTLEMENT_EXTENSION = "tollgate-settlement";

export function pendingResponse(network: string, payer: string, transaction: string): SettleResponse {
  return {
    success: false,
    errorReason: Reason.settlementPending,
    errorMessage: "the settlement transaction was sent and is not final yet; retry /settle with the same payload for the result",
    payer,
    transaction,
    network: network as SettleResponse["network"],
    extensions: { [SETTLEMENT_EXTENSION]: { status: "pending" } },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
