// The paywall page in a real browser (Debian's Chromium driven by playwright-core) paying on a
// real anvil chain through OUR hono server and OUR facilitator service. The wallet is an EIP-1193
// test provider injected into the page and announced through EIP-6963; it signs typed data in this
// process with a dev key (viem) and forwards reads to anvil, like a real wallet would. Checked:
// the content appears with the transaction, the money moved exactly once; and the failure
// states (no wallet, rejected, wrong chain, insufficient balance, settlement failed) render and
// move nothing. Screenshots go to docs/screenshots/paywall-*.png (referenced from the README).
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BrowserContext, Page } from "playwright-core";
import { createPublicClient, createWalletClient, erc20Abi, http, maxUint256, parseEventLogs, type Address, type Hex, type PublicClient } from "viem";
import { foundry } from "viem/chains";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import type { FacilitatorClient } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { PERMIT2_ADDRESS } from "@tollgate/evm";
import { chromiumAvailable, launchChromium, screenshotDir, type LaunchedBrowser } from "./support/browser.ts";
import { startTollgateFacilitator, startTollgateServer, type TollgateFacilitator, type TollgateServer } from "./support/tollgate.ts";

const PRICE = 10_000n; // "$0.01" of the 6-decimal local USD Coin
const HOSTILE = `Weather <img src=x onerror="window.__pwned=1"> & "more" </script><script>window.__pwned=2</script>`;
const SHOTS = screenshotDir();
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1000, height: 820 };

let net: RunningLocalNetwork;
let chain: PublicClient;
let facilitator: TollgateFacilitator;
let server: TollgateServer;
/** Same route, but its facilitator refuses to settle: the payment must fail with nothing charged. */
let refusing: TollgateServer;
/** The devnet's plain ERC-20 (no EIP-3009), paid with `assetTransferMethod: "permit2"`. */
let permit2Server: TollgateServer;
/** The same, through a facilitator that does not offer eip2612GasSponsoring. */
let permit2Unsponsored: TollgateServer;
const PERMIT2_PRICE = 2_500n;
let browser: LaunchedBrowser;

const balance = (who: Address, token: Address = net.usdc.address) => chain.readContract({ address: token, abi: erc20Abi, functionName: "balanceOf", args: [who] });

/** The facilitator as one that does not announce the eip2612GasSponsoring extension. */
function withoutSponsoring(client: FacilitatorClient): FacilitatorClient {
  return {
    supported: async () => {
      const s = await client.supported();
      return { ...s, extensions: s.extensions.filter((e) => e !== "eip2612GasSponsoring") };
    },
    verify: (p, r) => client.verify(p, r),
    settle: (p, r) => client.settle(p, r),
  };
}

function refuseSettle(client: FacilitatorClient): FacilitatorClient {
  return {
    supported: () => client.supported(),
    verify: (p, r) => client.verify(p, r),
    settle: async (_p, r) => ({ success: false, errorReason: "unexpected_settle_error", errorMessage: "refused by the test facilitator", transaction: "", network: r.network }),
  };
}

describe.skipIf(!chromiumAvailable())("paywall page in Chromium with an EIP-1193 wallet", () => {
  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    const [network, launched] = await Promise.all([startLocalNetwork({ payers: 4 }), launchChromium()]);
    net = network;
    browser = launched;
    chain = createPublicClient({ transport: http(net.rpcUrl) }) as PublicClient;
    // Payer 3 approves Permit2 for the plain token once (payer 2 never does).
    const approver = createWalletClient({ account: privateKeyToAccount(net.accounts.payers[3]!.privateKey), chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
    const approval = await approver.writeContract({ address: net.plainToken.address, abi: erc20Abi, functionName: "approve", args: [PERMIT2_ADDRESS, maxUint256] });
    expect((await chain.waitForTransactionReceipt({ hash: approval })).status).toBe("success");
    facilitator = await startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, assets: [net.plainToken], privateKey: net.accounts.facilitator.privateKey });
    const common = { facilitatorUrl: facilitator.url, network: net.network, usdc: net.usdc, payTo: net.accounts.payee.address, price: "$0.01", framework: "hono" as const };
    // The local chain is in no public table: the page hands the wallet these parameters when it answers 4902.
    const chains = { [net.network]: { chainName: "Tollgate devnet", rpcUrls: [net.rpcUrl], nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 } } };
    server = await startTollgateServer({ ...common, path: "/weather", route: { description: HOSTILE }, paywall: { paywallPage: { chains } } });
    refusing = await startTollgateServer({ ...common, path: "/refused", wrapFacilitator: refuseSettle });
    const permit2Route = {
      ...common,
      path: "/permit2",
      assets: [{ ...net.plainToken, assetTransferMethod: "permit2" as const }],
      price: { amount: PERMIT2_PRICE.toString(), asset: net.plainToken.address },
    };
    permit2Server = await startTollgateServer(permit2Route);
    permit2Unsponsored = await startTollgateServer({ ...permit2Route, wrapFacilitator: withoutSponsoring });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await refusing?.close();
    await permit2Server?.close();
    await permit2Unsponsored?.close();
    await facilitator?.close();
    await net?.stop();
  });

  it("without a wallet: says so, shows what is sold and escapes the hostile description", async () => {
    const { page, context } = await openPaywall(server.paidUrl, undefined, DESKTOP);
    await expectState(page, "no-wallet");
    await expect(page.locator("#tg-status").textContent()).resolves.toMatch(/No wallet found/);
    await expect(page.locator("dd").nth(1).textContent()).resolves.toBe(HOSTILE);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await page.locator("main img").count()).toBe(0);
    await expect(page.locator("tbody td").first().textContent()).resolves.toBe("$0.01");
    await page.screenshot({ path: join(SHOTS, "paywall-no-wallet.png"), fullPage: true });
    await context.close();
  });

  it("pays from the wallet with the keyboard: switches chain, signs once, shows the content and the transaction; the money moves exactly once", async () => {
    const payer = net.accounts.payers[0]!;
    const [payerBefore, payeeBefore] = await Promise.all([balance(payer.address), balance(net.accounts.payee.address)]);
    // The wallet starts on Ethereum mainnet: the page must ask it to switch to the local chain.
    const { page, context, wallet } = await openPaywall(server.paidUrl, { privateKey: payer.privateKey, chainId: 1 }, PHONE);
    await expectState(page, "choose-wallet");
    await page.getByRole("button", { name: "Connect Tollgate Test Wallet" }).click();
    await expectState(page, "ready");
    expect(wallet.calls.filter((c) => c === "wallet_switchEthereumChain")).toHaveLength(1);
    expect(wallet.switchedTo).toEqual([`0x${net.chainId.toString(16)}`]);
    await page.screenshot({ path: join(SHOTS, "paywall-ready-phone.png"), fullPage: true });

    // Keyboard only: Tab from the top of the page reaches the pay button, Enter pays.
    await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
    let reached = false;
    for (let i = 0; i < 25 && !reached; i++) {
      await page.keyboard.press("Tab");
      reached = await page.evaluate(() => document.activeElement?.id === "tg-pay-button");
    }
    expect(reached).toBe(true);
    await expect(page.locator("#tg-pay-button").textContent()).resolves.toBe("Pay $0.01 on Local (tollgate dev)");
    await page.keyboard.press("Enter");
    await expectState(page, "paid");

    await expect(page.locator("#tg-result pre").textContent()).resolves.toBe(JSON.stringify({ ok: true, path: "/weather" }, null, 2));
    // The heading no longer asks for a payment.
    await expect(page.locator("h1").textContent()).resolves.toBe("Paid");
    const tx = (await page.locator("#tg-transaction code").textContent()) as Hex;
    expect(tx).toMatch(/^0x[0-9a-f]{64}$/);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("tg-result-title");
    expect(wallet.calls.filter((c) => c === "eth_signTypedData_v4")).toHaveLength(1);

    // The chain: the transaction the page links moved exactly the price from payer to payee, once.
    const receipt = await chain.getTransactionReceipt({ hash: tx });
    expect(receipt.status).toBe("success");
    const transfers = parseEventLogs({ abi: erc20Abi, logs: receipt.logs, eventName: "Transfer" });
    expect(transfers.map((t) => [t.args.from, t.args.to, t.args.value])).toEqual([[payer.address, net.accounts.payee.address, PRICE]]);
    expect(await balance(payer.address)).toBe(payerBefore - PRICE);
    expect(await balance(net.accounts.payee.address)).toBe(payeeBefore + PRICE);
    await page.screenshot({ path: join(SHOTS, "paywall-paid-phone.png"), fullPage: true });
    await page.setViewportSize(DESKTOP);
    await page.screenshot({ path: join(SHOTS, "paywall-paid.png"), fullPage: true });
    await context.close();
  });

  it("the user rejects the signature: rejected state, nothing charged", async () => {
    const payer = net.accounts.payers[1]!;
    const before = await balance(payer.address);
    const { page, context, wallet } = await openPaywall(server.paidUrl, { privateKey: payer.privateKey, chainId: net.chainId, rejectSignature: true }, DESKTOP);
    await connectAndPay(page);
    await expectState(page, "rejected");
    await expect(page.locator("#tg-status").textContent()).resolves.toMatch(/rejected the signature.*Nothing was charged/);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("tg-status");
    expect(wallet.calls).toContain("eth_signTypedData_v4");
    expect(await balance(payer.address)).toBe(before);
    await page.screenshot({ path: join(SHOTS, "paywall-rejected.png"), fullPage: true });
    await context.close();
  });

  it("the wallet will not switch chains: wrong-chain state, nothing signed", async () => {
    const payer = net.accounts.payers[1]!;
    const { page, context, wallet } = await openPaywall(server.paidUrl, { privateKey: payer.privateKey, chainId: 1, rejectSwitch: true }, DESKTOP);
    await page.getByRole("button", { name: "Connect Tollgate Test Wallet" }).click();
    await expectState(page, "wrong-chain");
    await expect(page.locator("#tg-status").textContent()).resolves.toContain(`Switch it to Local (tollgate dev) (chain id ${net.chainId})`);
    expect(wallet.calls).toContain("wallet_switchEthereumChain");
    expect(wallet.calls).not.toContain("eth_signTypedData_v4");
    await page.screenshot({ path: join(SHOTS, "paywall-wrong-chain.png"), fullPage: true });
    await context.close();
  });

  it("the wallet does not know the chain (4902 on switch): the page adds it with wallet_addEthereumChain, then pays", async () => {
    const payer = net.accounts.payers[1]!;
    const { page, context, wallet } = await openPaywall(server.paidUrl, { privateKey: payer.privateKey, chainId: 1, unknownChain: true }, DESKTOP);
    await page.getByRole("button", { name: "Connect Tollgate Test Wallet" }).click();
    await expectState(page, "ready");
    const chainHex = `0x${net.chainId.toString(16)}`;
    expect(wallet.calls.filter((c) => c.startsWith("wallet_"))).toEqual(["wallet_switchEthereumChain", "wallet_addEthereumChain"]);
    expect(wallet.added).toEqual([{ chainId: chainHex, chainName: "Tollgate devnet", rpcUrls: [net.rpcUrl], nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 } }]);
    await page.locator("#tg-pay-button").click();
    await expectState(page, "paid");
    expect(wallet.signed).toHaveLength(1);
    await context.close();
  });

  it("a payer without the money: insufficient-balance state before anything is signed", async () => {
    const { page, context, wallet } = await openPaywall(server.paidUrl, { privateKey: generatePrivateKey(), chainId: net.chainId }, DESKTOP);
    await page.getByRole("button", { name: "Connect Tollgate Test Wallet" }).click();
    await expectState(page, "insufficient-balance");
    await expect(page.locator("#tg-status").textContent()).resolves.toMatch(/Insufficient balance: this costs \$0\.01 and 0x\w{4}…\w{4} holds 0 USDC/);
    await page.locator("#tg-pay-button").click();
    await expectState(page, "insufficient-balance");
    expect(wallet.calls).not.toContain("eth_signTypedData_v4");
    await page.screenshot({ path: join(SHOTS, "paywall-insufficient-balance.png"), fullPage: true });
    await context.close();
  });

  it("the facilitator refuses to settle: settlement-failed state, nothing charged, no content", async () => {
    const payer = net.accounts.payers[2]!;
    const [payerBefore, payeeBefore] = await Promise.all([balance(payer.address), balance(net.accounts.payee.address)]);
    const { page, context, wallet } = await openPaywall(refusing.paidUrl, { privateKey: payer.privateKey, chainId: net.chainId }, DESKTOP);
    await connectAndPay(page);
    await expectState(page, "settlement-failed");
    await expect(page.locator("#tg-status").textContent()).resolves.toMatch(/did not go through \(unexpected_settle_error.*\)\. Nothing was charged\./);
    expect(wallet.calls.filter((c) => c === "eth_signTypedData_v4")).toHaveLength(1);
    expect(await page.locator("#tg-result").isHidden()).toBe(true);
    expect(await balance(payer.address)).toBe(payerBefore);
    expect(await balance(net.accounts.payee.address)).toBe(payeeBefore);
    await page.screenshot({ path: join(SHOTS, "paywall-settlement-failed.png"), fullPage: true });
    await context.close();
  });

  it("pays a Permit2-priced token: the wallet signs PermitWitnessTransferFrom, the token moves exactly once", async () => {
    const payer = net.accounts.payers[3]!;
    const token = net.plainToken.address;
    const [payerBefore, payeeBefore] = await Promise.all([balance(payer.address, token), balance(net.accounts.payee.address, token)]);
    const { page, context, wallet } = await openPaywall(permit2Server.paidUrl, { privateKey: payer.privateKey, chainId: net.chainId }, DESKTOP);
    await connectAndPay(page);
    await expectState(page, "paid");
    expect(wallet.signed.map((t) => t.primaryType)).toEqual(["PermitWitnessTransferFrom"]);
    const tx = (await page.locator("#tg-transaction code").textContent()) as Hex;
    expect((await chain.getTransactionReceipt({ hash: tx })).status).toBe("success");
    expect(await balance(payer.address, token)).toBe(payerBefore - PERMIT2_PRICE);
    expect(await balance(net.accounts.payee.address, token)).toBe(payeeBefore + PERMIT2_PRICE);
    await context.close();
  });

  it("Permit2 without the payer's approval (and no gas sponsoring offered): allowance-required state, nothing signed", async () => {
    const payer = net.accounts.payers[2]!;
    const { page, context, wallet } = await openPaywall(permit2Unsponsored.paidUrl, { privateKey: payer.privateKey, chainId: net.chainId }, DESKTOP);
    await connectAndPay(page);
    await expectState(page, "allowance-required");
    await expect(page.locator("#tg-status").textContent()).resolves.toContain(`has not approved Permit2 (${PERMIT2_ADDRESS})`);
    expect(wallet.signed).toEqual([]);
    await context.close();
  });

  it("Permit2 without the payer's approval, gas sponsoring offered: the wallet signs the EIP-2612 permit and the payment; the token moves exactly once", async () => {
    const payer = net.accounts.payers[2]!;
    const token = net.plainToken.address;
    const [payerBefore, payeeBefore] = await Promise.all([balance(payer.address, token), balance(net.accounts.payee.address, token)]);
    const { page, context, wallet } = await openPaywall(permit2Server.paidUrl, { privateKey: payer.privateKey, chainId: net.chainId }, DESKTOP);
    await connectAndPay(page);
    await expectState(page, "paid");
    expect(wallet.signed.map((t) => t.primaryType)).toEqual(["Permit", "PermitWitnessTransferFrom"]);
    expect(await balance(payer.address, token)).toBe(payerBefore - PERMIT2_PRICE);
    expect(await balance(net.accounts.payee.address, token)).toBe(payeeBefore + PERMIT2_PRICE);
    await context.close();
  });
});

async function connectAndPay(page: Page): Promise<void> {
  await page.getByRole("button", { name: "Connect Tollgate Test Wallet" }).click();
  await expectState(page, "ready");
  await page.locator("#tg-pay-button").click();
}

async function expectState(page: Page, state: string): Promise<void> {
  try {
    await page.locator(`#tollgate-pay[data-state="${state}"]`).waitFor({ timeout: 15_000 });
  } catch {
    const actual = await page.locator("#tollgate-pay").getAttribute("data-state");
    const status = await page.locator("#tg-status").textContent();
    throw new Error(`expected state ${state}, page is in ${actual}: ${status}`);
  }
}

interface TestWalletOptions {
  privateKey: Hex;
  /** The chain the wallet starts on. */
  chainId: number;
  rejectSignature?: boolean;
  rejectSwitch?: boolean;
  /** The wallet answers 4902 to a switch to the local chain until the page adds it. */
  unknownChain?: boolean;
}

interface TestWallet {
  /** Every method the page asked for, in order. */
  calls: string[];
  switchedTo: string[];
  /** wallet_addEthereumChain parameters the page sent. */
  added: unknown[];
  /** The typed data the wallet signed. */
  signed: { primaryType: string }[];
}

/** A fresh browser context (own storage), optionally with the test wallet injected, on `url`. */
async function openPaywall(url: string, options: TestWalletOptions | undefined, viewport: { width: number; height: number }): Promise<{ page: Page; context: BrowserContext; wallet: TestWallet }> {
  const context = await browser.browser.newContext({ viewport });
  const page = await context.newPage();
  const wallet: TestWallet = { calls: [], switchedTo: [], added: [], signed: [] };
  if (options) {
    await page.exposeFunction("__tollgateTestWallet", (method: string, params: unknown[]) => answerWallet(options, wallet, method, params));
    await page.addInitScript(INJECTED_WALLET);
  }
  const res = await page.goto(url);
  expect(res?.status()).toBe(402);
  return { page, context, wallet };
}

type WalletAnswer = { result: unknown } | { error: { code: number; message: string } };

/** The wallet's side, in this process: a dev key signs, reads go to anvil. */
async function answerWallet(options: TestWalletOptions, wallet: TestWallet, method: string, params: unknown[]): Promise<WalletAnswer> {
  wallet.calls.push(method);
  const account = privateKeyToAccount(options.privateKey);
  const rejected = { error: { code: 4001, message: "User rejected the request." } };
  switch (method) {
    case "eth_requestAccounts":
    case "eth_accounts":
      // Wallets often answer lower-case: the page must checksum the address it signs with.
      return { result: [account.address.toLowerCase()] };
    case "eth_chainId":
      return { result: `0x${options.chainId.toString(16)}` };
    case "wallet_switchEthereumChain": {
      const target = (params[0] as { chainId: string }).chainId;
      wallet.switchedTo.push(target);
      if (options.rejectSwitch) return rejected;
      if (Number.parseInt(target, 16) !== net.chainId || options.unknownChain) return { error: { code: 4902, message: "Unrecognized chain ID." } };
      options.chainId = net.chainId;
      return { result: null };
    }
    case "wallet_addEthereumChain": {
      const added = params[0] as { chainId: string };
      wallet.added.push(added);
      // Like MetaMask: the chain is known from now on, and the wallet switches to it.
      if (Number.parseInt(added.chainId, 16) !== net.chainId) return { error: { code: -32602, message: "bad chain" } };
      options.unknownChain = false;
      options.chainId = net.chainId;
      return { result: null };
    }
    case "eth_signTypedData_v4": {
      if (options.rejectSignature) return rejected;
      const [from, json] = params as [string, string];
      if (from.toLowerCase() !== account.address.toLowerCase()) return { error: { code: 4100, message: "unknown account" } };
      const typed = JSON.parse(json) as Parameters<typeof account.signTypedData>[0];
      wallet.signed.push({ primaryType: String(typed.primaryType) });
      return { result: await account.signTypedData(typed) };
    }
    case "eth_call": {
      const res = await fetch(net.rpcUrl, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
      const body = (await res.json()) as { result?: unknown; error?: { code: number; message: string } };
      return body.error ? { error: body.error } : { result: body.result };
    }
    default:
      return { error: { code: 4200, message: `unsupported method ${method}` } };
  }
}

/** Runs in the page before its scripts: an EIP-1193 provider announced through EIP-6963. */
const INJECTED_WALLET = `(() => {
  const call = window.__tollgateTestWallet;
  const provider = {
    isTollgateTestWallet: true,
    async request({ method, params }) {
      const answer = await call(method, params ?? []);
      if (answer.error) { const e = new Error(answer.error.message); e.code = answer.error.code; throw e; }
      return answer.result;
    },
    on() {},
    removeListener() {},
  };
  const info = Object.freeze({
    uuid: "5f0c7a5e-3f0b-4a49-9d8e-2c1f7d2b7a10",
    name: "Tollgate Test Wallet",
    icon: "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E%3Crect width='32' height='32' rx='6' fill='%230b57d0'/%3E%3C/svg%3E",
    rdns: "dev.tollgate.testwallet",
  });
  const announce = () => window.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }));
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
})();`;
