/**
 * Signer leases: several facilitator processes share one PostgreSQL and the same fee-paying
 * keys, and must never hand out the same signer's nonces at once. Each (network, signer) is
 * leased to one process (`signer_leases`: holder, expiry); a process only signs with signers it
 * holds, renews them every quarter of the lease, and splits the keys fairly with the other live
 * processes (`facilitator_instances` heartbeats): above its share it stops using the extras and
 * frees them a tick later, below it takes free or expired ones.
 *
 * Safety margin: a lease counts as held locally only until (start of the renewing query + ttl -
 * ttl/3), while the row says (database now() + ttl), which is later; another process can take it
 * only after the row's expiry, so the two never overlap by more than a send that outlived the
 * margin. Even that case cannot move money twice or lose a payment: every transaction is written to
 * the ledger before it is broadcast, and a replaced nonce is found by the reconciler (see
 * reconciler.ts). Leases keep nonce collisions from happening; the write-ahead log keeps them harmless.
 *
 * Groups: keys with a sender of their own (the batch-settlement relayer, the gas sponsor) are
 * leased in their own `group`, so they are split among the live processes apart from the exact
 * engine's keys and do not count against its fair share. A group's holder id is the process id
 * plus `#group` (its own heartbeat row); a single key in a group is held by one process at a time.
 *
 * PGlite serves one process, which takes every signer (`allSignerLeases`).
 */
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { safeMessage } from "@tollgate/core";
import type { Sql } from "./ledger/sql.ts";
import type { Logger } from "./logger.ts";

export interface SignerLeases {
  /** This process's id in the lease table. */
  readonly holder: string;
  /** Whether this process may sign with `signer` on `network` right now. */
  holds(network: string, signer: string): boolean;
  /** Bumped whenever a lease of `signer` is lost: work bound to an older generation must stop. */
  generation(signer: string): number;
  held(network: string): string[];
  /** First acquisition round, then renewals in the background. */
  start(): Promise<void>;
  /** One renewal round (tests; the timer calls it). */
  tick(): Promise<void>;
  /** Stops renewing and frees every lease. */
  close(): Promise<void>;
}

export interface SignerLeaseOptions {
  sql: Sql;
  schema: string;
  networks: readonly string[];
  /** Checksummed or lowercase addresses; compared lowercase. */
  signers: readonly string[];
  ttlMs: number;
  holder?: string;
  /**
   * Keys split apart from the default group (see the header). A lowercase word; the holder id
   * becomes `holder#group`, and only this group's live holders count for its fair share.
   */
  group?: string;
  logger?: Logger;
  onChange?: () => void;
}

/** Every signer, always: the store is not shared. */
export function allSignerLeases(signers: readonly string[]): SignerLeases {
  const all = signers.map((s) => s.toLowerCase());
  return {
    holder: "local",
    holds: (_n, s) => all.includes(s.toLowerCase()),
    generation: () => 0,
    held: () => [...all],
    start: async () => {},
    tick: async () => {},
    close: async () => {},
  };
}

export function createSignerLeases(options: SignerLeaseOptions): SignerLeases {
  const { sql, schema, ttlMs } = options;
  const group = options.group ?? "";
  if (!/^[a-z0-9-]*$/.test(group)) throw new Error("signer lease group: expected lowercase letters, digits and dashes");
  const base = options.holder ?? `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;
  const holder = group ? `${base}#${group}` : base;
  const signers = [...new Set(options.signers.map((s) => s.toLowerCase()))];
  const leases = `${schema}.signer_leases`;
  const instances = `${schema}.facilitator_instances`;
  // Held locally for two thirds of the lease, renewed every quarter: a slow round (a loaded
  // database) has 40% of the lease to finish before the signer pauses, and a third stays as margin.
  const marginMs = Math.floor(ttlMs / 3);
  const renewMs = Math.floor(ttlMs / 4);
  /** network|signer → locally valid until (ms epoch). */
  const validUntil = new Map<string, number>();
  /** Held leases above our share: not used any more, freed on the next tick. */
  const retiring = new Set<string>();
  const generations = new Map<string, number>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  let running: Promise<void> | undefined;

  const id = (network: string, signer: string) => `${network}|${signer.toLowerCase()}`;

  function lose(network: string, signer: string) {
    const k = id(network, signer);
    if (!validUntil.delete(k)) return;
    generations.set(signer, (generations.get(signer) ?? 0) + 1);
    options.logger?.warn({ network, signer }, "signer lease given up; no longer signing with it");
  }

  async function round(): Promise<void> {
    const started = Date.now();
    const ttlSec = ttlMs / 1000;
    let changed = false;
    await sql.query(
      `INSERT INTO ${instances} (holder, expires_at) VALUES ($1, now() + make_interval(secs => $2))
       ON CONFLICT (holder) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
      [holder, ttlSec],
    );
    // Free what we stopped using last round (nothing signs with it since).
    for (const k of retiring) {
      const [network, signer] = k.split("|") as [string, string];
      await sql.query(`DELETE FROM ${leases} WHERE network = $1 AND signer = $2 AND holder = $3`, [network, signer, holder]);
    }
    retiring.clear();
    const [{ n }] = (await sql.query<{ n: string | number }>(`SELECT count(*)::int AS n FROM ${instances} WHERE (expires_at > now() OR holder = $1) AND split_part(holder, '#', 2) = $2`, [holder, group])) as [{ n: string | number }];
    const live = Math.max(1, Number(n));
    const share = Math.ceil(signers.length / live);

    for (const network of options.networks) {
      const renewed = await sql.query<{ signer: string }>(
        `UPDATE ${leases} SET expires_at = now() + make_interval(secs => $3) WHERE network = $1 AND holder = $2 RETURNING signer`,
        [network, holder, ttlSec],
      );
      const mine = renewed.map((r) => r.signer).filter((s) => signers.includes(s));
      for (const s of signers) if (!mine.includes(s) && validUntil.has(id(network, s))) (lose(network, s), (changed = true));
      // Above our share (another process came up): stop using the extras now, free them next tick.
      while (mine.length > share) {
        const s = mine.pop()!;
        lose(network, s);
        retiring.add(id(network, s));
        changed = true;
      }
      if (mine.length < share) {
        const free = signers.filter((s) => !mine.includes(s));
        for (const s of free) {
          if (mine.length >= share) break;
          const got = await sql.query<{ holder: string }>(
            `INSERT INTO ${leases} AS l (network, signer, holder, expires_at) VALUES ($1, $2, $3, now() + make_interval(secs => $4))
             ON CONFLICT (network, signer) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
             WHERE l.expires_at < now() OR l.holder = EXCLUDED.holder
             RETURNING holder`,
            [network, s, holder, ttlSec],
          );
          if (got[0]?.holder === holder) {
            mine.push(s);
            changed = true;
          }
        }
      }
      for (const s of mine) {
        if (!validUntil.has(id(network, s))) options.logger?.info({ network, signer: s, holder }, "signer lease taken");
        validUntil.set(id(network, s), started + ttlMs - marginMs);
      }
    }
    if (changed) options.onChange?.();
  }

  async function tick(): Promise<void> {
    running ??= round()
      .catch((e) => options.logger?.error({ err: safeMessage(e) }, "signer lease renewal failed"))
      .finally(() => (running = undefined));
    return running;
  }

  function schedule() {
    if (closed) return;
    timer = setTimeout(() => void tick().finally(schedule), renewMs);
    timer.unref?.();
  }

  return {
    holder,
    holds(network, signer) {
      const until = validUntil.get(id(network, signer));
      return until !== undefined && Date.now() < until;
    },
    generation: (signer) => generations.get(signer.toLowerCase()) ?? 0,
    held(network) {
      return signers.filter((s) => this.holds(network, s));
    },
    async start() {
      await round();
      schedule();
    },
    tick,
    async close() {
      closed = true;
      clearTimeout(timer);
      await running;
      validUntil.clear();
      await sql.query(`DELETE FROM ${leases} WHERE holder = $1`, [holder]).catch(() => {});
      await sql.query(`DELETE FROM ${instances} WHERE holder = $1`, [holder]).catch(() => {});
    },
  };
}
