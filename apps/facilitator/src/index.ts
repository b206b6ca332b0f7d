export { createFacilitatorApp, DEFAULT_BODY_LIMIT, type FacilitatorApp, type FacilitatorAppOptions, type ReadinessProbe } from "./app.ts";
export { startFacilitator, type RunningFacilitator, type StartFacilitatorOptions } from "./start.ts";
export { ConfigError, configSchema, loadConfig, parseConfig, redactConfig, type FacilitatorConfig, type FacilitatorConfigInput, type LoadConfigOptions } from "./config.ts";
export {
  createLedger,
  LATEST_MIGRATION,
  type ClaimResult,
  type Ledger,
  type LedgerEvent,
  type LedgerOptions,
  type PaymentEntry,
  type PaymentRecord,
  type PaymentStatus,
  type PaymentTransaction,
  type SettlementResult,
  type TransactionOutcomeState,
} from "./ledger/ledger.ts";
export { pgliteSql, postgresSql, type PgliteOptions, type PostgresOptions, type Sql, type SqlExecutor } from "./ledger/sql.ts";
export { createLogger, type Logger, type LoggerOptions } from "./logger.ts";
export { createMetrics, createRegistry, type FacilitatorMetrics, type FacilitatorMetricsOptions, type Registry, type SignerBalance } from "./metrics.ts";
export { createRateLimiter, type BucketLimit, type RateLimiter } from "./rate-limit.ts";
export { createSettlementCoordinator, type SettlementCoordinator, type SettleOutcome } from "./settle.ts";
export { amountRefusal, identifyPayment, paymentIdentifier, requestHash, PAYMENT_IDENTIFIER } from "./payment.ts";
export { createEvmSettlement, type EvmSettlement, type EvmSettlementOptions } from "./evm-settlement.ts";
export { createReconciler, settledResponse, type Reconciler, type ReconcilerOptions } from "./reconciler.ts";
export { allSignerLeases, createSignerLeases, type SignerLeaseOptions, type SignerLeases } from "./signer-leases.ts";
export { duplicateResponse, pendingResponse, replayResponse, SETTLEMENT_EXTENSION, settlementResult, type SettlementExtension } from "./answers.ts";
