// Exact amount arithmetic: atomic token amounts are non-negative integer strings, USD amounts are
// decimal strings in dollars ("0.001"). Nothing goes through a float.

const INTEGER = /^(0|[1-9][0-9]*)$/;
const DECIMAL = /^(0|[1-9][0-9]*)(\.[0-9]+)?$/;

/** Scale used for USD amounts inside the library (and in the budget store): 18 decimals. */
export const USD_SCALE = 18;

export function parseAtomic(value: string | bigint): bigint | undefined {
  if (typeof value === "bigint") return value >= 0n ? value : undefined;
  return typeof value === "string" && INTEGER.test(value) ? BigInt(value) : undefined;
}

/** A decimal string to an integer scaled by 10^scale; undefined if malformed or more precise than scale. */
export function parseDecimal(value: string, scale: number): bigint | undefined {
  if (typeof value !== "string" || !DECIMAL.test(value)) return undefined;
  const [int, frac = ""] = value.split(".") as [string, string?];
  const digits = frac.replace(/0+$/, "");
  if (digits.length > scale) return undefined;
  return BigInt(int) * 10n ** BigInt(scale) + BigInt(digits.padEnd(scale, "0") || "0");
}

/** Atomic units of an asset with `decimals` decimals, expressed at USD_SCALE. */
export function atomicToUsdScaled(amount: bigint, decimals: number): bigint {
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > USD_SCALE) throw new RangeError(`unsupported decimals ${decimals}`);
  return amount * 10n ** BigInt(USD_SCALE - decimals);
}

/** Formats a USD_SCALE integer back to a decimal string without trailing zeros. */
export function formatUsdScaled(value: bigint): string {
  const s = value.toString().padStart(USD_SCALE + 1, "0");
  const int = s.slice(0, s.length - USD_SCALE);
  const frac = s.slice(s.length - USD_SCALE).replace(/0+$/, "");
  return frac ? `${int}.${frac}` : int;
}
