/**
 * The dashboard's static files: its own script and styles (next to this module, shipped in the
 * package) and uPlot's, resolved from the installed `uplot` package at run time. Served from the
 * facilitator's origin: the page loads nothing from anywhere else.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DASHBOARD_CSS } from "./styles.ts";

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));

function uplotFile(name: string): string {
  // `uplot/package.json` is not exported; its main entry (dist/uPlot.cjs.js) sits next to the others.
  return join(dirname(require.resolve("uplot")), name);
}

const FILES: Record<string, { path: () => string; type: string }> = {
  "dashboard.js": { path: () => join(here, "dashboard-client.js"), type: "text/javascript; charset=utf-8" },
  
  "uPlot.iife.min.js": { path: () => uplotFile("uPlot.iife.min.js"), type: "text/javascript; charset=utf-8" },
  "uPlot.min.css": { path: () => uplotFile("uPlot.min.css"), type: "text/css; charset=utf-8" },
};

const cache = new Map<string, Promise<string>>();

/** A known file's content and type; undefined for any other name (no path is taken from the request). */
export async function readAsset(name: string): Promise<{ body: string; type: string } | undefined> {
  if (name === "dashboard.css") return { body: DASHBOARD_CSS, type: "text/css; charset=utf-8" };
  if (!Object.hasOwn(FILES, name)) return undefined;
  const file = FILES[name]!;
  let body = cache.get(name);
  if (!body) {
    body = readFile(file.path(), "utf8");
    cache.set(name, body);
    body.catch(() => cache.delete(name));
  }
  return { body: await body, type: file.type };
}
