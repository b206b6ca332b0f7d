import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPaymentClient, decodeBase64Json, spendingPolicy, type PaymentPayload, type PaymentRequired, type PaymentRequirements } from "@tollgate/core";
import { exactEvmClient } from "@tollgate/evm";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, describe, expect, it, vi } from "vitest";
import { createBudgetStore, issueOpenMandate, mandateWallet, MandateRefusedError, type OpenMandateConstraints } from "../src/index.ts";
import { keccak256, toBytes } from "viem";
import { NETWORK, OTHER_TOKEN, PAYEE, T0, testKeys, USDC } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "tollgate-wallet-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const freshFile = () => join(dir, `budget-${++n}.json`);

const PAYER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const OTHER_PAYEE = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

const requirements = (over: Partial<PaymentRequirements> = {}): PaymentRequirements => ({
  scheme: "exact",
  network: NETWORK,
  amount: "50000", // $0.05
  asset: USDC,
  payTo: PAYEE,
  maxTimeoutSeconds: 60,
  extra: { name: "USD Coin", version: "2" },
  ...over,
});
const required = (r: PaymentRequirements, url = "https://api.example/weather"): PaymentRequired => ({ x402Version: 2, resource: { url }, accepts: [r] });

/** The demo's mandate: at most $0.05 per call, $0.20 a day, two payees, USDC on one network. */
const base: OpenMandateConstraints = {
  allowedPayees: [PAYEE, OTHER_PAYEE],
  allowedAssets: [{ network: NETWORK, asset: USDC, usdDecimals: 6 }],
  amountRange: { currency: "USD", min: "0.001", max: "0.05" },
  budget: { currency: "USD", max: "0.20", periodSeconds: 86_400 },
};

async function setup(c: OpenMandateConstraints = base, o: { expiresAt?: number; clock?: { t: number }; approve?: () => boolean } = {}) {
  const { user, agent } = await testKeys();
  const clock = o.clock ?? { t: T0 };
  const open = await issueOpenMandate({ userKey: user.privateJwk, agentPublicJwk: agent.publicJwk, constraints: c, expiresAt: o.expiresAt ?? T0 + 86_400 * 30, issuedAt: T0 - 100, id: `m-${n + 1}` });
  const account = privateKeyToAccount(PAYER_KEY);
  const signTypedData = vi.fn(account.signTypedData);
  const file = freshFile();
  const wallet = mandateWallet({ open, userPublicJwk: user.publicJwk, agentKey: agent, store: file, now: () => clock.t, ...(o.approve ? { approve: o.approve } : {}) });
  const client = createPaymentClient({ schemes: [exactEvmClient({ account: { address: account.address, signTypedData: signTypedData as typeof account.signTypedData }, now: () => clock.t })], policy: spendingPolicy({ now: () => clock.t }), authorizer: wallet });
  return { client, wallet, signTypedData, open, file, clock, user };
}

describe("mandate wallet (enforced before signing)", () => {
  it("pays inside the mandate: the nonce is keccak256 of the chain carried in extensions[\"ap2-mandate\"]", async () => {
    const { client, signTypedData, open } = await setup();
    const payment = await client.pay(required(requirements()));
    expect(signTypedData).toHaveBeenCalledTimes(1);
    const payload = payment.payload as PaymentPayload;
    const info = (payload.extensions?.["ap2-mandate"] as { info: { chain: string } }).info;
    expect(info.chain.startsWith(open.replace(/~+$/, "") + "~~")).toBe(true);
    expect((payload.payload as { authorization: { nonce: string } }).authorization.nonce).toBe(keccak256(toBytes(info.chain)));
    // the header carries the same payload
    const decoded = decodeBase64Json(payment.header.value, "h");
    expect(decoded.ok && (decoded.value as PaymentPayload).extensions?.["ap2-mandate"]).toBeTruthy();
  });

  it("binds a Permit2 payment too: its uint256 nonce is the chain's hash", async () => {
    const { client } = await setup();
    const payment = await client.pay(required(requirements({ extra: { name: "USD Coin", version: "2", assetTransferMethod: "permit2" } })));
    const payload = payment.payload as PaymentPayload;
    const info = (payload.extensions?.["ap2-mandate"] as { info: { chain: string } }).info;
    const nonce = (payload.payload as { permit2Authorization: { nonce: string } }).permit2Authorization.nonce;
    expect(nonce).toMatch(/^[0-9]+$/);
    expect(BigInt(nonce)).toBe(BigInt(keccak256(toBytes(info.chain))));
  });

  const refusals: Array<[string, Partial<PaymentRequirements>, OpenMandateConstraints | undefined, string, string]> = [
    ["a payee outside the list", { payTo: "0x90F79bf6EB2c4f870365E785982E1f101E93b906" }, undefined, "payment.allowed_payees", "payee_not_allowed"],
    ["an amount above the range", { amount: "50001" }, undefined, "payment.amount_range", "amount_above_range"],
    ["an amount below the range", { amount: "999" }, undefined, "payment.amount_range", "amount_below_range"],
    ["another network", { network: "eip155:84532", asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e", extra: { name: "USDC", version: "2" } }, undefined, "payment.allowed_payment_instruments", "network_not_allowed"],
    ["another asset", { asset: OTHER_TOKEN }, undefined, "payment.allowed_payment_instruments", "asset_not_allowed"],
    ["a payment before the execution window", {}, { ...base, notBefore: T0 + 3600 }, "mandate.validity", "not_yet_valid"],
    ["a payment after the execution window", {}, { ...base, notAfter: T0 - 10 }, "payment.execution_date", "expired"],
  ];
  for (const [what, over, c, constraint, code] of refusals) {
    it(`refuses ${what} with ${constraint}/${code}, nothing signed`, async () => {
      const { client, signTypedData, wallet } = await setup(c);
      const err = await client.pay(required(requirements(over))).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MandateRefusedError);
      expect(err).toMatchObject({ constraint, code });
      expect(signTypedData).not.toHaveBeenCalled();
      // nothing left counted
      const jti = await wallet.mandate().then((m) => m.jti).catch(() => undefined);
      if (jti) expect((await wallet.store.spent(jti, Math.floor(T0 / 86_400) * 86_400)).reserved).toBe(0n);
    });
  }

  it("refuses over the daily budget, counting what was handed over; the next day is a new budget", async () => {
    const { client, signTypedData, clock } = await setup();
    for (let i = 0; i < 4; i++) await client.pay(required(requirements()));
    expect(signTypedData).toHaveBeenCalledTimes(4);
    const err = await client.pay(required(requirements({ amount: "1000" }))).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: "MandateRefusedError", constraint: "payment.budget", code: "budget_exceeded" });
    expect(signTypedData).toHaveBeenCalledTimes(4);
    clock.t = T0 + 86_400;
    await client.pay(required(requirements()));
    expect(signTypedData).toHaveBeenCalledTimes(5);
  });

  it("refuses by recurrence (frequency and max occurrences), nothing signed", async () => {
    const daily = await setup({ ...base, recurrence: { frequency: "DAILY" } });
    await daily.client.pay(required(requirements()));
    expect(await daily.client.pay(required(requirements())).catch((e: unknown) => e)).toMatchObject({ constraint: "payment.agent_recurrence", code: "too_frequent" });
    expect(daily.signTypedData).toHaveBeenCalledTimes(1);
    const twice = await setup({ ...base, recurrence: { frequency: "ON_DEMAND", maxOccurrences: 2 } });
    await twice.client.pay(required(requirements()));
    await twice.client.pay(required(requirements()));
    expect(await twice.client.pay(required(requirements())).catch((e: unknown) => e)).toMatchObject({ constraint: "payment.agent_recurrence", code: "occurrences_exceeded" });
    expect(twice.signTypedData).toHaveBeenCalledTimes(2);
  });

  it("refuses every payment under an expired mandate (mandate.validity), nothing signed", async () => {
    const { client, signTypedData } = await setup(base, { expiresAt: T0 - 1 });
    expect(await client.pay(required(requirements())).catch((e: unknown) => e)).toMatchObject({ constraint: "mandate.validity", code: "expired" });
    expect(signTypedData).not.toHaveBeenCalled();
  });

  it("sends a payment outside the mandate to the approval callback: approved, it is signed without a mandate and not counted", async () => {
    const approve = vi.fn(() => true);
    const { client, signTypedData, wallet } = await setup(base, { approve });
    const payment = await client.pay(required(requirements({ payTo: "0x90F79bf6EB2c4f870365E785982E1f101E93b906" })));
    expect(approve).toHaveBeenCalledWith(expect.objectContaining({ refusal: expect.objectContaining({ constraint: "payment.allowed_payees" }) }));
    expect(signTypedData).toHaveBeenCalledTimes(1);
    expect((payment.payload as PaymentPayload).extensions?.["ap2-mandate"]).toBeUndefined();
    const m = await wallet.mandate();
    expect((await wallet.store.spent(m.jti, Math.floor(T0 / 86_400) * 86_400)).amount).toBe(0n);
    const declined = await setup(base, { approve: () => false });
    expect(await declined.client.pay(required(requirements({ amount: "60000" }))).catch((e: unknown) => e)).toBeInstanceOf(MandateRefusedError);
    expect(declined.signTypedData).not.toHaveBeenCalled();
  });

  it("keeps a handed-over payment counted until it expires, then releases it; commit makes it spent", async () => {
    const { client, wallet, clock } = await setup();
    const m = await wallet.mandate();
    const day = Math.floor(T0 / 86_400) * 86_400;
    const a = await client.pay(required(requirements()));
    const b = await client.pay(required(requirements()));
    expect(await wallet.store.spent(m.jti, day)).toMatchObject({ reserved: 100_000n * 10n ** 12n, committed: 0n });
    await b.commit();
    expect(await wallet.store.spent(m.jti, day)).toMatchObject({ reserved: 50_000n * 10n ** 12n, committed: 50_000n * 10n ** 12n });
    clock.t = a.validUntil + 30; // within the grace: still counted
    await wallet.sweep();
    expect((await wallet.store.spent(m.jti, day)).reserved).toBe(50_000n * 10n ** 12n);
    clock.t = a.validUntil + 61;
    await wallet.sweep();
    expect(await wallet.store.spent(m.jti, day)).toMatchObject({ reserved: 0n, committed: 50_000n * 10n ** 12n });
  });

  it("asks resolveExpired about expired payments: unknown keeps counting, unused releases", async () => {
    const { user, agent } = await testKeys();
    const open = await issueOpenMandate({ userKey: user.privateJwk, agentPublicJwk: agent.publicJwk, constraints: base, expiresAt: T0 + 86_400 * 30, issuedAt: T0 - 100, id: "m-resolve" });
    const clock = { t: T0 };
    let answer: "unknown" | "unused" = "unknown";
    const resolveExpired = vi.fn(() => answer);
    const wallet = mandateWallet({ open, userPublicJwk: user.publicJwk, agentKey: agent, store: createBudgetStore({ file: freshFile() }), now: () => clock.t, resolveExpired });
    const client = createPaymentClient({ schemes: [exactEvmClient({ account: privateKeyToAccount(PAYER_KEY), now: () => clock.t })], policy: spendingPolicy({ now: () => clock.t }), authorizer: wallet });
    const p = await client.pay(required(requirements()));
    clock.t = p.validUntil + 120;
    await wallet.sweep();
    expect(resolveExpired).toHaveBeenCalledWith(expect.objectContaining({ payload: expect.objectContaining({ payload: expect.objectContaining({ authorization: expect.anything() }) }) }));
    const day = Math.floor(T0 / 86_400) * 86_400;
    expect((await wallet.store.spent("m-resolve", day)).reserved).toBe(50_000n * 10n ** 12n);
    answer = "unused";
    await wallet.sweep();
    expect((await wallet.store.spent("m-resolve", day)).reserved).toBe(0n);
  });

  it("refuses to work with an agent key that is not the mandate's cnf", async () => {
    const { user, agent, other } = await testKeys();
    const open = await issueOpenMandate({ userKey: user.privateJwk, agentPublicJwk: agent.publicJwk, constraints: base, expiresAt: T0 + 86_400, issuedAt: T0 - 100 });
    const signTypedData = vi.fn();
    const wallet = mandateWallet({ open, userPublicJwk: user.publicJwk, agentKey: other, store: freshFile(), now: () => T0 });
    const client = createPaymentClient({ schemes: [exactEvmClient({ account: { address: privateKeyToAccount(PAYER_KEY).address, signTypedData }, now: () => T0 })], policy: spendingPolicy({ now: () => T0 }), authorizer: wallet });
    await expect(client.pay(required(requirements()))).rejects.toThrow(/cnf/);
    expect(signTypedData).not.toHaveBeenCalled();
  });
});
