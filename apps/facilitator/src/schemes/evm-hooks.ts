/**
 * The settlement engine's hooks in the service: metrics, and results of transactions nobody
 * waits for any more (their /settle answered pending, or the process restarted) written straight
 * to the ledger. A /settle still waiting writes its own result through the coordinator's claim;
 * `awaiting` names those authorizations, so each result is written once, by one owner.
 */
import { engineCallPayment, type FinalEvent, type PayerBackoff, type SubmittedEvent } from "@tollgate/evm";
import type { PublicClient } from "viem";
import type { Ledger } from "../ledger/ledger.ts";
import type { FacilitatorMetrics } from "../metrics.ts";
import { settledResponse } from "../reconciler.ts";
import { recordTransactionGas } from "../dashboard/queries.ts";

export interface EngineHooksOptions {
  ledger: Ledger;
  metrics: FacilitatorMetrics;
  backoff: PayerBackoff;
  /** Authorization keys whose /settle is waiting on the engine right now. */
  awaiting: ReadonlyMap<string, number>;
  clientFor(network: string): PublicClient | undefined;
}

export function createEngineHooks(options: EngineHooksOptions) {
  const { ledger, metrics, backoff, awaiting } = options;
  const txCounter = metrics.registry.counter("tollgate_settlement_transactions_total", "Settlement transactions sent (first sends and fee bumps)");
  const gasPerItem = metrics.registry.histogram("tollgate_settlement_gas_per_payment", "Gas used per settled payment (transaction gas / payments in it)", [
    20_000, 30_000, 40_000, 50_000, 60_000, 80_000, 100_000, 150_000, 250_000,
  ]);
  const feesSpent = metrics.registry.counter("tollgate_settlement_fees_wei_total", "Fees paid for settlement transactions, in wei");

  async function onSubmitted(ev: SubmittedEvent): Promise<void> {
    txCounter.inc({ network: ev.network, kind: ev.replaces ? "replacement" : "first" });
    if (!ev.replaces) metrics.batchSize.observe(ev.items.length, { network: ev.network });
    // No write here: the write-ahead row exists since signing, and an outcome (onFinal, or the
    // coordinator's complete()) marks it sent. One statement less per transaction on the hot path.
  }

  async function onFinal(ev: FinalEvent): Promise<void> {
    // onFinal runs before the engine answers submit(): only payments nobody waits for any more are
    // written here (outcome, and the result for successes), group-committed by the ledger.
    // EIP-3009 authorizations and Permit2 payments alike, by their settle-once keys.
    const orphans = ev.items.map((i) => ({ ...engineCallPayment(ev.network, i.call), outcome: i.status })).filter((o) => !awaiting.has(o.key));
    // A mined revert nobody waits for still cost gas: back its payer off like a waited-for one.
    for (const o of orphans) if (o.outcome === "reverted") backoff.suspend(ev.network, o.payer);
    if (orphans.length > 0) {
      await ledger.markOutcomes(ev.transaction, orphans.map(({ key, outcome }) => ({ key, outcome })));
      await Promise.all(
        orphans
          .filter((o) => o.outcome === "success")
          .map((o) => ledger.resolve(o.key, settledResponse({ network: ev.network, payer: o.payer.toLowerCase(), amount: o.amount }, ev.transaction))),
      );
    }
    void gasMetrics(ev).catch(() => {});
  }

  async function gasMetrics(ev: FinalEvent): Promise<void> {
    // The engine passes the receipt's gas figures along; fetch the receipt only if it did not.
    let gasUsed = ev.gasUsed;
    let effectiveGasPrice = ev.effectiveGasPrice;
    if (gasUsed === undefined || effectiveGasPrice === undefined) {
      const receipt = await options.clientFor(ev.network)?.getTransactionReceipt({ hash: ev.transaction });
      if (!receipt) return;
      ({ gasUsed, effectiveGasPrice } = receipt);
    }
    // On the ledger too, for the dashboard's gas per payment (every instance sees every transaction's).
    void recordTransactionGas(ledger, ev.transaction, gasUsed, effectiveGasPrice).catch(() => {});
    const settled = Math.max(1, ev.items.filter((i) => i.status === "success").length);
    gasPerItem.observe(Number(gasUsed) / settled, { network: ev.network });
    feesSpent.inc({ network: ev.network }, Number(gasUsed * effectiveGasPrice));
  }

  return { onSubmitted, onFinal };
}
