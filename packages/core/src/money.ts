/**
 * Exact money: decimal strings and bigint atomic units. No floating point, ever:
 * `0.1 + 0.2` is not a price.
 */

const DECIMAL = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/;
const ATOMIC = /^(0|[1-9][0-9]*)$/;
/** 2^256 - 1: the largest value a uint256 amount can hold. */
export const MAX_UINT256 = (1n << 256n) - 1n;

export class MoneyError extends Error {
  override name = "MoneyError";
}

/** Parses a non-negative atomic amount ("10000") into a bigint, rejecting anything else. */
export function parseAtomic(value: string, field = "amount"): bigint {
  if (typeof value !== "string" || !ATOMIC.test(value) || value.length > 78) {
    throw new MoneyError(`${field}: expected a non-negative integer string of atomic units, got ${JSON.stringify(value)}`);
  }
  const n = BigInt(value);
  if (n > MAX_UINT256) throw new MoneyError(`${field}: exceeds uint256`);
  return n;
}

export function isAtomic(value: unknown): value is string {
  return typeof value === "string" && ATOMIC.test(value) && value.length <= 78 && BigInt(value) <= MAX_UINT256;
}

/**
 * "1.5" with 6 decimals -> 1500000n. Rejects more fractional digits than the token has,
 * instead of rounding: a price that cannot be paid exactly is a configuration error.
 */
export function decimalToAtomic(value: string, decimals: number): bigint {
  const m = DECIMAL.exec(value.trim());
  if (!m) throw new MoneyError(`not a decimal amount: ${JSON.stringify(value)}`);
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > 77) throw new MoneyError(`bad decimals: ${decimals}`);
  const whole = m[1]!;
  const frac = m[2] ?? "";
  if (frac.length > decimals) {
    const extra = frac.slice(decimals);
    if (/[^0]/.test(extra)) {
      throw new MoneyError(`${value} has more than ${decimals} decimal places and cannot be paid exactly`);
    }
  }
  return BigInt(whole + frac.slice(0, decimals).padEnd(decimals, "0"));
}

/** 1500000n with 6 decimals -> "1.5". */
export function atomicToDecimal(value: bigint, decimals: number): string {
  const neg = value < 0n;
  const s = (neg ? -value : value).toString().padStart(decimals + 1, "0");
  const whole = s.slice(0, s.length - decimals);
  const frac = decimals > 0 ? s.slice(s.length - decimals).replace(/0+$/, "") : "";
  return (neg ? "-" : "") + whole + (frac ? "." + frac : "");
}

/** A price as people write it. */
export type ParsedMoney =
  | { kind: "usd"; decimal: string } // "$0.01", "0.01 USD", "0.01"
  | { kind: "token"; decimal: string; symbol: string }; // "0.01 USDC"

/**
 * Parses "$0.01", "$1,000.50", "0.01", "0.01 USD", "0.01 USDC" into a decimal string and unit.
 * Numbers (JS floats) are refused: write the price as a string.
 */
export function parseMoney(input: string): ParsedMoney {
  if (typeof input !== "string") {
    throw new MoneyError(`price must be a string such as "$0.01" (got ${typeof input}); numbers lose precision`);
  }
  let s = input.trim();
  let usd = false;
  if (s.startsWith("$")) {
    usd = true;
    s = s.slice(1).trim();
  }
  let symbol: string | undefined;
  const sm = /^(.*?)\s+([A-Za-z][A-Za-z0-9.]{0,15})$/.exec(s);
  if (sm) {
    s = sm[1]!;
    symbol = sm[2]!.toUpperCase();
  }
  // Thousands separators are accepted only in their proper places.
  if (s.includes(",")) {
    if (!/^[1-9][0-9]{0,2}(,[0-9]{3})+(\.[0-9]+)?$/.test(s)) throw new MoneyError(`not an amount: ${JSON.stringify(input)}`);
    s = s.replace(/,/g, "");
  }
  if (!DECIMAL.test(s)) throw new MoneyError(`not an amount: ${JSON.stringify(input)}`);
  if (usd && symbol && symbol !== "USD") throw new MoneyError(`"$" and ${symbol} in one price: ${JSON.stringify(input)}`);
  if (usd || !symbol || symbol === "USD") return { kind: "usd", decimal: s };
  return { kind: "token", decimal: s, symbol };
}
