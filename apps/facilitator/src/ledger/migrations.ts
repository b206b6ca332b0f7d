/**
 * The ledger's schema, as numbered migrations applied once each, in order, under an advisory
 * lock (two processes starting together must not both create the tables). Append only: a
 * released migration is never edited.
 */
import type { Sql } from "./sql.ts";

export const MIGRATIONS: Array<{ version: number; name: string; up: (s: string) => string }> = [
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
  {
    version: 3,
    name: "answered successes and on-chain failures",
    // answered_at: the one success:true of an authorization was handed out (a payment buys one
    // response). reverted_at: an attempt was mined and reverted, so it is never sent again.
    // Rows settled before this migration were answered (every copy got the success then).
    up: (s) => `
      ALTER TABLE ${s}.payments ADD COLUMN answered_at timestamptz;
      ALTER TABLE ${s}.payments ADD COLUMN reverted_at timestamptz;
      UPDATE ${s}.payments SET answered_at = COALESCE(settled_at, updated_at) WHERE status = 'settled'
    `,
  },
  {
    version: 4,
    name: "discovery catalog",
    // One row per (type, canonical URL, method or tool); `accepts` gathers the ways it was paid.
    // The *_keys arrays are what the list filters match (EVM addresses lowercased).
    up: (s) => `
      CREATE TABLE ${s}.discovery_resources (
        catalog_key text PRIMARY KEY,
        type text NOT NULL,
        resource text NOT NULL,
        accepts jsonb NOT NULL,
        item jsonb NOT NULL,
        search_text text NOT NULL,
        pay_to_keys text[] NOT NULL,
        schemes text[] NOT NULL,
        networks text[] NOT NULL,
        extension_keys text[] NOT NULL,
        last_updated timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX discovery_resources_recent ON ${s}.discovery_resources (last_updated DESC, catalog_key)
    `,
  },
  {
    version: 7,
    name: "dashboard: gas per settlement transaction, events by time",
    // Gas figures of a mined settlement transaction (from its receipt, when the engine saw it), on
    // every payment row it carried; the operator dashboard divides them per payment. The events'
    // time index serves the dashboard's windows (outcomes by reason).
    up: (s) => `
      ALTER TABLE ${s}.payment_transactions ADD COLUMN gas_used numeric(78, 0);
      ALTER TABLE ${s}.payment_transactions ADD COLUMN effective_gas_price numeric(78, 0);
      CREATE INDEX payment_events_at ON ${s}.payment_events (at)
    `,
  },
  {
    version: 5,
    name: "batch-settlement: channel mirror and write-ahead channel transactions",
    // batch_channels mirrors each channel's on-chain state after this facilitator's operations
    // (the chain stays the truth). batch_transactions is the write-ahead log of channel
    // operations: the signed transaction is stored before it is broadcast, so a restart
    // rebroadcasts or finishes it (packages/evm batch-settlement facilitator-chain.ts).
    up: (s) => `
      CREATE TABLE ${s}.batch_channels (
        network text NOT NULL,
        channel_id text NOT NULL,
        config jsonb,
        balance numeric(78, 0) NOT NULL,
        total_claimed numeric(78, 0) NOT NULL,
        withdraw_requested_at bigint NOT NULL DEFAULT 0,
        refund_nonce numeric(78, 0) NOT NULL,
        last_transaction text,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (network, channel_id)
      );
      CREATE TABLE ${s}.batch_transactions (
        hash text PRIMARY KEY,
        network text NOT NULL,
        kind text NOT NULL CHECK (kind IN ('deposit', 'claim', 'settle', 'refund')),
        from_address text NOT NULL,
        nonce bigint NOT NULL,
        raw text NOT NULL,
        channel_ids jsonb NOT NULL,
        status text NOT NULL CHECK (status IN ('sent', 'success', 'reverted', 'dropped')),
        block_number numeric(78, 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX batch_transactions_open ON ${s}.batch_transactions (network, status) WHERE status = 'sent'
    `,
  },
  {
    version: 8,
    name: "erc20ApprovalGasSponsoring: sponsored approvals (intent, funding, approve)",
    // One row per payment whose payer's approve(Permit2) this facilitator funded, keyed by the
    // payment's settle-once key: a retry resumes its row and never funds twice. The signed funding
    // and the payer's signed approve are stored before their broadcast (recovery rebroadcasts).
    // The per-payer bounds (one outstanding, N per window) are counted here, under a lock per payer.
    up: (s) => `
      CREATE TABLE ${s}.sponsored_approvals (
        key text PRIMARY KEY,
        network text NOT NULL,
        payer text NOT NULL,
        funding numeric(78, 0) NOT NULL,
        approve_hash text NOT NULL,
        approve_raw text NOT NULL,
        approve_nonce bigint NOT NULL,
        funding_hash text,
        funding_raw text,
        status text NOT NULL CHECK (status IN ('intent', 'funded', 'approved', 'failed')),
        reason text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX sponsored_approvals_payer ON ${s}.sponsored_approvals (network, payer, created_at)
    `,
  },
];

// The highest version, whatever order the entries were appended in.
export const LATEST_MIGRATION = Math.max(...MIGRATIONS.map((m) => m.version));

export async function migrate(sql: Sql, schema: string): Promise<void> {
  await sql.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`tollgate-ledger:${schema}`]);
    await tx.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    await tx.query(`CREATE TABLE IF NOT EXISTS ${schema}.tollgate_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const rows = await tx.query<{ version: number }>(`SELECT version FROM ${schema}.tollgate_migrations`);
    const applied = new Set(rows.map((r) => Number(r.version)));
    for (const m of [...MIGRATIONS].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue;
      for (const statement of m.up(schema).split(";").map((x) => x.trim()).filter(Boolean)) await tx.query(statement);
      await tx.query(`INSERT INTO ${schema}.tollgate_migrations (version, name) VALUES ($1, $2)`, [m.version, m.name]);
    }
  });
}
