/**
 * Audit writes: verification rows (never overwriting a row that exists) and request events, each
 * as one multi-row statement per chunk. They document what happened and decide nothing.
 */
import { ENTRY_COLUMNS, ENTRY_UNNEST, entryColumns, MAX_BATCH, type Tables } from "./rows.ts";
import type { Sql } from "./sql.ts";
import type { LedgerEvent, VerifyRecord } from "./types.ts";

export async function recordVerifies(sql: Sql, { t }: Tables, records: readonly VerifyRecord[]): Promise<void> {
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

export async function recordEvents(sql: Sql, { ev }: Tables, events: readonly LedgerEvent[]): Promise<void> {
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

export async function eventsOf(sql: Sql, { ev }: Tables, key: string): Promise<Array<LedgerEvent & { at: Date }>> {
  const rows = await sql.query<{ kind: LedgerEvent["kind"]; network: string; payer: string | null; outcome: string; reason: string | null; transaction_hash: string | null; at: Date }>(
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
}
