export { createSettlementEngine, detectPollingInterval, SettlementError } from "./engine.ts";
export {
  firstReceipt,
  itemStatus,
  outcomeFromReceipt,
  permit2Outcome,
  permit2ReceiptSettled,
  readPermit2Outcome,
  readSettlementOutcome,
  reasonFromRevertData,
  type Permit2ReceiptPayment,
  type ReadOutcomeOptions,
} from "./receipt.ts";
export { engineCallPayment, type EngineCallPayment } from "./call-payment.ts";
export { SETTLEMENT_EXTENSION, settleResponseOf, settlementFailed, type SettlementResult } from "./result.ts";
export type * from "./types.ts";
