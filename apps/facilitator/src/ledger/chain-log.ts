/**
 * The write-ahead log of settlement transactions and what the chain said about them: written by
 * the settlement engine's signer (evm-settlement.ts) before anything is broadcast, finished by
 * the engine's hooks and the reconciler (reconciler.ts).
 */
import type { SettleResponse } from "@tollgate/core";
import { createBatcher } from "./batch.ts";
import { batchingFor, COLUMNS, toRecord, type Row, type Tables } from "./rows.ts";
import type { Sql } from "./sql.ts";
import type { Ledger, PaymentRecord, PaymentTransaction, TransactionOutcomeState } from "./types.ts";

type ChainLog = Pick<Ledger, "recordTransaction" | "markOutcomes" | "resolve" | "unresolved" | "failAbandoned" | "releaseClaims">;

interface TransactionItem {
  keys: readonly string[];
  hash: string;
  network: string;
  signer: string;
  nonce: number;
}

type OutcomeItem = { hash: string; outcomes: ReadonlyArray<{ key: string; outcome: TransactionOutcomeState }> };

async function transactionsOf(sql: Sql, { x }: Tables, keys: string[]): Promise<PaymentTransaction[]> {
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

/** Write-ahead rows and the payments' current hash in one statement (atomic, one round trip). */
function transactionWriter(sql: Sql, { t, x }: Tables) {
  return createBatcher<TransactionItem, void>(async (items) => {
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
  }, batchingFor(sql));
}

function outcomeWriter(sql: Sql, { x }: Tables) {
  return createBatcher<OutcomeItem, void>(async (items) => {
    const rows = items.flatMap((it) => it.outcomes.map((o) => ({ hash: it.hash, ...o })));
    if (rows.length > 0) {
      await sql.query(
        `UPDATE ${x} AS x SET outcome = o.outcome, sent = true FROM unnest($1::text[], $2::text[], $3::text[]) AS o(hash, key, outcome)
         WHERE x.transaction_hash = o.hash AND x.payment_key = o.key AND x.outcome IS DISTINCT FROM 'success'`,
        [rows.map((r) => r.hash), rows.map((r) => r.key), rows.map((r) => r.outcome)],
      );
    }
    return items.map(() => undefined);
  }, batchingFor(sql));
}

/**
 * A final result read from the chain, whoever holds the claim, only while the row is pending. A
 * success is NOT marked answered: nobody received it yet; the next /settle for it does (answer).
 */
function resolver(sql: Sql, { t }: Tables) {
  return createBatcher<{ key: string; response: SettleResponse }, boolean>(async (items) => {
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
  }, batchingFor(sql));
}

async function unresolved(sql: Sql, tables: Tables, limit: number): Promise<Array<{ record: PaymentRecord; transactions: PaymentTransaction[] }>> {
  const { t, x } = tables;
  const rows = await sql.query<Row>(
    `SELECT ${COLUMNS} FROM ${t} p WHERE p.status = 'pending' AND (p.claim_token IS NULL OR p.lease_until < now())
       AND EXISTS (SELECT 1 FROM ${x} x WHERE x.payment_key = p.payment_key) ORDER BY p.updated_at LIMIT $1`,
    [limit],
  );
  if (rows.length === 0) return [];
  const txs = await transactionsOf(sql, tables, rows.map((r) => r.payment_key));
  return rows.map((r) => ({ record: toRecord(r), transactions: txs.filter((tx) => tx.key === r.payment_key) }));
}

async function failAbandoned(sql: Sql, { t, x }: Tables, response: (record: PaymentRecord) => SettleResponse): Promise<number> {
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
}

export function createChainLog(sql: Sql, tables: Tables): ChainLog {
  const writeTransaction = transactionWriter(sql, tables);
  const writeOutcomes = outcomeWriter(sql, tables);
  const resolve = resolver(sql, tables);
  return {
    async recordTransaction(tx) {
      if (tx.keys.length === 0) return;
      await writeTransaction(tx);
    },
    async markOutcomes(hash, outcomes) {
      if (outcomes.length === 0) return;
      await writeOutcomes({ hash, outcomes });
    },
    resolve: (key, response) => resolve({ key, response }),
    unresolved: (limit) => unresolved(sql, tables, limit),
    failAbandoned: (response) => failAbandoned(sql, tables, response),
    async releaseClaims() {
      const rows = await sql.query(`UPDATE ${tables.t} SET lease_until = now() - interval '1 second' WHERE status = 'pending' AND claim_token IS NOT NULL RETURNING id`);
      return rows.length;
    },
  };
}
