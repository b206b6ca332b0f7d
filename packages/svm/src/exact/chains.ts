import { rpcChain, type SolanaChain } from "../chain.ts";

/** A chain, or the URL of a Solana JSON-RPC endpoint. */
export type ChainSource = SolanaChain | string;

function isChain(v: unknown): v is SolanaChain {
  return !!v && typeof v === "object" && typeof (v as SolanaChain).getLatestBlockhash === "function";
}

/** One JSON-RPC chain per URL, shared. */
const byUrl = new Map<string, SolanaChain>();
function urlChain(url: string): SolanaChain {
  let chain = byUrl.get(url);
  if (!chain) byUrl.set(url, (chain = rpcChain(url)));
  return chain;
}

/** Picks the chain for `network` from one source or a per-network map; URLs become JSON-RPC chains. */
export function resolveChain(source: ChainSource | Readonly<Record<string, ChainSource>>, network: string): SolanaChain {
  if (typeof source === "string") return urlChain(source);
  if (isChain(source)) return source;
  const entry = Object.hasOwn(source, network) ? source[network] : undefined;
  if (entry === undefined) throw new Error(`no Solana RPC configured for ${network}`);
  return isChain(entry) ? entry : urlChain(entry);
}
