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

  async function get(key: string) {
    const rows = await sql.query<Row>(`SELECT ${COLUMNS} FROM ${t} WHERE payment_key = $1`, [key]);
    return rows[0] ? toRecord(rows[0]) : undefined;
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
              OR (p.status = 'pending' AND p.lease_until < now() AND p.request_hash = EXCLUDED.request_hash)
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
      const rows = await sql.query(
        `UPDATE ${t} SET status = $3, transaction_hash = $4, reason = $5, response = $6, claim_token = NULL, lease_until = NULL,
           updated_at = now(), settled_at = CASE WHEN $3 = 'settled' THEN now() ELSE settled_at END
         WHERE payment_key = $1 AND claim_token = $2 RETURNING id`,
        [key, token, response.success ? "settled" : "failed", response.transaction || null, response.errorReason ?? null, JSON.stringify(response)],
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
    // A connection passed in belongs to the caller.
    close: async () => {
      if (ownsSql) await sql.close();
    },
  };
}
