// The paywall page in a real browser (Chromium) paying a Solana offer: OUR hono server prices the
// route on a local Solana (litesvm behind a real JSON-RPC endpoint), OUR facilitator service
// co-signs as fee payer and submits. The wallet is a wallet-standard test wallet registered in the
// page; it signs in this process with a local ed25519 key (kit), as a real wallet would, without
// sending anything. The page itself reaches no RPC: the server put the recent blockhash and the
// mint's decimals and token program in the page (paywallPage.solana). Checked: the content appears
// with the transaction signature, the heading says paid, and the token moved exactly once.
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BrowserContext, Page } from "playwright-core";
import { Hono } from "hono";
import { getRequestListener } from "@hono/node-server";
import { getBase58Decoder, getTransactionDecoder, getTransactionEncoder, partiallySignTransaction } from "@solana/kit";
import { httpFacilitatorClient } from "@tollgate/core";
import { startFacilitator, type RunningFacilitator } from "@tollgate/facilitator";
import { paymentMiddleware } from "@tollgate/hono";
import { exactSvmServer, setupLocalSolanaNetwork, startLocalSolana, type LocalSolana, type LocalSolanaNetwork } from "@tollgate/svm";
import { chromiumAvailable, launchChromium, type LaunchedBrowser } from "./support/browser.ts";
import { listen, type Closable } from "./support/listen.ts";

const PRICE = 10_000n; // "$0.01" of the 6-decimal local USDC
let rpc: LocalSolana;
let sol: LocalSolanaNetwork;
let facilitator: RunningFacilitator;
let server: Closable;
let browser: LaunchedBrowser;

describe.skipIf(!chromiumAvailable())("paywall page in Chromium with a Solana wallet-standard wallet", () => {
  beforeAll(async () => {
    const launching = launchChromium();
    rpc = await startLocalSolana();
    sol = await setupLocalSolanaNetwork({ svm: rpc.svm });
    facilitator = await startFacilitator({
      port: 0,
      host: "127.0.0.1",
      logLevel: "silent",
      solanaNetworks: [{ network: sol.network, rpcUrl: rpc.url, assets: [{ address: sol.mint, decimals: sol.decimals }] }],
      solanaFeePayerKey: getBase58Decoder().decode(sol.feePayer.secretKey),
      settle: { pollMs: 25 },
    });
    const app = new Hono();
    app.use(
      paymentMiddleware({
        facilitator: httpFacilitatorClient({ url: facilitator.url }),
        schemes: [exactSvmServer({ assets: { [sol.network]: { address: sol.mint, decimals: sol.decimals, symbol: "USDC" } } })],
        routes: { "GET /sol": { price: "$0.01", network: sol.network, payTo: sol.payee.address, description: "Solana weather", mimeType: "application/json" } },
        // The server reads the chain for the page; the page talks only to this origin and the wallet.
        paywallPage: { solana: { [sol.network]: sol.chain } },
      }),
    );
    app.get("/sol", (c) => c.json({ ok: true, chain: "solana" }));
    server = await listen(getRequestListener(app.fetch));
    browser = await launching;
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await facilitator?.close();
    await rpc?.close();
  });

  it("connects, signs the SPL transfer once, shows the content and the signature; the token moves exactly once", async () => {
    const before = { payer: sol.tokenBalance(sol.payer.tokenAccount), payee: sol.tokenBalance(sol.payee.tokenAccount), feePayer: sol.tokenBalance(sol.feePayer.tokenAccount) };
    const { page, context, wallet } = await openPaywall(`${server.url}/sol`);
    const requests: { url: string; paid: boolean }[] = [];
    page.on("request", (r) => requests.push({ url: r.url(), paid: r.headers()["payment-signature"] !== undefined }));
    await expectState(page, "choose-wallet");
    // The page has been open a while: its blockhash is too old, it must fetch a fresh copy of itself.
    await page.evaluate(() => {
      const real = Date.now;
      Date.now = () => real() + 60_000;
    });
    await page.getByRole("button", { name: "Connect Tollgate Solana Wallet" }).click();
    await expectState(page, "ready");
    await expect(page.locator("#tg-pay-button").textContent()).resolves.toBe(`Pay $0.01 on ${sol.network}`);
    await page.locator("#tg-pay-button").click();
    await expectState(page, "paid");

    await expect(page.locator("#tg-result pre").textContent()).resolves.toBe(JSON.stringify({ ok: true, chain: "solana" }, null, 2));
    await expect(page.locator("h1").textContent()).resolves.toBe("Paid");
    expect(await page.title()).toBe("Paid");
    const signature = (await page.locator("#tg-transaction code").textContent()) ?? "";
    expect(signature).toMatch(/^[1-9A-HJ-NP-Za-km-z]{64,88}$/);
    expect(wallet.signed).toHaveLength(1);
    // The transaction the page shows is on the chain, and it is the one the wallet signed.
    expect((await sol.chain.getSignatureStatus(signature))?.err).toBeNull();
    expect(wallet.signed[0]!.chain).toBe(sol.network);
    expect(sol.tokenBalance(sol.payer.tokenAccount)).toBe(before.payer - PRICE);
    expect(sol.tokenBalance(sol.payee.tokenAccount)).toBe(before.payee + PRICE);
    expect(sol.tokenBalance(sol.feePayer.tokenAccount)).toBe(before.feePayer);
    // Requests: the fresh page (no payment), then the paid retry; nothing but this origin (and blob: URLs of the content).
    const network = requests.filter((r) => !r.url.startsWith("blob:"));
    expect(network.map((r) => [r.url, r.paid])).toEqual([
      [`${server.url}/sol`, false],
      [`${server.url}/sol`, true],
    ]);
    await context.close();
  });

  it("the user rejects the signature: rejected state, nothing moves", async () => {
    const before = sol.tokenBalance(sol.payer.tokenAccount);
    const { page, context, wallet } = await openPaywall(`${server.url}/sol`, { reject: true });
    await page.getByRole("button", { name: "Connect Tollgate Solana Wallet" }).click();
    await expectState(page, "ready");
    await page.locator("#tg-pay-button").click();
    await expectState(page, "rejected");
    await expect(page.locator("#tg-status").textContent()).resolves.toMatch(/rejected the signature.*Nothing was charged/);
    expect(wallet.signed).toHaveLength(0);
    expect(sol.tokenBalance(sol.payer.tokenAccount)).toBe(before);
    await context.close();
  });
});

async function expectState(page: Page, state: string): Promise<void> {
  try {
    await page.locator(`#tollgate-pay[data-state="${state}"]`).waitFor({ timeout: 15_000 });
  } catch {
    const actual = await page.locator("#tollgate-pay").getAttribute("data-state");
    const status = await page.locator("#tg-status").textContent();
    throw new Error(`expected state ${state}, page is in ${actual}: ${status}`);
  }
}

interface SolanaTestWallet {
  signed: { chain: string }[];
}

async function openPaywall(url: string, options: { reject?: boolean } = {}): Promise<{ page: Page; context: BrowserContext; wallet: SolanaTestWallet }> {
  const context = await browser.browser.newContext({ viewport: { width: 1000, height: 820 } });
  const page = await context.newPage();
  const wallet: SolanaTestWallet = { signed: [] };
  await page.exposeFunction("__tollgateSolanaSign", async (base64: string, chain: string) => {
    if (options.reject) return { error: "User rejected the request." };
    const tx = getTransactionDecoder().decode(Buffer.from(base64, "base64"));
    const signed = await partiallySignTransaction([sol.payer.signer.keyPair], tx);
    wallet.signed.push({ chain });
    return { result: Buffer.from(getTransactionEncoder().encode(signed)).toString("base64") };
  });
  await page.addInitScript(`window.__tollgateSolanaAddress = ${JSON.stringify(sol.payer.address)};\n${INJECTED_WALLET}`);
  const res = await page.goto(url);
  expect(res?.status()).toBe(402);
  return { page, context, wallet };
}

/** Runs in the page before its scripts: a wallet-standard wallet, registered both ways the standard allows. */
const INJECTED_WALLET = `(() => {
  const address = window.__tollgateSolanaAddress;
  const sign = window.__tollgateSolanaSign;
  const toBase64 = (bytes) => btoa(String.fromCharCode(...bytes));
  const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const account = Object.freeze({ address, publicKey: new Uint8Array(32), chains: ["solana:localnet"], features: ["solana:signTransaction"] });
  const wallet = {
    version: "1.0.0",
    name: "Tollgate Solana Wallet",
    icon: "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E%3Crect width='32' height='32' rx='6' fill='%23146c2e'/%3E%3C/svg%3E",
    chains: ["solana:localnet", "solana:devnet"],
    accounts: [],
    features: {
      "standard:connect": { version: "1.0.0", connect: async () => ({ accounts: [account] }) },
      "solana:signTransaction": {
        version: "1.0.0",
        supportedTransactionVersions: ["legacy", 0],
        signTransaction: async (...inputs) => Promise.all(inputs.map(async (input) => {
          const answer = await sign(toBase64(input.transaction), input.chain ?? "");
          if (answer.error) throw new Error(answer.error);
          return { signedTransaction: fromBase64(answer.result) };
        })),
      },
    },
  };
  const callback = ({ register }) => register(wallet);
  window.addEventListener("wallet-standard:app-ready", (event) => callback(event.detail));
  window.dispatchEvent(new CustomEvent("wallet-standard:register-wallet", { detail: callback }));
})();`;
