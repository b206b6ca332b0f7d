// batch-settlement on EVM: the client and resource-server faces (shared encodings: eip712.ts).
export { batchSettlementEvmClient, CUMULATIVE_MISMATCH, type BatchSettlementClient, type BatchSettlementClientOptions, type BatchSettlementSigner, type ChannelReader, type ClientChannel } from "./client.ts";
export { batchSettlementEvmServer, readChannelPayload, type BatchSettlementServerOptions } from "./server.ts";
export { channelIdOf, fastVoucherSigner, voucherDigestBytes, voucherSigner } from "./client-typed-data.ts";
