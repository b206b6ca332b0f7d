export * from "./constants.ts";
export * from "./chain.ts";
export { litesvmChain } from "./litesvm.ts";
export * from "./transaction.ts";
export * from "./local.ts";
export { exactSvmClient, type ExactSvmClientOptions, type ExactSvmPayload } from "./exact/client.ts";
export { exactSvmServer, type ExactSvmServerOptions } from "./exact/server.ts";
export { exactSvmFacilitator, type ExactSvmFacilitatorOptions } from "./exact/facilitator.ts";
export type { ChainSource } from "./exact/chains.ts";
