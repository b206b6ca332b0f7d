import type { Network } from "@tollgate/core";
import type { Address, Hex, LocalAccount, PublicClient } from "viem";
import type { AuthorizationFields } from "../exact/encode.ts";
import type { ExactPermit2SettlementCall } from "../exact/facilitator/types.ts";
import type { SettlementResult } from "./result.ts";

/** One EIP-3009 `transferWithAuthorization` to put on chain, as the exact facilitator hands it over. */
export interface SettlementCall {
  network: Network;
  /** The EIP-3009 token. */
  asset: Address;
  authorization: SettlementAuthorization;
  signature: Hex;
  /**
   * A contract-wallet (ERC-1271) signature, already judged on-chain by the scheme: encoded with
   * the `bytes` overload as it is, and always sent alone (a wallet that misbehaves when mined must
   * not take a batch's gas with it).
   */
  contractWallet?: boolean;
}

/** Numbers may come as bigint or as decimal strings (the wire form). */
export type SettlementAuthorization = AuthorizationFields;

/**
 * One call of the x402 exact Permit2 proxy (`settle` / `settleWithPermit`), as the exact
 * facilitator hands it over. Always sent alone (one payment per transaction, never batched).
 */
export type Permit2SettlementCall = ExactPermit2SettlementCall;

/** Whatever the engine carries: an EIP-3009 authorization or a Permit2 proxy call. */
export type EngineCall = SettlementCall | Permit2SettlementCall;

export type TransactionStatus = "success" | "reverted" | "pending";

/**
 * What `submit` resolves to: this call's own outcome (a batch transaction can succeed while one
 * of its items fails; that item's caller gets "failed" with the token's reason and the hash).
 * "pending" means the receipt did not arrive within `receiptTimeoutMs`; tracking goes on in the
 * background (see `onFinal`, `waitFor`).
 */
export type SubmitResult = SettlementResult;

export interface ItemResult {
  call: EngineCall;
  status: "success" | "reverted";
  reason?: string;
}

export interface SubmittedEvent {
  items: readonly EngineCall[];
  transaction: Hex;
  signer: Address;
  nonce: number;
  network: Network;
  /** The EIP-1559 fees this hash was sent with. */
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
  /** Set when this transaction replaces an earlier one with the same nonce (fee bump). */
  replaces?: Hex;
}

export interface FinalEvent {
  items: readonly ItemResult[];
  /** The hash that landed (after a replacement, possibly not the first one sent). */
  transaction: Hex;
  /** The transaction's status; each item's own status is in `items`. */
  status: "success" | "reverted";
  network: Network;
  blockNumber: bigint;
  /** From the receipt, so a hook need not fetch it again for gas accounting. */
  gasUsed?: bigint;
  effectiveGasPrice?: bigint;
}

/** An item as read back from a receipt: settled iff the token logged `AuthorizationUsed`. */
export interface ReceiptItem {
  from: Address;
  nonce: Hex;
  status: "success" | "reverted";
  reason?: string;
}

export interface TransactionOutcome {
  transaction: Hex;
  /** For `waitFor(..., { item })`: that item's status; otherwise the transaction's. */
  status: TransactionStatus;
  /** Why the item (or transaction) did not settle, when it did not. */
  reason?: string;
  blockNumber?: bigint;
  /** From the receipt when one was read (the reconciler records them for gas accounting). */
  gasUsed?: bigint;
  effectiveGasPrice?: bigint;
  /** Items the receipt reports on (settled ones from the token's events, failed ones from the settler's). */
  items: ReceiptItem[];
}

export interface SettlementNetworkConfig {
  network: Network;
  /** JSON-RPC URL; or pass `client`. */
  rpcUrl?: string;
  client?: PublicClient;
  /** The BatchSettler contract; without it every settlement goes direct. */
  batchSettler?: Address;
}

export interface ReplacementConfig {
  /** Re-send the same nonce with higher fees when not mined after this long. */
  bumpAfterMs: number;
  /** Fee increase per bump, in percent; at least 12.5 (nodes reject smaller bumps). Default 20. */
  bumpPercent?: number;
}

export interface SettlementEngineConfig {
  networks: readonly SettlementNetworkConfig[];
  /** Fee-paying accounts (private keys or viem local accounts), used in parallel. Never logged. */
  signers: readonly (Hex | LocalAccount)[];
  /**
   * Coalesce concurrent settlements of one (network, token) into one BatchSettler call, group-commit
   * style: a settlement that finds a signer idle is sent at once; while all signers are busy
   * (a transaction being sent or not yet mined), arrivals queue and go out together as soon as a
   * signer frees up. Default true.
   */
  batching?: boolean;
  /** Default 50. A full queue does not wait for an idle signer: it goes to the least busy one. */
  maxBatchSize?: number;
  /**
   * Upper bound on how long a queued settlement waits for an idle signer; after it, its batch goes
   * to the least busy signer (on that signer's next nonce). Not a delay: with an idle signer nothing
   * waits. Default 100.
   */
  maxWaitMs?: number;
  /** Never pay more than this per gas (wei). Default: no cap. */
  maxFeePerGasCap?: bigint;
  /** Refuse a settlement whose estimated gas exceeds this (per item for a batch). Default 250_000. */
  maxGasPerSettlement?: bigint;
  /** How long `submit` waits for the receipt before answering "pending". Default 30_000. */
  receiptTimeoutMs?: number;
  /** Fee-bump stuck transactions; `false` (default) to never replace. */
  replacement?: ReplacementConfig | false;
  /**
   * Receipt polling period (one eth_blockNumber per tick; receipts are fetched, in one JSON-RPC
   * batch, only when the block changed). Default: from the chain — 10 ms on a local dev chain
   * (chain id 31337/1337, or an anvil/hardhat/ganache node), otherwise a quarter of the observed
   * block time within [50 ms, 1 s].
   */
  pollingIntervalMs?: number;
  /**
   * Simulate a batch before sending it and leave out items that would fail, rejecting them at once
   * (no gas spent on them). Default true.
   */
  preflight?: boolean;
  /**
   * Durability hooks; awaited, but their failures only go to `onError`. `submit` returns a hash only
   * after `onSubmitted` for it completed, and a final result only after `onFinal` completed (so
   * `onFinal` runs while the caller still waits). Per transaction, onFinal runs after its onSubmitted hooks.
   */
  onSubmitted?: (event: SubmittedEvent) => void | Promise<void>;
  onFinal?: (event: FinalEvent) => void | Promise<void>;
  /**
   * Whether a signer may take new work on a network now (e.g. it holds a lease, its balance is
   * above a floor). Asked on every dispatch, so keep it cheap. A signer refused and later usable
   * again re-reads its nonce from the node. With no usable signer, `submit` answers failed with
   * `Reason.facilitatorNotReady` (nothing sent). Default: every signer is usable.
   */
  signerUsable?: (signer: Address, network: Network) => boolean;
  /** Background failures (hooks, polling, bumps, signerUsable). Default: ignored. */
  onError?: (error: unknown, context: string) => void;
}

export interface WaitForOptions {
  /** Give up and answer "pending" after this long. Default: wait until the receipt arrives. */
  timeoutMs?: number;
  /**
   * The EIP-3009 token the transaction settles: only logs emitted by it prove an item settled.
   * Needed for a transaction this engine does not follow (after a restart); without it the
   * transaction's own recipient is taken, which is the token only for a direct call.
   */
  token?: Address;
  /** Report this item's status rather than the transaction's. */
  item?: { from: Address; nonce: Hex };
}

export interface SignerStats {
  network: Network;
  address: Address;
  /** Transactions this signer sent (replacements included). */
  sent: number;
  /** Batches being sent plus transactions not yet final; 0 means idle (the next settlement goes out at once). */
  inFlight: number;
}

export interface EngineStats {
  /** Settlement transactions sent, first sends only. */
  transactions: number;
  replacements: number;
  items: number;
  /** Settlements queued for a signer right now (all signers busy). */
  queued: number;
  signers: SignerStats[];
}

export interface SettlementEngine {
  /**
   * Exactly the exact-scheme facilitator's `submit` hook. Never throws: refusals are "failed"
   * results (no `transaction`: nothing was sent). The same authorization submitted again while
   * the first is not final joins the first (one send, the same result for both); different
   * content for the same authorization waits for the first to finish, then is judged on its own.
   */
  submit(call: SettlementCall): Promise<SubmitResult>;
  /**
   * The exact facilitator's `submitPermit2` hook: one Permit2 proxy call, through the same lanes,
   * signer, simulation, gas cap, hooks and receipt following as `submit`, always alone. Settled
   * only when the receipt holds the proxy's Settled/SettledWithPermit log AND the token's
   * Transfer(owner → witness.to, amount). Never throws.
   */
  submitPermit2(call: Permit2SettlementCall): Promise<SubmitResult>;
  /**
   * Follows a transaction (or all hashes sent for one nonce) until one lands; after a restart,
   * resume each pending ledger entry with this. A landed transaction is never reported failed
   * and a reverted one never reported settled: the status comes from the receipt.
   */
  waitFor(transaction: Hex | readonly Hex[], options?: WaitForOptions & { network?: Network }): Promise<TransactionOutcome>;
  /** One look, no waiting: the outcome if mined, else "pending". */
  reconcile(transaction: Hex | readonly Hex[], options?: Omit<WaitForOptions, "timeoutMs"> & { network?: Network }): Promise<TransactionOutcome>;
  stats(): EngineStats;
  /** Stops taking work, sends what is queued and waits (up to `timeoutMs`, default 60 s) for it to be final. */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

/**
 * What `consumeNonce` did: `filled` sent no-op transactions (0 ETH to itself) at the node's next
 * nonces up to the one asked; `taken` found the node already has a transaction at that nonce (or
 * past it), so nothing was sent; `unknown` does not hold that signer on that network.
 */
export type NonceFill = "filled" | "taken" | "unknown";

export interface NonceFiller {
  /**
   * Makes sure `nonce` of `signer` gets used: a transaction signed but perhaps never broadcast
   * (the process died between the write-ahead record and the send) can then never land later,
   * so whoever follows it can tell it was dropped. Fills at most 16 nonces.
   */
  consumeNonce(network: Network, signer: Address, nonce: number): Promise<NonceFill>;
}
