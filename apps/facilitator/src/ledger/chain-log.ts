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

type ResolveItem = { key: string; response: SettleResponse; seen?: string | null };

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

/**
 * Write-ahead rows and the payments' current hash in one statement (atomic, one round trip),
 * fenced: a transaction is recorded only if every payment it carries is still `pending` (its
 * rows locked first, so the check sees the latest state). A payment the reconciler or another
 * settler finished meanwhile (this settler's lease ran out while it was slow) refuses the whole
 * transaction, which is then not broadcast: it could otherwise land for a row that says failed.
 * Resolves to the keys refused (empty: recorded).
 */
function transactionWriter(sql: Sql, { t, x }: Tables) {
  return createBatcher<TransactionItem, readonly string[]>(async (items) => {
    const rows = items.flatMap((tx, i) => tx.keys.map((key) => ({ key, tx, i })));
    if (rows.length === 0) return items.map(() => []);
    const refused = await sql.query<{ i: number; k: string }>(
      `WITH v AS (
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::int[]) AS v(k, h, n, s, nonce, i)
       ), locked AS (
         SELECT p.payment_key, p.status FROM ${t} p WHERE p.payment_key IN (SELECT k FROM v) ORDER BY p.payment_key FOR UPDATE
       ), refused AS (
         SELECT v.i, v.k FROM v LEFT JOIN locked l ON l.payment_key = v.k WHERE l.status IS DISTINCT FROM 'pending'
       ), accepted AS (
         SELECT * FROM v WHERE v.i NOT IN (SELECT i FROM refused)
       ), written AS (
         INSERT INTO ${x} (payment_key, transaction_hash, network, signer, tx_nonce)
         SELECT k, h, n, s, nonce FROM accepted ON CONFLICT DO NOTHING
       ), named AS (
         -- A payment in two transactions of one batch: its row names the later one, as if written in turn.
         UPDATE ${t} AS p SET transaction_hash = a.h, updated_at = now()
         FROM (SELECT DISTINCT ON (k) k, h FROM accepted ORDER BY k, i DESC) AS a WHERE p.payment_key = a.k
       )
       SELECT i, k FROM refused`,
      [rows.map((r) => r.key), rows.map((r) => r.tx.hash), rows.map((r) => r.tx.network), rows.map((r) => r.tx.signer), rows.map((r) => r.tx.nonce), rows.map((r) => r.i)],
    );
    return items.map((_, i) => refused.filter((r) => Number(r.i) === i).map((r) => r.k));
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
 * The event a row finished after its /settle answered leaves (kind `final`, outcome
 * settled|failed): the settlement was answered pending, or its settler was gone, and the
 * reconciler or the engine ended it later from the chain. Written in the statement that ends
 * the row, so it exists exactly when the row changed (the dashboard's live feed reads it).
 * `done` must return the row's key, network, payer, new status, reason and hash, and `i` (the
 * order the events are written in).
 */
const finalEventInsert = (ev: string) =>
  `INSERT INTO ${ev} (payment_key, kind, network, payer, outcome, reason, transaction_hash)
   SELECT k, 'final', n, pr, st, re, tx FROM done ORDER BY i`;

/**
 * A final result read from the chain, whoever holds the claim, only while the row is pending. A
 * success is NOT marked answered: nobody received it yet; the next /settle for it does (answer).
 */
function resolver(sql: Sql, { t, ev }: Tables) {
  return createBatcher<ResolveItem, boolean>(async (items) => {
    // A guarded item applies only while the row still names the transaction its caller judged:
    // a write-ahead since (a new attempt) changes it, and the judgement no longer holds.
    const rows = await sql.query<{ i: number }>(
      `WITH done AS (
         UPDATE ${t} AS p SET status = v.st, transaction_hash = COALESCE(v.tx, p.transaction_hash), reason = v.re, response = v.resp,
           claim_token = NULL, lease_until = NULL, updated_at = now(), settled_at = CASE WHEN v.st = 'settled' THEN now() ELSE p.settled_at END
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::bool[], $8::text[]) AS v(k, st, tx, re, resp, i, guarded, seen)
         WHERE p.payment_key = v.k AND p.status = 'pending' AND (NOT v.guarded OR p.transaction_hash IS NOT DISTINCT FROM v.seen)
         RETURNING v.i AS i, p.payment_key AS k, p.network AS n, p.payer AS pr, p.status AS st, p.reason AS re, p.transaction_hash AS tx
       ), logged AS (${finalEventInsert(ev)})
       SELECT i FROM done`,
      [
        items.map((c) => c.key),
        items.map((c) => (c.response.success ? "settled" : "failed")),
        items.map((c) => c.response.transaction || null),
        items.map((c) => c.response.errorReason ?? null),
        items.map((c) => JSON.stringify(c.response)),
        items.map((_, i) => i),
        items.map((c) => c.seen !== undefined),
        items.map((c) => c.seen ?? null),
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

async function failAbandoned(sql: Sql, { t, x, ev }: Tables, response: (record: PaymentRecord) => SettleResponse): Promise<number> {
  const rows = await sql.query<Row>(
    `SELECT ${COLUMNS} FROM ${t} p WHERE p.status = 'pending' AND p.lease_until < now()
       AND NOT EXISTS (SELECT 1 FROM ${x} x WHERE x.payment_key = p.payment_key AND (x.outcome IS NULL OR x.outcome = 'success')) LIMIT 500`,
  );
  let n = 0;
  for (const r of rows) {
    const res = response(toRecord(r));
    // Only if no write-ahead happened since the look above (it names a transaction on the row).
    const done = await sql.query(
      `WITH done AS (
         UPDATE ${t} SET status = 'failed', reason = $2, response = $3, claim_token = NULL, lease_until = NULL, updated_at = now()
         WHERE payment_key = $1 AND status = 'pending' AND lease_until < now() AND transaction_hash IS NOT DISTINCT FROM $4
         RETURNING id AS i, payment_key AS k, network AS n, payer AS pr, status AS st, reason AS re, transaction_hash AS tx
       ), logged AS (${finalEventInsert(ev)})
       SELECT i FROM done`,
      [r.payment_key, res.errorReason ?? null, JSON.stringify(res), r.transaction_hash],
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
      if (tx.keys.length === 0) return [];
      return writeTransaction(tx);
    },
    async markOutcomes(hash, outcomes) {
      if (outcomes.length === 0) return;
      await writeOutcomes({ hash, outcomes });
    },
    resolve: (key, response, seen) => resolve({ key, response, ...(seen !== undefined ? { seen } : {}) }),
    unresolved: (limit) => unresolved(sql, tables, limit),
    failAbandoned: (response) => failAbandoned(sql, tables, response),
    async releaseClaims() {
      const rows = await sql.query(`UPDATE ${tables.t} SET lease_until = now() - interval '1 second' WHERE status = 'pending' AND claim_token IS NOT NULL RETURNING id`);
      return rows.length;
    },
  };
}
