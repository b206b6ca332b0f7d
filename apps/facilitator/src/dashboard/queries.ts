/**
 * The operator dashboard's reads: plain SELECTs over the ledger (the same SQL on PGlite and
 * PostgreSQL, nothing newer than PostgreSQL 12), so every facilitator sharing a store shows the
 * same picture. Amounts and gas stay exact: numeric sums come back as decimal strings.
 */
import { tablesIn } from "../ledger/rows.ts";
import type { Ledger } from "../ledger/ledger.ts";

/** The windows the dashboard offers, with the width of one chart bucket. */
export const WINDOWS = {
  "1h": { seconds: 3_600, bucket: 60 },
  "24h": { seconds: 86_400, bucket: 900 },
  "7d": { seconds: 604_800, bucket: 10_800 },
} as const;
export type WindowName = keyof typeof WINDOWS;

export interface VolumePoint {
  /** Bucket start, seconds since the epoch. */
  t: number;
  network: string;
  asset: string;
  count: number;
  /** Atomic units, decimal string. */
  volume: string;
}

export interface OutcomeCount {
  kind: string;
  outcome: string;
  reason: string | null;
  count: number;
}

export interface OpenSettlement {
  key: string;
  network: string;
  payer: string;
  payee: string;
  asset: string;
  amount: string;
  transaction: string | null;
  /** Sent and not final, with no settler holding it: the reconciler's to decide from the chain. */
  inDoubt: boolean;
  since: string;
}

export interface GasSummary {
  network: string;
  transactions: number;
  payments: number;
  /** Integer gas per payment (total gas / payments carried), decimal string. */
  gasPerPayment: string;
  /** Fees paid in the chain's smallest unit, decimal string. */
  feesWei: string;
}

export interface PayeeTotal {
  network: string;
  asset: string;
  payee: string;
  count: number;
  total: string;
}

export interface LedgerPayment {
  id: string;
  key: string;
  network: string;
  scheme: string;
  asset: string;
  payer: string;
  payee: string;
  amount: string;
  status: string;
  reason: string | null;
  transaction: string | null;
  attempts: number;
  createdAt: string;
  updatedAt: string;
  settledAt: string | null;
}

export interface PaymentEventRow {
  id: string;
  at: string;
  kind: string;
  outcome: string;
  reason: string | null;
  network: string;
  payer: string | null;
  payee: string | null;
  asset: string | null;
  amount: string | null;
  transaction: string | null;
}

const iso = (v: Date | string | null): string | null => (v === null ? null : new Date(v).toISOString());

const PAYMENT_COLUMNS = `id::text AS id, payment_key, network, scheme, asset, payer, payee, amount::text AS amount, status, reason, transaction_hash,
  attempts, created_at, updated_at, settled_at`;

interface PaymentRow {
  id: string;
  payment_key: string;
  network: string;
  scheme: string;
  asset: string;
  payer: string;
  payee: string;
  amount: string;
  status: string;
  reason: string | null;
  transaction_hash: string | null;
  attempts: number;
  created_at: Date | string;
  updated_at: Date | string;
  settled_at: Date | string | null;
}

function toPayment(r: PaymentRow): LedgerPayment {
  return {
    id: r.id,
    key: r.payment_key,
    network: r.network,
    scheme: r.scheme,
    asset: r.asset,
    payer: r.payer,
    payee: r.payee,
    amount: r.amount,
    status: r.status,
    reason: r.reason,
    transaction: r.transaction_hash,
    attempts: Number(r.attempts),
    createdAt: iso(r.created_at)!,
    updatedAt: iso(r.updated_at)!,
    settledAt: iso(r.settled_at),
  };
}

export function createDashboardQueries(ledger: Pick<Ledger, "sql" | "schema">) {
  const { sql } = ledger;
  const { t, ev, x } = tablesIn(ledger.schema);
  const since = (w: WindowName) => new Date(Date.now() - WINDOWS[w].seconds * 1000).toISOString();

  return {
    /** Settled volume and count per bucket, network and asset (buckets with nothing are left out). */
    async volume(w: WindowName): Promise<VolumePoint[]> {
      // status + updated_at is indexed (payments_status); settled_at <= updated_at always.
      const rows = await sql.query<{ t: string; network: string; asset: string; n: string; v: string }>(
        `SELECT (floor(extract(epoch FROM settled_at) / $2::int) * $2::int)::bigint::text AS t, network, asset, count(*)::text AS n, sum(amount)::text AS v
         FROM ${t} WHERE status = 'settled' AND updated_at >= $1::timestamptz AND settled_at >= $1::timestamptz
         GROUP BY 1, network, asset ORDER BY 1, network, asset`,
        [since(w), WINDOWS[w].bucket],
      );
      return rows.map((r) => ({ t: Number(r.t), network: r.network, asset: r.asset, count: Number(r.n), volume: r.v }));
    },

    /** Every verify and settle answer in the window, by outcome and reason. */
    async outcomes(w: WindowName): Promise<OutcomeCount[]> {
      const rows = await sql.query<{ kind: string; outcome: string; reason: string | null; n: string }>(
        `SELECT kind, outcome, reason, count(*)::text AS n FROM ${ev} WHERE at >= $1::timestamptz GROUP BY kind, outcome, reason ORDER BY count(*) DESC, kind, outcome LIMIT 100`,
        [since(w)],
      );
      return rows.map((r) => ({ kind: r.kind, outcome: r.outcome, reason: r.reason, count: Number(r.n) }));
    },

    /** Settlements not final yet (any age: an old one is what an operator must see). */
    async open(limit = 50): Promise<{ pending: number; inDoubt: number; rows: OpenSettlement[] }> {
      const rows = await sql.query<PaymentRow & { in_doubt: boolean }>(
        `SELECT ${PAYMENT_COLUMNS},
           (EXISTS (SELECT 1 FROM ${x} x WHERE x.payment_key = p.payment_key) AND (p.claim_token IS NULL OR p.lease_until < now())) AS in_doubt
         FROM ${t} p WHERE status = 'pending' ORDER BY updated_at LIMIT $1`,
        [limit],
      );
      const counts = await sql.query<{ pending: string; in_doubt: string }>(
        `SELECT count(*)::text AS pending,
           count(*) FILTER (WHERE (claim_token IS NULL OR lease_until < now()) AND EXISTS (SELECT 1 FROM ${x} x WHERE x.payment_key = p.payment_key))::text AS in_doubt
         FROM ${t} p WHERE status = 'pending'`,
      );
      return {
        pending: Number(counts[0]?.pending ?? 0),
        inDoubt: Number(counts[0]?.in_doubt ?? 0),
        rows: rows.map((r) => ({
          key: r.payment_key,
          network: r.network,
          payer: r.payer,
          payee: r.payee,
          asset: r.asset,
          amount: r.amount,
          transaction: r.transaction_hash,
          inDoubt: Boolean(r.in_doubt),
          since: iso(r.updated_at)!,
        })),
      };
    },

    /** Gas of the settlement transactions mined in the window whose receipts were recorded, per network. */
    async gas(w: WindowName): Promise<GasSummary[]> {
      const rows = await sql.query<{ network: string; txs: string; payments: string; gas: string; fees: string }>(
        `WITH tx AS (
           SELECT network, transaction_hash, max(gas_used) AS gas, max(effective_gas_price) AS price, count(*) AS items
           FROM ${x} WHERE gas_used IS NOT NULL AND created_at >= $1::timestamptz GROUP BY network, transaction_hash
         )
         SELECT network, count(*)::text AS txs, sum(items)::text AS payments, sum(gas)::text AS gas, sum(gas * COALESCE(price, 0))::text AS fees
         FROM tx GROUP BY network ORDER BY network`,
        [since(w)],
      );
      return rows.map((r) => ({
        network: r.network,
        transactions: Number(r.txs),
        payments: Number(r.payments),
        gasPerPayment: (BigInt(r.gas) / BigInt(Math.max(1, Number(r.payments)))).toString(),
        feesWei: r.fees,
      }));
    },

    /** Settled totals per payee in the window, largest first. */
    async payees(w: WindowName, limit = 20): Promise<PayeeTotal[]> {
      const rows = await sql.query<{ network: string; asset: string; payee: string; n: string; total: string }>(
        `SELECT network, asset, lower(payee) AS payee, count(*)::text AS n, sum(amount)::text AS total
         FROM ${t} WHERE status = 'settled' AND updated_at >= $1::timestamptz AND settled_at >= $1::timestamptz
         GROUP BY network, asset, lower(payee) ORDER BY sum(amount) DESC, 3 LIMIT $2`,
        [since(w), limit],
      );
      return rows.map((r) => ({ network: r.network, asset: r.asset, payee: r.payee, count: Number(r.n), total: r.total }));
    },

    /** The latest payments by last change. */
    async recent(limit = 50): Promise<LedgerPayment[]> {
      const rows = await sql.query<PaymentRow>(`SELECT ${PAYMENT_COLUMNS} FROM ${t} ORDER BY updated_at DESC, id DESC LIMIT $1`, [limit]);
      return rows.map(toPayment);
    },

    /**
     * Exact match on a payer or payee address, or a transaction hash (the row's, or any attempt's
     * in the write-ahead log). EVM addresses and hashes compare case-insensitively.
     */
    async search(query: SearchQuery, limit = 50): Promise<LedgerPayment[]> {
      let rows: PaymentRow[];
      if (query.kind === "transaction") {
        rows = await sql.query<PaymentRow>(
          `SELECT ${PAYMENT_COLUMNS} FROM ${t} p
           WHERE p.payment_key IN (SELECT payment_key FROM ${x} WHERE transaction_hash = $1 OR transaction_hash = $2)
              OR p.transaction_hash = $1 OR p.transaction_hash = $2
           ORDER BY p.updated_at DESC LIMIT $3`,
          [query.value, query.caseless ? query.value.toLowerCase() : query.value, limit],
        );
      } else if (query.caseless) {
        rows = await sql.query<PaymentRow>(`SELECT ${PAYMENT_COLUMNS} FROM ${t} WHERE lower(payer) = $1 OR lower(payee) = $1 ORDER BY updated_at DESC LIMIT $2`, [
          query.value.toLowerCase(),
          limit,
        ]);
      } else {
        rows = await sql.query<PaymentRow>(`SELECT ${PAYMENT_COLUMNS} FROM ${t} WHERE payer = $1 OR payee = $1 ORDER BY updated_at DESC LIMIT $2`, [query.value, limit]);
      }
      return rows.map(toPayment);
    },

    /** The transactions sent for a payment, with their gas when recorded. */
    async attempts(key: string): Promise<Array<{ hash: string; signer: string; nonce: string; outcome: string | null; gasUsed: string | null; effectiveGasPrice: string | null; payments: number }>> {
      const rows = await sql.query<{ transaction_hash: string; signer: string; tx_nonce: string; outcome: string | null; gas_used: string | null; price: string | null; items: string }>(
        `SELECT x.transaction_hash, x.signer, x.tx_nonce::text AS tx_nonce, x.outcome, x.gas_used::text AS gas_used, x.effective_gas_price::text AS price,
           (SELECT count(*) FROM ${x} y WHERE y.transaction_hash = x.transaction_hash)::text AS items
         FROM ${x} x WHERE x.payment_key = $1 ORDER BY x.created_at`,
        [key],
      );
      return rows.map((r) => ({
        hash: r.transaction_hash,
        signer: r.signer,
        nonce: r.tx_nonce,
        outcome: r.outcome,
        gasUsed: r.gas_used,
        effectiveGasPrice: r.price,
        payments: Number(r.items),
      }));
    },

    /** The highest event id now: a live feed starts after it. */
    async lastEventId(): Promise<string> {
      const rows = await sql.query<{ id: string | null }>(`SELECT max(id)::text AS id FROM ${ev}`);
      return rows[0]?.id ?? "0";
    },

    /** Events with an id above `after` (and the payment each is about), oldest first. */
    async eventsAfter(after: string, limit: number): Promise<PaymentEventRow[]> {
      const rows = await sql.query<{ id: string; at: Date | string; kind: string; outcome: string; reason: string | null; network: string; payer: string | null; payee: string | null; asset: string | null; amount: string | null; transaction_hash: string | null }>(
        `SELECT e.id::text AS id, e.at, e.kind, e.outcome, e.reason, e.network, e.payer, p.payee, p.asset, p.amount::text AS amount, e.transaction_hash
         FROM ${ev} e LEFT JOIN ${t} p ON p.payment_key = e.payment_key
         WHERE e.id > $1::bigint ORDER BY e.id LIMIT $2`,
        [after, limit],
      );
      return rows.map((r) => ({
        id: r.id,
        at: iso(r.at)!,
        kind: r.kind,
        outcome: r.outcome,
        reason: r.reason,
        network: r.network,
        payer: r.payer,
        payee: r.payee,
        asset: r.asset,
        amount: r.amount,
        transaction: r.transaction_hash,
      }));
    },
  };
}

export type DashboardQueries = ReturnType<typeof createDashboardQueries>;

export type SearchQuery = { kind: "address" | "transaction"; value: string; caseless: boolean };

const EVM_ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const EVM_HASH = /^0x[0-9a-fA-F]{64}$/;
const BASE58 = /^[1-9A-HJ-NP-Za-km-z]+$/;

/** What a search box holds, checked: an address or a transaction hash, EVM or Solana; undefined otherwise. */
export function readSearchQuery(raw: string): SearchQuery | undefined {
  const q = raw.trim();
  if (EVM_ADDRESS.test(q)) return { kind: "address", value: q, caseless: true };
  if (EVM_HASH.test(q)) return { kind: "transaction", value: q, caseless: true };
  if (BASE58.test(q) && q.length >= 32 && q.length <= 44) return { kind: "address", value: q, caseless: false };
  if (BASE58.test(q) && q.length >= 80 && q.length <= 90) return { kind: "transaction", value: q, caseless: false };
  return undefined;
}

/** Stores a mined settlement transaction's gas figures (from its receipt) on its write-ahead rows. */
export async function recordTransactionGas(ledger: Pick<Ledger, "sql" | "schema">, hash: string, gasUsed: bigint, effectiveGasPrice: bigint): Promise<void> {
  const { x } = tablesIn(ledger.schema);
  await ledger.sql.query(`UPDATE ${x} SET gas_used = $2::numeric, effective_gas_price = $3::numeric WHERE transaction_hash = $1 AND gas_used IS NULL`, [
    hash,
    gasUsed.toString(),
    effectiveGasPrice.toString(),
  ]);
}
