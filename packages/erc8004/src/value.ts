// ERC-8004 scores are a signed fixed-point pair (int128 value, uint8 valueDecimals 0..18).
// These convert between that pair and a decimal string; no floating point anywhere.

export type FixedPointValue = { value: bigint; valueDecimals: number };

export const MAX_VALUE_DECIMALS = 18;
const DECIMAL = /^(-)?(\d+)(?:\.(\d+))?$/;

/** "99.77" -> { value: 9977n, valueDecimals: 2 }; "-3.2" -> { value: -32n, valueDecimals: 1 }. */
export function parseFixedPoint(decimal: string): FixedPointValue {
  const m = DECIMAL.exec(decimal.trim());
  if (!m) throw new Error(`not a decimal number: ${JSON.stringify(decimal)}`);
  const fraction = m[3] ?? "";
  if (fraction.length > MAX_VALUE_DECIMALS) throw new Error(`at most ${MAX_VALUE_DECIMALS} decimals: ${decimal}`);
  const magnitude = BigInt(`${m[2]}${fraction}`);
  return { value: m[1] ? -magnitude : magnitude, valueDecimals: fraction.length };
}

/** { value: 9977n, valueDecimals: 2 } -> "99.77"; keeps every stored decimal (5n, 3 -> "0.005"). */
export function formatFixedPoint(value: bigint, valueDecimals: number): string {
  const sign = value < 0n ? "-" : "";
  const digits = (value < 0n ? -value : value).toString();
  if (valueDecimals === 0) return `${sign}${digits}`;
  const padded = digits.padStart(valueDecimals + 1, "0");
  return `${sign}${padded.slice(0, -valueDecimals)}.${padded.slice(-valueDecimals)}`;
}
