/**
 * Finishes settlements whose settler is gone: rows left `pending` with transactions in the ledger
 * (the receipt did not come in time, the RPC went away mid-send, or the process died). It runs at
 * start and then periodically, and is safe to run in several processes at once: it only reads the
 * chain and writes conditional updates. Receipts are read with the engine's own reader
 * (@tollgate/evm `readSettlementOutcome`): only the token's logs prove a payment settled.
 *
 * For each nonce used for a payment (every hash sent with it, fee bumps included):
 * - a receipt that logs the token's AuthorizationUsed for the payment → settled;
 * - a receipt without it (mined, the item failed) → that attempt failed;
 * - no receipt, and the signer's mined nonce is already past it (read BEFORE the receipts, so a
 *   transaction mined in between cannot be mistaken for a dropped one): the nonce went to another
 *   transaction, so none of these hashes can ever land. Recorded as dropped only when seen so on
 *   passes at least `dropAfterMs` apart: a load-balanced RPC's lagging node may not know a receipt
 *   another node already served the nonce for. A node that merely does not know a hash proves
 *   nothing (it may never have seen it, or have evicted it), so that alone never drops anything;
 * - no receipt and the nonce still unused after `dropAfterMs` (say the process died between the
 *   write-ahead record and the broadcast, and the key has sent nothing since): `consumeNonce`
 *   makes sure that nonce gets used (a no-op transaction at it, when the node has none), after
 *   which the rule above applies. Should the original turn up after all, one of the two lands and
 *   its receipt tells;
 * - otherwise still pending.
 * A Permit2 payment (its key's nonce is decimal) is judged by its own receipt rule: the proxy's
 * Settled/SettledWithPermit log AND the token's Transfer(payer → payee, amount); when it is
 * dropped, Permit2's nonce bitmap tells whether another transaction used its nonce meanwhile
 * (answered `permit2_invalid_nonce`) or nothing moved at all.
 * A payment is failed (and may be settled again) only when every attempt failed or was dropped;
 * a landed transaction is never reported failed, a failed one never settled.
 */
import { Reason, safeMessage, type Network, type SettleResponse } from "@tollgate/core";
import { Permit2Reason, PERMIT2_ADDRESS, permit2Abi, readPermit2Outcome, readSettlementOutcome, UPTO_PERMIT2_PROXY_ADDRESS } from "@tollgate/evm";
import type { Address, Hex, PublicClient } from "viem";
import type { Ledger, PaymentRecord, PaymentTransaction, TransactionOutcomeState } from "./ledger/ledger.ts";
import type { Logger } from "./logger.ts";
import { recordTransactionGas } from "./dashboard/queries.ts";

export interface ReconcilerOptions {
  ledger: Ledger;
  clientFor(network: string): PublicClient | undefined;
  intervalMs?: number;
  /** How far apart two observations of "nonce consumed, no receipt" must be before a transaction counts as dropped. */
  dropAfterMs?: number;
  logger?: Logger;
  /** Called with each payment the reconciler finished. */
  onResolved?: (record: PaymentRecord, response: SettleResponse) => void;
  /** Makes sure a signer's nonce gets used (the settlement engine's `consumeNonce`). */
  consumeNonce?: (network: string, signer: Address, nonce: number) => Promise<unknown>;
  /** Milliseconds since epoch; for tests. */
  now?: () => number;
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

/** What one look at a nonce's hashes says. `usedElsewhere`: dropped, and the Permit2 nonce was used by another transaction. */
type NonceVerdict = { kind: "settled"; transaction: Hex } | { kind: "final"; outcome: TransactionOutcomeState; reason?: string; usedElsewhere?: boolean } | { kind: "open" };

export function createReconciler(options: ReconcilerOptions): Reconciler {
  const { ledger, logger } = options;
  const intervalMs = options.intervalMs ?? 2_000;
  const dropAfterMs = options.dropAfterMs ?? 120_000;
  const now = options.now ?? Date.now;
  /** network|signer|nonce → when it was first seen consumed by another transaction without a receipt. */
  const consumedSince = new Map<string, number>();
  /** network|signer|nonce → when it was first (or last asked to be filled and) seen unused without a receipt. */
  const unusedSince = new Map<string, number>();
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
    if (rows.length === 0) {
      consumedSince.clear();
      unusedSince.clear();
      return finished;
    }
    // Mined nonces first (see the header for why the order matters).
    const mined = await minedNonces(rows.flatMap((r) => r.transactions));
    const seen = new Set<string>();
    for (const { record, transactions } of rows) {
      try {
        if (await settleOne(record, transactions, mined, seen)) finished++;
      } catch (e) {
        logger?.warn({ key: record.key, err: safeMessage(e) }, "reconciler: payment not resolved this pass");
      }
    }
    // Forget observations of nonces no longer pending anywhere.
    for (const m of [consumedSince, unusedSince]) for (const k of m.keys()) if (!seen.has(k)) m.delete(k);
    return finished;
  }

  /** Each signer's mined ("latest") transaction count, per network. */
  async function minedNonces(transactions: readonly PaymentTransaction[]): Promise<Map<string, number>> {
    const mined = new Map<string, number>();
    for (const tx of transactions) {
      const k = `${tx.network}|${tx.signer.toLowerCase()}`;
      if (tx.outcome !== null || mined.has(k)) continue;
      const client = options.clientFor(tx.network);
      if (!client) continue;
      try {
        mined.set(k, await client.getTransactionCount({ address: tx.signer as Address, blockTag: "latest" }));
      } catch (e) {
        logger?.warn({ network: tx.network, err: safeMessage(e) }, "reconciler: nonce lookup failed");
      }
    }
    return mined;
  }

  async function settleOne(record: PaymentRecord, transactions: PaymentTransaction[], mined: Map<string, number>, seen: Set<string>): Promise<boolean> {
    const client = options.clientFor(record.network);
    if (!client) return false;
    const won = transactions.find((t) => t.outcome === "success");
    if (won) return finish(record, settledResponse(record, won.hash));
    let open = 0;
    let lastReason: string | undefined;
    let usedElsewhere = false;
    for (const group of byNonce(transactions)) {
      const verdict = await judgeNonce(client, record, group, mined, seen);
      if (verdict.kind === "settled") {
        await ledger.markOutcomes(verdict.transaction, [{ key: record.key, outcome: "success" }]);
        return finish(record, settledResponse(record, verdict.transaction));
      }
      if (verdict.kind === "open") {
        open++;
        continue;
      }
      if (verdict.reason) lastReason = verdict.reason;
      if (verdict.usedElsewhere) usedElsewhere = true;
      for (const t of group) await ledger.markOutcomes(t.hash, [{ key: record.key, outcome: verdict.outcome }]);
    }
    if (open > 0) return false;
    if (usedElsewhere && !lastReason) return finish(record, usedElsewhereResponse(record));
    return finish(record, failedResponse(record, transactions, lastReason));
  }

  async function judgeNonce(client: PublicClient, record: PaymentRecord, group: PaymentTransaction[], mined: Map<string, number>, seen: Set<string>): Promise<NonceVerdict> {
    const first = group[0]!;
    const minedNonce = mined.get(`${first.network}|${first.signer.toLowerCase()}`);
    const hashes = group.map((t) => t.hash as Hex);
    const permit2 = isPermit2Record(record);
    const outcome = permit2
      ? // One payment per proxy call: the proxy's Settled log and the token's Transfer(payer → payee, amount).
        // upto: the row's amount is the charge settle was asked for, moved through the upto proxy.
        await readPermit2Outcome(client, hashes, { token: record.asset, from: record.payer, to: record.payee, amount: record.amount, ...(record.scheme === "upto" ? { proxy: UPTO_PERMIT2_PROXY_ADDRESS } : {}) })
      : await readSettlementOutcome(client, hashes, { token: record.asset as Address, item: { from: record.payer, nonce: record.nonce } });
    if (outcome.status !== "pending") await recordGas(outcome);
    if (outcome.status === "success") return { kind: "settled", transaction: outcome.transaction };
    if (outcome.status === "reverted") return { kind: "final", outcome: "reverted", ...(outcome.reason ? { reason: outcome.reason } : {}) };
    if (minedNonce === undefined) return { kind: "open" };
    const k = `${first.network}|${first.signer.toLowerCase()}|${first.nonce}`;
    seen.add(k);
    if (minedNonce <= first.nonce) {
      await fillIfStuck(k, first);
      return { kind: "open" };
    }
    // Consumed by another transaction, and no receipt for ours: dropped, if it stays so.
    const since = consumedSince.get(k);
    if (since === undefined) {
      consumedSince.set(k, now());
      return { kind: "open" };
    }
    if (now() - since < dropAfterMs) return { kind: "open" };
    if (!permit2) return { kind: "final", outcome: "dropped" };
    // Permit2 says whether the payment's nonce was used at all: set, with no receipt of ours, means
    // another transaction used it (someone else submitted the signature, or the payer cancelled
    // it), so ours can never land; clear means nothing moved for this payment.
    return { kind: "final", outcome: "dropped", ...((await permit2NonceUsed(client, record)) ? { usedElsewhere: true } : {}) };
  }

  /** A mined attempt's gas, for the dashboard (as the engine's hooks record it); never blocks the verdict. */
  async function recordGas(outcome: { transaction: Hex; gasUsed?: bigint; effectiveGasPrice?: bigint }): Promise<void> {
    if (outcome.gasUsed === undefined || outcome.effectiveGasPrice === undefined) return;
    try {
      await recordTransactionGas(ledger, outcome.transaction, outcome.gasUsed, outcome.effectiveGasPrice);
    } catch (e) {
      logger?.warn({ transaction: outcome.transaction, err: safeMessage(e) }, "reconciler: could not record the gas of a settlement transaction");
    }
  }

  /** Unused and unseen for `dropAfterMs`: ask for the nonce to be used (again every `dropAfterMs`). */
  async function fillIfStuck(k: string, tx: PaymentTransaction): Promise<void> {
    const since = unusedSince.get(k);
    if (since === undefined) return void unusedSince.set(k, now());
    if (now() - since < dropAfterMs || !options.consumeNonce) return;
    unusedSince.set(k, now());
    try {
      const done = await options.consumeNonce(tx.network, tx.signer as Address, tx.nonce);
      logger?.info({ network: tx.network, signer: tx.signer, nonce: tx.nonce, done }, "reconciler: asked for a stuck nonce to be used");
    } catch (e) {
      logger?.warn({ network: tx.network, signer: tx.signer, nonce: tx.nonce, err: safeMessage(e) }, "reconciler: could not use a stuck nonce");
    }
  }

  async function finish(record: PaymentRecord, response: SettleResponse): Promise<boolean> {
    // A failure holds only for the attempts judged: a settler whose lease ran out may have written
    // a new one ahead since, and the row then names its hash (the resolve refuses, next pass looks).
    const done = await ledger.resolve(record.key, response, response.success ? undefined : record.transaction);
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

/** The payment's unresolved transactions grouped by (network, signer, nonce): the hashes of one nonce. */
function byNonce(transactions: readonly PaymentTransaction[]): PaymentTransaction[][] {
  const groups = new Map<string, PaymentTransaction[]>();
  for (const tx of transactions) {
    if (tx.outcome !== null) continue;
    const k = `${tx.network}|${tx.signer.toLowerCase()}|${tx.nonce}`;
    groups.set(k, [...(groups.get(k) ?? []), tx]);
  }
  return [...groups.values()];
}

/** Every attempt failed or was dropped: nothing moved. A mined one's hash travels in our extension. */
function failedResponse(record: PaymentRecord, transactions: readonly PaymentTransaction[], lastReason: string | undefined): SettleResponse {
  const last = transactions[transactions.length - 1];
  return {
    success: false,
    errorReason: lastReason ?? Reason.invalidTransactionState,
    errorMessage: lastReason
      ? "the settlement transaction was mined but this authorization did not settle"
      : "the settlement transaction was dropped or replaced before it was mined; nothing moved; retry",
    transaction: "",
    network: record.network as Network,
    payer: record.payer,
    ...(lastReason && last ? { extensions: { "tollgate-settlement": { status: "failed", transaction: last.hash } } } : {}),
  };
}

/** A Permit2 payment's row: its settle-once key ends in the Permit2 nonce in decimal (EIP-3009's is 0x-hex). */
function isPermit2Record(record: Pick<PaymentRecord, "nonce">): boolean {
  return /^[0-9]{1,78}$/.test(record.nonce);
}

/** Whether Permit2's nonce bitmap marks the payment's (owner, nonce) used. */
async function permit2NonceUsed(client: PublicClient, record: Pick<PaymentRecord, "payer" | "nonce">): Promise<boolean> {
  const nonce = BigInt(record.nonce);
  const word = await client.readContract({ address: PERMIT2_ADDRESS, abi: permit2Abi, functionName: "nonceBitmap", args: [record.payer as Address, nonce >> 8n] });
  return ((word >> (nonce & 0xffn)) & 1n) === 1n;
}

/** Ours was dropped and the chain shows the Permit2 nonce used by another transaction: ours never moved anything, and never can. */
function usedElsewhereResponse(record: PaymentRecord): SettleResponse {
  return {
    success: false,
    errorReason: Permit2Reason.invalidNonce,
    errorMessage: "the settlement transaction was dropped; the payment's Permit2 nonce was used by another transaction, so this facilitator settled nothing for it",
    transaction: "",
    network: record.network as Network,
    payer: record.payer,
  };
}
