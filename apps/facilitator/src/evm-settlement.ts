/**
 * The EVM exact scheme backed by the settlement engine, made durable and shareable:
 *
 * - ONE engine per process holding every fee-paying key (one nonce lane per key and network), so
 *   all settlements share one queue and leave in large batches. Which lanes may take work is the
 *   engine's `signerUsable`: a held lease and a balance above the floor (schemes/evm-balances.ts).
 *   The signer wrapper (schemes/evm-signer.ts) stays the hard check (lease, generation, nonce
 *   floor) whatever the engine decides, and writes every transaction to the ledger before it is
 *   signed away (write-ahead).
 * - The engine's hooks (schemes/evm-hooks.ts): metrics, and results nobody waits for any more.
 * - The scheme answers /settle with the engine's result as a value: settled, failed (a mined one
 *   marked reverted in the ledger, its payer backed off), or pending with the hash in our
 *   `tollgate-settlement` extension. Whether an authorization may settle at all is the ledger
 *   claim's decision (the coordinator's), never this module's.
 * - The reconciler finishes pending rows from receipts, with the engine's receipt reader.
 * - Permit2 payments (the exact scheme's `submitPermit2`) take the same engine, lanes, guarded
 *   signer, write-ahead ledger and claim; each is one proxy call, sent alone (engine.submitPermit2).
 */
import { Reason, safeMessage, type Caller, type Network, type PaymentPayload, type PaymentRequirements, type SchemeFacilitator, type SettleResponse } from "@tollgate/core";
import {
  authorizationKey,
  createPayerBackoff,
  createSettlementEngine,
  exactEvmFacilitator,
  fastLocalAccount,
  uptoEvmFacilitator,
  isPermit2Payload,
  permit2PaymentKey,
  rpcTransportForUrl,
  settlementFailed,
  type ExactEvmSettlementCall,
  type ExactPermit2SettlementCall,
  type NonceFiller,
  type PayerBackoff,
  type SettlementEngine,
  type SettlementResult,
} from "@tollgate/evm";
import { createPublicClient, type Address, type Hex, type LocalAccount, type PublicClient } from "viem";
import type { ReadinessProbe } from "./readiness.ts";
import type { FacilitatorConfig } from "./config.ts";
import type { Ledger } from "./ledger/ledger.ts";
import type { Logger } from "./logger.ts";
import type { FacilitatorMetrics } from "./metrics.ts";
import { createReconciler, type Reconciler } from "./reconciler.ts";
import { createSignerBalances, type SignerBalances } from "./schemes/evm-balances.ts";
import { createEngineHooks } from "./schemes/evm-hooks.ts";
import { guardedSigner, type FeePayer } from "./schemes/evm-signer.ts";
import { allSignerLeases, createSignerLeases, type SignerLeases } from "./signer-leases.ts";

export interface EvmSettlementOptions {
  config: FacilitatorConfig;
  ledger: Ledger;
  logger: Logger;
  metrics: FacilitatorMetrics;
}

export interface EvmSettlement {
  scheme: SchemeFacilitator;
  /**
   * The `upto` scheme over the same engine and ledger. Its `/supported` kinds name the first key
   * as `facilitatorAddress`: payers sign for it, and only its lane can send their settlements.
   */
  upto: SchemeFacilitator;
  readinessProbes: ReadinessProbe[];
  leases: SignerLeases;
  reconciler: Reconciler;
  /** Payers refused for a while after a settlement of theirs reverted on chain. */
  backoff: PayerBackoff;
  /** Takes leases, reads balances, resumes pending settlements from the ledger. */
  start(): Promise<void>;
  /** Lets in-flight transactions finish (bounded), stops the reconciler, frees the leases. */
  close(timeoutMs?: number): Promise<void>;
  /** Transactions sent by this process (first sends), per signer. */
  stats(): { transactions: number; replacements: number; items: number; perSigner: Record<string, number> };
}

export function createEvmSettlement(options: EvmSettlementOptions): EvmSettlement {
  const { config, ledger, logger, metrics } = options;
  const s = config.settlement;
  const networks = config.networks.map((n) => n.network);
  // node:http keep-alive JSON-RPC (several times cheaper per call than viem's http()). The config
  // accepts ws(s) URLs: those go over viem's webSocket() (viem's http() could not reach them at all).
  const clients = new Map<string, PublicClient>(config.networks.map((n) => [n.network, createPublicClient({ transport: rpcTransportForUrl(n.rpcUrl, { batch: true }) }) as PublicClient]));
  const clientFor = (network: string) => clients.get(network);
  // libsecp256k1 signing: one signature per batch over large calldata, on the request thread.
  const payers: FeePayer[] = config.privateKeys.map((k) => {
    const account = fastLocalAccount(k as Hex);
    return { account, address: account.address.toLowerCase(), lanes: new Map() };
  });
  const leases =
    ledger.dialect === "postgres"
      ? createSignerLeases({ sql: ledger.sql, schema: ledger.schema, networks, signers: payers.map((x) => x.address), ttlMs: config.signerLeaseMs, logger })
      : allSignerLeases(payers.map((x) => x.address));
  const floor = config.minSignerBalanceWei !== undefined ? BigInt(config.minSignerBalanceWei) : undefined;
  const balances = createSignerBalances({ payers, networks, leases, clientFor, floor, intervalMs: s.balanceCheckMs, logger });
  const backoff = createPayerBackoff({ backoffMs: s.payerBackoffMs });
  /** Authorizations whose /settle waits on the engine now (with a count): their results are the coordinator's to store. */
  const awaiting = new Map<string, number>();
  const engine = createEngine(config, payers, { leases, ledger, clientFor, balances, logger, hooks: createEngineHooks({ ledger, metrics, backoff, awaiting, clientFor }) });

  metrics.registry.gauge("tollgate_settlement_transactions_in_flight", "Settlement transactions sent and not yet final, per signer", () =>
    engine.stats().signers.map((st) => ({ labels: { network: st.network, address: st.address }, value: st.inFlight })),
  );

  const schemeDeps = { config, ledger, engine, balances, backoff, awaiting, signers: payers.map((p) => p.account.address), reader: payers[0]!.account };
  const scheme = engineScheme(schemeDeps);
  const upto = engineUptoScheme(schemeDeps);
  const reconciler = createReconciler({
    ledger,
    clientFor,
    intervalMs: s.reconcileIntervalMs,
    dropAfterMs: s.dropAfterMs,
    logger,
    // A nonce written ahead but maybe never broadcast gets used, so the rule "consumed, no receipt" can settle it.
    consumeNonce: (network, signer, nonce) => engine.consumeNonce(network as Network, signer, nonce),
  });

  return {
    scheme,
    upto,
    readinessProbes: balances.readinessProbes(networks),
    leases,
    reconciler,
    backoff,
    async start() {
      // A single-process store: every claim in it belongs to a previous run of this process.
      if (ledger.dialect === "pglite") {
        const released = await ledger.releaseClaims();
        if (released > 0) logger.info({ released }, "released settlement claims of a previous run");
      }
      await leases.start();
      await balances.start();
      reconciler.start();
    },
    async close(timeoutMs = 15_000) {
      balances.stop();
      await engine.close({ timeoutMs });
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

interface EngineDeps {
  leases: SignerLeases;
  ledger: Ledger;
  clientFor(network: string): PublicClient | undefined;
  balances: SignerBalances;
  logger: Logger;
  hooks: ReturnType<typeof createEngineHooks>;
}

/** Every key in one engine: one queue per token, so concurrent settlements share transactions. */
function createEngine(config: FacilitatorConfig, payers: readonly FeePayer[], deps: EngineDeps): SettlementEngine & NonceFiller {
  const s = config.settlement;
  return createSettlementEngine({
    networks: config.networks.map((n) => ({ network: n.network as Network, rpcUrl: n.rpcUrl, ...(n.batchSettler ? { batchSettler: n.batchSettler as Address } : {}) })),
    signers: payers.map((p) => guardedSigner(p, deps)),
    batching: s.batching,
    // Required by the scheme's settleDryRun: false: the engine's simulation is the dry run.
    preflight: true,
    maxBatchSize: s.maxBatchSize,
    maxWaitMs: s.maxWaitMs,
    receiptTimeoutMs: s.receiptTimeoutMs,
    ...(s.pollingIntervalMs !== undefined ? { pollingIntervalMs: s.pollingIntervalMs } : {}),
    ...(s.maxFeePerGasWei !== undefined ? { maxFeePerGasCap: BigInt(s.maxFeePerGasWei) } : {}),
    ...(s.maxGasPerSettlement !== undefined ? { maxGasPerSettlement: BigInt(s.maxGasPerSettlement) } : {}),
    replacement: s.bumpAfterMs !== undefined ? { bumpAfterMs: s.bumpAfterMs } : false,
    onSubmitted: deps.hooks.onSubmitted,
    onFinal: deps.hooks.onFinal,
    onError: (e: unknown, context: string) => deps.logger.warn({ context, err: safeMessage(e) }, "settlement engine"),
    // Cheap on purpose: asked on every dispatch. A key refused and usable again has its nonce
    // re-read by the engine; the signer wrapper double-checks the lease before every signature.
    signerUsable: (signer, network) => deps.balances.usable(network, signer.toLowerCase()),
  });
}

interface EngineSchemeDeps {
  config: FacilitatorConfig;
  ledger: Ledger;
  engine: SettlementEngine;
  balances: SignerBalances;
  backoff: PayerBackoff;
  awaiting: Map<string, number>;
  signers: readonly Address[];
  reader: LocalAccount;
}

/** Permit2 proxy calls (exact and upto): the same engine, lanes, guarded signer, ledger and receipt rules as EIP-3009. */
function permit2Submitter(deps: EngineSchemeDeps): (call: ExactPermit2SettlementCall) => Promise<SettlementResult> {
  const { ledger, engine, balances } = deps;
  return async (call) => {
    if (!balances.anyUsable(call.network)) return settlementFailed(Reason.facilitatorNotReady, balances.notReadyMessage(call.network));
    const result = await engine.submitPermit2(call);
    if (result.status === "failed" && result.transaction) await ledger.markOutcomes(result.transaction, [{ key: call.key, outcome: "reverted" }]);
    return result;
  };
}

/** The scheme options the service sets the same way for every EVM scheme it serves. */
function schemeOptions(deps: EngineSchemeDeps) {
  const { config } = deps;
  return {
    networks: config.networks.map((n) => ({
      network: n.network as `eip155:${string}`,
      rpcUrl: n.rpcUrl,
      ...(n.assets ? { assets: n.assets.map((a) => ({ ...a, address: a.address as Address })) } : {}),
      ...(n.contractWallets !== undefined ? { contractWallets: n.contractWallets } : {}),
    })),
    // Only the `from` of the scheme's reads here: the engine signs and sends.
    signer: deps.reader,
    payerBackoff: deps.backoff,
    ...(config.settlement.maxGasPerSettlement !== undefined ? { maxGasPerSettlement: BigInt(config.settlement.maxGasPerSettlement) } : {}),
    // The engine simulates what it sends (see engineScheme).
    settleDryRun: false,
    receiptTimeoutMs: config.settlement.receiptTimeoutMs,
    submitPermit2: permit2Submitter(deps),
  };
}

/**
 * `upto` over the shared engine: its settlements are upto proxy calls sent from the lane of the
 * advertised facilitator address (payers[0]), written ahead and reconciled like exact's Permit2.
 */
function engineUptoScheme(deps: EngineSchemeDeps): SchemeFacilitator {
  return withServiceRefusals(deps, uptoEvmFacilitator(schemeOptions(deps)));
}

/** The exact scheme over the shared engine (its submit hook), with the service's own refusals. */
function engineScheme(deps: EngineSchemeDeps): SchemeFacilitator {
  const { ledger, engine, balances } = deps;

  async function submit(call: ExactEvmSettlementCall): Promise<SettlementResult> {
    if (!balances.anyUsable(call.network)) return settlementFailed(Reason.facilitatorNotReady, balances.notReadyMessage(call.network));
    const result = await engine.submit(call);
    // Mined, and this authorization did not settle: recorded so it is never claimed and sent again.
    if (result.status === "failed" && result.transaction) {
      await ledger.markOutcomes(result.transaction, [{ key: authorizationKey(call.network, call.asset, call.authorization.from, call.authorization.nonce), outcome: "reverted" }]);
    }
    return result;
  }

  // settleDryRun: false (schemeOptions): the engine simulates every transaction before sending it
  // (eth_simulateV1 preflight, or eth_call + estimateGas) and leaves out, with the token's reason,
  // any authorization that would revert; so settle keeps every other check (signature,
  // requirements, balance, nonce state, domain; a contract wallet's fee-field dry run) and skips
  // only its own fee-less dry run. Permit2 proxy calls go through the same engine (never the
  // scheme's built-in sender, which would bypass the lanes and the write-ahead log).
  const inner = exactEvmFacilitator({ ...schemeOptions(deps), submit });
  return withServiceRefusals(deps, inner);
}

/** The service's own refusals around a scheme: no usable fee payer, and routing the engine's result to the waiting /settle. */
function withServiceRefusals(deps: EngineSchemeDeps, inner: SchemeFacilitator): SchemeFacilitator {
  const { balances, awaiting } = deps;
  return {
    ...inner,
    signers: (network) => (inner.networks.includes(network) ? [...deps.signers] : []),
    async settle(payload: PaymentPayload, requirements: PaymentRequirements, caller?: Caller): Promise<SettleResponse> {
      const network = requirements.network;
      if (inner.networks.includes(network as Network) && !balances.anyUsable(network)) {
        // Refused before any chain call: nothing could be sent anyway.
        const from = payerClaimed(payload);
        return { success: false, errorReason: Reason.facilitatorNotReady, errorMessage: balances.notReadyMessage(network), transaction: "", network, ...(typeof from === "string" ? { payer: from } : {}) };
      }
      const key = keyOf(payload, requirements);
      if (key) awaiting.set(key, (awaiting.get(key) ?? 0) + 1);
      try {
        return await inner.settle(payload, requirements, caller);
      } finally {
        if (key) {
          const n = awaiting.get(key)! - 1;
          if (n > 0) awaiting.set(key, n);
          else awaiting.delete(key);
        }
      }
    },
  };
}

type ClaimedAuthorization = { from?: unknown; nonce?: unknown };

/** The payer a payload claims (unverified), EIP-3009 or Permit2. */
function payerClaimed(payload: PaymentPayload): string | undefined {
  const p = payload.payload as { authorization?: ClaimedAuthorization; permit2Authorization?: ClaimedAuthorization } | undefined;
  const from = p?.authorization?.from ?? p?.permit2Authorization?.from;
  return typeof from === "string" ? from : undefined;
}

/** The settle-once key a payload names (unverified; only used to route its engine result). */
function keyOf(payload: PaymentPayload, requirements: PaymentRequirements): string | undefined {
  const p = payload.payload as { authorization?: ClaimedAuthorization; permit2Authorization?: ClaimedAuthorization } | undefined;
  if (typeof requirements.asset !== "string") return undefined;
  if (isPermit2Payload(p)) {
    const a = p?.permit2Authorization;
    if (typeof a?.from !== "string" || typeof a.nonce !== "string" || !/^[0-9]{1,78}$/.test(a.nonce)) return undefined;
    return permit2PaymentKey(requirements.network, requirements.asset, a.from, a.nonce);
  }
  const auth = p?.authorization;
  if (typeof auth?.from !== "string" || typeof auth.nonce !== "string") return undefined;
  return authorizationKey(requirements.network, requirements.asset, auth.from, auth.nonce);
}

