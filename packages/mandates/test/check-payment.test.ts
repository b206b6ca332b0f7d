import { describe, expect, it } from "vitest";
import { checkPayment, verifyOpenMandate, type OpenPaymentMandate } from "../src/index.ts";
import { AGENT_PAYEE, constraints, NETWORK, openMandate, OTHER_TOKEN, payment, T0, testKeys, USDC } from "./helpers.ts";

async function mandate(over: Parameters<typeof openMandate>[0] = {}): Promise<OpenPaymentMandate> {
  const { user } = await testKeys();
  const res = await verifyOpenMandate(await openMandate(over), { userPublicJwk: user.publicJwk, now: T0 });
  if (!res.ok) throw new Error(res.reason);
  return res.mandate;
}

describe("checkPayment", () => {
  it("allows a payment inside every constraint and reports the budget period", async () => {
    const res = checkPayment(await mandate(), payment(), { amount: 0n });
    expect(res).toMatchObject({ ok: true, budget: { periodStart: Math.floor(T0 / 86_400) * 86_400, units: 10n ** 18n, max: 10n * 10n ** 18n } });
  });

  it("allows a payee named by its ERC-8004 agent id", async () => {
    const res = checkPayment(await mandate(), payment({ payTo: "0x1111111111111111111111111111111111111111", payeeAgentId: AGENT_PAYEE }));
    expect(res.ok).toBe(true);
  });

  it("refuses each constraint by name", async () => {
    const m = await mandate();
    const cases: Array<[Parameters<typeof payment>[0], object?, string?, string?]> = [
      [{ payTo: "0x2222222222222222222222222222222222222222" }, undefined, "payment.allowed_payees", "payee_not_allowed"],
      [{ amount: "999" }, undefined, "payment.amount_range", "amount_below_range"], // 0.000999 USD < 0.001
      [{ amount: "5000001" }, undefined, "payment.amount_range", "amount_above_range"],
      [{ network: "eip155:1" }, undefined, "payment.allowed_payment_instruments", "network_not_allowed"],
      [{ asset: OTHER_TOKEN }, undefined, "payment.allowed_payment_instruments", "asset_not_allowed"],
      [{ at: T0 + 31 * 86_400 }, undefined, "mandate.validity", "expired"],
      [{ at: T0 - 3600 }, undefined, "mandate.validity", "not_yet_valid"], // nbf = execution_date.not_before
      [{}, { amount: 9n * 10n ** 18n + 1n }, "payment.budget", "budget_exceeded"],
      [{}, { amount: 0n, occurrences: 100 }, "payment.agent_recurrence", "occurrences_exceeded"],
    ];
    for (const [over, spent, constraint, code] of cases) {
      expect(checkPayment(m, payment(over), (spent as never) ?? { amount: 0n }), `${code}`).toMatchObject({ ok: false, constraint, code });
    }
    // exactly at the budget is allowed
    expect(checkPayment(m, payment(), { amount: 9n * 10n ** 18n }).ok).toBe(true);
  });

  it("keeps atomic ranges and budgets exact (no floats) and per asset", async () => {
    const m = await mandate({
      constraints: {
        allowedAssets: [{ network: NETWORK }],
        amountRange: { asset: USDC, network: NETWORK, min: "1", max: "9007199254740993" },
        budget: { asset: USDC, network: NETWORK, max: "9007199254740995", periodSeconds: 3600 },
      },
    });
    expect(checkPayment(m, payment({ amount: "9007199254740993" })).ok).toBe(true);
    expect(checkPayment(m, payment({ amount: "9007199254740994" }))).toMatchObject({ ok: false, code: "amount_above_range" });
    expect(checkPayment(m, payment({ amount: "3" }), { amount: "9007199254740993" })).toMatchObject({ ok: false, code: "budget_exceeded" });
    expect(checkPayment(m, payment({ asset: OTHER_TOKEN }))).toMatchObject({ ok: false, constraint: "payment.amount_range", code: "currency_mismatch" });
  });

  it("applies the recurrence frequency", async () => {
    const m = await mandate({ constraints: { ...constraints, recurrence: { frequency: "DAILY" } } });
    expect(checkPayment(m, payment(), { amount: 0n, lastPaymentAt: T0 - 3600 })).toMatchObject({ ok: false, constraint: "payment.agent_recurrence", code: "too_frequent" });
    expect(checkPayment(m, payment(), { amount: 0n, lastPaymentAt: T0 - 86_400 }).ok).toBe(true);
  });

  it("refuses a payment after the execution window's not_after", async () => {
    const m = await mandate({ constraints: { ...constraints, notAfter: T0 + 3600 } });
    expect(checkPayment(m, payment({ at: T0 + 7200 }))).toMatchObject({ ok: false, constraint: "payment.execution_date", code: "expired" });
  });

  it("refuses a USD range for an asset not marked USD-stable", async () => {
    const m = await mandate({ constraints: { ...constraints, allowedAssets: [{ network: NETWORK }] } });
    expect(checkPayment(m, payment())).toMatchObject({ ok: false, constraint: "payment.amount_range", code: "currency_mismatch" });
  });
});
