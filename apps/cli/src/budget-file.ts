/**
 * Budgets that outlive one `tollgate pay`: `--budget "$5/day"` is kept in budgets.json under the
 * user's config directory, per payer and budget, and counts every payment handed over (settled or
 * of unknown outcome) in the current period.
 *
 * Concurrent runs: a run holds an exclusive lock file from reading the remaining budget until it
 * has recorded what it spent, so two agents spending from one budget at once never both spend
 * its last dollar. A lock left by a process that died is taken over.
 */
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { decimalToAtomic, atomicToDecimal } from "@tollgate/core";
import { alive, configDir } from "./dev-state.ts";

/** Micro-dollars: budgets are kept exactly, as integers. */
const SCALE = 6;

export type BudgetPeriod = "hour" | "day" | "week" | "month" | "total";

export interface BudgetSpec {
  /** The limit in micro-dollars. */
  limit: bigint;
  period: BudgetPeriod;
  /** As written, e.g. "$5/day": the key of the entry. */
  text: string;
}

/** "$5/day", "$0.50/hour", "$20" (no period: in total). */
export function parseBudget(text: string): BudgetSpec {
  const m = /^\s*\$\s*([0-9]+(?:\.[0-9]+)?)\s*(?:\/\s*(hour|day|week|month))?\s*$/.exec(text);
  if (!m) throw new Error(`--budget: expected dollars and an optional period, e.g. "$5/day" or "$20", got ${JSON.stringify(text)}`);
  const limit = decimalToAtomic(m[1]!, SCALE);
  return { limit, period: (m[2] as BudgetPeriod | undefined) ?? "total", text: text.replace(/\s+/g, "") };
}

/** Start of the period containing `now` (UTC), as ISO text; "total" never resets. */
export function periodStart(period: BudgetPeriod, now: Date): string {
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), now.getUTCHours()));
  if (period === "total") return "all";
  if (period === "hour") return d.toISOString();
  d.setUTCHours(0);
  if (period === "day") return d.toISOString();
  if (period === "week") {
    d.setUTCDate(d.getUTCDate() - ((d.getUTCDay() + 6) % 7)); // Monday
    return d.toISOString();
  }
  d.setUTCDate(1);
  return d.toISOString();
}

interface Entry {
  period: string;
  /** Micro-dollars spent in `period`, decimal string. */
  spent: string;
}

export interface BudgetSession {
  /** Dollars left in this period, as a decimal string for `spendingPolicy({ budget })`. */
  remaining: string;
  /** Records micro-dollars spent (settled or possibly settled) and releases the lock. */
  finish(spentMicroUsd: bigint): void;
}

export function budgetsPath(env: Record<string, string | undefined> = process.env): string {
  return join(configDir(env), "budgets.json");
}

/** Opens the budget of `payer` under `spec` for one run: lock, read what is left. */
export async function openBudget(payer: string, spec: BudgetSpec, options: { env?: Record<string, string | undefined>; now?: () => Date; lockTimeoutMs?: number } = {}): Promise<BudgetSession> {
  const path = budgetsPath(options.env);
  mkdirSync(dirname(path), { recursive: true });
  const unlock = await lock(`${path}.lock`, options.lockTimeoutMs ?? 30_000);
  try {
    const key = `${payer.toLowerCase()} ${spec.text}`;
    const period = periodStart(spec.period, (options.now ?? (() => new Date()))());
    const all = read(path);
    const entry = all[key]?.period === period ? all[key]! : { period, spent: "0" };
    const left = spec.limit - BigInt(entry.spent);
    let done = false;
    return {
      remaining: atomicToDecimal(left > 0n ? left : 0n, SCALE),
      finish(spent) {
        if (done) return;
        done = true;
        try {
          if (spent > 0n) {
            const fresh = read(path);
            fresh[key] = { period, spent: (BigInt(entry.spent) + spent).toString() };
            writeFileSync(`${path}.${process.pid}`, JSON.stringify(fresh, null, 2) + "\n", { mode: 0o600 });
            renameSync(`${path}.${process.pid}`, path);
          }
        } finally {
          unlock();
        }
      },
    };
  } catch (e) {
    unlock();
    throw e;
  }
}

function read(path: string): Record<string, Entry> {
  try {
    const v = JSON.parse(readFileSync(path, "utf8")) as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, Entry>) : {};
  } catch {
    return {};
  }
}

/** An exclusive lock file holding the owner's pid; a dead owner's lock is removed. */
async function lock(path: string, timeoutMs: number): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const owner = Number(readFileSafe(path));
    if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
      rmSync(path, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`budget file is locked by process ${owner || "?"} (${path}); another tollgate pay is still running`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
