/**
 * Spending policy: the rules a paying client applies before it signs anything.
 *
 * Limits are exact. Per-asset limits are atomic amounts keyed by `${network}/${asset}`;
 * dollar limits ("$0.10") apply to the assets the policy is told are USD stablecoins, and
 * are compared in a common fixed-point unit (the largest of their decimals), so
 * "$0.1" + "$0.2" is exactly "$0.3".
 *
 * Budget is reserved synchronously when a payment is chosen, before any await: JavaScript
 * runs one turn at a time, so two concurrent payments can never both see the same
 * remaining budget. A reservation is released (payment not charged) or committed (charged).
 */
import { networkMatches } from "../caip2.ts";
import { NETWORKS, type NetworkTable } from "../networks.ts";
import { atomicToDecimal, decimalToAtomic, MoneyError, parseAtomic, parseMoney } from "../money.ts";
import type { PaymentRequirements } from "../types.ts";
import { RefusalCode, type Refusal } from "./errors.ts";

/** An asset the policy may value in dollars (1 unit = $1). */
export interface UsdAsset {
  network: string;
  asset: string;
  decimals: number;
}

/**
 * A limit: a dollar string ("$0.10", applies to `usdAssets`), or per-asset atomic amounts
 * `{ "eip155:8453/0x8335…": "100000" }`, optionally with a `usd` key holding a dollar string.
 * When several limits apply to an option, all of them must hold.
 */
export type Limit = string | Readonly<Record<string, string>>;

export interface SpendingPolicyOptions {
  maxPerRequest?: Limit;
  budget?: Limit;
  /** Allowed networks: CAIP-2 ids or patterns (`eip155:*`). */
  networks?: readonly string[];
  /** Allowed assets: `${network}/${asset}` or a bare asset address (any network). */
  assets?: readonly string[];
  /** Allowed recipients (`payTo`). */
  payees?: readonly string[];
  /**
   * Assets valued as dollars, in addition to USDC on every network of core's network table
   * (always included): e.g. a local test token.
   */
  usdAssets?: readonly UsdAsset[];
}

/** USDC on every network of core's table: the assets a dollar limit applies to out of the box. */
export function knownUsdAssets(table: NetworkTable = NETWORKS): UsdAsset[] {
  return Object.values(table).flatMap((n) => (n.usdc ? [{ network: n.id, asset: n.usdc.address, decimals: n.usdc.decimals }] : []));
}

/** Amounts per asset key (atomic decimal strings), and in dollars (decimal string, no "$") where known. */
export interface SpendingTotals {
  usd?: string;
  assets: Record<string, string>;
}

export interface Reservation {
  readonly amount: string;
  readonly assetKey: string;
  /** The payment was not charged: give the amount back to the budget. No-op once settled either way. */
  release(): void;
  /** The payment was charged: the amount stays spent. No-op once settled either way. */
  commit(): void;
}

export type ReserveResult = { ok: true; reservation: Reservation } | { ok: false; refusal: Refusal };

export interface SpendingPolicy {
  /** Whether `requirements` may be paid now (allowlists, per-request limit, remaining budget). */
  check(requirements: PaymentRequirements): Refusal | undefined;
  /** `check`, then hold the amount against the budget; synchronous, so concurrency-safe. */
  reserve(requirements: PaymentRequirements): ReserveResult;
  /** Committed (charged) spending. */
  spent(): SpendingTotals;
  /** Reserved and not yet committed or released. */
  reserved(): SpendingTotals;
  /** Budget left (limit − spent − reserved), for the limits that are set. */
  remaining(): SpendingTotals;
}

const HEX_ADDRESS = /^0x[0-9a-fA-F]+$/;

/** 0x addresses compare case-insensitively; others (Solana base58) are case-sensitive. */
export function normalizeAddress(address: string): string {
  return HEX_ADDRESS.test(address) ? address.toLowerCase() : address;
}

/** The key of an asset in limits and totals: `${network}/${asset}`, 0x addresses lowercased. */
export function assetKey(network: string, asset: string): string {
  return `${network}/${normalizeAddress(asset)}`;
}

function normalizeKey(key: string, field: string): string {
  const i = key.indexOf("/");
  if (i <= 0 || i === key.length - 1) throw new MoneyError(`${field}: key ${JSON.stringify(key)} is not "network/asset"`);
  return assetKey(key.slice(0, i), key.slice(i + 1));
}

interface ParsedLimit {
  /** Dollars as a decimal string ("0.10"), converted to fixed point once the scale is known. */
  usdDecimal?: string;
  assets: Map<string, bigint>;
}

function parseUsd(value: string, field: string): string {
  let parsed;
  try {
    parsed = parseMoney(value);
  } catch (e) {
    throw new MoneyError(`${field}: ${(e as Error).message}`);
  }
  if (parsed.kind !== "usd") throw new MoneyError(`${field}: ${JSON.stringify(value)} is not a dollar amount; use per-asset atomic limits for tokens`);
  return parsed.decimal;
}

function parseLimit(limit: Limit | undefined, field: string): ParsedLimit | undefined {
  if (limit === undefined) return undefined;
  if (typeof limit === "string") return { usdDecimal: parseUsd(limit, field), assets: new Map() };
  if (typeof limit !== "object" || limit === null) throw new MoneyError(`${field}: expected a dollar string or a record of per-asset limits`);
  const out: ParsedLimit = { assets: new Map() };
  for (const [key, value] of Object.entries(limit)) {
    if (key === "usd") out.usdDecimal = parseUsd(value, `${field}.usd`);
    else out.assets.set(normalizeKey(key, field), parseAtomic(value, `${field}[${JSON.stringify(key)}]`));
  }
  return out;
}

function fractionDigits(decimal: string | undefined): number {
  const i = decimal?.indexOf(".") ?? -1;
  return i < 0 ? 0 : decimal!.length - i - 1;
}

/** Per-key bigint counters. */
class Ledger {
  readonly map = new Map<string, bigint>();
  get(key: string): bigint {
    return this.map.get(key) ?? 0n;
  }
  add(key: string, value: bigint): void {
    this.map.set(key, this.get(key) + value);
  }
}

const USD = "$usd";

export function spendingPolicy(options: SpendingPolicyOptions = {}): SpendingPolicy {
  const maxPerRequest = parseLimit(options.maxPerRequest, "maxPerRequest");
  const budget = parseLimit(options.budget, "budget");

  const usdAssets = new Map<string, number>();
  for (const a of knownUsdAssets()) usdAssets.set(assetKey(a.network, a.asset), a.decimals);
  for (const [i, a] of (options.usdAssets ?? []).entries()) {
    if (!Number.isInteger(a.decimals) || a.decimals < 0 || a.decimals > 36) throw new MoneyError(`usdAssets[${i}].decimals: expected an integer 0..36`);
    usdAssets.set(assetKey(a.network, a.asset), a.decimals);
  }
  // Common fixed-point unit for dollars: fine enough for every asset and every limit, so all conversions are exact.
  const scale = Math.max(0, ...usdAssets.values(), fractionDigits(maxPerRequest?.usdDecimal), fractionDigits(budget?.usdDecimal));
  const toScaled = (decimal: string | undefined) => (decimal === undefined ? undefined : decimalToAtomic(decimal, scale));
  const maxUsd = toScaled(maxPerRequest?.usdDecimal);
  const budgetUsd = toScaled(budget?.usdDecimal);
  const fmtUsd = (v: bigint) => "$" + atomicToDecimal(v, scale);

  const allowedNetworks = options.networks;
  const allowedAssets = options.assets?.map((a) => (a.includes("/") ? normalizeKey(a, "assets") : normalizeAddress(a)));
  const allowedPayees = options.payees && new Set(options.payees.map(normalizeAddress));

  const committed = new Ledger();
  const held = new Ledger();

  /** The value of `amount` of `key` in scaled dollars, or undefined when not a USD asset. */
  function usdValue(key: string, amount: bigint): bigint | undefined {
    const decimals = usdAssets.get(key);
    return decimals === undefined ? undefined : amount * 10n ** BigInt(scale - decimals);
  }

  function refuse(code: Refusal["code"], message: string, requirements: PaymentRequirements): Refusal {
    return { code, message, requirements };
  }

  function check(req: PaymentRequirements): Refusal | undefined {
    const key = assetKey(req.network, req.asset);
    if (allowedNetworks && !allowedNetworks.some((p) => networkMatches(p, req.network))) {
      return refuse(RefusalCode.networkNotAllowed, `network ${req.network} is not in the allowed networks (${allowedNetworks.join(", ")})`, req);
    }
    if (allowedAssets && !allowedAssets.some((a) => a === key || a === normalizeAddress(req.asset))) {
      return refuse(RefusalCode.assetNotAllowed, `asset ${key} is not in the allowed assets`, req);
    }
    if (allowedPayees && !allowedPayees.has(normalizeAddress(req.payTo))) {
      return refuse(RefusalCode.payeeNotAllowed, `payee ${req.payTo} is not in the allowed payees`, req);
    }
    let amount: bigint;
    try {
      amount = parseAtomic(req.amount, "amount");
    } catch (e) {
      return refuse(RefusalCode.unknownAssetValue, (e as Error).message, req);
    }
    const usd = usdValue(key, amount);

    if (maxPerRequest) {
      let applied = false;
      const assetMax = maxPerRequest.assets.get(key);
      if (assetMax !== undefined) {
        applied = true;
        if (amount > assetMax) return refuse(RefusalCode.maxPerRequest, `amount ${amount} of ${key} exceeds maxPerRequest ${assetMax}`, req);
      }
      if (maxUsd !== undefined && usd !== undefined) {
        applied = true;
        if (usd > maxUsd) return refuse(RefusalCode.maxPerRequest, `amount ${fmtUsd(usd)} exceeds maxPerRequest ${fmtUsd(maxUsd)}`, req);
      }
      if (!applied) return refuse(RefusalCode.unknownAssetValue, `maxPerRequest cannot value ${key}: not a known USD asset and no per-asset limit`, req);
    }
    if (budget) {
      let applied = false;
      const assetBudget = budget.assets.get(key);
      if (assetBudget !== undefined) {
        applied = true;
        const left = assetBudget - committed.get(key) - held.get(key);
        if (amount > left) return refuse(RefusalCode.budgetExceeded, `amount ${amount} of ${key} exceeds the remaining budget ${left} (of ${assetBudget})`, req);
      }
      if (budgetUsd !== undefined && usd !== undefined) {
        applied = true;
        const left = budgetUsd - committed.get(USD) - held.get(USD);
        if (usd > left) return refuse(RefusalCode.budgetExceeded, `amount ${fmtUsd(usd)} exceeds the remaining budget ${fmtUsd(left)} (of ${fmtUsd(budgetUsd)})`, req);
      }
      if (!applied) return refuse(RefusalCode.unknownAssetValue, `budget cannot value ${key}: not a known USD asset and no per-asset budget`, req);
    }
    return undefined;
  }

  function reserve(req: PaymentRequirements): ReserveResult {
    const refusal = check(req);
    if (refusal) return { ok: false, refusal };
    const key = assetKey(req.network, req.asset);
    const amount = BigInt(req.amount);
    const usd = usdValue(key, amount);
    held.add(key, amount);
    if (usd !== undefined) held.add(USD, usd);
    let settled = false;
    const settle = (charge: boolean) => {
      if (settled) return;
      settled = true;
      held.add(key, -amount);
      if (usd !== undefined) held.add(USD, -usd);
      if (charge) {
        committed.add(key, amount);
        if (usd !== undefined) committed.add(USD, usd);
      }
    };
    return {
      ok: true,
      reservation: { amount: req.amount, assetKey: key, release: () => settle(false), commit: () => settle(true) },
    };
  }

  function totals(ledger: Ledger): SpendingTotals {
    const assets: Record<string, string> = {};
    for (const [k, v] of ledger.map) if (k !== USD && v !== 0n) assets[k] = v.toString();
    return usdAssets.size > 0 ? { usd: atomicToDecimal(ledger.get(USD), scale), assets } : { assets };
  }

  return {
    check,
    reserve,
    spent: () => totals(committed),
    reserved: () => totals(held),
    remaining() {
      const assets: Record<string, string> = {};
      for (const [k, limit] of budget?.assets ?? []) assets[k] = (limit - committed.get(k) - held.get(k)).toString();
      return budgetUsd !== undefined
        ? { usd: atomicToDecimal(budgetUsd - committed.get(USD) - held.get(USD), scale), assets }
        : { assets };
    },
  };
}
