/**
 * What the ledger stores and answers: one row per authorization (its settle-once key), an
 * event per verify and settle, and the write-ahead log of settlement transactions.
 */
import type { SettleResponse } from "@tollgate/core";
import type { Sql } from "./sql.ts";

export type PaymentStatus = "verified" | "pending" | "settled" | "failed";

/** What identifies and describes a payment, computed from a request whose signer was authenticated. */
export interface PaymentEntry {
  /** Unique authorization key, e.g. `eip155:8453|0xusdc|0xpayer|0xnonce` (the scheme's `authenticate`). */
  key: string;
  network: string;
  scheme: string;
  asset: string;
  /** The verified signer, never an unchecked field of the payload. */
  payer: string;
  payee: string;
  /** Atomic units, decimal string. */
  amount: string;
  nonce: string;
  /** The `payment-identifier` extension's id, when the client sent one. */
  paymentIdentifier?: string;
  /** Hash of the request's content: the same key with another hash is another payload. */
  requestHash: string;
}

export interface PaymentRecord extends Omit<PaymentEntry, "paymentIdentifier"> {
  id: string;
  status: PaymentStatus;
  transaction: string | null;
  reason: string | null;
  paymentIdentifier: string | null;
  /** The settle response as stored (text, to keep its bytes). */
  response: SettleResponse | null;
  /** A `success: true` for this authorization was handed out (at most once). */
  answered: boolean;
  attempts: number;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * How a settlement attempt ended, as a value: what the settle-once claim stores and the service
 * answers. `pending` was sent and is not final (the chain decides later, through the reconciler);
 * a `failed` attempt with `onChain` was mined and reverted, so the authorization is not settled
 * again by this facilitator (it would burn gas again).
 */
export type SettlementResult =
  | { status: "settled"; transaction: string; response: SettleResponse }
  | { status: "pending"; transaction: string; response: SettleResponse }
  | { status: "failed"; onChain: boolean; transaction: string; response: SettleResponse };

export type ClaimResult = { claimed: true } | { claimed: false; record: PaymentRecord | undefined; identifierConflict?: boolean };

export interface LedgerEvent {
  /** `final`: written by the ledger itself when a row is finished after its /settle answered (chain-log.ts). */
  kind: "verify" | "settle" | "final";
  /** Absent for a request whose signer could not be established (nothing is keyed on it). */
  key?: string;
  network: string;
  payer?: string;
  /** valid | invalid | settled | replay | duplicate | failed | pending | conflict | rejected | unavailable */
  outcome: string;
  reason?: string;
  transaction?: string;
}

export interface VerifyRecord {
  entry: PaymentEntry;
  valid: boolean;
  reason?: string;
}

export type TransactionOutcomeState = "success" | "reverted" | "dropped";

export interface PaymentTransaction {
  key: string;
  hash: string;
  network: string;
  signer: string;
  nonce: number;
  /** The node accepted it (false: signed, maybe never broadcast). */
  sent: boolean;
  outcome: TransactionOutcomeState | null;
  createdAt: Date;
}

export interface Ledger {
  readonly dialect: Sql["dialect"];
  readonly schema: string;
  /** Throws when the store cannot answer (for readiness). */
  ping(): Promise<void>;
  /** Notes a verified (or refused) payment; never overwrites a row that exists. */
  recordVerify(entry: PaymentEntry, valid: boolean, reason?: string): Promise<void>;
  /** recordVerify for many payments in one statement (the audit queue's flush). */
  recordVerifies(records: readonly VerifyRecord[]): Promise<void>;
  /**
   * THE settle-once decision. Atomically takes the right to settle `entry`: true for exactly one
   * caller while the row is new or `verified`; `failed` only when nothing sent for it was mined
   * (an attempt that reverted on-chain is not repeated); `pending` past its lease with the same
   * content and nothing sent that may still land (a settler that died before sending).
   */
  claim(entry: PaymentEntry, token: string, leaseMs: number): Promise<ClaimResult>;
  /**
   * Stores the outcome of a claimed settlement; false if the claim was lost meanwhile. A success
   * is stored as answered (the caller hands it out) and marks its transaction landed. A failure is
   * stored only when nothing sent for it may still land; otherwise the row stays pending.
   */
  complete(key: string, token: string, result: SettlementResult): Promise<boolean>;
  /**
   * Hands out a success that nobody received yet (the row was settled by the chain after a pending
   * answer): marks the settled row with this content answered and returns its stored success, or
   * undefined when it is not settled, has other content, or was answered already.
   */
  answer(key: string, requestHash: string): Promise<SettleResponse | undefined>;
  get(key: string): Promise<PaymentRecord | undefined>;
  recordEvent(event: LedgerEvent): Promise<void>;
  /** recordEvent for many events in one statement, in order. */
  recordEvents(events: readonly LedgerEvent[]): Promise<void>;

  // ---- durable settlement (write-ahead transaction log; see evm-settlement.ts, reconciler.ts)
  /**
   * Write-ahead: notes that `hash` (signer, nonce) carries these payments, BEFORE it is broadcast.
   * A row with such a transaction is never re-claimed; only the chain (via the reconciler) ends it.
   * Fenced: nothing is recorded when any of `keys` is no longer `pending` (finished elsewhere
   * meanwhile); resolves to those keys, and the transaction must then not be broadcast.
   */
  recordTransaction(tx: { keys: readonly string[]; hash: string; network: string; signer: string; nonce: number }): Promise<readonly string[]>;
  /** Chain verdicts for (payment, transaction) pairs: `success`, `reverted` (mined, item failed) or `dropped` (its nonce went to another transaction). */
  markOutcomes(hash: string, outcomes: ReadonlyArray<{ key: string; outcome: TransactionOutcomeState }>): Promise<void>;
  /**
   * Stores a final result read from the chain, whoever holds the claim; only while the row is
   * still pending and, when `seen` is given, still names that transaction hash (null: none), i.e.
   * nothing was written ahead since the caller looked.
   */
  resolve(key: string, response: SettleResponse, seen?: string | null): Promise<boolean>;
  /** Pending rows with transactions whose settler is gone (no claim, or its lease ended), with their transactions. */
  unresolved(limit: number): Promise<Array<{ record: PaymentRecord; transactions: PaymentTransaction[] }>>;
  /** Rows claimed but with nothing sent, whose settler is gone: marked failed (nothing moved; settleable again). */
  failAbandoned(response: (record: PaymentRecord) => SettleResponse): Promise<number>;
  /** Ends every claim's lease now (a single-process store after a restart: every claim is a dead process's). */
  releaseClaims(): Promise<number>;
  /** The underlying connection (signer leases share it). */
  readonly sql: Sql;
  events(key: string): Promise<Array<LedgerEvent & { at: Date }>>;
  close(): Promise<void>;
}

export interface LedgerOptions {
  /** A ready connection (the caller closes it); otherwise one is opened from `databaseUrl` or `dataDir`. */
  sql?: Sql;
  /** PostgreSQL connection string: shared between processes. */
  databaseUrl?: string;
  /** PGlite data directory; neither this nor `databaseUrl` means in memory. */
  dataDir?: string;
  /** PostgreSQL schema holding the tables (created if missing). Default `public`. */
  schema?: string;
}
