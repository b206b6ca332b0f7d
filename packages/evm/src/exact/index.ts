
export * from "./payload.ts";
export * from "./client.ts";
export * from "./server.ts";
export * from "./facilitator.ts";
export { batchSettleItem, encodeBatchSettle, encodeTransferWithAuthorization, normalizeSignature, type AuthorizationFields, type EncodeOptions } from "./encode.ts";
export * from "./batch.ts";
export * from "./digest.ts";
export { decodeBatchSettleKeys } from "./abi-fast.ts";
export * from "./authenticate.ts";
