/**
 * The payments ledger: one row per authorization (its unique key), an event per verify and
 * settle. The row is also the settlement lock: whoever moves it to `pending` runs the
 * settlement; everyone else reads the stored result. That is what keeps a payload settled
 * fifty times at once, or by three processes sharing PostgreSQL, down to one transfer.
 */
import type { SettleResponse } from "@tollgate/core";
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

export interface Ledger {
  readonly dialect: Sql["dialect"];
  readonly schema: string;
  /** Throws when the store cannot answer (for readiness). */
  ping(): Promise<void>;
  /** Notes a verified (or refused) payment; never overwrites a row that exists. */
  recordVerify(entry: PaymentEntry, valid: boolean, reason?: string): Promise<void>;
  /**
   * Atomically takes the right to settle `entry`: true for exactly one caller while the row is
   * new, `verified` or `failed` (a failed settlement moved no money and may be retried), or
   * `pending` past its lease with the same content (a settler that died).
   */
  claim(entry: PaymentEntry, token: string, leaseMs: number): Promise<ClaimResult>;
  /** Stores the outcome of a claimed settlement; false if the claim was lost meanwhile. */
  complete(key: string, token: string, response: SettleResponse): Promise<boolean>;
  get(key: string): Promise<PaymentRecord | undefined>;
  findByIdentifier(payer: string, paymentIdentifier: string): Promise<PaymentRecord | undefined>;
  recordEvent(event: LedgerEvent): Promise<void>;

  // ---- durable settlement (write-ahead transaction log; see evm-settlement.ts, reconciler.ts)
  /**
   * Write-ahead: notes that `hash` (signer, nonce) carries these payments, BEFORE it is broadcast.
   * A row with such a transaction is never re-claimed; only the chain (via the reconciler) ends it.
   */
  recordTransaction(tx: { keys: readonly string[]; hash: string; network: string; signer: string; nonce: number }): Promise<void>;
  /** Notes the node accepted `hash` (the engine's onSubmitted). */
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

function entryParams(e: PaymentEntry): unknown[] {
  return [e.key, e.network, e.scheme, e.asset, e.payer, e.payee, e.amount, e.nonce, e.paymentIdentifier ?? null, e.requestHash];
}

function ledgerOver(sql: Sql, schema: string, ownsSql: boolean): Ledger {
  const t = `${schema}.payments`;
  const ev = `${schema}.payment_events`;
  const x = `${schema}.payment_transactions`;

  async function get(key: string) {
    const rows = await sql.query<Row>(`SELECT ${COLUMNS} FROM ${t} WHERE payment_key = $1`, [key]);
    return rows[0] ? toRecord(rows[0]) : undefined;
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

  return {
    dialect: sql.dialect,
    schema,
    async ping() {
      await sql.query(`SELECT 1 FROM ${t} LIMIT 1`);
    },
    async recordVerify(entry, valid, reason) {
      await sql.query(
        `INSERT INTO ${t} (payment_key, network, scheme, asset, payer, payee, amount, nonce, payment_identifier, request_hash, status, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING`,
        [...entryParams(entry), valid ? "verified" : "failed", valid ? null : (reason ?? null)],
      );
    },
    async claim(entry, token, leaseMs) {
      try {
        const rows = await sql.query<{ claim_token: string }>(
          `INSERT INTO ${t} AS p (payment_key, network, scheme, asset, payer, payee, amount, nonce, payment_identifier, request_hash,
             status, claim_token, lease_until, attempts)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11, now() + make_interval(secs => $12), 1)
           ON CONFLICT (payment_key) DO UPDATE SET
             status = 'pending', claim_token = EXCLUDED.claim_token, lease_until = EXCLUDED.lease_until,
             attempts = p.attempts + 1, request_hash = EXCLUDED.request_hash, amount = EXCLUDED.amount, payee = EXCLUDED.payee,
             payment_identifier = COALESCE(EXCLUDED.payment_identifier, p.payment_identifier),
             reason = NULL, response = NULL, transaction_hash = NULL, updated_at = now()
           WHERE p.status IN ('verified', 'failed')
              OR (p.status = 'pending' AND p.lease_until < now() AND p.request_hash = EXCLUDED.request_hash
                  AND NOT EXISTS (SELECT 1 FROM ${x} x WHERE x.payment_key = p.payment_key AND (x.outcome IS NULL OR x.outcome = 'success')))
           RETURNING claim_token`,
          [...entryParams(entry), token, leaseMs / 1000],
        );
        if (rows[0]?.claim_token === token) return { claimed: true };
        return { claimed: false, record: await get(entry.key) };
      } catch (e) {
        // The payer's payment-identifier is held by another authorization.
        if (sqlState(e) === "23505") return { claimed: false, record: await get(entry.key), identifierConflict: true };
        throw e;
      }
    },
    async complete(key, token, response) {
      const pendingAnswer = response.errorReason === "settlement_pending";
      if (response.success || !pendingAnswer) {
        // A failure is final only when none of this row's transactions may still land.
        const rows = await sql.query(
          `UPDATE ${t} SET status = $3, transaction_hash = COALESCE($4, transaction_hash), reason = $5, response = $6, claim_token = NULL, lease_until = NULL,
             updated_at = now(), settled_at = CASE WHEN $3 = 'settled' THEN now() ELSE settled_at END
           WHERE payment_key = $1 AND claim_token = $2 AND status = 'pending'
             AND ($3 = 'settled' OR NOT EXISTS (SELECT 1 FROM ${x} x WHERE x.payment_key = $1 AND (x.outcome IS NULL OR x.outcome = 'success')))
           RETURNING id`,
          [key, token, response.success ? "settled" : "failed", response.transaction || null, response.errorReason ?? null, JSON.stringify(response)],
        );
        if (rows.length === 1) return true;
      }
      // In doubt (sent, outcome unknown): stays pending, handed to the reconciler.
      const rows = await sql.query(
        `UPDATE ${t} SET claim_token = NULL, lease_until = NULL, updated_at = now(), reason = 'settlement_pending',
           response = CASE WHEN $3 THEN $4 ELSE response END
         WHERE payment_key = $1 AND claim_token = $2 AND status = 'pending' RETURNING id`,
        [key, token, pendingAnswer, JSON.stringify(response)],
      );
      return rows.length === 1;
    },
    get,
    async findByIdentifier(payer, id) {
      const rows = await sql.query<Row>(`SELECT ${COLUMNS} FROM ${t} WHERE payer = $1 AND payment_identifier = $2`, [payer, id]);
      return rows[0] ? toRecord(rows[0]) : undefined;
    },
    async recordEvent(e) {
      await sql.query(`INSERT INTO ${ev} (payment_key, kind, network, payer, outcome, reason, transaction_hash) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
        e.key ?? null,
        e.kind,
        e.network,
        e.payer ?? null,
        e.outcome,
        e.reason ?? null,
        e.transaction || null,
      ]);
    },
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
      await sql.query(
        `INSERT INTO ${x} (payment_key, transaction_hash, network, signer, tx_nonce)
         SELECT k, $2, $3, $4, $5 FROM unnest($1::text[]) AS k ON CONFLICT DO NOTHING`,
        [tx.keys, tx.hash, tx.network, tx.signer, tx.nonce],
      );
      await sql.query(`UPDATE ${t} SET transaction_hash = $2, updated_at = now() WHERE payment_key = ANY($1::text[]) AND status = 'pending'`, [tx.keys, tx.hash]);
    },
    async markSent(hash) {
      await sql.query(`UPDATE ${x} SET sent = true WHERE transaction_hash = $1`, [hash]);
    },
    async markOutcomes(hash, outcomes) {
      if (outcomes.length === 0) return;
      await sql.query(
        `UPDATE ${x} AS x SET outcome = o.outcome FROM unnest($2::text[], $3::text[]) AS o(key, outcome)
         WHERE x.transaction_hash = $1 AND x.payment_key = o.key AND x.outcome IS DISTINCT FROM 'success'`,
        [hash, outcomes.map((o) => o.key), outcomes.map((o) => o.outcome)],
      );
    },
    async resolve(key, response) {
      const rows = await sql.query(
        `UPDATE ${t} SET status = $2, transaction_hash = COALESCE($3, transaction_hash), reason = $4, response = $5, claim_token = NULL, lease_until = NULL,
           updated_at = now(), settled_at = CASE WHEN $2 = 'settled' THEN now() ELSE settled_at END
         WHERE payment_key = $1 AND status = 'pending' RETURNING id`,
        [key, response.success ? "settled" : "failed", response.transaction || null, response.errorReason ?? null, JSON.stringify(response)],
      );
      return rows.length === 1;
    },
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
