/**
 * The payments ledger: one row per authorization (its unique key), an event per verify and
 * settle. The row is also the settlement lock: whoever moves it to `pending` runs the
 * settlement; everyone else reads the stored result. That is what keeps a payload settled
 * fifty times at once, or by three processes sharing PostgreSQL, down to one transfer.
 */
import type { SettleResponse } from "@tollgate/core";
import { createBatcher } from "./batch.ts";
import { pgliteSql, postgresSql, sqlState, type Sql } from "./sql.ts";

export type PaymentStatus = "verified" | "pending" | "settled" | "failed";

/** What identifies and describes a payment, computed from a request. */
export interface PaymentEntry {
  /** Unique authorization key, e.g. `eip155:8453|0xusdc|0xpayer|0xnonce`. */
  key: string;
  network: string;
  scheme: string;
  asset: string;
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
  /** The settle response as first answered, exactly (stored as text to keep its bytes). */
  response: SettleResponse | null;
  attempts: number;
  createdAt: Date;
  updatedAt: Date;
}

export type ClaimResult = { claimed: true } | { claimed: false; record: PaymentRecord | undefined; identifierConflict?: boolean };

export interface LedgerEvent {
  kind: "verify" | "settle";
  key?: string;
  network: string;
  payer?: string;
  /** valid | invalid | success | failure | replay | conflict | rejected */
  outcome: string;
  reason?: string;
  transaction?: string;
}

export interface VerifyRecord {
  entry: PaymentEntry;
  valid: boolean;
  reason?: string;
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
   * Atomically takes the right to settle `entry`: true for exactly one caller while the row is
   * new, `verified` or `failed` (a failed settlement moved no money and may be retried), or
   * `pending` past its lease with the same content (a settler that died).
   */
  claim(entry: PaymentEntry, token: string, leaseMs: number): Promise<ClaimResult>;
  /**
   * Stores the outcome of a claimed settlement; false if the claim was lost meanwhile. A success
   * also marks its transaction landed for this payment (payment_transactions.outcome).
   */
  complete(key: string, token: string, response: SettleResponse): Promise<boolean>;
  get(key: string): Promise<PaymentRecord | undefined>;
  findByIdentifier(payer: string, paymentIdentifier: string): Promise<PaymentRecord | undefined>;
  recordEvent(event: LedgerEvent): Promise<void>;
  /** recordEvent for many events in one statement, in order. */
  recordEvents(events: readonly LedgerEvent[]): Promise<void>;

  // ---- durable settlement (write-ahead transaction log; see evm-settlement.ts, reconciler.ts)
  /**
   * Write-ahead: notes that `hash` (signer, nonce) carries these payments, BEFORE it is broadcast.
   * A row with such a transaction is never re-claimed; only the chain (via the reconciler) ends it.
   */
  recordTransaction(tx: { keys: readonly string[]; hash: string; network: string; signer: string; nonce: number }): Promise<void>;
  /** Notes the node accepted `hash`. (An outcome, from markOutcomes or a settled complete(), implies it too.) */
  markSent(hash: string): Promise<void>;
  /** Chain verdicts for (payment, transaction) pairs: `success`, `reverted` (mined, item failed) or `dropped` (its nonce went to another transaction). */
  markOutcomes(hash: string, outcomes: ReadonlyArray<{ key: string; outcome: TransactionOutcomeState }>): Promise<void>;
  /** Stores a final result read from the chain, whoever holds the claim; only while the row is still pending. */
  resolve(key: string, response: SettleResponse): Promise<boolean>;
  /** Pending rows with transactions whose settler is gone (no claim, or its lease ended), with their transactions. */
  unresolved(limit: number): Promise<Array<{ record: PaymentRecord; transactions: PaymentTransaction[] }>>;
  /** Rows claimed but with nothing sent, whose settler is gone: marked failed (nothing moved; settleable again). */
  failAbandoned(response: (record: PaymentRecord) => SettleResponse): Promise<number>;
  /** Ends every claim's lease now (a single-process store after a restart: every claim is a dead process's). */
  releaseClaims(): Promise<number>;
  transactions(key: string): Promise<PaymentTransaction[]>;
  /** The underlying connection (signer leases share it). */
  readonly sql: Sql;
  events(key: string): Promise<Array<LedgerEvent & { at: Date }>>;
  close(): Promise<void>;
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

const MIGRATIONS: Array<{ version: number; name: string; up: (s: string) => string }> = [
  {
    version: 1,
    name: "payments",
    up: (s) => `
      CREATE TABLE ${s}.payments (
        id bigserial PRIMARY KEY,
        payment_key text NOT NULL UNIQUE,
        network text NOT NULL,
        scheme text NOT NULL,
        asset text NOT NULL,
        payer text NOT NULL,
        payee text NOT NULL,
        amount numeric(78, 0) NOT NULL CHECK (amount >= 0),
        nonce text NOT NULL,
        status text NOT NULL CHECK (status IN ('verified', 'pending', 'settled', 'failed')),
        transaction_hash text,
        reason text,
        payment_identifier text,
        request_hash text NOT NULL,
        response text,
        claim_token text,
        lease_until timestamptz,
        attempts integer NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        settled_at timestamptz
      );
      CREATE UNIQUE INDEX payments_payer_identifier ON ${s}.payments (payer, payment_identifier) WHERE payment_identifier IS NOT NULL;
      CREATE INDEX payments_status ON ${s}.payments (status, updated_at);
      CREATE TABLE ${s}.payment_events (
        id bigserial PRIMARY KEY,
        payment_key text,
        kind text NOT NULL,
        network text NOT NULL,
        payer text,
        outcome text NOT NULL,
        reason text,
        transaction_hash text,
        at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX payment_events_key ON ${s}.payment_events (payment_key);
    `,
  },
  {
    version: 2,
    name: "settlement transactions and signer leases",
    up: (s) => `
      CREATE TABLE ${s}.payment_transactions (
        payment_key text NOT NULL,
        transaction_hash text NOT NULL,
        network text NOT NULL,
        signer text NOT NULL,
        tx_nonce bigint NOT NULL,
        sent boolean NOT NULL DEFAULT false,
        outcome text CHECK (outcome IN ('success', 'reverted', 'dropped')),
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (payment_key, transaction_hash)
      );
      CREATE INDEX payment_transactions_hash ON ${s}.payment_transactions (transaction_hash);
      CREATE TABLE ${s}.signer_leases (
        network text NOT NULL,
        signer text NOT NULL,
        holder text NOT NULL,
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (network, signer)
      );
      CREATE TABLE ${s}.facilitator_instances (
        holder text PRIMARY KEY,
        expires_at timestamptz NOT NULL
      )
    `,
  },
];

export const LATEST_MIGRATION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** Opens the store, runs pending migrations (serialized across processes), returns the ledger. */
export async function createLedger(options: LedgerOptions = {}): Promise<Ledger> {
  const schema = options.schema ?? "public";
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new TypeError(`ledger schema: ${JSON.stringify(schema)} is not a plain lowercase identifier`);
  const sql = options.sql ?? (options.databaseUrl ? postgresSql({ connectionString: options.databaseUrl }) : await pgliteSql(options.dataDir));
  try {
    await migrate(sql, schema);
  } catch (e) {
    if (!options.sql) await sql.close().catch(() => {});
    throw e;
  }
  return ledgerOver(sql, schema, !options.sql);
}

async function migrate(sql: Sql, schema: string): Promise<void> {
  await sql.transaction(async (tx) => {
    // Two processes starting together must not both create the tables.
    await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`tollgate-ledger:${schema}`]);
    await tx.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await tx.query(`CREATE TABLE IF NOT EXISTS ${schema}.tollgate_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const rows = await tx.query<{ version: number }>(`SELECT version FROM ${schema}.tollgate_migrations`);
    const applied = new Set(rows.map((r) => Number(r.version)));
    for (const m of MIGRATIONS) {
      if (applied.has(m.version)) continue;
      for (const statement of m.up(schema).split(";").map((x) => x.trim()).filter(Boolean)) await tx.query(statement);
      await tx.query(`INSERT INTO ${schema}.tollgate_migrations (version, name) VALUES ($1, $2)`, [m.version, m.name]);
    }
  });
}

const COLUMNS = `id::text AS id, payment_key, network, scheme, asset, payer, payee, amount::text AS amount, nonce, status,
  transaction_hash, reason, payment_identifier, request_hash, response, attempts, created_at, updated_at`;

interface Row {
  id: string;
  payment_key: string;
  network: string;
  scheme: string;
  asset: string;
  payer: string;
  payee: string;
  amount: string;
  nonce: string;
  status: PaymentStatus;
  transaction_hash: string | null;
  reason: string | null;
  payment_identifier: string | null;
  request_hash: string;
  response: string | null;
  attempts: number;
  created_at: Date | string;
  updated_at: Date | string;
}

function toRecord(r: Row): PaymentRecord {
  return {
    id: r.id,
    key: r.payment_key,
    network: r.network,
    scheme: r.scheme,
    asset: r.asset,
    payer: r.payer,
    payee: r.payee,
    amount: r.amount,
    nonce: r.nonce,
    status: r.status,
    transaction: r.transaction_hash,
    reason: r.reason,
    paymentIdentifier: r.payment_identifier,
    requestHash: r.request_hash,
    response: r.response ? (JSON.parse(r.response) as SettleResponse) : null,
    attempts: Number(r.attempts),
    createdAt: new Date(r.created_at),
    updatedAt: new Date(r.updated_at),
  };
}

/** Column arrays for `unnest`: one statement text whatever the number of rows. */
function entryColumns(entries: readonly PaymentEntry[]): unknown[] {
  return [
    entries.map((e) => e.key),
    entries.map((e) => e.network),
    entries.map((e) => e.scheme),
    entries.map((e) => e.asset),
    entries.map((e) => e.payer),
    entries.map((e) => e.payee),
    entries.map((e) => e.amount),
    entries.map((e) => e.nonce),
    entries.map((e) => e.paymentIdentifier ?? null),
    entries.map((e) => e.requestHash),
  ];
}

const ENTRY_UNNEST = `unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::numeric[], $8::text[], $9::text[], $10::text[]`;
const ENTRY_COLUMNS = "k, n, sc, a, pr, pe, am, no, pi, rh";

/** Most rows per statement: bounds statement size and how long one write holds the store. */
const MAX_BATCH = 500;

interface ClaimItem {
  entry: PaymentEntry;
  token: string;
  leaseMs: number;
}

interface CompleteItem {
  key: string;
  token: string;
  response: SettleResponse;
}

interface TransactionItem {
  keys: readonly string[];
  hash: string;
  network: string;
  signer: string;
  nonce: number;
}

function ledgerOver(sql: Sql, schema: string, ownsSql: boolean): Ledger {
  const t = `${schema}.payments`;
  const ev = `${schema}.payment_events`;
  const x = `${schema}.payment_transactions`;
  // PGlite runs one statement at a time: one batch in flight, the next one fills meanwhile.
  // Several processes on one PostgreSQL: two multi-row writes may lock rows in opposite orders
  // and one is chosen as the deadlock victim (40P01), or a serialization check fails (40001);
  // the statement was rolled back as a whole, so running it again is safe.
  const batching = { maxBatch: MAX_BATCH, concurrency: sql.dialect === "pglite" ? 1 : 4, retry: (e: unknown) => ["40P01", "40001"].includes(sqlState(e) ?? "") };

  async function get(key: string) {
    const rows = await sql.query<Row>(`SELECT ${COLUMNS} FROM ${t} WHERE payment_key = $1`, [key]);
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  async function getMany(keys: string[]): Promise<Map<string, PaymentRecord>> {
    if (keys.length === 0) return new Map();
    const rows = await sql.query<Row>(`SELECT ${COLUMNS} FROM ${t} WHERE payment_key = ANY($1::text[])`, [keys]);
    return new Map(rows.map((r) => [r.payment_key, toRecord(r)]));
  }

  async function transactionsOf(keys: string[]): Promise<PaymentTransaction[]> {
    const rows = await sql.query<{ payment_key: string; transaction_hash: string; network: string; signer: string; tx_nonce: string | number; sent: boolean; outcome: TransactionOutcomeState | null; created_at: Date | string }>(
      `SELECT payment_key, transaction_hash, network, signer, tx_nonce::text AS tx_nonce, sent, outcome, created_at FROM ${x} WHERE payment_key = ANY($1::text[]) ORDER BY created_at`,
      [keys],
    );
    return rows.map((r) => ({
      key: r.payment_key,
      hash: r.transaction_hash,
      network: r.network,
      signer: r.signer,
      nonce: Number(r.tx_nonce),
      sent: r.sent,
      outcome: r.outcome,
      createdAt: new Date(r.created_at),
    }));
  }

  async function recordVerifies(records: readonly VerifyRecord[]) {
    for (let i = 0; i < records.length; i += MAX_BATCH) {
      const chunk = records.slice(i, i + MAX_BATCH);
      // DO NOTHING (no conflict target) also covers the payer/identifier index, and duplicates within the chunk.
      await sql.query(
        `INSERT INTO ${t} (payment_key, network, scheme, asset, payer, payee, amount, nonce, payment_identifier, request_hash, status, reason)
         SELECT ${ENTRY_COLUMNS}, st, re FROM ${ENTRY_UNNEST}, $11::text[], $12::text[]) AS v(${ENTRY_COLUMNS}, st, re)
         ON CONFLICT DO NOTHING`,
        [...entryColumns(chunk.map((r) => r.entry)), chunk.map((r) => (r.valid ? "verified" : "failed")), chunk.map((r) => (r.valid ? null : (r.reason ?? null)))],
      );
    }
  }

  async function recordEvents(events: readonly LedgerEvent[]) {
    for (let i = 0; i < events.length; i += MAX_BATCH) {
      const chunk = events.slice(i, i + MAX_BATCH);
      // WITH ORDINALITY + ORDER BY: ids follow the order the events happened in.
      await sql.query(
        `INSERT INTO ${ev} (payment_key, kind, network, payer, outcome, reason, transaction_hash)
         SELECT k, kd, n, pr, o, re, tx FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
           WITH ORDINALITY AS v(k, kd, n, pr, o, re, tx, i) ORDER BY i`,
        [
          chunk.map((e) => e.key ?? null),
          chunk.map((e) => e.kind),
          chunk.map((e) => e.network),
          chunk.map((e) => e.payer ?? null),
          chunk.map((e) => e.outcome),
          chunk.map((e) => e.reason ?? null),
          chunk.map((e) => e.transaction || null),
        ],
      );
    }
  }

  /**
   * One upsert for many claims. The row moves to `pending` under a claimant's token only when
   * the row is new, `verified`, `failed`, or `pending` past its lease with the same content and
   * no transaction that may still land; RETURNING says whose token it now holds.
   */
  async function claimStatement(items: readonly ClaimItem[]): Promise<Set<string>> {
    const rows = await sql.query<{ payment_key: string; claim_token: string }>(
      `INSERT INTO ${t} AS p (payment_key, network, scheme, asset, payer, payee, amount, nonce, payment_identifier, request_hash,
         status, claim_token, lease_until, attempts)
       SELECT ${ENTRY_COLUMNS}, 'pending', tok, now() + make_interval(secs => ls), 1
         FROM ${ENTRY_UNNEST}, $11::text[], $12::float8[]) AS v(${ENTRY_COLUMNS}, tok, ls)
         -- Rows locked in key order: two processes claiming overlapping keys cannot deadlock.
         ORDER BY k
       ON CONFLICT (payment_key) DO UPDATE SET
         status = 'pending', claim_token = EXCLUDED.claim_token, lease_until = EXCLUDED.lease_until,
         attempts = p.attempts + 1, request_hash = EXCLUDED.request_hash, amount = EXCLUDED.amount, payee = EXCLUDED.payee,
         payment_identifier = COALESCE(EXCLUDED.payment_identifier, p.payment_identifier),
         reason = NULL, response = NULL, transaction_hash = NULL, updated_at = now()
       WHERE p.status IN ('verified', 'failed')
          OR (p.status = 'pending' AND p.lease_until < now() AND p.request_hash = EXCLUDED.request_hash
              AND NOT EXISTS (SELECT 1 FROM ${x} x WHERE x.payment_key = p.payment_key AND (x.outcome IS NULL OR x.outcome = 'success')))
       RETURNING payment_key, claim_token`,
      [...entryColumns(items.map((c) => c.entry)), items.map((c) => c.token), items.map((c) => c.leaseMs / 1000)],
    );
    return new Set(rows.map((r) => `${r.payment_key}\u0000${r.claim_token}`));
  }

  const claimBatch = createBatcher<ClaimItem, ClaimResult>(async (items) => {
    let won: Set<string>;
    let conflicted = new Set<string>();
    const keys = new Set(items.map((c) => c.entry.key));
    try {
      // One key twice in one upsert is an error (21000); one process never claims a key twice at once, but be safe.
      if (keys.size !== items.length) throw Object.assign(new Error("duplicate key in claim batch"), { code: "21000" });
      won = await claimStatement(items);
    } catch (e) {
      const state = sqlState(e);
      // A payer's payment-identifier held by another authorization (23505) fails the whole
      // statement: find whose by claiming one at a time, so each caller gets its own answer.
      if (items.length === 1 || (state !== "23505" && state !== "21000")) throw e;
      won = new Set();
      conflicted = new Set();
      for (const c of items) {
        try {
          for (const w of await claimStatement([c])) won.add(w);
        } catch (e1) {
          if (sqlState(e1) !== "23505") throw e1;
          conflicted.add(c.entry.key);
        }
      }
    }
    const claimed = (c: ClaimItem) => won.has(`${c.entry.key}\u0000${c.token}`);
    const records = await getMany(items.filter((c) => !claimed(c)).map((c) => c.entry.key));
    return items.map((c): ClaimResult => {
      if (claimed(c)) return { claimed: true };
      return conflicted.has(c.entry.key) ? { claimed: false, record: records.get(c.entry.key), identifierConflict: true } : { claimed: false, record: records.get(c.entry.key) };
    });
  }, batching);

  // A single-row claim's 23505 is the caller's own identifier conflict.
  async function claim(entry: PaymentEntry, token: string, leaseMs: number): Promise<ClaimResult> {
    try {
      return await claimBatch({ entry, token, leaseMs });
    } catch (e) {
      if (sqlState(e) === "23505") return { claimed: false, record: await get(entry.key), identifierConflict: true };
      throw e;
    }
  }

  const completeBatch = createBatcher<CompleteItem, boolean>(async (items) => {
    const done = new Set<number>();
    // A final answer (success, or a failure none of whose transactions may still land) ends the row.
    const finals = items.map((c, i) => ({ ...c, i })).filter((c) => c.response.success || c.response.errorReason !== "settlement_pending");
    if (finals.length > 0) {
      // A settled answer also records its transaction's outcome for this payment (so the engine's
      // onFinal need not write it separately for payments somebody waits on): same statement.
      const rows = await sql.query<{ i: number }>(
        `WITH done AS (
           UPDATE ${t} AS p SET status = v.st, transaction_hash = COALESCE(v.tx, p.transaction_hash), reason = v.re, response = v.resp,
             claim_token = NULL, lease_until = NULL, updated_at = now(), settled_at = CASE WHEN v.st = 'settled' THEN now() ELSE p.settled_at END
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[]) AS v(k, tok, st, tx, re, resp, i)
           WHERE p.payment_key = v.k AND p.claim_token = v.tok AND p.status = 'pending'
             AND (v.st = 'settled' OR NOT EXISTS (SELECT 1 FROM ${x} x WHERE x.payment_key = v.k AND (x.outcome IS NULL OR x.outcome = 'success')))
           RETURNING v.i AS i, v.k AS k, v.st AS st, v.tx AS tx
         ), landed AS (
           UPDATE ${x} AS x SET outcome = 'success', sent = true FROM done
           WHERE done.st = 'settled' AND x.payment_key = done.k AND x.transaction_hash = done.tx AND x.outcome IS DISTINCT FROM 'success'
         )
         SELECT i FROM done`,
        [
          finals.map((c) => c.key),
          finals.map((c) => c.token),
          finals.map((c) => (c.response.success ? "settled" : "failed")),
          finals.map((c) => c.response.transaction || null),
          finals.map((c) => c.response.errorReason ?? null),
          finals.map((c) => JSON.stringify(c.response)),
          finals.map((c) => c.i),
        ],
      );
      for (const r of rows) done.add(Number(r.i));
    }
    // In doubt (sent, outcome unknown): stays pending, handed to the reconciler.
    const rest = items.map((c, i) => ({ ...c, i })).filter((c) => !done.has(c.i));
    if (rest.length > 0) {
      const rows = await sql.query<{ i: number }>(
        `UPDATE ${t} AS p SET claim_token = NULL, lease_until = NULL, updated_at = now(), reason = 'settlement_pending',
           response = CASE WHEN v.pa THEN v.resp ELSE p.response END
         FROM unnest($1::text[], $2::text[], $3::bool[], $4::text[], $5::int[]) AS v(k, tok, pa, resp, i)
         WHERE p.payment_key = v.k AND p.claim_token = v.tok AND p.status = 'pending'
         RETURNING v.i AS i`,
        [
          rest.map((c) => c.key),
          rest.map((c) => c.token),
          rest.map((c) => c.response.errorReason === "settlement_pending"),
          rest.map((c) => JSON.stringify(c.response)),
          rest.map((c) => c.i),
        ],
      );
      for (const r of rows) done.add(Number(r.i));
    }
    return items.map((_, i) => done.has(i));
  }, batching);

  // Write-ahead rows and the payments' current hash in one statement (atomic, one round trip).
  const transactionBatch = createBatcher<TransactionItem, void>(async (items) => {
    const rows = items.flatMap((tx) => tx.keys.map((key) => ({ key, tx })));
    // A payment in two transactions of one batch: its row names the later one, as if written in turn.
    const latest = new Map(rows.map((r) => [r.key, r.tx.hash]));
    if (rows.length > 0) {
      await sql.query(
        `WITH written AS (
           INSERT INTO ${x} (payment_key, transaction_hash, network, signer, tx_nonce)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) ON CONFLICT DO NOTHING
         )
         UPDATE ${t} AS p SET transaction_hash = v.h, updated_at = now()
         FROM unnest($6::text[], $7::text[]) AS v(k, h) WHERE p.payment_key = v.k AND p.status = 'pending'`,
        [rows.map((r) => r.key), rows.map((r) => r.tx.hash), rows.map((r) => r.tx.network), rows.map((r) => r.tx.signer), rows.map((r) => r.tx.nonce), [...latest.keys()], [...latest.values()]],
      );
    }
    return items.map(() => undefined);
  }, batching);

  const sentBatch = createBatcher<string, void>(async (hashes) => {
    await sql.query(`UPDATE ${x} SET sent = true WHERE transaction_hash = ANY($1::text[]) AND NOT sent`, [hashes]);
    return hashes.map(() => undefined);
  }, batching);

  const outcomeBatch = createBatcher<{ hash: string; outcomes: ReadonlyArray<{ key: string; outcome: TransactionOutcomeState }> }, void>(async (items) => {
    const rows = items.flatMap((it) => it.outcomes.map((o) => ({ hash: it.hash, ...o })));
    if (rows.length > 0) {
      await sql.query(
        `UPDATE ${x} AS x SET outcome = o.outcome, sent = true FROM unnest($1::text[], $2::text[], $3::text[]) AS o(hash, key, outcome)
         WHERE x.transaction_hash = o.hash AND x.payment_key = o.key AND x.outcome IS DISTINCT FROM 'success'`,
        [rows.map((r) => r.hash), rows.map((r) => r.key), rows.map((r) => r.outcome)],
      );
    }
    return items.map(() => undefined);
  }, batching);

  const resolveBatch = createBatcher<{ key: string; response: SettleResponse }, boolean>(async (items) => {
    const rows = await sql.query<{ i: number }>(
      `UPDATE ${t} AS p SET status = v.st, transaction_hash = COALESCE(v.tx, p.transaction_hash), reason = v.re, response = v.resp,
         claim_token = NULL, lease_until = NULL, updated_at = now(), settled_at = CASE WHEN v.st = 'settled' THEN now() ELSE p.settled_at END
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[]) AS v(k, st, tx, re, resp, i)
       WHERE p.payment_key = v.k AND p.status = 'pending'
       RETURNING v.i AS i`,
      [
        items.map((c) => c.key),
        items.map((c) => (c.response.success ? "settled" : "failed")),
        items.map((c) => c.response.transaction || null),
        items.map((c) => c.response.errorReason ?? null),
        items.map((c) => JSON.stringify(c.response)),
        items.map((_, i) => i),
      ],
    );
    // One key twice in a batch: the row took one of them; the first caller is told it won.
    const done = new Set(rows.map((r) => Number(r.i)));
    const seen = new Set<string>();
    return items.map((c, i) => {
      const first = !seen.has(c.key);
      seen.add(c.key);
      return first && (done.has(i) || items.some((d, j) => d.key === c.key && done.has(j)));
    });
  }, batching);

  return {
    dialect: sql.dialect,
    schema,
    async ping() {
      await sql.query(`SELECT 1 FROM ${t} LIMIT 1`);
    },
    recordVerify: (entry, valid, reason) => recordVerifies([{ entry, valid, ...(reason !== undefined ? { reason } : {}) }]),
    recordVerifies,
    claim,
    complete: (key, token, response) => completeBatch({ key, token, response }),
    get,
    async findByIdentifier(payer, id) {
      const rows = await sql.query<Row>(`SELECT ${COLUMNS} FROM ${t} WHERE payer = $1 AND payment_identifier = $2`, [payer, id]);
      return rows[0] ? toRecord(rows[0]) : undefined;
    },
    recordEvent: (e) => recordEvents([e]),
    recordEvents,
    async events(key) {
      const rows = await sql.query<{ kind: "verify" | "settle"; network: string; payer: string | null; outcome: string; reason: string | null; transaction_hash: string | null; at: Date }>(
        `SELECT kind, network, payer, outcome, reason, transaction_hash, at FROM ${ev} WHERE payment_key = $1 ORDER BY id`,
        [key],
      );
      return rows.map((r) => ({
        kind: r.kind,
        key,
        network: r.network,
        outcome: r.outcome,
        at: new Date(r.at),
        ...(r.payer ? { payer: r.payer } : {}),
        ...(r.reason ? { reason: r.reason } : {}),
        ...(r.transaction_hash ? { transaction: r.transaction_hash } : {}),
      }));
    },
    sql,
    async recordTransaction(tx) {
      if (tx.keys.length === 0) return;
      await transactionBatch(tx);
    },
    markSent: (hash) => sentBatch(hash),
    async markOutcomes(hash, outcomes) {
      if (outcomes.length === 0) return;
      await outcomeBatch({ hash, outcomes });
    },
    resolve: (key, response) => resolveBatch({ key, response }),
    async unresolved(limit) {
      const rows = await sql.query<Row>(
        `SELECT ${COLUMNS} FROM ${t} p WHERE p.status = 'pending' AND (p.claim_token IS NULL OR p.lease_until < now())
           AND EXISTS (SELECT 1 FROM ${x} x WHERE x.payment_key = p.payment_key) ORDER BY p.updated_at LIMIT $1`,
        [limit],
      );
      if (rows.length === 0) return [];
      const txs = await transactionsOf(rows.map((r) => r.payment_key));
      return rows.map((r) => ({ record: toRecord(r), transactions: txs.filter((tx) => tx.key === r.payment_key) }));
    },
    async failAbandoned(response) {
      const rows = await sql.query<Row>(
        `SELECT ${COLUMNS} FROM ${t} p WHERE p.status = 'pending' AND p.lease_until < now()
           AND NOT EXISTS (SELECT 1 FROM ${x} x WHERE x.payment_key = p.payment_key AND (x.outcome IS NULL OR x.outcome = 'success')) LIMIT 500`,
      );
      let n = 0;
      for (const r of rows) {
        const res = response(toRecord(r));
        const done = await sql.query(
          `UPDATE ${t} SET status = 'failed', reason = $2, response = $3, claim_token = NULL, lease_until = NULL, updated_at = now()
           WHERE payment_key = $1 AND status = 'pending' AND lease_until < now() RETURNING id`,
          [r.payment_key, res.errorReason ?? null, JSON.stringify(res)],
        );
        n += done.length;
      }
      return n;
    },
    async releaseClaims() {
      const rows = await sql.query(`UPDATE ${t} SET lease_until = now() - interval '1 second' WHERE status = 'pending' AND claim_token IS NOT NULL RETURNING id`);
      return rows.length;
    },
    transactions: (key) => transactionsOf([key]),
    // A connection passed in belongs to the caller.
    close: async () => {
      if (ownsSql) await sql.close();
    },
  };
}
