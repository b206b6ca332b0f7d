#!/usr/bin/env node
// The installed package runs the compiled CLI (dist/) with plain node. In a checkout of the
// repository (sources present, no build) it runs the TypeScript sources through tsx instead.
import { existsSync } from "node:fs";

const source = new URL("../src/main.ts", import.meta.url);
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  await import(source.href);
} else {
  await import(new URL("../dist/main.js", import.meta.url).href);
}
