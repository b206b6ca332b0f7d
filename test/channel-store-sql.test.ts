// sqlChannelStore against PGlite and the machine's PostgreSQL: records round-trip, and the lease
// that holds a channel for one request at a time across server instances (two stores on one
// table stand for two instances) is exclusive, expires by the database's clock, and guards every
// write made under it.
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sqlChannelStore, type ChannelRecord, type ChannelStore, type SqlClient } from "@tollgate/server";

const DATABASE_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const table = `tollgate_channels_test_${randomBytes(4).toString("hex")}`;

function record(n: number, charged = "1000"): ChannelRecord {
  const channelId = `0x${n.toString(16).padStart(2, "0").repeat(32)}`;
  return {
    channelId,
    network: "eip155:31337",
    channelConfig: { payer: `0x${"01".repeat(20)}`, receiver: `0x${"02".repeat(20)}`, salt: channelId, withdrawDelay: 900 },
    receiver: `0x${"02".repeat(20)}`,
    token: `0x${"03".repeat(20)}`,
    payer: `0x${"01".repeat(20)}`,
    chargedCumulativeAmount: charged,
    signedMaxClaimable: charged,
    signature: `0x${"aa".repeat(65)}`,
    balance: "10000",
    totalClaimed: "0",
    withdrawRequestedAt: 0,
    refundNonce: "0",
    onchainSyncedAt: 1_700_000_000_000,
    lastRequestTimestamp: 1_700_000_000_001,
  };
}

const backends: Record<string, { open(): Promise<{ a: SqlClient; b: SqlClient; close(): Promise<void> }> }> = {
  PGlite: {
    async open() {
      const db = new PGlite();
      return { a: db, b: db, close: () => db.close() };
    },
  },
  PostgreSQL: {
    async open() {
      // Two pools: two server instances with their own connections.
      const a = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
      const b = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
      return {
        a,
        b,
        async close() {
          await a.query(`DROP TABLE IF EXISTS ${table}`);
          await a.end();
          await b.end();
        },
      };
    },
  },
};

describe.each(Object.keys(backends))("sqlChannelStore on %s", (name) => {
  let first: ChannelStore;
  let second: ChannelStore;
  let close: () => Promise<void>;
  beforeAll(async () => {
    const opened = await backends[name]!.open();
    first = sqlChannelStore(opened.a, { table });
    second = sqlChannelStore(opened.b, { table });
    close = opened.close;
  });
  afterAll(async () => close?.());

  it("round-trips records (any case of id), lists them in order, deletes them", async () => {
    expect(await first.get(record(1).channelId)).toBeUndefined();
    await first.put(record(2));
    await first.put(record(1));
    expect(await second.get(record(1).channelId.toUpperCase().replace("0X", "0x"))).toEqual(record(1));
    await second.put(record(1, "2000"));
    expect((await first.get(record(1).channelId))!.chargedCumulativeAmount).toBe("2000");
    expect((await first.list()).map((r) => r.channelId)).toEqual([record(1).channelId, record(2).channelId]);
    await first.delete(record(2).channelId);
    expect(await second.get(record(2).channelId)).toBeUndefined();
  });

  it("a lease is exclusive across instances; only its holder writes under it; a commit with release frees it", async () => {
    const id = record(3).channelId;
    expect(await first.leases!.take(id, "a", 60_000)).toBe(true);
    expect(await second.leases!.take(id, "b", 60_000)).toBe(false);
    expect(await first.leases!.take(id, "a", 60_000)).toBe(true); // the holder may renew
    // No record existed: the lease row alone is not a record.
    expect(await first.get(id)).toBeUndefined();
    expect(await first.list()).not.toContainEqual(expect.objectContaining({ channelId: id }));
    expect(await second.leases!.commit(record(3, "5000"), "b", true)).toBe(false);
    expect(await first.get(id)).toBeUndefined();
    expect(await first.leases!.commit(record(3, "1000"), "a", false)).toBe(true);
    expect((await second.get(id))!.chargedCumulativeAmount).toBe("1000");
    expect(await second.leases!.take(id, "b", 60_000)).toBe(false); // still held
    await second.leases!.release(id, "b"); // not the holder: nothing happens
    expect(await second.leases!.take(id, "b", 60_000)).toBe(false);
    expect(await first.leases!.commit(record(3, "2000"), "a", true)).toBe(true);
    expect(await second.leases!.take(id, "b", 60_000)).toBe(true);
    expect(await first.leases!.commit(record(3, "9000"), "a", false)).toBe(false); // a let go
    expect((await first.get(id))!.chargedCumulativeAmount).toBe("2000");
    await second.leases!.release(id, "b");
    expect(await first.leases!.take(id, "a", 60_000)).toBe(true);
    await first.leases!.release(id, "a");
  });

  it("a lease runs out by the database's clock: its holder can no longer write, another instance takes the channel", async () => {
    const id = record(4).channelId;
    await first.put(record(4, "1000"));
    expect(await first.leases!.take(id, "slow", 100)).toBe(true);
    expect(await second.leases!.take(id, "b", 60_000)).toBe(false);
    await new Promise((r) => setTimeout(r, 250));
    expect(await second.leases!.take(id, "b", 60_000)).toBe(true);
    expect(await first.leases!.commit(record(4, "3000"), "slow", true)).toBe(false);
    expect((await second.get(id))!.chargedCumulativeAmount).toBe("1000");
    await second.leases!.release(id, "b");
  });

  it("of twenty instances asking for one channel at once, exactly one gets it", async () => {
    const id = record(5).channelId;
    const asks = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? first : second).leases!.take(id, `owner-${i}`, 60_000)));
    expect(asks.filter(Boolean)).toHaveLength(1);
  });

  it("refuses a table name that is not an identifier", () => {
    expect(() => sqlChannelStore({ query: async () => ({ rows: [] }) }, { table: "channels; DROP TABLE x" })).toThrow(/lowercase SQL identifier/);
  });
});
