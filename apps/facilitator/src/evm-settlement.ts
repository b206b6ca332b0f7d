/**
 * The EVM exact scheme backed by the settlement engine, made durable and shareable:
 *
 * - ONE engine per process holding every fee-paying key (one nonce lane per key and network), so
 *   all settlements share one queue and leave in large batches. Which lanes may take work is the
 *   engine's `signerUsable`: a held lease and a balance above the floor. The signer wrapper below
 *   stays the hard check (lease, generation, nonce floor) whatever the engine decides.
 * - Write-ahead log at the one place every transaction passes: the signer. Before a transaction is
 *   signed away, its hash, signer and nonce are stored against every payment it carries (decoded
 *   from its calldata). So no transaction can land that the ledger does not know about, even if the
 *   process is killed between broadcast and bookkeeping; the signer also refuses to sign without a
 *   current lease.
 * - The engine's hooks: onSubmitted (the node accepted it; batch size metric), onFinal (results of
 *   transactions nobody waits for any more go straight to the ledger; gas metrics).
 * - The scheme answers /settle with the chain's verdict, or with a pending answer (the hash and our
 *   `tollgate-settlement` extension) when the receipt does not come within `receiptTimeoutMs`.
 * - A balance floor: a key under `minSignerBalanceWei` is not used; no key left → facilitator_not_ready.
 */
import {
  Reason,
  safeMessage,
  type Network,
  type PaymentPayload,
  type PaymentRequirements,
  type SchemeFacilitator,
  type SettleResponse,
} from "@tollgate/core";
import {
  batchSettlerAbi,
  createSettlementEngine,
  decodeBatchSettleKeys,
  eip3009Abi,
  exactEvmFacilitator,
  fastLocalAccount,
  keccak256Hex,
  rpcTransportForUrl,
  SettlementError,
  type FinalEvent,
  type SettlementCall,
  type SettlementEngine,
  type SubmittedEvent,
} from "@tollgate/evm";
import { createPublicClient, decodeFunctionData, getAbiItem, toFunctionSelector, type AbiFunction, type Address, type Hex, type LocalAccount, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { ReadinessProbe } from "./app.ts";
import type { FacilitatorConfig } from "./config.ts";
import type { Ledger } from "./ledger/ledger.ts";
import type { Logger } from "./logger.ts";
import type { FacilitatorMetrics } from "./metrics.ts";
import { createReconciler, settledResponse, type Reconciler } from "./reconciler.ts";
import { pendingResponse } from "./settle.ts";
import { allSignerLeases, createSignerLeases, type SignerLeases } from "./signer-leases.ts";

export interface EvmSettlementOptions {
  config: FacilitatorConfig;
  ledger: Ledger;
  logger: Logger;
  metrics: FacilitatorMetrics;
}

export interface EvmSettlement {
  scheme: SchemeFacilitator;
  readinessProbes: ReadinessProbe[];
  leases: SignerLeases;
  reconciler: Reconciler;
  /** Takes leases, reads balances, resumes pending settlements from the ledger. */
  start(): Promise<void>;
  /** Lets in-flight transactions finish (bounded), stops the reconciler, frees the leases. */
  close(timeoutMs?: number): Promise<void>;
  /** Transactions sent by this process (first sends), per signer. */
  stats(): { transactions: number; replacements: number; items: number; perSigner: Record<string, number> };
}

interface Signer {
  account: LocalAccount;
  address: string; // lowercase
  /**
   * Per network: the lease generation the engine's nonce for this key was (re)read under, and the
   * lowest nonce it may sign in that generation. Anything older belongs to a lease this process lost.
   */
  lanes: Map<string, { generation: number; floor: number }>;
}

interface Slot {
  pending?: string;
  reason?: string;
  message?: string;
}

const BATCH_SETTLE_SELECTOR = toFunctionSelector(getAbiItem({ abi: batchSettlerAbi, name: "settle" }) as AbiFunction).toLowerCase();

export function createEvmSettlement(options: EvmSettlementOptions): EvmSettlement {
  const { config, ledger, logger, metrics } = options;
  const s = config.settlement;
  const networks = config.networks.map((n) => n.network);
  // node:http keep-alive JSON-RPC (several times cheaper per call than viem's http()). The config
  // accepts ws(s) URLs: those go over viem's webSocket() (viem's http() could not reach them at all).
  const clients = new Map<string, PublicClient>(config.networks.map((n) => [n.network, createPublicClient({ transport: rpcTransportForUrl(n.rpcUrl, { batch: true }) }) as PublicClient]));
  const signers: Signer[] = config.privateKeys.map((k) => {
    // libsecp256k1 signing: one signature per batch over large calldata, on the request thread.
    const account = fastLocalAccount(k as Hex);
    return { account, address: account.address.toLowerCase(), lanes: new Map() };
  });
  const leases =
    ledger.dialect === "postgres"
      ? createSignerLeases({ sql: ledger.sql, schema: ledger.schema, networks, signers: signers.map((x) => x.address), ttlMs: config.signerLeaseMs, logger })
      : allSignerLeases(signers.map((x) => x.address));
  const floor = config.minSignerBalanceWei !== undefined ? BigInt(config.minSignerBalanceWei) : undefined;
  /** network|signer → balance, for signers under the floor. */
  const low = new Map<string, bigint>();
  /** Keys whose /settle is waiting on the engine: their results are stored by the coordinator. */
  const slots = new Map<string, Slot>();
  let balanceTimer: ReturnType<typeof setTimeout> | undefined;

  const txCounter = metrics.registry.counter("tollgate_settlement_transactions_total", "Settlement transactions sent (first sends and fee bumps)");
  const gasPerItem = metrics.registry.histogram("tollgate_settlement_gas_per_payment", "Gas used per settled payment (transaction gas / payments in it)", [
    20_000, 30_000, 40_000, 50_000, 60_000, 80_000, 100_000, 150_000, 250_000,
  ]);
  const feesSpent = metrics.registry.counter("tollgate_settlement_fees_wei_total", "Fees paid for settlement transactions, in wei");
  metrics.registry.gauge("tollgate_settlement_transactions_in_flight", "Settlement transactions sent and not yet final, per signer", () =>
    engine.stats().signers.map((st) => ({ labels: { network: st.network, address: st.address }, value: st.inFlight })),
  );

  const keyOf = (network: string, asset: string, from: string, nonce: string) => `${network}|${asset.toLowerCase()}|${from.toLowerCase()}|${nonce.toLowerCase()}`;

  /** The payments a transaction carries, read from its calldata (direct EIP-3009 call or BatchSettler.settle). */
  function paymentsIn(network: string, to: string, data: Hex): string[] {
    // Decoded by selector: a failed decode throws, and viem's error costs more than the decode.
    if (data.slice(0, 10).toLowerCase() === BATCH_SETTLE_SELECTOR) {
      // Hand-decoded (only the words naming each payment); viem's decoder for anything unusual.
      const fast = decodeBatchSettleKeys(data);
      if (fast) return fast.items.map((i) => keyOf(network, fast.token, i.from, i.nonce));
      const call = decodeFunctionData({ abi: batchSettlerAbi, data });
      const [token, items] = call.args as unknown as [string, ReadonlyArray<{ from: string; nonce: string }>];
      return items.map((i) => keyOf(network, token, i.from, i.nonce));
    }
    const call = decodeFunctionData({ abi: eip3009Abi, data });
    if (call.functionName !== "transferWithAuthorization") throw new Error(`refusing to sign an unexpected call (${call.functionName})`);
    const args = call.args as unknown as [string, string, bigint, bigint, bigint, string];
    return [keyOf(network, to, args[0], args[5])];
  }

  /**
   * The only signer the engine gets: checks the lease, then writes the transaction to the ledger
   * before handing it out. After a lease was lost (generation bumped), the first signature under
   * the new generation re-reads the key's pending nonce from the node: a nonce below it was either
   * used by another holder meanwhile (refused as "nonce too low", so the engine resyncs its counter
   * and retries once) or belongs to a transaction from before the loss (a fee bump: refused).
   */
  function guarded(signer: Signer): LocalAccount {
    const base = signer.account;
    return {
      ...base,
      async signTransaction(tx, opts) {
        const network = `eip155:${Number(tx.chainId)}`;
        if (!leases.holds(network, signer.address)) {
          throw new SettlementError(Reason.facilitatorNotReady, `signer ${base.address} is not held by this process on ${network}`);
        }
        if (!tx.to || !tx.data || tx.nonce === undefined) throw new Error("refusing to sign a transaction without recipient, data or nonce");
        const generation = leases.generation(signer.address);
        let lane = signer.lanes.get(network);
        if (!lane || lane.generation !== generation) {
          const client = clients.get(network);
          if (!client) throw new Error(`no RPC client for ${network}`);
          const floor = await client.getTransactionCount({ address: base.address, blockTag: "pending" });
          lane = { generation, floor };
          signer.lanes.set(network, lane);
        }
        if (tx.nonce < lane.floor) {
          // Worded so the engine's nonce-error handling resyncs (new sends); a bump just stops.
          throw new Error(`nonce too low: ${tx.nonce} is below ${lane.floor}, the first nonce of ${base.address} since its lease was (re)taken`);
        }
        if (leases.generation(signer.address) !== generation || !leases.holds(network, signer.address)) {
          throw new SettlementError(Reason.facilitatorNotReady, `signer ${base.address} is not held by this process on ${network}`);
        }
        const keys = paymentsIn(network, tx.to, tx.data);
        const serialized = await base.signTransaction(tx, opts as never);
        await ledger.recordTransaction({ keys, hash: keccak256Hex(serialized), network, signer: base.address, nonce: Number(tx.nonce) });
        return serialized;
      },
    } as LocalAccount;
  }

  function engineConfig() {
    return {
      networks: config.networks.map((n) => ({ network: n.network as Network, rpcUrl: n.rpcUrl, ...(n.batchSettler ? { batchSettler: n.batchSettler as Address } : {}) })),
      batching: s.batching,
      // Required by the scheme's settleDryRun: false below: the engine's simulation is the dry run.
      preflight: true,
      maxBatchSize: s.maxBatchSize,
      maxWaitMs: s.maxWaitMs,
      receiptTimeoutMs: s.receiptTimeoutMs,
      ...(s.pollingIntervalMs !== undefined ? { pollingIntervalMs: s.pollingIntervalMs } : {}),
      ...(s.maxFeePerGasWei !== undefined ? { maxFeePerGasCap: BigInt(s.maxFeePerGasWei) } : {}),
      ...(s.maxGasPerSettlement !== undefined ? { maxGasPerSettlement: BigInt(s.maxGasPerSettlement) } : {}),
      replacement: s.bumpAfterMs !== undefined ? { bumpAfterMs: s.bumpAfterMs } : (false as const),
      onSubmitted,
      onFinal,
      onError: (e: unknown, context: string) => logger.warn({ context, err: safeMessage(e) }, "settlement engine"),
    };
  }

  const usable = (network: string) => signers.filter((x) => leases.holds(network, x.address) && !low.has(`${network}|${x.address}`));

  // Every key in one engine: one queue per token, so concurrent settlements share transactions.
  // Cheap on purpose: the engine asks on every dispatch. A key refused and usable again has its
  // nonce re-read by the engine; the signer wrapper double-checks the lease before every signature.
  const engine: SettlementEngine = createSettlementEngine({
    ...engineConfig(),
    signers: signers.map((x) => guarded(x)),
    signerUsable: (signer, network) => {
      const address = signer.toLowerCase();
      return leases.holds(network, address) && !low.has(`${network}|${address}`);
    },
  });

  function notReadyMessage(network: string): string {
    const lows = [...low.entries()].filter(([k]) => k.startsWith(`${network}|`));
    if (lows.length > 0 && usable(network).length === 0) {
      return `every fee-paying signer on ${network} is below minSignerBalanceWei (${lows.map(([k, b]) => `${k.split("|")[1]}: ${b}`).join(", ")}); nothing was settled`;
    }
    return `no fee-paying signer is available to this facilitator on ${network} (held by other instances); nothing was settled`;
  }

  // ---------------------------------------------------------------- engine hooks

  async function onSubmitted(ev: SubmittedEvent): Promise<void> {
    txCounter.inc({ network: ev.network, kind: ev.replaces ? "replacement" : "first" });
    if (!ev.replaces) metrics.batchSize.observe(ev.items.length, { network: ev.network });
    // No write here: the write-ahead row exists since signing, and an outcome (onFinal, or the
    // coordinator's complete()) marks it sent. One statement less per transaction on the hot path.
  }

  async function onFinal(ev: FinalEvent): Promise<void> {
    const outcomes = ev.items.map((i) => ({ key: keyOf(ev.network, i.call.asset, i.call.authorization.from, i.call.authorization.nonce), outcome: i.status, call: i.call }));
    // onFinal runs before the engine answers submit(). A /settle still waiting (its slot) stores its
    // own result: complete() marks a success's transaction outcome in the same statement, and submit()
    // marks a revert before answering. Only payments nobody waits for any more (their /settle answered
    // pending, or the process restarted) are written here: outcome, and the result for successes.
    // Both are group-committed by the ledger (one statement per kind for everything finishing together).
    const orphans = outcomes.filter((o) => !slots.has(o.key));
    if (orphans.length === 0) return void gasMetrics(ev).catch(() => {});
    await ledger.markOutcomes(ev.transaction, orphans.map(({ key, outcome }) => ({ key, outcome })));
    await Promise.all(
      orphans
        .filter((o) => o.outcome === "success")
        .map((o) => ledger.resolve(o.key, settledResponse({ network: ev.network, payer: o.call.authorization.from.toLowerCase(), amount: String(o.call.authorization.value) }, ev.transaction))),
    );
    void gasMetrics(ev).catch(() => {});
  }

  async function gasMetrics(ev: FinalEvent): Promise<void> {
    // The engine passes the receipt's gas figures along; fetch the receipt only if it did not.
    let gasUsed = ev.gasUsed;
    let effectiveGasPrice = ev.effectiveGasPrice;
    if (gasUsed === undefined || effectiveGasPrice === undefined) {
      const receipt = await clients.get(ev.network)?.getTransactionReceipt({ hash: ev.transaction });
      if (!receipt) return;
      ({ gasUsed, effectiveGasPrice } = receipt);
    }
    const settled = Math.max(1, ev.items.filter((i) => i.status === "success").length);
    gasPerItem.observe(Number(gasUsed) / settled, { network: ev.network });
    feesSpent.inc({ network: ev.network }, Number(gasUsed * effectiveGasPrice));
  }

  // ---------------------------------------------------------------- the scheme

  async function submit(call: SettlementCall & { data?: Hex }): Promise<{ transaction: Hex; status: "success" | "reverted" | "pending" }> {
    const key = keyOf(call.network, call.asset, call.authorization.from, call.authorization.nonce);
    const slot = slots.get(key) ?? {};
    if (usable(call.network).length === 0) {
      slot.reason = Reason.facilitatorNotReady;
      slot.message = notReadyMessage(call.network);
      throw new SettlementError(Reason.facilitatorNotReady, slot.message);
    }
    let result;
    try {
      result = await engine.submit({ network: call.network, asset: call.asset, authorization: call.authorization, signature: call.signature });
    } catch (e) {
      if (e instanceof SettlementError) {
        slot.reason = e.reason;
        slot.message = e.message;
      }
      throw e;
    }
    if (result.status === "pending") {
      // Throwing makes the exact scheme forget the key, so a dropped transaction can be retried; the answer is rewritten below.
      slot.pending = result.transaction;
      throw new Error("settlement pending");
    }
    if (result.status === "reverted") {
      await ledger.markOutcomes(result.transaction, [{ key, outcome: "reverted" }]);
      slot.reason = result.reason ?? Reason.invalidTransactionState;
      slot.message = "the settlement transaction was mined but this authorization did not settle";
    }
    return { transaction: result.transaction, status: result.status };
  }

  const first = signers[0]?.account;
  const inner = exactEvmFacilitator({
    networks: config.networks.map((n) => ({
      network: n.network as `eip155:${string}`,
      rpcUrl: n.rpcUrl,
      ...(n.assets ? { assets: n.assets.map((a) => ({ ...a, address: a.address as `0x${string}` })) } : {}),
    })),
    signer: first!,
    submit,
    // The engine simulates every transaction before sending it (eth_simulateV1 preflight, or
    // eth_call + estimateGas) and leaves out, with the token's reason, any authorization that would
    // revert; a direct single-item send that would revert is refused the same way. So settle keeps
    // every other check (signature, requirements, balance, nonce state, domain) and skips only its
    // own dry run, which would just be the same simulation once more per payment.
    settleDryRun: false,
    receiptTimeoutMs: s.receiptTimeoutMs,
  });

  const scheme: SchemeFacilitator = {
    ...inner,
    signers: (network) => (inner.networks.includes(network) ? signers.map((x) => x.account.address) : []),
    async settle(payload: PaymentPayload, requirements: PaymentRequirements): Promise<SettleResponse> {
      const network = requirements.network;
      const auth = (payload.payload as { authorization?: { from?: unknown; nonce?: unknown } }).authorization;
      const from = typeof auth?.from === "string" ? auth.from : undefined;
      const nonce = typeof auth?.nonce === "string" ? auth.nonce : undefined;
      if (usable(network).length === 0 && inner.networks.includes(network as Network)) {
        return { success: false, errorReason: Reason.facilitatorNotReady, errorMessage: notReadyMessage(network), transaction: "", network, ...(from ? { payer: from } : {}) };
      }
      if (!from || !nonce) return inner.settle(payload, requirements);
      const key = keyOf(network, requirements.asset, from, nonce);
      const slot: Slot = {};
      slots.set(key, slot);
      let response: SettleResponse;
      try {
        response = await inner.settle(payload, requirements);
      } finally {
        slots.delete(key);
      }
      if (slot.pending) return pendingResponse(network, response.payer ?? from.toLowerCase(), slot.pending);
      if (!response.success && slot.reason) return { ...response, errorReason: slot.reason, errorMessage: slot.message ?? response.errorMessage ?? "" };
      return response;
    },
  };

  // ---------------------------------------------------------------- balances, readiness

  async function checkBalances(): Promise<void> {
    if (floor === undefined) return;
    await Promise.all(
      config.networks.flatMap((n) =>
        signers.map(async (x) => {
          const k = `${n.network}|${x.address}`;
          try {
            const balance = await clients.get(n.network)!.getBalance({ address: x.account.address });
            if (balance < floor) {
              if (!low.has(k)) logger.warn({ network: n.network, signer: x.account.address, balance: balance.toString() }, "signer below minSignerBalanceWei; not used");
              low.set(k, balance);
            } else low.delete(k);
          } catch (e) {
            logger.warn({ network: n.network, err: safeMessage(e) }, "signer balance check failed");
          }
        }),
      ),
    );
  }

  function scheduleBalances() {
    if (floor === undefined) return;
    balanceTimer = setTimeout(() => void checkBalances().finally(scheduleBalances), s.balanceCheckMs);
    balanceTimer.unref?.();
  }

  const readinessProbes: ReadinessProbe[] = config.networks.map((n) => ({
    name: `signers:${n.network}`,
    check: async () => {
      const lows = signers.filter((x) => low.has(`${n.network}|${x.address}`));
      if (lows.length > 0) {
        throw new Error(`signer(s) below minSignerBalanceWei ${floor}: ${lows.map((x) => `${x.account.address} (balance ${low.get(`${n.network}|${x.address}`)})`).join(", ")}`);
      }
      if (usable(n.network).length === 0) throw new Error("no fee-paying signer held by this instance");
    },
  }));

  // ---------------------------------------------------------------- reconciler

  /** Reads receipts only; never sends (its signer refuses). */
  const reader = createSettlementEngine({
    ...engineConfig(),
    onSubmitted: undefined,
    onFinal: undefined,
    signers: [
      {
        ...privateKeyToAccount(config.privateKeys[0] as Hex),
        signTransaction: async () => {
          throw new Error("the reconciler's engine never sends");
        },
      } as LocalAccount,
    ],
  });
  const reconciler = createReconciler({
    ledger,
    engineFor: (network) => (clients.has(network) ? reader : undefined),
    clientFor: (network) => clients.get(network),
    intervalMs: s.reconcileIntervalMs,
    dropAfterMs: s.dropAfterMs,
    logger,
  });

  return {
    scheme,
    readinessProbes,
    leases,
    reconciler,
    async start() {
      // A single-process store: every claim in it belongs to a previous run of this process.
      if (ledger.dialect === "pglite") {
        const released = await ledger.releaseClaims();
        if (released > 0) logger.info({ released }, "released settlement claims of a previous run");
      }
      await leases.start();
      await checkBalances();
      scheduleBalances();
      reconciler.start();
    },
    async close(timeoutMs = 15_000) {
      clearTimeout(balanceTimer);
      await engine.close({ timeoutMs });
      await reader.close({ timeoutMs: 1 });
      await reconciler.close();
      await leases.close();
    },
    stats() {
      const st = engine.stats();
      const perSigner: Record<string, number> = {};
      for (const sg of st.signers) perSigner[sg.address] = (perSigner[sg.address] ?? 0) + sg.sent;
      return { transactions: st.transactions, replacements: st.replacements, items: st.items, perSigner };
    },
  };
}
