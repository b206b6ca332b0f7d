/**
 * Ending a claimed settlement, and handing out a success exactly once.
 *
 * `complete` stores the settler's result under its claim token. A success is stored as
 * *answered* in the same statement: the settler hands it out, so the first success costs no
 * extra round trip. `answer` is the other way a success is handed out: the chain settled the row
 * after a pending answer (reconciler, engine), and the first /settle that asks gets it.
 */
import type { SettleResponse } from "@tollgate/core";
import { createBatcher } from "./batch.ts";
import { batchingFor, type Tables } from "./rows.ts";
import type { Sql } from "./sql.ts";
import type { SettlementResult } from "./types.ts";

interface CompleteItem {
  key: string;
  token: string;
  result: SettlementResult;
}

type Indexed = CompleteItem & { i: number };

/**
 * Final results (settled, or failed with nothing that may still land) end the row. A settled one
 * is answered at once and marks its transaction landed for this payment (so the engine's onFinal
 * need not write it separately for payments somebody waits on): one statement.
 */
async function storeFinal(sql: Sql, { t, x }: Tables, finals: readonly Indexed[]): Promise<number[]> {
  if (finals.length === 0) return [];
  const rows = await sql.query<{ i: number }>(
    `WITH done AS (
       UPDATE ${t} AS p SET status = v.st, transaction_hash = COALESCE(v.tx, p.transaction_hash), reason = v.re, response = v.resp,
         claim_token = NULL, lease_until = NULL, updated_at = now(),
         settled_at = CASE WHEN v.st = 'settled' THEN now() ELSE p.settled_at END,
         answered_at = CASE WHEN v.st = 'settled' THEN now() ELSE p.answered_at END,
         reverted_at = CASE WHEN v.rv THEN now() ELSE p.reverted_at END
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::int[]) AS v(k, tok, st, tx, re, resp, rv, i)
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
      finals.map((c) => c.result.status),
      finals.map((c) => c.result.transaction || null),
      finals.map((c) => c.result.response.errorReason ?? null),
      finals.map((c) => JSON.stringify(c.result.response)),
      finals.map((c) => c.result.status === "failed" && c.result.onChain),
      finals.map((c) => c.i),
    ],
  );
  return rows.map((r) => Number(r.i));
}

/**
 * In doubt (sent, outcome unknown): the row stays pending for the chain to decide (reconciler),
 * its claim released. A pending result is stored as the row's answer, with its hash.
 */
async function storeInDoubt(sql: Sql, { t }: Tables, rest: readonly Indexed[]): Promise<number[]> {
  if (rest.length === 0) return [];
  const rows = await sql.query<{ i: number }>(
    `UPDATE ${t} AS p SET claim_token = NULL, lease_until = NULL, updated_at = now(), reason = 'settlement_pending',
       response = CASE WHEN v.pa THEN v.resp ELSE p.response END,
       transaction_hash = COALESCE(p.transaction_hash, v.tx)
     FROM unnest($1::text[], $2::text[], $3::bool[], $4::text[], $5::text[], $6::int[]) AS v(k, tok, pa, resp, tx, i)
     WHERE p.payment_key = v.k AND p.claim_token = v.tok AND p.status = 'pending'
     RETURNING v.i AS i`,
    [
      rest.map((c) => c.key),
      rest.map((c) => c.token),
      rest.map((c) => c.result.status === "pending"),
      rest.map((c) => JSON.stringify(c.result.response)),
      rest.map((c) => (c.result.status === "pending" && c.result.transaction) || null),
      rest.map((c) => c.i),
    ],
  );
  return rows.map((r) => Number(r.i));
}

export function createComplete(sql: Sql, tables: Tables): (key: string, token: string, result: SettlementResult) => Promise<boolean> {
  const completeBatch = createBatcher<CompleteItem, boolean>(async (items) => {
    const indexed = items.map((c, i) => ({ ...c, i }));
    const done = new Set(await storeFinal(sql, tables, indexed.filter((c) => c.result.status !== "pending")));
    for (const i of await storeInDoubt(sql, tables, indexed.filter((c) => !done.has(c.i)))) done.add(i);
    return items.map((_, i) => done.has(i));
  }, batchingFor(sql));
  return (key, token, result) => completeBatch({ key, token, result });
}

/** Marks a settled, unanswered row of this content answered; its stored success if this call did. */
export async function answerSettled(sql: Sql, { t }: Tables, key: string, requestHash: string): Promise<SettleResponse | undefined> {
  const rows = await sql.query<{ response: string | null }>(
    `UPDATE ${t} SET answered_at = now(), updated_at = now()
     WHERE payment_key = $1 AND status = 'settled' AND answered_at IS NULL AND request_hash = $2 AND response IS NOT NULL
     RETURNING response`,
    [key, requestHash],
  );
  const text = rows[0]?.response;
  return text ? (JSON.parse(text) as SettleResponse) : undefined;
}
