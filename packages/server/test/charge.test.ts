/** The charge API of usage-priced (upto) routes: one exact parser, the maximum as ceiling, config refusals. */
import type { PaymentRequirements } from "@tollgate/core";
import { uptoEvmServer } from "@tollgate/evm";
import { ChargeError, chargeOf, chargedRequirements, setCharge, type Payment } from "@tollgate/server";
import { compileRoute } from "../src/routes.ts";
import { describe, expect, it } from "vitest";

const USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"; // base-sepolia USDC in core's network table
const PAY_TO = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
const scheme = uptoEvmServer();

function payment(over: Partial<PaymentRequirements> = {}): Payment {
  const requirements: PaymentRequirements = { scheme: "upto", network: "eip155:84532", amount: "5000000", asset: USDC, payTo: PAY_TO, maxTimeoutSeconds: 60, extra: {}, ...over };
  return { x402Version: 2, route: "GET /llm", requirements, payload: { x402Version: 2, accepted: requirements, payload: {} } };
}

const settledAmount = (p: Payment) => {
  const r = chargedRequirements(p, scheme);
  if (!r.ok) throw r.error;
  return r.requirements.amount;
};

describe("setCharge / chargedRequirements", () => {
  it("unset: the full maximum is settled", () => {
    const p = payment();
    expect(chargeOf(p)).toBeUndefined();
    expect(settledAmount(p)).toBe("5000000");
  });

  it("atomic units, exactly; zero is a charge; the last call counts", () => {
    const p = payment();
    setCharge(p, "2350000");
    expect(settledAmount(p)).toBe("2350000");
    setCharge(p, "0");
    expect(settledAmount(p)).toBe("0");
    setCharge(p, "5000000");
    expect(settledAmount(p)).toBe("5000000");
  });

  it("a percentage of the maximum with up to two decimals, rounded down, never above 100%", () => {
    const p = payment({ amount: "999" });
    setCharge(p, "50%");
    expect(settledAmount(p)).toBe("499");
    setCharge(p, "12.5%");
    expect(settledAmount(p)).toBe("124");
    setCharge(p, "0.01%");
    expect(settledAmount(p)).toBe("0");
    setCharge(p, "100%");
    expect(settledAmount(p)).toBe("999");
    // Rounded down, 100.01% of 999 is still 999; of 10000 it is 10001: above the maximum.
    setCharge(p, "100.01%");
    expect(settledAmount(p)).toBe("999");
    expect(() => setCharge(payment({ amount: "10000" }), "100.01%")).toThrow(/above the 10000/);
    expect(() => setCharge(p, "1.234%")).toThrow(/not a charge/);
  });

  it("dollars through the scheme's exact pricing of the route's asset", () => {
    const p = payment();
    setCharge(p, "$0.05");
    expect(settledAmount(p)).toBe("50000");
    setCharge(p, "$5");
    expect(settledAmount(p)).toBe("5000000");
    // Above the maximum: found at settle time, never settled.
    setCharge(p, "$5.000001");
    const over = chargedRequirements(p, scheme);
    expect(over.ok).toBe(false);
    expect(!over.ok && over.error.message).toMatch(/above the 5000000/);
    // More decimals than the token has: cannot be paid exactly, refused (no rounding).
    setCharge(p, "$0.0000001");
    expect(chargedRequirements(p, scheme).ok).toBe(false);
    // A "$" charge on an asset "$" does not price is refused rather than guessed.
    const other = payment({ asset: "0x1111111111111111111111111111111111111111" });
    setCharge(other, "$0.01");
    expect(!chargedRequirements(other, scheme).ok && "refused").toBe("refused");
  });

  it("malformed or above the maximum: thrown at once, naming the problem; floats never accepted", () => {
    const p = payment();
    for (const bad of ["5000001", "-1", "1.5", "1e6", "", "abc", "0x10", "50 %", "$", "$-1"]) expect(() => setCharge(p, bad), bad).toThrow(ChargeError);
    expect(() => setCharge(p, 1000 as unknown as string)).toThrow(/must be a string/);
    expect(() => setCharge(p, "5000001")).toThrow(/above the 5000000 the payer authorized/);
    expect(chargeOf(p)).toBeUndefined();
  });

  it("refused for a scheme that charges the signed price, and without a payment", () => {
    expect(() => setCharge(payment({ scheme: "exact" }), "1")).toThrow(/only usage-priced schemes/);
    expect(() => setCharge(undefined, "1")).toThrow(/no verified payment/);
  });
});

describe("route configuration", () => {
  const option = { scheme: "upto", price: "$0.10", network: "eip155:84532" as const, payTo: PAY_TO };
  it('an upto route cannot settle "before" its handler (the charge is not known yet)', () => {
    expect(() => compileRoute("llm", { ...option, settle: "before" }, [scheme])).toThrow(/settle "before" cannot be used with the "upto" scheme/);
    expect(compileRoute("llm", option, [scheme]).settle).toBe("after");
  });
});
