/**
 * The networks Tollgate knows by default, and their USDC. Pure data and lookups: no chain code.
 *
 * USDC addresses and EIP-712 domains (name, version) are what the deployed Circle FiatToken
 * contracts report; EIP-3009 signatures are only valid against the exact domain, so a wrong
 * name here means every payment on that chain fails verification. Sources: the x402 reference
 * implementation's default asset tables (Base, Base Sepolia, Ethereum, Polygon, Polygon Amoy,
 * Arbitrum One, Arbitrum Sepolia, Avalanche, Avalanche Fuji, Solana) and Circle's published
 * deployments (Sepolia, Optimism, OP Sepolia).
 *
 * A local or private chain is added by configuration with `withNetworks`, which returns a new
 * table: nothing here is mutated at runtime.
 */
import type { Network } from "./caip2.ts";

export interface TokenInfo {
  /** EVM: checksummed contract address. Solana: the mint (base58). */
  address: string;
  decimals: number;
  symbol: string;
  /** EVM only: the token's EIP-712 domain, as `name()` and `version()` return them. */
  eip712?: { name: string; version: string };
}

export interface NetworkInfo {
  /** CAIP-2 id. */
  id: Network;
  name: string;
  /** The x402 v1 network name, if v1 has one. */
  v1Name?: string;
  testnet: boolean;
  /**
   * A development chain (`tollgate dev`'s anvil): its token prices "$" amounts and counts as
   * dollars for a client's policy, but a facilitator never accepts it by default: local tokens
   * are listed in its `assets` explicitly.
   */
  local?: boolean;
  usdc?: TokenInfo;
}

export type NetworkTable = Readonly<Record<string, Readonly<NetworkInfo>>>;

const usdcEvm = (address: string, name: "USD Coin" | "USDC"): TokenInfo => ({
  address,
  decimals: 6,
  symbol: "USDC",
  eip712: { name, version: "2" },
});
const usdcSolana = (mint: string): TokenInfo => ({ address: mint, decimals: 6, symbol: "USDC" });

const LIST: NetworkInfo[] = [
  { id: "eip155:8453", name: "Base", v1Name: "base", testnet: false, usdc: usdcEvm("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "USD Coin") },
  { id: "eip155:84532", name: "Base Sepolia", v1Name: "base-sepolia", testnet: true, usdc: usdcEvm("0x036CbD53842c5426634e7929541eC2318f3dCF7e", "USDC") },
  { id: "eip155:1", name: "Ethereum", v1Name: "ethereum", testnet: false, usdc: usdcEvm("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "USD Coin") },
  { id: "eip155:11155111", name: "Sepolia", v1Name: "sepolia", testnet: true, usdc: usdcEvm("0x1c7D4B196Cb0C7B01d743Fbc6116a902379C7238", "USDC") },
  { id: "eip155:10", name: "Optimism", v1Name: "optimism", testnet: false, usdc: usdcEvm("0x0b2C639c533813f4Aa9D7837CAf62653d097Ff85", "USD Coin") },
  { id: "eip155:11155420", name: "OP Sepolia", v1Name: "optimism-sepolia", testnet: true, usdc: usdcEvm("0x5fd84259d66Cd46123540766Be93DFE6D43130D7", "USDC") },
  { id: "eip155:42161", name: "Arbitrum One", v1Name: "arbitrum", testnet: false, usdc: usdcEvm("0xaf88d065e77c8cC2239327C5EDb3A432268e5831", "USD Coin") },
  { id: "eip155:421614", name: "Arbitrum Sepolia", v1Name: "arbitrum-sepolia", testnet: true, usdc: usdcEvm("0x75faf114eafb1BDbe2F0316DF893fd58CE46AA4d", "USD Coin") },
  { id: "eip155:137", name: "Polygon", v1Name: "polygon", testnet: false, usdc: usdcEvm("0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359", "USD Coin") },
  { id: "eip155:80002", name: "Polygon Amoy", v1Name: "polygon-amoy", testnet: true, usdc: usdcEvm("0x41E94Eb019C0762f9Bfcf9Fb1E58725BfB0e7582", "USDC") },
  { id: "eip155:43114", name: "Avalanche C-Chain", v1Name: "avalanche", testnet: false, usdc: usdcEvm("0xB97EF9Ef8734C71904D8002F8b6Bc66Dd9c48a6E", "USD Coin") },
  { id: "eip155:43113", name: "Avalanche Fuji", v1Name: "avalanche-fuji", testnet: true, usdc: usdcEvm("0x5425890298aed601595a70AB815c96711a31Bc65", "USD Coin") },
  // The local chain of `tollgate dev` (anvil, chain id 31337): its USD Coin is the first contract the
  // dev accounts deploy on a fresh chain, so its address is always this one. Test money only.
  { id: "eip155:31337", name: "Local (tollgate dev)", testnet: true, local: true, usdc: usdcEvm("0x5FbDB2315678afecb367f032d93F642f64180aa3", "USD Coin") },
  { id: "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", name: "Solana", v1Name: "solana", testnet: false, usdc: usdcSolana("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v") },
  { id: "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", name: "Solana Devnet", v1Name: "solana-devnet", testnet: true, usdc: usdcSolana("4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU") },
];

function freezeTable(list: readonly NetworkInfo[]): NetworkTable {
  const table: Record<string, Readonly<NetworkInfo>> = {};
  for (const n of list) {
    const usdc = n.usdc ? Object.freeze({ ...n.usdc, ...(n.usdc.eip712 ? { eip712: Object.freeze({ ...n.usdc.eip712 }) } : {}) }) : undefined;
    table[n.id] = Object.freeze({ ...n, ...(usdc ? { usdc } : {}) });
  }
  return Object.freeze(table);
}

/** The built-in table, keyed by CAIP-2 id. */
export const NETWORKS: NetworkTable = freezeTable(LIST);

/** A new table: `base` plus `extra` (an entry with an existing id replaces it). */
export function withNetworks(base: NetworkTable, extra: readonly NetworkInfo[]): NetworkTable {
  return freezeTable([...Object.values(base), ...extra]);
}

/** The built-in table plus `extra`. */
export function defineNetworks(extra: readonly NetworkInfo[]): NetworkTable {
  return withNetworks(NETWORKS, extra);
}

/** Looks a network up by CAIP-2 id or v1 name. */
export function getNetwork(id: string, table: NetworkTable = NETWORKS): Readonly<NetworkInfo> | undefined {
  if (Object.hasOwn(table, id)) return table[id];
  for (const n of Object.values(table)) if (n.v1Name === id) return n;
  return undefined;
}

/** The USDC of a network (CAIP-2 id or v1 name), or undefined when none is known. */
export function findUsdc(network: string, table: NetworkTable = NETWORKS): Readonly<TokenInfo> | undefined {
  return getNetwork(network, table)?.usdc;
}

/** Finds a known token by its address on `network` (EVM addresses compare case-insensitively). */
export function findToken(network: string, asset: string, table: NetworkTable = NETWORKS): Readonly<TokenInfo> | undefined {
  const usdc = findUsdc(network, table);
  if (!usdc) return undefined;
  const same = network.startsWith("eip155:") ? usdc.address.toLowerCase() === asset.toLowerCase() : usdc.address === asset;
  return same ? usdc : undefined;
}
