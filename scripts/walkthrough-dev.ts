/**
 * "A person tries it", scripted: starts `npx tollgate dev` as a child process the way a user
 * would, opens the operator dashboard in Chromium, opens the paid URL in another tab with a test
 * wallet holding the dev chain's first payer key (the dev command prints it), pays, waits for the
 * content, then watches the payment arrive in the dashboard's live list. Screenshots:
 *
 *   docs/screenshots/dev-paywall-paid.png   the paid page: content and transaction
 *   docs/screenshots/dev-dashboard.png      the dashboard with that payment, live
 *
 * Run: npx tsx scripts/walkthrough-dev.ts
 *
 * The ports are free ones picked here (passed as `tollgate dev` flags), so it runs next to another
 * `tollgate dev`; its state file goes to a temporary XDG_CONFIG_HOME for the same reason. Needs
 * Debian's Chromium (CHROMIUM_PATH, default /usr/bin/chromium) and anvil, like the browser tests.
 * Exits 0 when the payment was seen in both places; everything it started is stopped either way.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import type { Hex } from "viem";
import { chromiumAvailable, launchChromium } from "../test/support/browser.ts";
import { injectTestWallet } from "../test/support/injected-wallet.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const SHOTS = join(ROOT, "docs/screenshots");
const DESKTOP = { width: 1280, height: 900 };
const START_TIMEOUT_MS = 90_000;

/** What `tollgate dev --json` prints first (apps/cli/src/commands/dev.ts `describe`), the parts used here. */
interface DevDescription {
  dashboardUrl: string;
  paidUrl: string;
  evm: { network: string; chainId: number; rpcUrl: string; payee: string; payers: Array<{ address: string; privateKey: Hex }> };
}

export interface WalkthroughResult {
  transaction: string;
  content: string;
  screenshots: string[];
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

interface RunningDev {
  child: ChildProcess;
  description: DevDescription;
  /** Every line it printed (payments included). */
  lines: string[];
  stop(): Promise<void>;
}

/** `npx tollgate dev --json` with its own ports; resolves once it printed its description. */
async function startDev(log: (line: string) => void): Promise<RunningDev> {
  const [api, chain, solana, facilitator] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const args = ["tollgate", "dev", "--json", "--port", String(api), "--chain-port", String(chain), "--solana-port", String(solana), "--facilitator-port", String(facilitator)];
  log(`$ npx ${args.join(" ")}`);
  const config = mkdtempSync(join(tmpdir(), "tollgate-walkthrough-"));
  // Its own process group: stopping it stops npx, the CLI and anvil together, and nothing else.
  const child = spawn("npx", args, { cwd: ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, XDG_CONFIG_HOME: config } });
  const lines: string[] = [];
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  async function stop(): Promise<void> {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid!, "SIGINT");
      } catch {
        // Already gone.
      }
      const killed = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 15_000).unref())]);
      if (!killed) {
        try {
          process.kill(-child.pid!, "SIGKILL");
        } catch {
          // Already gone.
        }
        await exited;
      }
    }
    rmSync(config, { recursive: true, force: true });
  }

  const description = await new Promise<DevDescription>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tollgate dev printed no description within ${START_TIMEOUT_MS / 1000} s; stderr: ${stderr}`)), START_TIMEOUT_MS);
    let buffered = "";
    child.stdout!.on("data", (d: Buffer) => {
      buffered += d.toString();
      let i: number;
      while ((i = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, i);
        buffered = buffered.slice(i + 1);
        lines.push(line);
        try {
          const value = JSON.parse(line) as Partial<DevDescription> & { event?: string; line?: string };
          if (value.event === "payment") log(`  tollgate dev: ${value.line}`);
          else if (typeof value.paidUrl === "string") {
            clearTimeout(timer);
            resolve(value as DevDescription);
          }
        } catch {
          // Not JSON (a log line): kept in `lines`.
        }
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`tollgate dev exited (code ${child.exitCode}, signal ${child.signalCode}); stderr: ${stderr}`));
    });
  }).catch(async (e) => {
    await stop();
    throw e;
  });
  return { child, description, lines, stop };
}

async function waitForState(page: Page, state: string, timeout = 20_000): Promise<void> {
  try {
    await page.locator(`#tollgate-pay[data-state="${state}"]`).waitFor({ timeout });
  } catch {
    const actual = await page.locator("#tollgate-pay").getAttribute("data-state");
    throw new Error(`paywall: expected state ${state}, page is in ${actual}: ${await page.locator("#tg-status").textContent()}`);
  }
}

export async function walkthrough(log: (line: string) => void = (l) => console.log(l)): Promise<WalkthroughResult> {
  if (!chromiumAvailable()) throw new Error("Chromium not found (set CHROMIUM_PATH)");
  mkdirSync(SHOTS, { recursive: true });
  const dev = await startDev(log);
  const browser = await launchChromium().catch(async (e) => {
    await dev.stop();
    throw e;
  });
  try {
    const d = dev.description;
    const payer = d.evm.payers[0]!;
    log(`tollgate dev is up: paid URL ${d.paidUrl}, dashboard ${d.dashboardUrl}, paying from ${payer.address}`);
    const context = await browser.browser.newContext({ viewport: DESKTOP });

    // The dashboard first, so the payment arrives while it is open (its live list is the stream).
    const dashboard = await context.newPage();
    const opened = await dashboard.goto(d.dashboardUrl);
    if (opened?.status() !== 200) throw new Error(`dashboard: HTTP ${opened?.status()} (tollgate dev sets no API keys: it is served to this machine)`);
    await dashboard.waitForSelector("#live.on", { timeout: 15_000 });
    log("dashboard open, live stream connected");

    // The paid URL in another tab, with the wallet: 402 and the paywall page, connect, pay.
    const shop = await context.newPage();
    await injectTestWallet(shop, { privateKey: payer.privateKey, chainId: d.evm.chainId, rpcUrl: d.evm.rpcUrl });
    const first = await shop.goto(d.paidUrl);
    if (first?.status() !== 402) throw new Error(`paid URL: expected 402 with the paywall page, got ${first?.status()}`);
    await shop.getByRole("button", { name: "Connect Tollgate Test Wallet" }).click();
    await waitForState(shop, "ready");
    await shop.locator("#tg-pay-button").click();
    await waitForState(shop, "paid");
    const content = (await shop.locator("#tg-result pre").textContent()) ?? "";
    const transaction = ((await shop.locator("#tg-transaction code").textContent()) ?? "").trim();
    if (!/^0x[0-9a-f]{64}$/i.test(transaction)) throw new Error(`paid page shows no transaction hash: ${JSON.stringify(transaction)}`);
    log(`paid: transaction ${transaction}; content ${content.replace(/\s+/g, " ")}`);
    const paidShot = join(SHOTS, "dev-paywall-paid.png");
    await shop.screenshot({ path: paidShot, fullPage: true });

    // Back to the dashboard: the settlement shows up live, and the overview counts it.
    await dashboard.bringToFront();
    await dashboard.waitForSelector(`#live-table tr[data-outcome="settled"][data-transaction="${transaction}"]`, { timeout: 15_000 });
    await dashboard.waitForSelector('#kpis[data-settled="1"]', { timeout: 15_000 });
    log("dashboard: the payment is in the live list and counted in the overview");
    const dashShot = join(SHOTS, "dev-dashboard.png");
    await dashboard.screenshot({ path: dashShot, fullPage: true });
    await context.close();
    return { transaction, content, screenshots: [paidShot, dashShot] };
  } finally {
    await browser.close();
    await dev.stop();
    log("stopped tollgate dev and Chromium");
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = Date.now();
  walkthrough()
    .then((r) => {
      console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots:\n  ${r.screenshots.join("\n  ")}`);
    })
    .catch((e) => {
      console.error(`walkthrough failed: ${e instanceof Error ? e.message : String(e)}`);
      process.exitCode = 1;
    });
}
