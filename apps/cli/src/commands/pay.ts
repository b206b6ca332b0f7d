/**
 * `tollgate pay <url>`: pay for a URL as an agent. The EVM key comes from TOLLGATE_PRIVATE_KEY
 * or an encrypted keystore (--keystore, password from TOLLGATE_KEYSTORE_PASSWORD); the Solana
 * key from TOLLGATE_SOLANA_KEY (base58 or a solana-keygen JSON array). With both, the agent
 * pays on whichever chain the server offers first, or the first of --prefer's patterns. A
 * spending policy (--max, default $0.10 per request) guards the payment.
 *
 * Output: the status, the body and the receipt; with --json one JSON object and nothing else on
 * stdout. Errors name the URL and the cause (refused, DNS, timeout, TLS, the server's reason).
 */
import { readFile } from "node:fs/promises";
import {
  atomicToDecimal,
  describeNetworkError,
  hostOf,
  PaymentRefusedError,
  preferNetworks,
  spendingPolicy,
  type Network,
  type PaymentRequirements,
  type SchemeClient,
  type SettleResponse,
  type SpendingPolicy,
  type NetworkProblem,
  type PaymentAuthorization,
  type PaymentAuthorizer,
  type UsdAsset,
} from "@tollgate/core";
import { exactEvmClient } from "@tollgate/evm";
import { accountFromEnv, accountFromKeystore, getPaymentReceipt, PaymentFailedError, wrapFetch } from "@tollgate/fetch";
import { exactSvmClient, solanaSignerFromSecret } from "@tollgate/svm";
import type { LocalAccount } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { defaultWalletKey } from "./wallet.ts";
import { budgetsPath, cliBudget, parseBudget } from "../budget-file.ts";
import { mandateWallet, MandateRefusedError, type Refusal as MandateRefusal } from "@tollgate/mandates";
import { loadAgentKey, readMandate } from "./mandate.ts";
import { readDevState } from "../dev-state.ts";

/** Public RPCs of the Solana clusters in the network table, used when --solana-rpc is not given. */
const SOLANA_PUBLIC_RPC: Record<string, string> = {
  "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp": "https://api.mainnet-beta.solana.com",
  "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1": "https://api.devnet.solana.com",
};

const DEFAULT_TIMEOUT_MS = 120_000;

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
  /** Gives up (and says so) after this long. Default 120 000. */
  timeoutMs?: number;
  /** One JSON object on stdout, nothing else. */
  json?: boolean;
  /** A budget kept across runs under the config directory: "$5/day", "$20" (in total). */
  budget?: string;
  /** Pay under this AP2 mandate (id or file, see `tollgate mandate issue`). */
  mandate?: string;
  /** Asked about a payment outside the mandate; true pays it without the mandate. Default: a y/N prompt on a terminal, else no. */
  approve?: (question: string) => Promise<boolean>;
  env?: Record<string, string | undefined>;
  out?: (line: string) => void;
  err?: (line: string) => void;
}

/** What `--json` prints. */
export interface PayResult {
  ok: boolean;
  url: string;
  status?: number;
  body?: string;
  /** Whether a payment was made for this response, and what it was. */
  paid: boolean;
  amount?: string;
  /** The amount in dollars, when the asset is a known USD stablecoin (or the local dev token). */
  amountUsd?: string;
  asset?: string;
  network?: string;
  payer?: string;
  receipt?: SettleResponse;
  /** On failure: a stable code (the server's reason, `refused_by_policy`, `timeout`, `connection_refused`, …) and a sentence. */
  error?: { code: string; message: string };
}

export async function pay(options: PayOptions): Promise<number> {
  const env = options.env ?? process.env;
  const out = options.out ?? ((l: string) => process.stdout.write(l + "\n"));
  const err = options.err ?? ((l: string) => process.stderr.write(l + "\n"));
  const result = await payUrl(options, env);
  if (options.json) out(JSON.stringify(result));
  else printResult(result, out, err);
  return result.ok ? 0 : 1;
}

async function payUrl(options: PayOptions, env: Record<string, string | undefined>): Promise<PayResult> {
  const schemes: SchemeClient[] = [];
  if (options.keystore || env.TOLLGATE_PRIVATE_KEY !== undefined || env.TOLLGATE_SOLANA_KEY === undefined) {
    // --keystore, else TOLLGATE_PRIVATE_KEY, else the default wallet (`tollgate wallet new`).
    schemes.push(exactEvmClient({ account: await loadAccount(options.keystore, env) }));
  }
  if (env.TOLLGATE_SOLANA_KEY !== undefined) {
    const signer = await solanaSignerFromSecret(env.TOLLGATE_SOLANA_KEY, "TOLLGATE_SOLANA_KEY");
    schemes.push(exactSvmClient({ signer, rpc: options.solanaRpc ?? SOLANA_PUBLIC_RPC }));
  }
  // USDC on every network of core's table counts as dollars (the policy knows them); so do the
  // tokens of a running `tollgate dev`; add others with --usd-asset.
  const usdAssets: UsdAsset[] = [...(readDevState(env)?.usdAssets ?? []), ...(options.usdAssets ?? []).map(parseUsdAsset)];
  // --budget and --mandate count in one store (budgets.json), each reserving before anything is signed.
  const budget = options.budget ? cliBudget(schemes.map((s) => s.payer(s.networks[0] as Network)).join("+"), parseBudget(options.budget), { env, usdAssets }) : undefined;
  const authorizers: PaymentAuthorizer[] = budget ? [budget] : [];
  if (options.mandate) authorizers.push(await mandateAuthorizer(options, env));
  const policy = spendingPolicy({ maxPerRequest: options.max ?? "$0.10", usdAssets });
  const result = await fetchPaid(options, schemes, policy, usdAssets, allOf(authorizers));
  // The server reported no charge: what this run reserved goes back to the budget.
  if (result.notCharged) await budget?.releaseUncommitted();
  delete result.notCharged;
  return result;
}

/** The mandate wallet of `--mandate`: the agent key from its keystore, budgets in the shared store. */
async function mandateAuthorizer(options: PayOptions, env: Record<string, string | undefined>): Promise<PaymentAuthorizer> {
  const stored = readMandate(options.mandate!, env);
  const agentKey = await loadAgentKey(env);
  const ask = options.approve ?? ttyApprove;
  return mandateWallet({
    open: stored.open,
    userPublicJwk: stored.userPublicJwk,
    agentKey,
    store: budgetsPath(env),
    approve: ({ refusal, requirements }: { refusal: MandateRefusal; requirements: PaymentRequirements }) =>
      ask(`This payment is outside mandate ${stored.id} (${refusal.constraint}: ${refusal.reason}): ${requirements.amount} of ${requirements.asset} to ${requirements.payTo}. Pay it anyway, without the mandate? [y/N] `),
  });
}

/** A y/N question on the terminal; no terminal, no approval. */
async function ttyApprove(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const { createInterface } = await import("node:readline/promises");
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

/** Several authorizers in order; each must allow the payment. The first nonce set is the one signed. */
function allOf(list: PaymentAuthorizer[]): PaymentAuthorizer | undefined {
  if (list.length <= 1) return list[0];
  return {
    async authorize(requirements, context) {
      const done: PaymentAuthorization[] = [];
      try {
        for (const a of list) done.push(await a.authorize(requirements, context));
      } catch (e) {
        for (const d of done) await d.release();
        throw e;
      }
      const nonce = done.find((d) => d.nonce !== undefined)?.nonce;
      const extensions = Object.assign({}, ...done.map((d) => d.extensions ?? {}));
      return {
        ...(nonce !== undefined ? { nonce } : {}),
        ...(Object.keys(extensions).length ? { extensions } : {}),
        async handOver(info) {
          for (const d of done) await d.handOver?.(info);
        },
        async commit() {
          for (const d of done) await d.commit();
        },
        async release() {
          for (const d of done) await d.release();
        },
      };
    },
  };
}

async function fetchPaid(options: PayOptions, schemes: SchemeClient[], policy: SpendingPolicy, usdAssets: readonly UsdAsset[], authorizer: PaymentAuthorizer | undefined): Promise<PayResult & { notCharged?: boolean }> {
  const paidFetch = wrapFetch(fetch, { schemes, policy, ...(authorizer ? { authorizer } : {}), ...(options.prefer?.length ? { choose: preferNetworks(options.prefer) } : {}) });
  const headers = new Headers();
  for (const h of options.headers ?? []) {
    const i = h.indexOf(":");
    if (i <= 0) throw new Error(`--header: expected "Name: value", got ${JSON.stringify(h)}`);
    headers.set(h.slice(0, i).trim(), h.slice(i + 1).trim());
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const base: PayResult = { ok: false, url: options.url, paid: false };
  try {
    const res = await paidFetch(options.url, {
      method: options.method ?? "GET",
      headers,
      signal: AbortSignal.timeout(timeoutMs),
      ...(options.body !== undefined ? { body: options.body } : {}),
    });
    const body = await res.text();
    const info = getPaymentReceipt(res);
    const paid = info !== undefined;
    const result: PayResult = { ...base, ok: res.ok, status: res.status, body, paid };
    if (info) {
      const usd = usdAmount(info.requirements.network, info.requirements.asset, info.requirements.amount, usdAssets);
      Object.assign(result, { amount: info.requirements.amount, asset: info.requirements.asset, network: info.requirements.network, payer: info.payer, ...(usd ? { amountUsd: usd } : {}), ...(info.receipt ? { receipt: info.receipt } : {}) });
    }
    if (!res.ok) result.error = { code: `http_${res.status}`, message: `${options.url} answered HTTP ${res.status}` };
    return result;
  } catch (e) {
    return { ...base, ...failure(e, options.url, timeoutMs), ...(e instanceof PaymentFailedError && e.charged === false ? { notCharged: true } : {}) };
  }
}

function failure(e: unknown, url: string, timeoutMs: number): Pick<PayResult, "error" | "status" | "paid" | "receipt"> {
  if (e instanceof PaymentRefusedError) return { paid: false, error: { code: "refused_by_policy", message: `not paid: ${e.message} (nothing was signed)` } };
  if (e instanceof MandateRefusedError) return { paid: false, error: { code: "refused_by_mandate", message: `not paid: ${e.message}` } };
  if (e instanceof PaymentFailedError) {
    const charged = e.charged === true ? "you were charged" : e.charged === false ? "the server reports no charge" : "the charge is unknown: the signed payment may still settle";
    return {
      paid: e.charged !== false,
      ...(e.status !== undefined ? { status: e.status } : {}),
      ...(e.receipt ? { receipt: e.receipt } : {}),
      error: { code: e.reason, message: `${url}: payment failed: ${e.reason} (${charged})` },
    };
  }
  return { paid: false, error: networkError(e, url, timeoutMs) };
}

/** What went wrong before any answer, in words: refused, DNS, timeout, TLS. */
export function networkError(e: unknown, url: string, timeoutMs: number): NetworkProblem {
  return describeNetworkError(e, url, hostOf(url), timeoutMs);
}

function usdAmount(network: string, asset: string, amount: string, extra: readonly UsdAsset[]): string | undefined {
  const same = (a: string, b: string) => (network.startsWith("eip155:") ? a.toLowerCase() === b.toLowerCase() : a === b);
  const hit = extra.find((u) => u.network === network && same(u.asset, asset));
  return hit ? atomicToDecimal(BigInt(amount), hit.decimals) : undefined;
}

function printResult(r: PayResult, out: (line: string) => void, err: (line: string) => void): void {
  if (r.status !== undefined) out(`HTTP ${r.status}`);
  if (r.body !== undefined) out(r.body);
  if (r.receipt) out(`receipt: ${JSON.stringify(r.receipt, null, 2)}`);
  if (r.error) err(`tollgate pay: ${r.error.message}`);
  else if (!r.paid) out("no payment was needed");
  else if (r.amount) out(`paid ${r.amountUsd ? `$${r.amountUsd}` : `${r.amount} atomic units of ${r.asset}`} on ${r.network} from ${r.payer}`);
}

async function loadAccount(keystore: string | undefined, env: Record<string, string | undefined>): Promise<LocalAccount> {
  if (keystore) {
    const password = env.TOLLGATE_KEYSTORE_PASSWORD;
    if (!password) throw new Error("TOLLGATE_KEYSTORE_PASSWORD is not set (needed to open --keystore)");
    return accountFromKeystore(await readFile(keystore, "utf8"), password);
  }
  if (env.TOLLGATE_PRIVATE_KEY === undefined) {
    const key = await defaultWalletKey(env);
    if (key) return privateKeyToAccount(key);
  }
  return accountFromEnv("TOLLGATE_PRIVATE_KEY", env);
}

function parseUsdAsset(spec: string): UsdAsset {
  const m = /^([-a-z0-9]+:[-_a-zA-Z0-9]+)\/([^:]+):([0-9]{1,2})$/.exec(spec);
  if (!m) throw new Error(`--usd-asset: expected network/asset:decimals, got ${JSON.stringify(spec)}`);
  return { network: m[1]!, asset: m[2]!, decimals: Number(m[3]) };
}
