export * from "./recover.ts";
export * from "./keccak.ts";
