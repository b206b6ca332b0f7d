// Where the public ERC-8004 v2.0.0 registries live. The same vanity addresses are used on every
// chain of a kind: one set on mainnets (Ethereum, Base, Arbitrum, OP, Polygon, ...), another on
// testnets (Sepolia, Base Sepolia, ...). Source: github.com/erc-8004/erc-8004-contracts (README
// for identity and reputation; scripts/addresses.ts for validation, which the README does not yet
// list because that part of the spec is still being revised).
import type { Address } from "viem";

export type Erc8004Addresses = {
  identityRegistry: Address;
  reputationRegistry: Address;
  validationRegistry: Address;
};

/** The registries on mainnets. `deployErc8004` installs ours at these addresses on anvil. */
export const ERC8004_MAINNET_ADDRESSES = {
  identityRegistry: "0x8004A169FB4a3325136EB29fA0ceB6D2e539a432",
  reputationRegistry: "0x8004BAa17C55a88189AE136b182e5fdA19dE9b63",
  validationRegistry: "0x8004Cc8439f36fd5F9F049D9fF86523Df6dAAB58",
} as const satisfies Erc8004Addresses;

/** The registries on testnets (Sepolia, Base Sepolia, Arbitrum Sepolia, ...). */
export const ERC8004_TESTNET_ADDRESSES = {
  identityRegistry: "0x8004A818BFB912233c491871b3d84c89A494BD9e",
  reputationRegistry: "0x8004B663056A597Dffe9eCcC1965A193B7388713",
  validationRegistry: "0x8004Cb1BF31DAf7788923b405b754f57acEB4272",
} as const satisfies Erc8004Addresses;

/** `{namespace}:{chainId}:{identityRegistry}`, how registration and feedback files name a registry. */
export function agentRegistryId(chainId: number, identityRegistry: Address = ERC8004_MAINNET_ADDRESSES.identityRegistry): `eip155:${number}:${Address}` {
  return `eip155:${chainId}:${identityRegistry}`;
}
