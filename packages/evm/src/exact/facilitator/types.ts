import type { Network } from "@tollgate/core";
import type { Address, Hex, LocalAccount, PublicClient } from "viem";
import type { SettlementResult } from "../../settlement/result.ts";
import type { ExactEvmAuthorization } from "../payload.ts";
import type { Permit2Authorization } from "../permit2-payload.ts";
import type { PayerBackoff } from "./payer-backoff.ts";

export interface ExactEvmAssetConfig {
  address: Address;
  /** EIP-712 domain name (informational here: the token's own domain is read on-chain). */
  name: string;
  version: string;
  decimals: number;
}

export interface ExactEvmNetworkConfig {
  network: Network;
  rpcUrl?: string;
  publicClient?: PublicClient;
  /**
   * The assets accepted on this network. Omitted: the network table's USDC for it (@tollgate/core
   * `findUsdc`) and nothing else; a network without USDC in the table (a local chain) accepts
   * nothing until its tokens are listed. Anything else is refused (`evmAssetNotAllowed`) before
   * the chain is asked: a contract that only claims to be a token must never cost the fee payer gas.
   */
  assets?: readonly ExactEvmAssetConfig[];
  /** Accept contract-wallet (ERC-1271) signatures on this network (overrides the facilitator-wide setting). */
  contractWallets?: boolean;
  /** Multicall3 address; default the canonical one when code exists there; `false` to never batch. */
  multicall3?: Address | false;
  /**
   * Coalescing of concurrent verifications' reads into shared aggregate3 eth_calls (Multicall3 only).
   * Defaults: up to 300 calls per eth_call, 8 eth_calls in flight, window = the current I/O turn.
   */
  batch?: { maxCalls?: number; maxInFlight?: number; windowMs?: number };
}

/** A settlement ready to broadcast: what a custom submitter (settlement engine) receives. */
export interface ExactEvmSettlementCall {
  network: Network;
  asset: Address;
  authorization: ExactEvmAuthorization;
  signature: Hex;
  /** Calldata of the `transferWithAuthorization` call to send to `asset` (exact/encode.ts). */
  data: Hex;
  /** A contract-wallet (ERC-1271) signature: send alone, with the `bytes` overload (as `data` does). */
  contractWallet?: boolean;
}

/** A Permit2 settlement ready to broadcast: one call of the x402 exact Permit2 proxy. */
export interface ExactPermit2SettlementCall {
  network: Network;
  /** The ERC-20 paid with. */
  asset: Address;
  /** The proxy: EXACT_PERMIT2_PROXY_ADDRESS, or UPTO_PERMIT2_PROXY_ADDRESS for the `upto` scheme. */
  to: Address;
  /** Calldata of `settle` / `settleWithPermit` (exact/permit2-encode.ts). */
  data: Hex;
  /** The payment's settle-once key (permit2PaymentKey). */
  key: string;
  authorization: Permit2Authorization;
  signature: Hex;
  /** Carries the eip2612GasSponsoring permit (`settleWithPermit`). */
  eip2612?: boolean;
  contractWallet?: boolean;
  /** upto: the charge the call moves (atomic units, at most permitted.amount); default permitted.amount. */
  amount?: string;
  /** upto: the only account that may send the call (witness.facilitator; the proxy refuses any other). */
  sender?: Address;
}

export type ExactPermit2Submit = (call: ExactPermit2SettlementCall) => Promise<SettlementResult>;

/** What a submitter answers: settled, failed (with the reason) or pending, as a value. */
export type ExactEvmSubmitResult = SettlementResult;

export type ExactEvmSubmit = (call: ExactEvmSettlementCall) => Promise<SettlementResult>;

export interface ExactEvmFacilitatorConfig {
  networks: readonly ExactEvmNetworkConfig[];
  /** Pays the gas and sends settlements. */
  signer: LocalAccount;
  /**
   * Replaces the built-in sending: a settlement engine with its own signers, batching and ledger.
   * Without it, a private settlement engine for `signer` (batching off) sends, with the caps below.
   */
  submit?: ExactEvmSubmit;
  /**
   * Sends Permit2 settlements (one proxy call each). Without it, a built-in sender uses `signer`
   * (one transaction at a time per network). Note: with `submit` also unset, the built-in EIP-3009
   * engine and this sender share `signer`'s account nonce; a collision is refused by the node
   * ("nonce too low") and nothing is lost, but busy mixed traffic should use a shared submitter.
   */
  submitPermit2?: ExactPermit2Submit;
  /**
   * Accept the Permit2 asset transfer method (payloads with `permit2Authorization`). Default true.
   * False: they are refused (`unsupported_payload_type`) at authenticate, verify and settle, before
   * any chain call; for a service whose sender cannot carry proxy calls.
   */
  permit2?: boolean;
  /** Unix seconds; for tests. */
  now?: () => number;
  /** `validBefore` must be at least this many seconds ahead to settle (block time margin). Default 6. */
  minValiditySeconds?: number;
  /**
   * Longest accepted `validBefore - validAfter` beyond `maxTimeoutSeconds` (clients backdate
   * `validAfter` by 600s for clock skew). Default 900; `null` disables the check.
   */
  validityToleranceSeconds?: number | null;
  /** How long settle waits for the receipt before answering `settlement_pending`. Default 30 000. */
  receiptTimeoutMs?: number;
  /** Receipt polling interval of the built-in sender. Default: picked from the chain. */
  pollingIntervalMs?: number;
  /** Built-in sender: refuse a settlement whose estimated gas exceeds this. Default 250 000. */
  maxGasPerSettlement?: bigint;
  /** Built-in sender: never pay more than this per gas (wei). Default: no cap. */
  maxFeePerGasCap?: bigint;
  /**
   * Accept contract-wallet (ERC-1271) signatures. Default false: they are refused
   * (`evmContractWalletNotAllowed`) before any chain call. When true, each is judged on chain by
   * the wallet's `isValidSignature` and a dry run of the transfer WITH real fee fields (so a wallet
   * that passes a fee-less eth_call but reverts when mined is caught), and sent alone.
   */
  contractWallets?: boolean;
  /**
   * Payers whose settlement reverted on chain are refused (`payerSuspended`) for a while; pass a
   * shared one to also feed it results that arrive in the background. Default: a private one, 10 min.
   */
  payerBackoff?: PayerBackoff;
  /**
   * Whether `settle` repeats verify's on-chain dry run of the transfer before handing it to
   * `submit`. Default true. Set false only with a `submit` that simulates what it sends and
   * refuses what would revert (the settlement engine's preflight: one eth_simulateV1 per batch,
   * failing items left out with the token's reason): the dry run is then paid twice. Settle still
   * checks everything else, off-chain and on-chain (balance, nonce state, token domain), and
   * contract wallets always get their fee-field dry run.
   */
  settleDryRun?: boolean;
}
