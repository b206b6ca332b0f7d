/**
 * A channel store in PostgreSQL (or PGlite) that several server instances share: one row per
 * channel, holding the record as JSON and the lease that lets one request at a time, on any
 * instance, serve on the channel (ChannelStore.leases). Lease times come from the database's
 * clock, so instances' clocks need not agree. A committed charge is durable when `commit`
 * resolves (PostgreSQL's commit).
 *
 * Takes any client with `query(text, params)`: pg's Pool or Client, PGlite. This package carries
 * no database driver.
 */
import type { ChannelRecord, ChannelStore } from "./store.ts";

export interface SqlClient {
  query(text: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
}

export interface SqlChannelStoreOptions {
  /** The table (created when missing), optionally schema-qualified. Default `tollgate_channels`. */
  table?: string;
}

const IDENTIFIER = /^([a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$/;

export function sqlChannelStore(db: SqlClient, options: SqlChannelStoreOptions = {}): ChannelStore {
  const table = options.table ?? "tollgate_channels";
  if (!IDENTIFIER.test(table)) throw new TypeError(`sqlChannelStore: table must be a lowercase SQL identifier (optionally schema.table), got ${JSON.stringify(table)}`);
  let created: Promise<void> | undefined;
  const create = () => db.query(`CREATE TABLE IF NOT EXISTS ${table} (channel_id text PRIMARY KEY, record jsonb, lease_owner text, lease_until timestamptz)`);
  /**
   * Creates the table once. Two instances starting together can collide inside PostgreSQL's
   * CREATE TABLE IF NOT EXISTS; the second try then finds the table. A failure is retried by the next call.
   */
  const ready = (): Promise<void> =>
    (created ??= create()
      .catch(create)
      .then(() => undefined)
      .catch((e: unknown) => {
        created = undefined;
        throw e;
      }));
  const run = async (text: string, params: unknown[] = []): Promise<unknown[]> => {
    await ready();
    return (await db.query(text, params)).rows;
  };
  const recordOf = (row: unknown): ChannelRecord => {
    const value = (row as { record: unknown }).record;
    // pg and PGlite parse jsonb; a driver that does not hands back the text.
    return (typeof value === "string" ? JSON.parse(value) : value) as ChannelRecord;
  };

  return {
    async get(channelId) {
      const rows = await run(`SELECT record FROM ${table} WHERE channel_id = $1 AND record IS NOT NULL`, [channelId.toLowerCase()]);
      return rows[0] ? recordOf(rows[0]) : undefined;
    },
    async put(record) {
      await run(`INSERT INTO ${table} (channel_id, record) VALUES ($1, $2::jsonb) ON CONFLICT (channel_id) DO UPDATE SET record = EXCLUDED.record`, [record.channelId.toLowerCase(), JSON.stringify(record)]);
    },
    async delete(channelId) {
      await run(`DELETE FROM ${table} WHERE channel_id = $1`, [channelId.toLowerCase()]);
    },
    async list() {
      return (await run(`SELECT record FROM ${table} WHERE record IS NOT NULL ORDER BY channel_id`)).map(recordOf);
    },
    leases: {
      async take(channelId, owner, ttlMs) {
        const rows = await run(
          `INSERT INTO ${table} AS c (channel_id, lease_owner, lease_until) VALUES ($1, $2, now() + $3::integer * interval '1 millisecond')
           ON CONFLICT (channel_id) DO UPDATE SET lease_owner = EXCLUDED.lease_owner, lease_until = EXCLUDED.lease_until
           WHERE c.lease_until IS NULL OR c.lease_until <= now() OR c.lease_owner = EXCLUDED.lease_owner
           RETURNING channel_id`,
          [channelId.toLowerCase(), owner, Math.max(1, Math.ceil(ttlMs))],
        );
        return rows.length === 1;
      },
      async commit(record, owner, release) {
        const rows = await run(
          `UPDATE ${table} SET record = $2::jsonb,
             lease_owner = CASE WHEN $4::boolean THEN NULL ELSE lease_owner END,
             lease_until = CASE WHEN $4::boolean THEN NULL ELSE lease_until END
           WHERE channel_id = $1 AND lease_owner = $3 AND lease_until > now()
           RETURNING channel_id`,
          [record.channelId.toLowerCase(), JSON.stringify(record), owner, release],
        );
        return rows.length === 1;
      },
      async release(channelId, owner) {
        await run(`UPDATE ${table} SET lease_owner = NULL, lease_until = NULL WHERE channel_id = $1 AND lease_owner = $2`, [channelId.toLowerCase(), owner]);
      },
    },
  };
}
