/**
 * Budgets that outlive one `tollgate pay`: `--budget "$5/day"` is counted in budgets.json under the
 * user's config directory, per payer and budget, and counts every payment handed over (settled or
 * of unknown outcome) in the current period.
 *
 * One store for every budget the CLI keeps: this is @tollgate/mandates' budget store, the same file
 * and the same entries' format that AP2 mandates (`tollgate pay --mandate`) count in. A `--budget` is
 * an entry keyed `cli-budget:<payer> <budget>`, a mandate one keyed by its id.
 *
 * Concurrent runs: the amount is reserved under the store's lock (O_EXCL lock file, atomic rename)
 * before anything is signed, so two agents spending from one budget at once never both spend its
 * last dollar. A lock left by a process that died is taken over once stale.
 */
import { join } from "node:path";
import { decimalToAtomic, knownUsdAssets, PaymentRefusedError, RefusalCode, atomicToDecimal, type PaymentAuthorizer, type PaymentRequirements, type UsdAsset } from "@tollgate/core";
import { createBudgetStore, type BudgetStore } from "@tollgate/mandates";
import { configDir } from "./dev-state.ts";

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

export function budgetsPath(env: Record<string, string | undefined> = process.env): string {
  return join(configDir(env), "budgets.json");
}

/** The store every CLI budget (and mandate) is counted in. */
export function budgetStore(env: Record<string, string | undefined> = process.env): BudgetStore {
  return createBudgetStore({ file: budgetsPath(env), lockTimeoutMs: 30_000 });
}

/** What a payment counts against a dollar budget, in micro-dollars (rounded up: never under-counted); undefined when not a USD asset. */
export function microUsd(p: Pick<PaymentRequirements, "network" | "asset" | "amount">, extra: readonly UsdAsset[]): bigint | undefined {
  const same = (a: string, b: string) => (p.network.startsWith("eip155:") ? a.toLowerCase() === b.toLowerCase() : a === b);
  const asset = [...extra, ...knownUsdAssets()].find((u) => u.network === p.network && same(u.asset, p.asset));
  if (!asset) return undefined;
  const amount = BigInt(p.amount);
  if (asset.decimals <= SCALE) return amount * 10n ** BigInt(SCALE - asset.decimals);
  const div = 10n ** BigInt(asset.decimals - SCALE);
  return (amount + div - 1n) / div;
}

export interface CliBudget extends PaymentAuthorizer {
  /** Returns to the budget what this run reserved and did not commit (the server reported no charge). */
  releaseUncommitted(): Promise<void>;
}

/**
 * `--budget` as a payment authorizer: each payment's dollars are reserved in the shared store
 * before signing (refused with `budget_exceeded` when they do not fit), committed when settled,
 * and otherwise left counted (handed over: it may still settle).
 */
export function cliBudget(payer: string, spec: BudgetSpec, options: { env?: Record<string, string | undefined>; now?: () => Date; usdAssets?: readonly UsdAsset[] } = {}): CliBudget {
  const store = budgetStore(options.env);
  const key = `cli-budget:${payer.toLowerCase()} ${spec.text}`;
  const open = new Set<string>();
  return {
    async authorize(requirements) {
      const micro = microUsd(requirements, options.usdAssets ?? []);
      if (micro === undefined) throw new PaymentRefusedError(RefusalCode.unknownAssetValue, `unknown_asset_value: --budget cannot value ${requirements.network}/${requirements.asset} in dollars`, [{ code: RefusalCode.unknownAssetValue, message: "not a known USD asset", requirements }]);
      if (micro === 0n) return { commit() {}, release() {} };
      const now = (options.now ?? (() => new Date()))();
      const start = spec.period === "total" ? 0 : Math.floor(Date.parse(periodStart(spec.period, now)) / 1000);
      const res = await store.reserve(key, micro, start, { max: spec.limit, at: Math.floor(now.getTime() / 1000) });
      if (!res.ok) {
        const message = `budget_exceeded: ${atomicToDecimal(micro, SCALE)} dollars does not fit the remaining ${spec.text} budget (${res.reason})`;
        throw new PaymentRefusedError(RefusalCode.budgetExceeded, message, [{ code: RefusalCode.budgetExceeded, message, requirements }]);
      }
      const id = res.reservationId;
      open.add(id);
      return {
        handOver: async ({ validUntil }) => {
          await store.handOver(id, Math.ceil(validUntil));
        },
        commit: async () => {
          open.delete(id);
          await store.commit(id).catch(() => false);
        },
        release: async () => {
          open.delete(id);
          await store.release(id).catch(() => false);
        },
      };
    },
    async releaseUncommitted() {
      for (const id of open) await store.release(id).catch(() => false);
      open.clear();
    },
  };
}
