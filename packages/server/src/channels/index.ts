export { admitChannel, type ChannelPipe } from "./admit.ts";
export { claimAndSettle, withSnapshot, type ClaimGroupResult, type ClaimOptions } from "./claim.ts";
export { fileChannelStore } from "./file-store.ts";
export { ChannelReason, channelStateOf, parseSnapshot, type ChannelSnapshot } from "./snapshot.ts";
export { localLeases, memoryChannelStore, type ChannelRecord, type ChannelStore } from "./store.ts";
export { admitChannelPayment, channelStoreOf } from "./pipe.ts";
export { MIN_WITHDRAW_DELAY_MS, settleChannelsEvery, type ChannelSettlement, type ChannelSettlementOptions } from "./auto-settle.ts";
export { sqlChannelStore, type SqlChannelStoreOptions, type SqlClient } from "./sql-store.ts";
export type { ChannelLeases } from "./store.ts";
