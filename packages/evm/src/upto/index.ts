// upto scheme on EVM (Permit2): pay at most X; the resource server charges the actual amount.
export { uptoEvmClient, signUptoPermit2Authorization, type UptoEvmClientOptions } from "./client.ts";
export { uptoEvmServer, type UptoEvmServerOptions } from "./server.ts";
export { uptoEvmFacilitator, type UptoEvmFacilitatorConfig } from "./facilitator.ts";
export { parseUptoPermit2Payload, uptoPermit2PayloadSchema, UptoReason, type UptoPermit2Payload } from "./payload.ts";
export { encodeUptoSettle } from "./encode.ts";
export { uptoSettleAmount, type UptoSettleAmount } from "./charge.ts";
