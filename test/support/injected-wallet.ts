/**
 * A test EIP-1193 wallet for a Chromium page (playwright-core), announced through EIP-6963 like a
 * real browser wallet: it signs typed data in THIS process with a local test key (viem) and
 * forwards reads (eth_call) to the chain's RPC. Used by scripts/walkthrough-dev.ts; the same shape
 * as the wallet in test/paywall-browser.test.ts, which adds failure switches of its own.
 */
import type { Page } from "playwright-core";
import type { Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

export interface InjectedWalletOptions {
  privateKey: Hex;
  /** The chain the wallet is on (and the only one it agrees to switch to). */
  chainId: number;
  /** Where reads go. */
  rpcUrl: string;
  /** The name the page shows: its connect button reads "Connect <name>". */
  name?: string;
}

export interface InjectedWallet {
  /** Every method the page asked for, in order. */
  calls: string[];
}

type WalletAnswer = { result: unknown } | { error: { code: number; message: string } };

/** Installs the wallet in `page` (before its scripts run): call before `page.goto`. */
export async function injectTestWallet(page: Page, options: InjectedWalletOptions): Promise<InjectedWallet> {
  const wallet: InjectedWallet = { calls: [] };
  const account = privateKeyToAccount(options.privateKey);
  const answer = async (method: string, params: unknown[]): Promise<WalletAnswer> => {
    wallet.calls.push(method);
    switch (method) {
      case "eth_requestAccounts":
      case "eth_accounts":
        return { result: [account.address] };
      case "eth_chainId":
        return { result: `0x${options.chainId.toString(16)}` };
      case "wallet_switchEthereumChain": {
        const target = Number.parseInt((params[0] as { chainId: string }).chainId, 16);
        return target === options.chainId ? { result: null } : { error: { code: 4902, message: "Unrecognized chain ID." } };
      }
      case "eth_signTypedData_v4": {
        const [from, json] = params as [string, string];
        if (from.toLowerCase() !== account.address.toLowerCase()) return { error: { code: 4100, message: "unknown account" } };
        return { result: await account.signTypedData(JSON.parse(json) as Parameters<typeof account.signTypedData>[0]) };
      }
      case "eth_call": {
        const res = await fetch(options.rpcUrl, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
        const body = (await res.json()) as { result?: unknown; error?: { code: number; message: string } };
        return body.error ? { error: body.error } : { result: body.result };
      }
      default:
        return { error: { code: 4200, message: `unsupported method ${method}` } };
    }
  };
  await page.exposeFunction("__tollgateTestWallet", answer);
  await page.addInitScript(injectedProvider(options.name ?? "Tollgate Test Wallet"));
  return wallet;
}

/** Runs in the page before its scripts: the provider, announced on request (EIP-6963). */
function injectedProvider(name: string): string {
  return `(() => {
  const call = window.__tollgateTestWallet;
  const provider = {
    async request({ method, params }) {
      const answer = await call(method, params ?? []);
      if (answer.error) { const e = new Error(answer.error.message); e.code = answer.error.code; throw e; }
      return answer.result;
    },
    on() {},
    removeListener() {},
  };
  const info = Object.freeze({
    uuid: "8d3c1f0e-6a0b-4c8e-9f51-2a7d4b9c0e11",
    name: ${JSON.stringify(name)},
    icon: "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E%3Crect width='32' height='32' rx='6' fill='%230b57d0'/%3E%3C/svg%3E",
    rdns: "dev.tollgate.testwallet",
  });
  const announce = () => window.dispatchEvent(new CustomEvent("eip6963:announceProvider", { detail: Object.freeze({ info, provider }) }));
  window.addEventListener("eip6963:requestProvider", announce);
  announce();
})();`;
}
