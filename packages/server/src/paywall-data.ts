/**
 * What the paywall page hands its wallet script (a JSON island in the page, read once): the
 * PaymentRequired of this 402, exactly as the PAYMENT-REQUIRED header carries it, and per offer
 * (same order as `required.accepts`) what a person needs to see. Types only: shared by the page
 * renderer (Node) and the browser script (bundled by scripts/build-paywall.ts).
 */
import type { PaymentRequired } from "@tollgate/core";
import type { AddChainParameters } from "./paywall-networks.ts";

export interface PaywallOfferView {
  /** The price as configured ("$0.01"), or atomic units when the route priced it so. */
  display: string;
  /** "Base Sepolia", or the CAIP-2 id when the network is not in the table. */
  networkName: string;
  /** eip155 networks: the chain id. */
  chainId?: number;
  /** When the asset is a token the table knows (USDC): for showing balances. */
  token?: { symbol: string; decimals: number };
  /** Transaction page on a public explorer: `${prefix}${hash}${suffix}`. */
  explorer?: { prefix: string; suffix: string };
  /** For `wallet_addEthereumChain` when the wallet does not know the chain. */
  addChain?: AddChainParameters;
  /** Solana offers, when the server could read the chain: what the transaction needs from it. */
  solana?: PaywallSolanaView;
}

/**
 * What a Solana payment transaction needs from the chain, read by the SERVER (the page talks only
 * to its own origin and the wallet, and wallet-standard wallets offer no chain reads). A blockhash
 * lives about a minute: the page fetches a fresh page from its own URL when its copy is older.
 */
export interface PaywallSolanaView {
  /** A recent blockhash (base58), the transaction's lifetime. */
  blockhash: string;
  /** The mint's decimals (TransferChecked carries them). */
  decimals: number;
  /** The mint's owner: the SPL Token or Token-2022 program. */
  tokenProgram: string;
}

export interface PaywallPageData {
  required: PaymentRequired;
  offers: PaywallOfferView[];
}

/** The id of the JSON island and of the panel the script fills in. */
export const PAYWALL_DATA_ID = "tollgate-paywall-data";
export const PAYWALL_PANEL_ID = "tollgate-pay";
