
export * from "./payload.ts";
export * from "./client.ts";
export * from "./server.ts";
export * from "./facilitator.ts";
export { batchSettleItem, encodeBatchSettle, encodeTransferWithAuthorization, normalizeSignature, type AuthorizationFields, type EncodeOptions } from "./encode.ts";
export * from "./batch.ts";
export * from "./digest.ts";
export { decodeBatchSettleKeys } from "./abi-fast.ts";
export * from "./authenticate.ts";
export * from "./permit2-payload.ts";
export { randomPermit2Nonce, signExactPermit2Authorization, wantsPermit2 } from "./permit2-client.ts";
export { decodePermit2SettleKey, encodePermit2Settle, permit2RevertReason, type Eip2612Permit } from "./permit2-encode.ts";
export { permit2Digest } from "./facilitator/permit2-check.ts";
export { exactEvmAuthorizationUnused, exactEvmSettlementOnChain, type ChainAccess, type ProveSettled, type ProveUnused } from "./authorization-state.ts";
