export { createSettlementEngine, detectPollingInterval, SettlementError } from "./engine.ts";
export { itemStatus, outcomeFromReceipt, reasonFromRevertData } from "./receipt.ts";
export type * from "./types.ts";
