// x402 `batch-settlement` on EVM: shared EIP-712 encodings and wire types, and the facilitator face.
// (The client and resource-server faces live next to these files.)
export * from "./eip712.ts";
export { batchSettlementEvmFacilitator, type BatchSettlementFacilitator, type BatchSettlementFacilitatorOptions } from "./facilitator.ts";
export { readSnapshot as readChannelSnapshot, recoverPending as recoverBatchSettlementSends, type BatchChain, type BatchSettlementStore, type ChannelSnapshot, type OperationKind, type SentTransaction, type TransactionOutcome as BatchTransactionOutcome } from "./facilitator-chain.ts";
export { BatchReason, readBatchPayload, MAX_CLAIMS_PER_BATCH, type BatchPayload } from "./facilitator-payload.ts";
