import { rpcChain, type SolanaChain } from "../chain.ts";

/** A chain, or the URL of a Solana JSON-RPC endpoint. */
export type ChainSource = SolanaChain | string;

function isChain(v: unknown): v is SolanaChain {
  return !!v && typeof v === "object" && typeof (v as SolanaChain).getLatestBlockhash === "function";
}

const cache = new WeakMap<object, Map<string, SolanaChain>>();

/** Picks the chain for `network` from one source or a per-network map; URLs become JSON-RPC chains. */
export function resolveChain(source: ChainSource | Readonly<Record<string, ChainSource>>, network: string): SolanaChain {
  if (typeof source === "string") return rpcChain(source);
  if (isChain(source)) return source;
  const entry = Object.hasOwn(source, network) ? source[network] : undefined;
  if (entry === undefined) throw new Error(`no Solana RPC configured for ${network}`);
  if (isChain(entry)) return entry;
  let byUrl = cache.get(source);
  if (!byUrl) cache.set(source, (byUrl = new Map()));
  let chain = byUrl.get(entry);
  if (!chain) byUrl.set(entry, (chain = rpcChain(entry)));
  return chain;
}
