/**
 * The payments table as rows: the columns read back, their conversion to records, and the
 * column arrays that write many entries in one statement. Shared by the ledger's statements.
 */
import type { SettleResponse } from "@tollgate/core";
import type { BatchOptions } from "./batch.ts";
import { sqlState, type Sql } from "./sql.ts";
import type { PaymentEntry, PaymentRecord, PaymentStatus } from "./types.ts";

/** Qualified table names in the ledger's schema. */
export interface Tables {
  /** payments */
  t: string;
  /** payment_events */
  ev: string;
  /** payment_transactions */
  x: string;
}

export function tablesIn(schema: string): Tables {
  return { t: `${schema}.payments`, ev: `${schema}.payment_events`, x: `${schema}.payment_transactions` };
}

/** Most rows per statement: bounds statement size and how long one write holds the store. */
export const MAX_BATCH = 500;

/**
 * Group-commit settings for a store. PGlite runs one statement at a time: one batch in flight,
 * the next one fills meanwhile. Several processes on one PostgreSQL: two multi-row writes may
 * lock rows in opposite orders and one is chosen as the deadlock victim (40P01), or a
 * serialization check fails (40001); the statement was rolled back as a whole, so it runs again.
 */
export function batchingFor(sql: Sql): BatchOptions {
  return { maxBatch: MAX_BATCH, concurrency: sql.dialect === "pglite" ? 1 : 4, retry: (e: unknown) => ["40P01", "40001"].includes(sqlState(e) ?? "") };
}

export const COLUMNS = `id::text AS id, payment_key, network, scheme, asset, payer, payee, amount::text AS amount, nonce, status,
  transaction_hash, reason, payment_identifier, request_hash, response, answered_at IS NOT NULL AS answered, attempts, created_at, updated_at`;

export interface Row {
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
  answered: boolean;
  attempts: number;
  created_at: Date | string;
  updated_at: Date | string;
}

export function toRecord(r: Row): PaymentRecord {
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
    answered: Boolean(r.answered),
    attempts: Number(r.attempts),
    createdAt: new Date(r.created_at),
    updatedAt: new Date(r.updated_at),
  };
}

/** Column arrays for `unnest`: one statement text whatever the number of rows. */
export function entryColumns(entries: readonly PaymentEntry[]): unknown[] {
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

export const ENTRY_UNNEST = `unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::numeric[], $8::text[], $9::text[], $10::text[]`;
export const ENTRY_COLUMNS = "k, n, sc, a, pr, pe, am, no, pi, rh";

/**
 * SQL condition: nothing sent for payment `p` was mined or may still be (every transaction of it,
 * if any, was dropped). Only then may it be sent again: a reverted attempt burned gas once and
 * would again, a landed one settled it, an unresolved one may still land.
 */
export function nothingMinedOrInFlight(x: string): string {
  return `NOT EXISTS (SELECT 1 FROM ${x} x WHERE x.payment_key = p.payment_key AND x.outcome IS DISTINCT FROM 'dropped')`;
}

export async function getOne(sql: Sql, t: string, key: string): Promise<PaymentRecord | undefined> {
  const rows = await sql.query<Row>(`SELECT ${COLUMNS} FROM ${t} WHERE payment_key = $1`, [key]);
  return rows[0] ? toRecord(rows[0]) : undefined;
}

export async function getMany(sql: Sql, t: string, keys: string[]): Promise<Map<string, PaymentRecord>> {
  if (keys.length === 0) return new Map();
  const rows = await sql.query<Row>(`SELECT ${COLUMNS} FROM ${t} WHERE payment_key = ANY($1::text[])`, [keys]);
  return new Map(rows.map((r) => [r.payment_key, toRecord(r)]));
}
