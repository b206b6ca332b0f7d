/**
 * Links to a block explorer for a transaction. A network's template is a URL with `{hash}`;
 * only http(s) templates are used, and only a hash that looks like one (hex or base58) is put
 * in, so a hostile ledger value can never become a `javascript:` link or another path.
 */
const BUILT_IN: Record<string, string> = {
  "eip155:1": "https://etherscan.io/tx/{hash}",
  "eip155:8453": "https://basescan.org/tx/{hash}",
  "eip155:84532": "https://sepolia.basescan.org/tx/{hash}",
  "eip155:10": "https://optimistic.etherscan.io/tx/{hash}",
  "eip155:42161": "https://arbiscan.io/tx/{hash}",
  "eip155:137": "https://polygonscan.com/tx/{hash}",
  "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp": "https://explorer.solana.com/tx/{hash}",
  "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1": "https://explorer.solana.com/tx/{hash}?cluster=devnet",
};

const HASH = /^(0x[0-9a-fA-F]{64}|[1-9A-HJ-NP-Za-km-z]{64,90})$/;

/** The explorer URL of `hash` on `network`, or null (unknown network, local chain, odd hash). */
export function explorerLinkFor(network: string, hash: string | null | undefined, configured: Record<string, string> = {}): string | null {
  if (!hash || !HASH.test(hash)) return null;
  const template = Object.hasOwn(configured, network) ? configured[network] : BUILT_IN[network];
  if (!template || !/^https?:\/\/[^\s]+$/.test(template) || !template.includes("{hash}")) return null;
  return template.replace("{hash}", encodeURIComponent(hash));
}
