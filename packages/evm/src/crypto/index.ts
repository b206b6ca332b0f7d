export * from "./recover.ts";
