// Finding the wallets in this browser. EVM: EIP-6963 (every wallet announces itself with a name
// and icon in answer to `eip6963:requestProvider`), falling back to the one legacy
// `window.ethereum`. Solana: the wallet standard's two-event handshake (what @wallet-standard/app
// implements): the page announces `wallet-standard:app-ready` with a register function, and each
// wallet registers on it or answers later with `wallet-standard:register-wallet`.

/** EIP-1193. */
export interface Eip1193Provider {
  request(args: { method: string; params?: unknown[] | Record<string, unknown> }): Promise<unknown>;
  on?(event: string, listener: (...args: unknown[]) => void): void;
}

export interface EvmWallet {
  /** EIP-6963 uuid, or "injected" for window.ethereum. */
  id: string;
  name: string;
  /** data: URI (EIP-6963 requires one); anything else is not shown. */
  icon?: string;
  provider: Eip1193Provider;
}

interface AnnounceDetail {
  info?: { uuid?: unknown; name?: unknown; icon?: unknown; rdns?: unknown };
  provider?: Eip1193Provider;
}

/** Collects announced wallets; `onChange` runs whenever one more appears (wallets may answer late). */
export function discoverEvmWallets(onChange: (wallets: EvmWallet[]) => void): EvmWallet[] {
  const wallets: EvmWallet[] = [];
  window.addEventListener("eip6963:announceProvider", (event) => {
    const detail = (event as CustomEvent<AnnounceDetail>).detail;
    const provider = detail?.provider;
    const info = detail?.info;
    if (!provider || typeof provider.request !== "function" || !info || typeof info.uuid !== "string") return;
    if (wallets.some((w) => w.id === info.uuid)) return;
    const name = typeof info.name === "string" && info.name.trim() !== "" ? info.name.trim().slice(0, 60) : "Browser wallet";
    const icon = typeof info.icon === "string" && /^data:image\/(png|svg\+xml|webp|gif|jpeg);/i.test(info.icon) ? info.icon : undefined;
    wallets.push({ id: info.uuid, name, ...(icon ? { icon } : {}), provider });
    onChange([...wallets]);
  });
  window.dispatchEvent(new Event("eip6963:requestProvider"));
  return wallets;
}

/** The legacy injected provider, when no wallet announced itself through EIP-6963. */
export function injectedWallet(): EvmWallet | undefined {
  const ethereum = (window as unknown as { ethereum?: Eip1193Provider }).ethereum;
  if (!ethereum || typeof ethereum.request !== "function") return undefined;
  return { id: "injected", name: "Browser wallet", provider: ethereum };
}

/** A wallet-standard wallet (only what the page reads). */
export interface StandardWallet {
  name: string;
  icon?: string;
  chains: readonly string[];
  features: Record<string, unknown>;
}

/** A wallet-standard account: `address` is base58 for Solana. */
export interface StandardAccount {
  address: string;
  chains?: readonly string[];
  features?: readonly string[];
}

interface ConnectFeature {
  connect(input?: { silent?: boolean }): Promise<{ accounts: readonly StandardAccount[] }>;
}
interface SignTransactionFeature {
  signTransaction(...inputs: { account: StandardAccount; transaction: Uint8Array; chain?: string }[]): Promise<readonly { signedTransaction: Uint8Array }[]>;
}

/** Whether the wallet can do what paying needs: connect, and sign a transaction without sending it. */
export function canPaySolana(w: StandardWallet): boolean {
  const connect = w.features["standard:connect"] as Partial<ConnectFeature> | undefined;
  const sign = w.features["solana:signTransaction"] as Partial<SignTransactionFeature> | undefined;
  return typeof connect?.connect === "function" && typeof sign?.signTransaction === "function";
}

/** `standard:connect`: the first account that can sign Solana transactions. */
export async function connectSolana(w: StandardWallet): Promise<StandardAccount | undefined> {
  const { accounts } = await (w.features["standard:connect"] as ConnectFeature).connect();
  return accounts.find((a) => typeof a.address === "string" && (!a.features || a.features.includes("solana:signTransaction")));
}

/** `solana:signTransaction` of one transaction; the signed wire bytes. */
export async function signSolanaTransaction(w: StandardWallet, account: StandardAccount, transaction: Uint8Array, chain: string): Promise<Uint8Array | undefined> {
  const [out] = await (w.features["solana:signTransaction"] as SignTransactionFeature).signTransaction({ account, transaction, chain });
  return out?.signedTransaction instanceof Uint8Array ? out.signedTransaction : undefined;
}

/** Wallet-standard wallets that support a Solana chain. */
export function discoverSolanaWallets(onChange: (wallets: StandardWallet[]) => void): void {
  const wallets: StandardWallet[] = [];
  const register = (...found: StandardWallet[]) => {
    for (const w of found) {
      if (!w || typeof w.name !== "string" || !Array.isArray(w.chains)) continue;
      if (!w.chains.some((c) => typeof c === "string" && c.startsWith("solana:")) || wallets.includes(w)) continue;
      wallets.push(w);
    }
    onChange([...wallets]);
    return () => {};
  };
  const api = Object.freeze({ register });
  window.addEventListener("wallet-standard:register-wallet", (event) => {
    const callback = (event as CustomEvent<unknown>).detail;
    if (typeof callback === "function") {
      try {
        callback(api);
      } catch {
        // a broken wallet must not break the page
      }
    }
  });
  try {
    window.dispatchEvent(new CustomEvent("wallet-standard:app-ready", { detail: api }));
  } catch {
    // ignore
  }
}

/** An EIP-1193 error's code (4001 user rejected, 4902 unknown chain, …), if it has one. */
export function errorCode(e: unknown): number | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === "number") return code;
  // Some wallets wrap the provider error.
  const inner = (e as { data?: { originalError?: { code?: unknown } }; cause?: { code?: unknown } } | null);
  const nested = inner?.data?.originalError?.code ?? inner?.cause?.code;
  return typeof nested === "number" ? nested : undefined;
}

export const USER_REJECTED = 4001;
export const UNRECOGNIZED_CHAIN = 4902;
