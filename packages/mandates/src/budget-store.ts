// A budget store persisted in one JSON file, counting what was spent per (mandate id, period start).
//
// Concurrency strategy (safe across processes and restarts):
//  - mutual exclusion: a lock file `<file>.lock` created with O_CREAT|O_EXCL (`open(…, "wx")`); a process
//    that finds it taken retries with a short jittered sleep. A lock older than `staleLockMs` (its holder
//    crashed) is removed and the acquisition retried.
//  - crash safety: under the lock, every change reads the current file, applies the change and writes
//    `<file>.<pid>.<random>.tmp`, fsyncs it and renames it over the file (atomic on POSIX), so a crash leaves
//    either the old or the new state, never a torn file.
// Nothing is cached in memory, so a restarted process (or another one) sees every committed and reserved
// amount. Reserved amounts count against the budget until released or committed.
import { randomBytes, randomUUID } from "node:crypto";
import { mkdir, open, readFile, rename, stat, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { parseAtomic } from "./amount.ts";
import type { Refusal } from "./types.ts";

export interface BudgetStoreOptions {
  file: string;
  /** Give up acquiring the lock after this long (default 10 000 ms). */
  lockTimeoutMs?: number;
  /** A lock file older than this is considered abandoned (default 30 000 ms). */
  staleLockMs?: number;
}

export interface SpentInPeriod {
  /** committed + reserved, in budget units. */
  amount: bigint;
  committed: bigint;
  reserved: bigint;
  /** Payments committed or reserved under the mandate (all periods), for `payment.agent_recurrence`. */
  occurrences: number;
  /** `at` of the latest reservation or commit, Unix seconds. */
  lastPaymentAt?: number;
}

export type ReserveResult =
  | { ok: true; reservationId: string; total: bigint }
  | { ok: false; constraint: "payment.budget"; code: "budget_exceeded" | "invalid_amount"; reason: string }
  | Refusal;

/** A reservation handed over (signed and sent) and past its expiry: it settled or it never will. */
export interface ExpiredReservation {
  reservationId: string;
  mandateId: string;
  amount: bigint;
  validUntil: number;
  /** What `handOver` recorded for a chain lookup (e.g. network, asset, payer, nonce). */
  ref?: Record<string, string>;
}

export interface BudgetStore {
  readonly file: string;
  /** Reserves `amount` (budget units) in the period, refusing when committed + reserved + amount > max. */
  reserve(
    mandateId: string,
    amount: bigint | string,
    periodStart: number,
    opts?: {
      max?: bigint | string;
      at?: number;
      /** Runs under the lock with what the period holds so far: a refusal returned here reserves nothing.
       * This is how every mandate constraint (recurrence included) is checked atomically across processes. */
      check?: (spent: SpentInPeriod) => Refusal | undefined;
    },
  ): Promise<ReserveResult>;
  /** The reserved payment was signed and handed over: it stays counted until committed, released, or
   * (after `validUntil`) resolved by `expired` + release/commit. False when unknown. */
  handOver(reservationId: string, validUntil: number, ref?: Record<string, string>): Promise<boolean>;
  /** Handed-over reservations of `mandateId` whose `validUntil` is before `now` (Unix seconds). */
  expired(mandateId: string, now: number): Promise<ExpiredReservation[]>;
  /** Drops a reservation (payment not made). False when unknown (already released or committed). */
  release(reservationId: string): Promise<boolean>;
  /** Turns a reservation into spent money. False when unknown. */
  commit(reservationId: string): Promise<boolean>;
  spent(mandateId: string, periodStart: number): Promise<SpentInPeriod>;
}

interface Reservation { amount: string; at: number; validUntil?: number; ref?: Record<string, string> }
interface Period { committed: string; reservations: Record<string, Reservation> }
interface MandateEntry { occurrences: number; lastPaymentAt?: number; periods: Record<string, Period> }
interface StoreFile { version: 1; mandates: Record<string, MandateEntry> }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createBudgetStore(opts: BudgetStoreOptions): BudgetStore {
  const file = opts.file;
  const lockFile = `${file}.lock`;
  const lockTimeoutMs = opts.lockTimeoutMs ?? 10_000;
  const staleLockMs = opts.staleLockMs ?? 30_000;

  async function acquire(): Promise<void> {
    const deadline = Date.now() + lockTimeoutMs;
    await mkdir(dirname(file), { recursive: true });
    for (;;) {
      try {
        const h = await open(lockFile, "wx");
        await h.writeFile(`${process.pid} ${Date.now()}\n`);
        await h.close();
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      try {
        const s = await stat(lockFile);
        if (Date.now() - s.mtimeMs > staleLockMs) {
          await unlink(lockFile).catch(() => {});
          continue;
        }
      } catch {
        continue; // released between open and stat
      }
      if (Date.now() > deadline) throw new Error(`budget store: could not lock ${file} within ${lockTimeoutMs} ms`);
      await sleep(2 + Math.floor(Math.random() * 8));
    }
  }

  async function load(): Promise<StoreFile> {
    try {
      const data = JSON.parse(await readFile(file, "utf8")) as StoreFile;
      if (data.version !== 1 || typeof data.mandates !== "object") throw new Error(`budget store: ${file} has an unknown format`);
      return data;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return { version: 1, mandates: {} };
      throw e;
    }
  }

  async function save(data: StoreFile): Promise<void> {
    const tmp = `${file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
    const h = await open(tmp, "w");
    try {
      await h.writeFile(JSON.stringify(data));
      await h.sync();
    } finally {
      await h.close();
    }
    await rename(tmp, file);
  }

  async function locked<T>(fn: (data: StoreFile) => { result: T; dirty: boolean }): Promise<T> {
    await acquire();
    try {
      const data = await load();
      const { result, dirty } = fn(data);
      if (dirty) await save(data);
      return result;
    } finally {
      await unlink(lockFile).catch(() => {});
    }
  }

  const periodOf = (data: StoreFile, mandateId: string, periodStart: number): Period => {
    const m = (data.mandates[mandateId] ??= { occurrences: 0, periods: {} });
    return (m.periods[String(periodStart)] ??= { committed: "0", reservations: {} });
  };

  const totals = (p: Period) => {
    const committed = BigInt(p.committed);
    const reserved = Object.values(p.reservations).reduce((s, r) => s + BigInt(r.amount), 0n);
    return { committed, reserved };
  };

  function findReservation(data: StoreFile, id: string): { entry: MandateEntry; period: Period; r: Reservation } | undefined {
    for (const entry of Object.values(data.mandates)) {
      for (const period of Object.values(entry.periods)) {
        const r = period.reservations[id];
        if (r) return { entry, period, r };
      }
    }
    return undefined;
  }

  return {
    file,
    async reserve(mandateId, amount, periodStart, o = {}) {
      const units = parseAtomic(amount);
      if (units === undefined || units === 0n) return { ok: false, constraint: "payment.budget", code: "invalid_amount", reason: "amount must be a positive integer" };
      const max = o.max === undefined ? undefined : parseAtomic(o.max);
      if (o.max !== undefined && max === undefined) return { ok: false, constraint: "payment.budget", code: "invalid_amount", reason: "max must be a non-negative integer" };
      const at = o.at ?? Math.floor(Date.now() / 1000);
      return locked<ReserveResult>((data) => {
        const period = periodOf(data, mandateId, periodStart);
        const { committed, reserved } = totals(period);
        if (o.check) {
          const entry = data.mandates[mandateId]!;
          const soFar: SpentInPeriod = { amount: committed + reserved, committed, reserved, occurrences: entry.occurrences };
          if (entry.lastPaymentAt !== undefined) soFar.lastPaymentAt = entry.lastPaymentAt;
          const refusal = o.check(soFar);
          if (refusal) return { dirty: false, result: refusal };
        }
        const total = committed + reserved + units;
        if (max !== undefined && total > max) {
          return { dirty: false, result: { ok: false, constraint: "payment.budget", code: "budget_exceeded", reason: `${committed + reserved} of ${max} already spent or reserved in the period starting ${periodStart}` } };
        }
        const reservationId = `${randomUUID()}`;
        period.reservations[reservationId] = { amount: units.toString(), at };
        const entry = data.mandates[mandateId]!;
        entry.occurrences += 1;
        entry.lastPaymentAt = Math.max(entry.lastPaymentAt ?? 0, at);
        return { dirty: true, result: { ok: true, reservationId, total } };
      });
    },
    async handOver(reservationId, validUntil, ref) {
      return locked((data) => {
        const found = findReservation(data, reservationId);
        if (!found) return { dirty: false, result: false };
        found.r.validUntil = validUntil;
        if (ref) found.r.ref = ref;
        return { dirty: true, result: true };
      });
    },
    async expired(mandateId, now) {
      return locked((data) => {
        const out: ExpiredReservation[] = [];
        for (const period of Object.values(data.mandates[mandateId]?.periods ?? {})) {
          for (const [reservationId, r] of Object.entries(period.reservations)) {
            if (r.validUntil === undefined || r.validUntil >= now) continue;
            out.push({ reservationId, mandateId, amount: BigInt(r.amount), validUntil: r.validUntil, ...(r.ref ? { ref: r.ref } : {}) });
          }
        }
        return { dirty: false, result: out };
      });
    },
    async release(reservationId) {
      return locked((data) => {
        const found = findReservation(data, reservationId);
        if (!found) return { dirty: false, result: false };
        delete found.period.reservations[reservationId];
        found.entry.occurrences = Math.max(0, found.entry.occurrences - 1);
        return { dirty: true, result: true };
      });
    },
    async commit(reservationId) {
      return locked((data) => {
        const found = findReservation(data, reservationId);
        if (!found) return { dirty: false, result: false };
        delete found.period.reservations[reservationId];
        found.period.committed = (BigInt(found.period.committed) + BigInt(found.r.amount)).toString();
        return { dirty: true, result: true };
      });
    },
    async spent(mandateId, periodStart) {
      return locked((data) => {
        const entry = data.mandates[mandateId];
        const period = entry?.periods[String(periodStart)];
        const { committed, reserved } = period ? totals(period) : { committed: 0n, reserved: 0n };
        const result: SpentInPeriod = { amount: committed + reserved, committed, reserved, occurrences: entry?.occurrences ?? 0 };
        if (entry?.lastPaymentAt !== undefined) result.lastPaymentAt = entry.lastPaymentAt;
        return { dirty: false, result };
      });
    },
  };
}
