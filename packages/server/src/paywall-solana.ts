/**
 * The chain data the paywall page needs to let a browser wallet pay a Solana offer: a recent
 * blockhash and the mint's decimals and token program. The page itself may talk only to its own
 * origin and the wallet (its CSP says `connect-src 'self'`), and wallet-standard wallets offer no
 * chain reads, so the server reads them when it renders the page for a browser, from the Solana
 * chain configured in `paywallPage.solana` (a @tollgate/svm `SolanaChain`, e.g. `rpcChain(url)`,
 * fits). Without one, or when the read fails, the page shows the Solana offer but says to pay it
 * with an x402 client; the JSON 402 for clients is never delayed by this.
 */
import type { PaymentRequirements } from "@tollgate/core";
import type { PaywallSolanaView } from "./paywall-data.ts";

/** The two reads the page needs (structurally a subset of @tollgate/svm's SolanaChain). */
export interface PaywallSolanaChain {
  getLatestBlockhash(): Promise<{ blockhash: string }>;
  getAccountInfo(address: string): Promise<{ owner: string; data: Uint8Array } | null>;
}

const TOKEN_PROGRAMS = new Set(["TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA", "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"]);
/** A page load must not hang on a slow RPC: without the data it still renders (Solana then via a client). */
const READ_TIMEOUT_MS = 2_000;
/** Browsers reloading a page must not hammer the RPC; a blockhash this young still has ~55 s to live. */
const BLOCKHASH_REUSE_MS = 5_000;

const mints = new WeakMap<PaywallSolanaChain, Map<string, Promise<{ decimals: number; tokenProgram: string } | undefined>>>();
const blockhashes = new WeakMap<PaywallSolanaChain, { at: number; value: Promise<string> }>();

function withTimeout<T>(p: Promise<T>): Promise<T | undefined> {
  let cancel = () => {};
  const timeout = new Promise<undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), READ_TIMEOUT_MS);
    cancel = () => clearTimeout(timer);
  });
  return Promise.race([p.catch(() => undefined), timeout]).finally(() => cancel());
}

function mintInfo(chain: PaywallSolanaChain, mint: string): Promise<{ decimals: number; tokenProgram: string } | undefined> {
  let byMint = mints.get(chain);
  if (!byMint) mints.set(chain, (byMint = new Map()));
  let info = byMint.get(mint);
  if (!info) {
    info = chain.getAccountInfo(mint).then((account) => {
      // Mint layout: decimals is the byte at offset 44 in both token programs.
      const decimals = account?.data[44];
      return account && TOKEN_PROGRAMS.has(account.owner) && decimals !== undefined ? { decimals, tokenProgram: account.owner } : undefined;
    });
    byMint.set(mint, info);
    // A failed read is not remembered: the next page load tries again.
    info.then((v) => v === undefined && byMint!.delete(mint), () => byMint!.delete(mint));
  }
  return info;
}

function recentBlockhash(chain: PaywallSolanaChain): Promise<string> {
  const cached = blockhashes.get(chain);
  if (cached && Date.now() - cached.at < BLOCKHASH_REUSE_MS) return cached.value;
  const value = chain.getLatestBlockhash().then((b) => b.blockhash);
  blockhashes.set(chain, { at: Date.now(), value });
  value.catch(() => blockhashes.delete(chain));
  return value;
}

/** Per offer (same order), the Solana chain data for the page, or undefined (not Solana, no chain configured, read failed). */
export async function paywallSolanaViews(requirements: readonly PaymentRequirements[], chains: Readonly<Record<string, PaywallSolanaChain>> | undefined): Promise<(PaywallSolanaView | undefined)[]> {
  return Promise.all(
    requirements.map(async (r) => {
      const chain = chains && r.network.startsWith("solana:") && r.scheme === "exact" && Object.hasOwn(chains, r.network) ? chains[r.network] : undefined;
      if (!chain) return undefined;
      const [mint, blockhash] = await Promise.all([withTimeout(mintInfo(chain, r.asset)), withTimeout(recentBlockhash(chain))]);
      return mint && typeof blockhash === "string" ? { blockhash, ...mint } : undefined;
    }),
  );
}
