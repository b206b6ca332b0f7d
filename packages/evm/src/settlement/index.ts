export { createSettlementEngine, detectPollingInterval, SettlementError } from "./engine.ts";
export { firstReceipt, itemStatus, outcomeFromReceipt, readSettlementOutcome, reasonFromRevertData, type ReadOutcomeOptions } from "./receipt.ts";
export { SETTLEMENT_EXTENSION, settleResponseOf, settlementFailed, type SettlementResult } from "./result.ts";
export type * from "./types.ts";
