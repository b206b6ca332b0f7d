/**
 * Debian's Chromium, driven by playwright-core, for the browser tests (paywall page, dashboard).
 * `.ci/run` installs the `chromium` package when it is missing; nothing is downloaded here.
 * The flags keep Chromium off the network (this machine's is closed) and off the GPU.
 */
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser } from "playwright-core";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM_PATH);
}

export interface LaunchedBrowser {
  browser: Browser;
  close(): Promise<void>;
}

/** A fresh browser (playwright gives it a new empty profile, removed on close). */
export async function launchChromium(): Promise<LaunchedBrowser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_FLAGS, headless: true });
  return {
    browser,
    async close() {
      await browser.close().catch(() => {});
    },
  };
}

/**
 * Where the browser tests save their screenshots: docs/screenshots (the README's pictures) only
 * when TOLLGATE_SCREENSHOTS=1 asks to refresh them, else a temporary folder, so `npm test` never
 * rewrites tracked files.
 */
export function screenshotDir(): string {
  if (process.env.TOLLGATE_SCREENSHOTS === "1") return fileURLToPath(new URL("../../docs/screenshots", import.meta.url));
  return join(tmpdir(), "tollgate-screenshots");
}
