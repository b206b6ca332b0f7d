// The facilitator's operator dashboard in a real browser (Debian's Chromium driven by
// playwright-core), over a real stack on anvil: OUR facilitator service (API keys on, so the
// login form is the way in), OUR hono server and OUR paying fetch. Checked: payments made while
// the page is open appear in it live (server-sent events read from the ledger), the uPlot chart
// is drawn, a search by transaction hash opens the ledger record with its explorer link, hostile
// ledger strings stay text, and the page asks nothing of any other origin. Screenshots go to
// docs/screenshots/dashboard-*.png (referenced from the README).
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BrowserContext, Page } from "playwright-core";
import { decodeBase64Json, httpFacilitatorClient, type SettleResponse } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { startFacilitator, type RunningFacilitator } from "@tollgate/facilitator";
import { chromiumAvailable, launchChromium, screenshotDir, type LaunchedBrowser } from "./support/browser.ts";
import { startTollgateServer, tollgateFetch, type TollgateServer } from "./support/tollgate.ts";

const KEY = "browser-dashboard-api-key-0123456789";
const EXPLORER = "https://explorer.invalid/tx/{hash}";
const HOSTILE = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>`;
const SHOTS = screenshotDir();
const DESKTOP = { width: 1280, height: 1000 };
const PHONE = { width: 390, height: 844 };

let net: RunningLocalNetwork;
let facilitator: RunningFacilitator;
let server: TollgateServer;
let browser: LaunchedBrowser;
let context: BrowserContext;
let page: Page;
/** Every URL the page requested. */
const requested: string[] = [];
/** Script errors in the page (none expected). */
const pageErrors: string[] = [];

describe.skipIf(!chromiumAvailable())("operator dashboard in Chromium", () => {
  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    const [network, launched] = await Promise.all([startLocalNetwork({ payers: 1 }), launchChromium()]);
    net = network;
    browser = launched;
    const usdc = { address: net.usdc.address, name: net.usdc.name, version: net.usdc.version, decimals: net.usdc.decimals };
    facilitator = await startFacilitator({
      port: 0,
      host: "127.0.0.1",
      networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [usdc], explorerTxUrl: EXPLORER }],
      privateKeys: [net.accounts.facilitator.privateKey],
      apiKeys: [KEY],
      minSignerBalanceWei: "1000000000000000000",
      logLevel: "silent",
    });
    server = await startTollgateServer({
      facilitatorUrl: facilitator.url,
      network: net.network,
      usdc: net.usdc,
      payTo: net.accounts.payee.address,
      price: "10000",
      framework: "hono",
      // The facilitator wants its API key on /verify and /settle.
      wrapFacilitator: () => httpFacilitatorClient({ url: facilitator.url, headers: () => ({ authorization: `Bearer ${KEY}` }) }),
    });
    context = await browser.browser.newContext({ viewport: DESKTOP });
    page = await context.newPage();
    page.on("request", (r) => requested.push(r.url()));
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("console", (m) => {
      if (/Content Security Policy/i.test(m.text())) pageErrors.push(m.text());
    });
  }, 60_000);

  afterAll(async () => {
    await context?.close().catch(() => {});
    await browser?.close();
    await server?.close();
    await facilitator?.close();
    await net?.stop();
  }, 30_000);

  it("signs in with the API key through the form (the key never lands in a URL)", async () => {
    const res = await page.goto(`${facilitator.url}/dashboard`);
    expect(res?.status()).toBe(401);
    await page.screenshot({ path: join(SHOTS, "dashboard-login.png") });
    await page.fill("#key", KEY);
    await Promise.all([page.waitForURL(`${facilitator.url}/dashboard`), page.click("button[type=submit]")]);
    await page.waitForSelector("#live.on", { timeout: 10_000 });
    const cookies = await context.cookies();
    expect(cookies.find((c) => c.name === "tollgate_dashboard")).toMatchObject({ httpOnly: true, sameSite: "Strict" });
    expect(cookies.some((c) => c.value.includes(KEY))).toBe(false);
    expect(requested.some((u) => u.includes(KEY))).toBe(false);
  });

  it("payments made with our client appear live, the chart is drawn, a search by hash opens the record", async () => {
    const paying = tollgateFetch({ privateKey: net.accounts.payers[0]!.privateKey });
    const hashes: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await paying(server.paidUrl);
      expect(res.status).toBe(200);
      const decoded = decodeBase64Json(res.headers.get("payment-response"), "PAYMENT-RESPONSE");
      if (!decoded.ok) throw new Error(decoded.message);
      const settled = decoded.value as SettleResponse;
      expect(settled.success).toBe(true);
      hashes.push(settled.transaction);
    }
    // Live: every settlement shows up in the table without a reload (the stream), newest first.
    for (const hash of hashes) await page.waitForSelector(`#live-table tr[data-outcome="settled"][data-transaction="${hash}"]`, { timeout: 15_000 });
    const liveLink = await page.getAttribute(`#live-table tr[data-transaction="${hashes[2]}"] a`, "href");
    expect(liveLink).toBe(EXPLORER.replace("{hash}", hashes[2]!));

    // The overview follows: three settled in the window, the chart drawn on its canvas.
    await page.waitForSelector('#kpis[data-settled="3"]', { timeout: 10_000 });
    const drawn = await page.evaluate(() => {
      const canvas = document.querySelector<HTMLCanvasElement>("#chart-volume canvas");
      if (!canvas) return { width: 0, painted: 0 };
      const data = canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height).data;
      let painted = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) painted++;
      return { width: canvas.width, painted };
    });
    expect(drawn.width).toBeGreaterThan(200);
    expect(drawn.painted).toBeGreaterThan(100);
    expect(await page.textContent("#chart-volume .u-legend")).toContain(net.network);
    // Fee payer with its floor, and gas per payment once the receipts are in.
    expect(await page.getAttribute("#feepayers [data-floor]", "data-floor")).toBe("1000000000000000000");
    expect(await page.textContent("#feepayers")).toContain("1 ETH");
    expect(await page.textContent("#feepayers")).toContain("ok");
    await page.screenshot({ path: join(SHOTS, "dashboard-live.png"), fullPage: true });

    await page.fill("#q", hashes[1]!);
    await page.click("#search button[type=submit]");
    const record = page.locator("#search-result article.record");
    await record.first().waitFor({ timeout: 10_000 });
    expect(await record.count()).toBe(1);
    const text = (await record.textContent()) ?? "";
    expect(text).toContain("settled");
    expect(text.toLowerCase()).toContain(net.accounts.payee.address.toLowerCase());
    expect(text.toLowerCase()).toContain(net.accounts.payers[0]!.address.toLowerCase());
    expect(text).toContain("10000 atomic");
    expect(await record.locator(`a[href="${EXPLORER.replace("{hash}", hashes[1]!)}"]`).count()).toBeGreaterThan(0);
    await record.scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(SHOTS, "dashboard-search.png") });
  });

  it("hostile strings from the ledger stay text; the page talks to its own origin only; readable on a phone", async () => {
    await facilitator.ledger.recordEvent({ kind: "settle", network: net.network, outcome: "failed", reason: HOSTILE, payer: HOSTILE });
    await page.waitForFunction((h) => Array.from(document.querySelectorAll("#live-table td")).some((td) => td.textContent?.includes(h)), HOSTILE, { timeout: 10_000 });
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await page.locator("#live-table img").count()).toBe(0);

    const origin = new URL(facilitator.url).origin;
    expect(requested.length).toBeGreaterThan(3);
    expect(requested.filter((u) => new URL(u).origin !== origin)).toEqual([]);
    expect(pageErrors).toEqual([]);

    await page.setViewportSize(PHONE);
    await page.reload();
    await page.waitForSelector('#kpis[data-settled="3"]', { timeout: 10_000 });
    // One column: no horizontal scrolling of the page itself (wide tables scroll inside their box).
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1)).toBe(true);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(SHOTS, "dashboard-phone.png") });
  });
});
