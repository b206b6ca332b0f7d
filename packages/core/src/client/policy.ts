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
 * remaining budget.
 *
 * The budget counts what was handed over. A reservation is "held" while the scheme signs;
 * once the signed authorization leaves the client (`handOver`) it is "outstanding": whoever
 * holds it can settle it until it expires, whatever the server said. It stays counted until
 *   - `commit()`: the server's receipt says it settled (it is spent);
 *   - its expiry (+ `expiryGraceSeconds`) passes: released lazily on the next budget read, or
 *     handed to `resolveExpired` (e.g. a chain lookup) when one is configured;
 *   - `release()` / `policy.release(id)`: the caller proves it can no longer settle (never sent,
 *     cancelled on chain, or the chain shows it unused after its expiry).
 * A payment refused before signing is never reserved; one whose signing fails is released at once.
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
  /**
   * The longest validity a payment may be signed for: options whose `maxTimeoutSeconds` is
   * above it are refused before signing (`max_timeout_exceeded`). Every second of validity is a
   * second the payee (or anyone who copies the header) can still settle it, and the budget
   * must keep counting it. Default 300 (5 minutes, the official SDK's default).
   */
  maxTimeoutSeconds?: number;
  /**
   * Seconds an outstanding payment stays counted after its expiry before it is released:
   * room for this machine's clock running ahead of the chain's. Default 60.
   */
  expiryGraceSeconds?: number;
  /**
   * Called (once at a time per payment, on a budget read: no timers) for an outstanding payment
   * whose expiry has passed. Answer "unused" when the chain shows it can no longer settle
   * (released), "settled" when it did (committed), "unknown" to be asked again on a later read
   * (kept counted). A rejection counts as "unknown". Without it, expiry releases the amount.
   */
  resolveExpired?: (payment: OutstandingPayment) => Promise<ExpiredResolution> | ExpiredResolution;
  /** The clock, unix seconds (fractions allowed); for tests. Default `Date.now() / 1000`. */
  now?: () => number;
}

/** The default `maxTimeoutSeconds` cap: 5 minutes, the official SDK's default validity. */
export const DEFAULT_MAX_TIMEOUT_SECONDS = 300;
/** The default grace after expiry: a minute of clock skew between this machine and the chain. */
export const DEFAULT_EXPIRY_GRACE_SECONDS = 60;
/**
 * A scheme client may compute `validBefore` from its own clock and round up; a signed validity
 * this much beyond the cap is still accepted (more would mean it ignored the cap).
 */
const SIGNED_VALIDITY_SLACK_SECONDS = 5;

/** The refusal of an option asking for a longer validity than `cap` seconds, if it does. */
export function timeoutRefusal(requirements: PaymentRequirements, cap: number): Refusal | undefined {
  if (requirements.maxTimeoutSeconds <= cap) return undefined;
  return {
    code: RefusalCode.maxTimeoutExceeded,
    message: `maxTimeoutSeconds ${requirements.maxTimeoutSeconds} exceeds the limit maxTimeoutSeconds=${cap} (a signed payment stays settleable that long)`,
    requirements,
  };
}

/**
 * The refusal of a signed payload whose own expiry lies beyond `now + cap`: the scheme client
 * ignored the cap, so the payload must not be sent.
 */
export function signedValidityRefusal(info: HandOver, now: number, cap: number, requirements: PaymentRequirements): Refusal | undefined {
  const v = info.validBefore;
  if (v === undefined || (Number.isFinite(v) && v <= now + cap + SIGNED_VALIDITY_SLACK_SECONDS)) return undefined;
  return {
    code: RefusalCode.maxTimeoutExceeded,
    message: `the scheme client signed a payment valid until ${v} (${Math.round(v - now)}s from now), beyond the limit maxTimeoutSeconds=${cap}; it was not sent`,
    requirements,
  };
}

export type ExpiredResolution = "unused" | "settled" | "unknown";

/** What the client tells the policy when a signed payment leaves it. */
export interface HandOver {
  /** The expiry the payload itself carries (EVM `validBefore`), unix seconds, when it has one. */
  validBefore?: number;
  /** Otherwise: how long it stays settleable from now, as signed (`maxTimeoutSeconds`, or a chain's own lifetime). */
  validForSeconds: number;
  payer?: string;
  /** The signed scheme payload (e.g. the EIP-3009 authorization), for `resolveExpired` to look up. */
  payload?: Record<string, unknown>;
}

export type HandOverResult = { ok: true; validUntil: number } | { ok: false; refusal: Refusal };

/** A signed payment handed over and not yet known settled or unusable: its amount is counted. */
export interface OutstandingPayment {
  readonly id: string;
  readonly assetKey: string;
  readonly amount: string;
  readonly requirements: PaymentRequirements;
  /** Unix seconds after which it can no longer settle (before the grace). */
  readonly validUntil: number;
  readonly payer?: string;
  readonly payload?: Record<string, unknown>;
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
  /** Names the payment in `outstanding()`, `release(id)` and `commit(id)`. */
  readonly id: string;
  readonly amount: string;
  readonly assetKey: string;
  /**
   * The signed payment is leaving the client: from now on it is counted until committed,
   * released, or expired. Refused (and nothing may be sent) when the signed validity exceeds
   * `maxTimeoutSeconds`. No-op once committed or released.
   */
  handOver(info: HandOver): HandOverResult;
  /**
   * Give the amount back: the payment was never handed over, or the caller proved it can no
   * longer settle. Not for "the server said it failed": a handed-over authorization can still
   * be settled by whoever holds it until it expires. No-op once committed or released.
   */
  release(): void;
  /** The payment was charged: the amount stays spent. No-op once committed or released. */
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
  /** The cap on `maxTimeoutSeconds` (see SpendingPolicyOptions). */
  readonly maxTimeoutSeconds: number;
  /** Handed-over payments still counted (neither committed, released nor expired), oldest first. */
  outstanding(): OutstandingPayment[];
  /** `Reservation.release` by id (see there). True when it was counted and is now released. */
  release(id: string): boolean;
  /** `Reservation.commit` by id: e.g. a payment left pending that the chain shows settled. True when it was counted. */
  commit(id: string): boolean;
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

/** After a resolver answers "unknown", it is not asked about that payment again for this long. */
const RESOLVE_RETRY_SECONDS = 10;

/** One reservation: held while signing, outstanding once handed over (resolving while `resolveExpired` runs). */
interface Entry {
  readonly id: string;
  readonly key: string;
  readonly amount: bigint;
  readonly usd: bigint | undefined;
  readonly requirements: PaymentRequirements;
  state: "held" | "outstanding" | "resolving" | "done";
  validUntil?: number;
  askAgainAt?: number;
  payer?: string;
  payload?: Record<string, unknown>;
}

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

  const maxTimeoutSeconds = options.maxTimeoutSeconds ?? DEFAULT_MAX_TIMEOUT_SECONDS;
  if (!Number.isSafeInteger(maxTimeoutSeconds) || maxTimeoutSeconds <= 0) throw new RangeError("maxTimeoutSeconds: expected a positive integer number of seconds");
  const grace = options.expiryGraceSeconds ?? DEFAULT_EXPIRY_GRACE_SECONDS;
  if (!Number.isFinite(grace) || grace < 0) throw new RangeError("expiryGraceSeconds: expected a number of seconds, 0 or more");
  const now = options.now ?? (() => Date.now() / 1000);
  const resolveExpired = options.resolveExpired;

  /** Reservations still counted in `held`, in the order they were made. */
  const live = new Map<string, Entry>();
  let sequence = 0;

  /** The value of `amount` of `key` in scaled dollars, or undefined when not a USD asset. */
  function usdValue(key: string, amount: bigint): bigint | undefined {
    const decimals = usdAssets.get(key);
    return decimals === undefined ? undefined : amount * 10n ** BigInt(scale - decimals);
  }

  function refuse(code: Refusal["code"], message: string, requirements: PaymentRequirements): Refusal {
    return { code, message, requirements };
  }

  /** Ends a reservation: its amount leaves `held`, and is spent when `charge`. False when it had ended already. */
  function finish(entry: Entry, charge: boolean): boolean {
    if (entry.state === "done") return false;
    entry.state = "done";
    live.delete(entry.id);
    held.add(entry.key, -entry.amount);
    if (entry.usd !== undefined) held.add(USD, -entry.usd);
    if (charge) {
      committed.add(entry.key, entry.amount);
      if (entry.usd !== undefined) committed.add(USD, entry.usd);
    }
    return true;
  }

  function applyResolution(entry: Entry, answer: ExpiredResolution): void {
    // A release/commit by the caller while the lookup ran wins.
    if (entry.state !== "resolving") return;
    if (answer === "unused") finish(entry, false);
    else if (answer === "settled") finish(entry, true);
    else {
      entry.state = "outstanding";
      entry.askAgainAt = now() + RESOLVE_RETRY_SECONDS;
    }
  }

  function askResolver(entry: Entry, resolver: NonNullable<SpendingPolicyOptions["resolveExpired"]>): void {
    entry.state = "resolving";
    let answer: ReturnType<typeof resolver>;
    try {
      answer = resolver(view(entry));
    } catch {
      return applyResolution(entry, "unknown");
    }
    if (typeof (answer as Promise<ExpiredResolution>)?.then !== "function") return applyResolution(entry, answer as ExpiredResolution);
    (answer as Promise<ExpiredResolution>).then(
      (a) => applyResolution(entry, a === "unused" || a === "settled" ? a : "unknown"),
      () => applyResolution(entry, "unknown"),
    );
  }

  /**
   * Lazy expiry, run on every budget read: an outstanding payment past its expiry and the grace
   * can no longer settle, so its amount is released (or the resolver is asked). No timers, so
   * an idle policy never keeps a process alive.
   */
  function sweep(): void {
    if (live.size === 0) return;
    const t = now();
    for (const entry of live.values()) {
      if (entry.state !== "outstanding" || t < entry.validUntil! + grace) continue;
      if (!resolveExpired) finish(entry, false);
      else if (entry.askAgainAt === undefined || t >= entry.askAgainAt) askResolver(entry, resolveExpired);
    }
  }

  function view(entry: Entry): OutstandingPayment {
    return {
      id: entry.id,
      assetKey: entry.key,
      amount: entry.amount.toString(),
      requirements: entry.requirements,
      validUntil: entry.validUntil!,
      ...(entry.payer !== undefined ? { payer: entry.payer } : {}),
      ...(entry.payload !== undefined ? { payload: entry.payload } : {}),
    };
  }

  function check(req: PaymentRequirements): Refusal | undefined {
    sweep();
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
    const tooLong = timeoutRefusal(req, maxTimeoutSeconds);
    if (tooLong) return tooLong;
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

  function handOver(entry: Entry, info: HandOver): HandOverResult {
    const t = now();
    const tooLong = signedValidityRefusal(info, t, maxTimeoutSeconds, entry.requirements);
    if (tooLong) return { ok: false, refusal: tooLong };
    const validUntil = info.validBefore ?? t + info.validForSeconds;
    if (entry.state !== "held") return { ok: true, validUntil };
    entry.state = "outstanding";
    entry.validUntil = validUntil;
    if (info.payer !== undefined) entry.payer = info.payer;
    if (info.payload !== undefined) entry.payload = info.payload;
    return { ok: true, validUntil };
  }

  function reserve(req: PaymentRequirements): ReserveResult {
    const refusal = check(req);
    if (refusal) return { ok: false, refusal };
    const key = assetKey(req.network, req.asset);
    const amount = BigInt(req.amount);
    const entry: Entry = { id: `r${++sequence}`, key, amount, usd: usdValue(key, amount), requirements: req, state: "held" };
    held.add(key, amount);
    if (entry.usd !== undefined) held.add(USD, entry.usd);
    live.set(entry.id, entry);
    return {
      ok: true,
      reservation: {
        id: entry.id,
        amount: req.amount,
        assetKey: key,
        handOver: (info) => handOver(entry, info),
        release: () => void finish(entry, false),
        commit: () => void finish(entry, true),
      },
    };
  }

  function totals(ledger: Ledger): SpendingTotals {
    const assets: Record<string, string> = {};
    for (const [k, v] of ledger.map) if (k !== USD && v !== 0n) assets[k] = v.toString();
    return usdAssets.size > 0 ? { usd: atomicToDecimal(ledger.get(USD), scale), assets } : { assets };
  }

  const byId = (id: string, charge: boolean) => {
    const entry = live.get(id);
    return entry !== undefined && finish(entry, charge);
  };

  return {
    check,
    reserve,
    maxTimeoutSeconds,
    spent: () => (sweep(), totals(committed)),
    reserved: () => (sweep(), totals(held)),
    outstanding() {
      sweep();
      return [...live.values()].filter((e) => e.state !== "held").map(view);
    },
    release: (id) => byId(id, false),
    commit: (id) => byId(id, true),
    remaining() {
      sweep();
      const assets: Record<string, string> = {};
      for (const [k, limit] of budget?.assets ?? []) assets[k] = (limit - committed.get(k) - held.get(k)).toString();
      return budgetUsd !== undefined
        ? { usd: atomicToDecimal(budgetUsd - committed.get(USD) - held.get(USD), scale), assets }
        : { assets };
    },
  };
}
