export * from "./bazaar.ts";
export * from "./catalog-types.ts";
export * from "./client.ts";
export * from "./extension-responses.ts";
export * from "./route-template.ts";
export * from "./service-metadata.ts";
