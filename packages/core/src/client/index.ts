export * from "./errors.ts";
export * from "./policy.ts";
export * from "./choose.ts";
export * from "./client.ts";
export * from "./authorizer.ts";
