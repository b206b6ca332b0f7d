/**
 * Runs the facilitator as a process: ledger (migrated), schemes from the config, the HTTP
 * app on node, and a graceful close that stops accepting, lets in-flight settlements finish
 * (a settlement cut in half is the expensive kind of bug), then closes the store.
 */
import type { AddressInfo } from "node:net";
import { createFacilitator, describeNetworkError, hostOf, safeMessage, type SchemeFacilitator } from "@tollgate/core";
import { privateKeyToAccount } from "viem/accounts";
import type { DestinationStream } from "pino";
import { createFacilitatorApp, type FacilitatorApp } from "./app.ts";
import { apiKeySecret } from "./payment-routes.ts";
import { runProbes, type ReadinessProbe } from "./readiness.ts";
import { createFacilitatorServer } from "./server.ts";
import { parseConfig, redactConfig, type FacilitatorConfig, type FacilitatorConfigInput } from "./config.ts";
import { createEvmSettlement, type EvmSettlement } from "./evm-settlement.ts";
import { EIP2612_GAS_SPONSORING, ERC20_APPROVAL_GAS_SPONSORING } from "@tollgate/evm";
import { createLedger, type Ledger } from "./ledger/ledger.ts";
import { createLogger, type Logger } from "./logger.ts";
import { createMetrics, type SignerBalance } from "./metrics.ts";
import { dashboardOptionsFrom } from "./dashboard/options.ts";
import { mandateOptionsFrom } from "./mandates.ts";
import { PAYMENT_IDENTIFIER } from "./payment.ts";
import { buildSvmSchemes, solanaReadinessProbes, solanaSignerBalances } from "./schemes/svm.ts";
import { createBatchSettlementService, type BatchSettlementService } from "./schemes/batch-settlement.ts";
import { createApprovalSponsorService, type ApprovalSponsorService } from "./schemes/erc20-approval-sponsor.ts";

export interface StartFacilitatorOptions {
  /** Schemes to serve instead of the ones built from `config.networks` (tests, embedding). */
  schemes?: SchemeFacilitator[];
  /** A ledger to use instead of opening one from the config (not closed by close()). */
  ledger?: Ledger;
  logger?: Logger;
  /** Where the built-in logger writes (default stdout). */
  logDestination?: DestinationStream;
}

export interface RunningFacilitator {
  url: string;
  port: number;
  config: FacilitatorConfig;
  app: FacilitatorApp;
  ledger: Ledger;
  logger: Logger;
  /** The EVM settlement engine(s), signer leases and reconciler (when EVM networks are configured). */
  settlement?: EvmSettlement;
  /** The batch-settlement service (its relayer's lease), when configured. */
  batchSettlement?: BatchSettlementService;
  /** The gas sponsoring service (its sponsor key's lease), when configured. */
  sponsoring?: ApprovalSponsorService;
  /** Stops accepting, waits for in-flight requests (bounded by shutdownTimeoutMs), closes the store. */
  close(): Promise<void>;
}

export async function startFacilitator(input: FacilitatorConfigInput | FacilitatorConfig = {}, options: StartFacilitatorOptions = {}): Promise<RunningFacilitator> {
  const config = parseConfig(input);
  const logger =
    options.logger ?? createLogger({ level: config.logLevel, secrets: [...config.privateKeys, ...config.apiKeys.map(apiKeySecret), ...(config.gasSponsoring ? [config.gasSponsoring.sponsorKey] : []), ...(config.batchSettlement ? [config.batchSettlement.relayerKey, ...(config.batchSettlement.receiverAuthorizerKey ? [config.batchSettlement.receiverAuthorizerKey] : [])] : []), ...(config.solanaFeePayerKey ? [config.solanaFeePayerKey] : [])], ...(options.logDestination ? { destination: options.logDestination } : {}) });

  const ledger =
    options.ledger ??
    (await createLedger({ schema: config.databaseSchema, ...(config.databaseUrl ? { databaseUrl: config.databaseUrl } : config.dataDir ? { dataDir: config.dataDir } : {}) }));
  const ownsLedger = !options.ledger;
  const signerAddresses = config.privateKeys.map((k) => privateKeyToAccount(k as `0x${string}`).address);
  const feePayerBalances = async () => [...(await signerBalances(config, signerAddresses)), ...(await solanaSignerBalances(config, schemes))];
  const metrics = createMetrics({ signerBalances: feePayerBalances });
  const settlement = !options.schemes && config.networks.length > 0 ? createEvmSettlement({ config, ledger, logger, metrics }) : undefined;
  const batchSettlement = !options.schemes ? createBatchSettlementService(config, ledger, logger) : undefined;
  // erc20ApprovalGasSponsoring: only with a sponsor key; it wraps the Permit2 schemes, exact and
  // upto (funds, approves, then settles; upto for the charge, never for a zero one).
  const sponsoring = settlement ? createApprovalSponsorService(config, ledger, logger) : undefined;
  const sponsored = (scheme: SchemeFacilitator) => (sponsoring ? sponsoring.wrap(scheme) : scheme);
  const schemes = options.schemes ?? [...(settlement ? [sponsored(settlement.scheme), sponsored(settlement.upto)] : []), ...(batchSettlement ? [batchSettlement.scheme] : []), ...(await buildSvmSchemes(config))];

  // eip2612GasSponsoring: the EVM schemes' Permit2 payments may carry the payer's EIP-2612 permit,
  // submitted with the settlement (settleWithPermit), the fee payer paying the approval's gas.
  const facilitator = createFacilitator({ schemes, extensions: [PAYMENT_IDENTIFIER, ...(settlement ? [EIP2612_GAS_SPONSORING] : []), ...(sponsoring ? [ERC20_APPROVAL_GAS_SPONSORING] : [])] });
  const chainProbes: ReadinessProbe[] = [...config.networks.map((n) => ({ name: `chain:${n.network}`, check: () => checkChain(n.rpcUrl, n.network) })), ...solanaReadinessProbes(config)];
  const readinessProbes: ReadinessProbe[] = [...chainProbes, ...(settlement?.readinessProbes ?? [])];

  const app = createFacilitatorApp({
    facilitator,
    ledger,
    logger,
    metrics,
    apiKeys: config.apiKeys,
    rateLimit: config.rateLimit,
    ...(config.minAmount !== undefined ? { minAmount: BigInt(config.minAmount) } : {}),
    bodyLimitBytes: config.bodyLimitBytes,
    readinessProbes,
    settle: config.settle,
    trustProxy: config.trustProxy,
    dashboard: config.dashboard ? dashboardOptionsFrom(config, feePayerBalances) : false,
    mandates: config.mandates === false ? false : mandateOptionsFrom(config.mandates),
  });

  const server = createFacilitatorServer(app, { trustProxy: config.trustProxy });
  let inFlight = 0;
  let drained: (() => void) | undefined;
  server.on("request", (_req, res) => {
    inFlight++;
    res.once("close", () => {
      inFlight--;
      if (inFlight === 0) drained?.();
    });
  });
  try {
    await warnAtStart(logger, schemes, chainProbes);
    // Leases, balances, and pending settlements of a previous run resumed, before taking traffic.
    await settlement?.start();
    await batchSettlement?.start();
    await sponsoring?.start();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(config.port, config.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (e) {
    await settlement?.close(0).catch(() => {});
    await batchSettlement?.close().catch(() => {});
    await sponsoring?.close().catch(() => {});
    if (ownsLedger) await ledger.close().catch(() => {});
    throw e;
  }
  const port = (server.address() as AddressInfo).port;
  const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`;
  logger.info({ url, store: ledger.dialect, networks: facilitator.supported().kinds.map((k) => `${k.scheme}@${k.network}`) }, "facilitator listening");
  logger.debug({ config: redactConfig(config) }, "facilitator configuration");

  let closing: Promise<void> | undefined;
  async function close() {
    closing ??= (async () => {
      logger.info({ inFlight }, "facilitator shutting down");
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      app.dashboard?.close(); // open live streams would otherwise hold the close for shutdownTimeoutMs
      server.closeIdleConnections();
      if (inFlight > 0) {
        await Promise.race([new Promise<void>((r) => (drained = r)), new Promise((r) => setTimeout(r, config.shutdownTimeoutMs).unref())]);
      }
      server.closeAllConnections();
      await stopped;
      // Frees the relayer's and the sponsor's leases: another instance takes them at once.
      await batchSettlement?.close().catch((e) => logger.error({ err: safeMessage(e) }, "closing batch settlement failed"));
      await sponsoring?.close().catch((e) => logger.error({ err: safeMessage(e) }, "closing gas sponsoring failed"));
      await settlement?.close(config.shutdownTimeoutMs).catch((e) => logger.error({ err: safeMessage(e) }, "closing the settlement engine failed"));
      await app.audit.drain();
      if (ownsLedger) await ledger.close().catch((e) => logger.error({ err: safeMessage(e) }, "closing the store failed"));
      logger.info("facilitator stopped");
    })();
    return closing;
  }

  return { url, port, config, app, ledger, logger, close, ...(settlement ? { settlement } : {}), ...(batchSettlement ? { batchSettlement } : {}), ...(sponsoring ? { sponsoring } : {}) };
}

/**
 * Said once at start, not discovered by the first payment: no network at all (every payment is
 * refused), and each dependency that does not answer (an RPC down or on the wrong chain, a fee
 * payer without gas). The facilitator still starts: an RPC may come back, and /ready tells.
 */
async function warnAtStart(logger: Logger, schemes: readonly SchemeFacilitator[], probes: readonly ReadinessProbe[]): Promise<void> {
  if (schemes.every((s) => s.networks.length === 0)) {
    logger.warn("no network is configured: every /verify and /settle will be refused; configure `networks` (EVM) or `solana` and restart");
  }
  for (const [name, result] of await runProbes(probes, 3_000)) {
    if (result !== "ok") logger.warn({ check: name, err: result }, `${name} is not answering at start; payments that need it are refused until it does (GET /ready reports it)`);
  }
}

/** One JSON-RPC call. Errors name the RPC's host only: its URL may carry an API key. */
async function rpc(url: string, method: string, params: unknown[] = [], timeoutMs = 3000): Promise<unknown> {
  const host = hostOf(url);
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    throw new Error(describeNetworkError(e, `RPC at ${host} (${method})`, host, timeoutMs).message);
  }
  if (!res.ok) throw new Error(`RPC at ${host} (${method}): HTTP ${res.status}`);
  const body = (await res.json()) as { result?: unknown; error?: { message?: string } };
  if (body.error) throw new Error(`${method}: ${String(body.error.message ?? "error").slice(0, 200)}`);
  return body.result;
}

/** The RPC answers, and for the chain the config names (a wrong RPC URL would sign for another chain). */
async function checkChain(rpcUrl: string, network: string): Promise<void> {
  const id = await rpc(rpcUrl, "eth_chainId");
  const expected = network.split(":")[1];
  if (typeof id !== "string" || BigInt(id).toString() !== expected) throw new Error(`RPC is on chain ${typeof id === "string" ? BigInt(id) : "?"}, expected ${expected}`);
}

async function signerBalances(config: FacilitatorConfig, addresses: string[]): Promise<SignerBalance[]> {
  const out: SignerBalance[] = [];
  await Promise.all(
    config.networks.flatMap((n) =>
      addresses.map(async (address) => {
        try {
          const hex = await rpc(n.rpcUrl, "eth_getBalance", [address, "latest"]);
          if (typeof hex === "string") out.push({ network: n.network, address, balance: BigInt(hex) });
        } catch {
          // Left out of this scrape; /ready reports the RPC.
        }
      }),
    ),
  );
  return out;
}
