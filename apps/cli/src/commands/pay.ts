/**
 * `tollgate pay <url>`: pay for a URL as an agent. The EVM key comes from TOLLGATE_PRIVATE_KEY
 * or an encrypted keystore (--keystore, password from TOLLGATE_KEYSTORE_PASSWORD); the Solana
 * key from TOLLGATE_SOLANA_KEY (base58 or a solana-keygen JSON array). With both, the agent
 * pays on whichever chain the server offers first, or the first of --prefer's patterns. A
 * spending policy (--max, default $0.10 per request) guards the payment.
 */
import { readFile } from "node:fs/promises";
import { preferNetworks, spendingPolicy, type SchemeClient, type UsdAsset } from "@tollgate/core";
import { exactEvmClient } from "@tollgate/evm";
import { accountFromEnv, accountFromKeystore, getPaymentReceipt, wrapFetch } from "@tollgate/fetch";
import { exactSvmClient, solanaSignerFromSecret } from "@tollgate/svm";
import type { LocalAccount } from "viem";

/** Public RPCs of the Solana clusters in the network table, used when --solana-rpc is not given. */
const SOLANA_PUBLIC_RPC: Record<string, string> = {
  "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp": "https://api.mainnet-beta.solana.com",
  "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1": "https://api.devnet.solana.com",
};

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
  /** Solana JSON-RPC URL for every Solana network (default: the public cluster RPCs). */
  solanaRpc?: string;
  /** Network patterns to pay on first, e.g. ["solana:*"]. */
  prefer?: string[];
  env?: Record<string, string | undefined>;
  out?: (line: string) => void;
}

export async function pay(options: PayOptions): Promise<number> {
  const env = options.env ?? process.env;
  const out = options.out ?? ((l: string) => process.stdout.write(l + "\n"));
  const schemes: SchemeClient[] = [];
  if (options.keystore || env.TOLLGATE_PRIVATE_KEY !== undefined || env.TOLLGATE_SOLANA_KEY === undefined) {
    schemes.push(exactEvmClient({ account: await loadAccount(options.keystore, env) }));
  }
  if (env.TOLLGATE_SOLANA_KEY !== undefined) {
    const signer = await solanaSignerFromSecret(env.TOLLGATE_SOLANA_KEY, "TOLLGATE_SOLANA_KEY");
    schemes.push(exactSvmClient({ signer, rpc: options.solanaRpc ?? SOLANA_PUBLIC_RPC }));
  }
  // USDC on every network of core's table counts as dollars (the policy knows them); add local tokens with --usd-asset.
  const usdAssets: UsdAsset[] = (options.usdAssets ?? []).map(parseUsdAsset);
  const policy = spendingPolicy({ maxPerRequest: options.max ?? "$0.10", usdAssets });
  const paidFetch = wrapFetch(fetch, { schemes, policy, ...(options.prefer?.length ? { choose: preferNetworks(options.prefer) } : {}) });
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

