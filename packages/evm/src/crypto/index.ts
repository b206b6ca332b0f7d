export * from "./recover.ts";
export * from "./keccak.ts";
export * from "./sign.ts";
export * from "./transaction.ts";
