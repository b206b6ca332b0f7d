/** Program addresses and limits of the Solana `exact` scheme (identical on every cluster). */
export const TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";
export const TOKEN_2022_PROGRAM = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb";
export const COMPUTE_BUDGET_PROGRAM = "ComputeBudget111111111111111111111111111111";
export const MEMO_PROGRAM = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr";
/** Wallet-injected user protection (Phantom adds one instruction, Solflare two); the spec allows it. */
export const LIGHTHOUSE_PROGRAM = "L2TExMFKdjpN9kozasaurPirfHy9P8sbXoAN1qA3S95";

/** Spec/reference cap: 5 lamports per compute unit, in micro-lamports. */
export const MAX_COMPUTE_UNIT_PRICE_MICROLAMPORTS = 5_000_000n;
export const DEFAULT_COMPUTE_UNIT_PRICE_MICROLAMPORTS = 1n;
export const DEFAULT_COMPUTE_UNIT_LIMIT = 20_000;
/** Default cap on SetComputeUnitLimit: the official SDK's smart-wallet maximum. */
export const MAX_COMPUTE_UNIT_LIMIT = 400_000;
/**
 * Default cap on the priority fee the fee payer pays per settlement: limit × price, in lamports.
 * The price cap alone lets a payload ask for 400k units × 5 lamports = 0.002 SOL per transaction.
 */
export const MAX_PRIORITY_FEE_LAMPORTS = 10_000n;
export const MAX_MEMO_BYTES = 256;

/** Instruction discriminators. */
export const SET_COMPUTE_UNIT_LIMIT = 2;
export const SET_COMPUTE_UNIT_PRICE = 3;
export const TRANSFER_CHECKED = 12;

/** How long a settled/in-flight transaction stays in the duplicate cache (spec: ~2x blockhash lifetime). */
export const SETTLEMENT_CACHE_MS = 120_000;
