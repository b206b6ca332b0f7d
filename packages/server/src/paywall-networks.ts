/**
 * What the paywall page's wallet script needs to know about a network that the payment
 * requirements do not say: a block explorer for the transaction link, and the parameters a wallet
 * needs to add the chain (`wallet_addEthereumChain`) when it does not know it. Public data for
 * the networks of @tollgate/core's table; anything else (a local chain) gets neither, and the page
 * then shows the bare transaction hash and asks the user to add the chain themselves.
 */
export interface AddChainParameters {
  chainName: string;
  rpcUrls: string[];
  blockExplorerUrls?: string[];
  nativeCurrency: { name: string; symbol: string; decimals: number };
}

const ETH = { name: "Ether", symbol: "ETH", decimals: 18 };

interface Known {
  /** Prefix of a transaction page: `${explorerTx}${hash}`. */
  explorerTx: string;
  /** Appended after the hash (Solana devnet's cluster parameter). */
  explorerSuffix?: string;
  rpc?: string;
  currency?: { name: string; symbol: string; decimals: number };
}

const KNOWN: Record<string, Known> = {
  "eip155:8453": { explorerTx: "https://basescan.org/tx/", rpc: "https://mainnet.base.org" },
  "eip155:84532": { explorerTx: "https://sepolia.basescan.org/tx/", rpc: "https://sepolia.base.org" },
  "eip155:1": { explorerTx: "https://etherscan.io/tx/" },
  "eip155:11155111": { explorerTx: "https://sepolia.etherscan.io/tx/" },
  "eip155:10": { explorerTx: "https://optimistic.etherscan.io/tx/", rpc: "https://mainnet.optimism.io" },
  "eip155:11155420": { explorerTx: "https://sepolia-optimism.etherscan.io/tx/", rpc: "https://sepolia.optimism.io" },
  "eip155:42161": { explorerTx: "https://arbiscan.io/tx/", rpc: "https://arb1.arbitrum.io/rpc" },
  "eip155:421614": { explorerTx: "https://sepolia.arbiscan.io/tx/", rpc: "https://sepolia-rollup.arbitrum.io/rpc" },
  "eip155:137": { explorerTx: "https://polygonscan.com/tx/", rpc: "https://polygon-rpc.com", currency: { name: "POL", symbol: "POL", decimals: 18 } },
  "eip155:80002": { explorerTx: "https://amoy.polygonscan.com/tx/", rpc: "https://rpc-amoy.polygon.technology", currency: { name: "POL", symbol: "POL", decimals: 18 } },
  "eip155:43114": { explorerTx: "https://snowtrace.io/tx/", rpc: "https://api.avax.network/ext/bc/C/rpc", currency: { name: "Avalanche", symbol: "AVAX", decimals: 18 } },
  "eip155:43113": { explorerTx: "https://testnet.snowtrace.io/tx/", rpc: "https://api.avax-test.network/ext/bc/C/rpc", currency: { name: "Avalanche", symbol: "AVAX", decimals: 18 } },
  "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp": { explorerTx: "https://solscan.io/tx/" },
  "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1": { explorerTx: "https://solscan.io/tx/", explorerSuffix: "?cluster=devnet" },
};

/** `{ prefix, suffix }` of the transaction page on a public explorer, or undefined. */
export function explorerFor(network: string): { prefix: string; suffix: string } | undefined {
  const k = KNOWN[network];
  return k ? { prefix: k.explorerTx, suffix: k.explorerSuffix ?? "" } : undefined;
}

/** What `wallet_addEthereumChain` needs (without the chain id), or undefined when we know no public RPC. */
export function addChainParameters(network: string, chainName: string): AddChainParameters | undefined {
  const k = KNOWN[network];
  if (!k?.rpc) return undefined;
  const explorer = new URL(k.explorerTx).origin;
  return { chainName, rpcUrls: [k.rpc], blockExplorerUrls: [explorer], nativeCurrency: k.currency ?? ETH };
}
