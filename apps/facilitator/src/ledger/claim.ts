/**
 * The settle-once claim: the ONE place that decides whether a settlement of an authorization may
 * run. An upsert moves the row to `pending` under the claimant's token, atomically, so of any
 * number of concurrent callers (in one process or several sharing PostgreSQL) exactly one wins.
 * Group-committed: concurrent claims go out as one statement.
 */
import { createBatcher } from "./batch.ts";
import { batchingFor, ENTRY_COLUMNS, ENTRY_UNNEST, entryColumns, getMany, getOne, nothingMinedOrInFlight, type Tables } from "./rows.ts";
import { sqlState, type Sql } from "./sql.ts";
import type { ClaimResult, PaymentEntry } from "./types.ts";

interface ClaimItem {
  entry: PaymentEntry;
  token: string;
  leaseMs: number;
}

/**
 * One upsert for many claims. A row is taken when it is new or `verified`; when `failed` with
 * nothing of it mined or in flight and no reverted attempt reported; or when `pending` past its
 * lease with the same content and nothing sent (its settler died before sending). RETURNING
 * says whose token each row now holds.
 */
async function claimStatement(sql: Sql, { t, x }: Tables, items: readonly ClaimItem[]): Promise<Set<string>> {
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
     WHERE p.status = 'verified'
        OR (p.status = 'failed' AND p.reverted_at IS NULL AND ${nothingMinedOrInFlight(x)})
        OR (p.status = 'pending' AND p.lease_until < now() AND p.request_hash = EXCLUDED.request_hash AND ${nothingMinedOrInFlight(x)})
     RETURNING payment_key, claim_token`,
    [...entryColumns(items.map((c) => c.entry)), items.map((c) => c.token), items.map((c) => c.leaseMs / 1000)],
  );
  return new Set(rows.map((r) => `${r.payment_key}\u0000${r.claim_token}`));
}

export function createClaim(sql: Sql, tables: Tables): (entry: PaymentEntry, token: string, leaseMs: number) => Promise<ClaimResult> {
  const claimBatch = createBatcher<ClaimItem, ClaimResult>(async (items) => {
    let won: Set<string>;
    const conflicted = new Set<string>();
    const keys = new Set(items.map((c) => c.entry.key));
    try {
      // One key twice in one upsert is an error (21000): claim those one at a time below.
      if (keys.size !== items.length) throw Object.assign(new Error("duplicate key in claim batch"), { code: "21000" });
      won = await claimStatement(sql, tables, items);
    } catch (e) {
      const state = sqlState(e);
      // A payer's payment-identifier held by another authorization (23505) fails the whole
      // statement: find whose by claiming one at a time, so each caller gets its own answer.
      if (items.length === 1 || (state !== "23505" && state !== "21000")) throw e;
      won = new Set();
      for (const c of items) {
        try {
          for (const w of await claimStatement(sql, tables, [c])) won.add(w);
        } catch (e1) {
          if (sqlState(e1) !== "23505") throw e1;
          conflicted.add(c.entry.key);
        }
      }
    }
    const claimed = (c: ClaimItem) => won.has(`${c.entry.key}\u0000${c.token}`);
    const records = await getMany(sql, tables.t, items.filter((c) => !claimed(c)).map((c) => c.entry.key));
    return items.map((c): ClaimResult => {
      if (claimed(c)) return { claimed: true };
      const record = records.get(c.entry.key);
      return conflicted.has(c.entry.key) ? { claimed: false, record, identifierConflict: true } : { claimed: false, record };
    });
  }, batchingFor(sql));

  // A single-row claim's 23505 is the caller's own identifier conflict.
  return async (entry, token, leaseMs) => {
    try {
      return await claimBatch({ entry, token, leaseMs });
    } catch (e) {
      if (sqlState(e) === "23505") return { claimed: false, record: await getOne(sql, tables.t, entry.key), identifierConflict: true };
      throw e;
    }
  };
}
