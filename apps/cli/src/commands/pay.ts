/**
 * `tollgate pay <url>`: pay for a URL as an agent. The key comes from TOLLGATE_PRIVATE_KEY
 * or an encrypted keystore (--keystore, password from TOLLGATE_KEYSTORE_PASSWORD); a spending
 * policy (--max, default $0.10 per request) guards the payment.
 */
import { readFile } from "node:fs/promises";
import { NETWORKS, spendingPolicy, type UsdAsset } from "@tollgate/core";
import { exactEvmClient } from "@tollgate/evm";
import { accountFromEnv, accountFromKeystore, getPaymentReceipt, wrapFetch } from "@tollgate/fetch";
import type { LocalAccount } from "viem";

export interface PayOptions {
  url: string;
  method?: string;
  body?: string;
  headers?: string[];
  keystore?: string;
  /** Per-request cap as a dollar string, applied to known USD stablecoins. */
  max?: string;
  /** Extra USD assets the policy may value: "eip155:31337/0xabc...:6". */
  usdAssets?: string[];
  env?: Record<string, string | undefined>;
  out?: (line: string) => void;
}

export async function pay(options: PayOptions): Promise<number> {
  const env = options.env ?? process.env;
  const out = options.out ?? ((l: string) => process.stdout.write(l + "\n"));
  const account = await loadAccount(options.keystore, env);
  // USDC on every network of the table counts as dollars, plus any asset named on the command line.
  const usdAssets: UsdAsset[] = [...knownUsdc(), ...(options.usdAssets ?? []).map(parseUsdAsset)];
  const policy = spendingPolicy({ maxPerRequest: options.max ?? "$0.10", usdAssets });
  const paidFetch = wrapFetch(fetch, { schemes: [exactEvmClient({ account })], policy });
  const headers = new Headers();
  for (const h of options.headers ?? []) {
    const i = h.indexOf(":");
    if (i <= 0) throw new Error(`--header: expected "Name: value", got ${JSON.stringify(h)}`);
    headers.set(h.slice(0, i).trim(), h.slice(i + 1).trim());
  }
  const res = await paidFetch(options.url, { method: options.method ?? "GET", headers, ...(options.body !== undefined ? { body: options.body } : {}) });
  const text = await res.text();
  out(`HTTP ${res.status}`);
  out(text);
  const info = getPaymentReceipt(res);
  if (info?.receipt) out(`receipt: ${JSON.stringify(info.receipt, null, 2)}`);
  else if (res.status !== 402) out("no payment was needed");
  return res.ok ? 0 : 1;
}

async function loadAccount(keystore: string | undefined, env: Record<string, string | undefined>): Promise<LocalAccount> {
  if (keystore) {
    const password = env.TOLLGATE_KEYSTORE_PASSWORD;
    if (!password) throw new Error("TOLLGATE_KEYSTORE_PASSWORD is not set (needed to open --keystore)");
    return accountFromKeystore(await readFile(keystore, "utf8"), password);
  }
  return accountFromEnv("TOLLGATE_PRIVATE_KEY", env);
}

function parseUsdAsset(spec: string): UsdAsset {
  const m = /^([-a-z0-9]+:[-_a-zA-Z0-9]+)\/([^:]+):([0-9]{1,2})$/.exec(spec);
  if (!m) throw new Error(`--usd-asset: expected network/asset:decimals, got ${JSON.stringify(spec)}`);
  return { network: m[1]!, asset: m[2]!, decimals: Number(m[3]) };
}

function knownUsdc(): UsdAsset[] {
  return Object.values(NETWORKS).flatMap((n) => (n.usdc ? [{ network: n.id, asset: n.usdc.address, decimals: n.usdc.decimals }] : []));
}
