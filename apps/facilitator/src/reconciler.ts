/**
 * Finishes settlements whose settler is gone: rows left `pending` with transactions in the ledger
 * (the receipt did not come in time, the RPC went away mid-send, or the process died). It runs at
 * start and then periodically, and is safe to run in several processes at once: it only reads the
 * chain and writes conditional updates.
 *
 * For each nonce used for a payment (every hash sent with it, fee bumps included):
 * - a receipt that logs the token's AuthorizationUsed for the payment → settled;
 * - a receipt without it (mined, the item failed) → that attempt failed;
 * - no receipt, but the signer's mined nonce is already past it (read BEFORE the receipts, so a
 *   transaction mined in between cannot be mistaken for a dropped one) → the nonce went to another
 *   transaction and none of these hashes can ever land → dropped;
 * - no receipt, nonce not consumed, none of the hashes known to the node after `dropAfterMs` → dropped;
 * - otherwise still pending.
 * A payment is failed (and may be settled again) only when every attempt failed or was dropped;
 * a landed transaction is never reported failed, a failed one never settled.
 */
import { Reason, safeMessage, type Network, type SettleResponse } from "@tollgate/core";
import type { SettlementEngine } from "@tollgate/evm";
import type { Hex, PublicClient } from "viem";
import type { Ledger, PaymentRecord, PaymentTransaction, TransactionOutcomeState } from "./ledger/ledger.ts";
import type { Logger } from "./logger.ts";

export interface ReconcilerOptions {
  ledger: Ledger;
  /** An engine that can read receipts for `network` (reconcile never sends). */
  engineFor(network: string): SettlementEngine | undefined;
  clientFor(network: string): PublicClient | undefined;
  intervalMs?: number;
  dropAfterMs?: number;
  logger?: Logger;
  /** Called with each payment the reconciler finished. */
  onResolved?: (record: PaymentRecord, response: SettleResponse) => void;
}

export interface Reconciler {
  /** One pass; resolves to the number of payments finished. */
  runOnce(): Promise<number>;
  start(): void;
  close(): Promise<void>;
}

export function settledResponse(record: Pick<PaymentRecord, "network" | "payer" | "amount">, transaction: string): SettleResponse {
  return { success: true, transaction, network: record.network as Network, payer: record.payer, amount: record.amount };
}

export function createReconciler(options: ReconcilerOptions): Reconciler {
  const { ledger, logger } = options;
  const intervalMs = options.intervalMs ?? 2_000;
  const dropAfterMs = options.dropAfterMs ?? 120_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<number> | undefined;
  let closed = false;

  async function pass(): Promise<number> {
    let finished = 0;
    // Claimed, nothing sent, settler gone: nothing moved, so it is failed and can be settled again.
    finished += await ledger.failAbandoned((r) => ({
      success: false,
      errorReason: Reason.unexpectedSettleError,
      errorMessage: "settlement was interrupted before anything was sent; nothing moved; retry",
      transaction: "",
      network: r.network as Network,
      payer: r.payer,
    }));
    const rows = await ledger.unresolved(200);
    if (rows.length === 0) return finished;
    // Mined nonces first (see the header for why the order matters).
    const mined = new Map<string, number>();
    for (const { transactions } of rows) {
      for (const tx of transactions) {
        const k = `${tx.network}|${tx.signer.toLowerCase()}`;
        if (tx.outcome !== null || mined.has(k)) continue;
        const client = options.clientFor(tx.network);
        if (!client) continue;
        try {
          mined.set(k, await client.getTransactionCount({ address: tx.signer as Hex, blockTag: "latest" }));
        } catch (e) {
          logger?.warn({ network: tx.network, err: safeMessage(e) }, "reconciler: nonce lookup failed");
        }
      }
    }
    for (const { record, transactions } of rows) {
      try {
        if (await settleOne(record, transactions, mined)) finished++;
      } catch (e) {
        logger?.warn({ key: record.key, err: safeMessage(e) }, "reconciler: payment not resolved this pass");
      }
    }
    return finished;
  }

  async function settleOne(record: PaymentRecord, transactions: PaymentTransaction[], mined: Map<string, number>): Promise<boolean> {
    const engine = options.engineFor(record.network);
    if (!engine) return false;
    const won = transactions.find((t) => t.outcome === "success");
    if (won) return finish(record, settledResponse(record, won.hash));
    const groups = new Map<string, PaymentTransaction[]>();
    for (const tx of transactions) {
      if (tx.outcome !== null) continue;
      const k = `${tx.network}|${tx.signer.toLowerCase()}|${tx.nonce}`;
      groups.set(k, [...(groups.get(k) ?? []), tx]);
    }
    let open = 0;
    let lastReason: string | undefined;
    for (const group of groups.values()) {
      const first = group[0]!;
      const hashes = group.map((t) => t.hash as Hex);
      const minedNonce = mined.get(`${first.network}|${first.signer.toLowerCase()}`);
      const outcome = await engine.reconcile(hashes, { network: first.network as Network, item: { from: record.payer as Hex, nonce: record.nonce as Hex } });
      if (outcome.status === "success") {
        await ledger.markOutcomes(outcome.transaction, [{ key: record.key, outcome: "success" }]);
        return finish(record, settledResponse(record, outcome.transaction));
      }
      let verdict: TransactionOutcomeState | undefined;
      if (outcome.status === "reverted") {
        verdict = "reverted";
        lastReason = outcome.reason;
      } else if (minedNonce !== undefined && minedNonce > first.nonce) {
        verdict = "dropped";
      } else if (Date.now() - first.createdAt.getTime() > dropAfterMs && (await unknownToNode(first.network, hashes))) {
        verdict = "dropped";
      }
      if (!verdict) {
        open++;
        continue;
      }
      for (const h of hashes) await ledger.markOutcomes(h, [{ key: record.key, outcome: verdict }]);
    }
    if (open > 0) return false;
    const last = transactions[transactions.length - 1];
    return finish(record, {
      success: false,
      errorReason: lastReason ?? Reason.invalidTransactionState,
      errorMessage: lastReason
        ? "the settlement transaction was mined but this authorization did not settle"
        : "the settlement transaction was dropped or replaced before it was mined; nothing moved; retry",
      transaction: last?.hash ?? "",
      network: record.network as Network,
      payer: record.payer,
    });
  }

  async function unknownToNode(network: string, hashes: Hex[]): Promise<boolean> {
    const client = options.clientFor(network);
    if (!client) return false;
    for (const hash of hashes) {
      const known = await client.getTransaction({ hash }).then(
        () => true,
        (e: unknown) => (/not (be )?found|could not be found/i.test(safeMessage(e)) ? false : undefined),
      );
      if (known !== false) return false; // known, or the node could not say: not dropped
    }
    return true;
  }

  async function finish(record: PaymentRecord, response: SettleResponse): Promise<boolean> {
    const done = await ledger.resolve(record.key, response);
    if (done) {
      logger?.info({ key: record.key, success: response.success, transaction: response.transaction, reason: response.errorReason }, "reconciler finished a pending settlement");
      options.onResolved?.(record, response);
    }
    return done;
  }

  function runOnce(): Promise<number> {
    running ??= pass()
      .catch((e) => {
        logger?.error({ err: safeMessage(e) }, "reconciler pass failed");
        return 0;
      })
      .finally(() => (running = undefined));
    return running;
  }

  function schedule() {
    if (closed) return;
    timer = setTimeout(() => void runOnce().finally(schedule), intervalMs);
    timer.unref?.();
  }

  return {
    runOnce,
    start() {
      void runOnce().finally(schedule);
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      await running;
    },
  };
}
