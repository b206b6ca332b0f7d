import { describe, expect, it } from "vitest";
import { makeClosedMandate, mandateChain, mandateChainHash, verifyClosedMandate } from "../src/index.ts";
import { openMandate, payment, PAYEE, T0, testKeys } from "./helpers.ts";

describe("closed Payment Mandate", () => {
  it("round-trips: agent key binding, payment match, constraints", async () => {
    const { user, agent } = await testKeys();
    const open = await openMandate();
    const closed = await makeClosedMandate({ agentKey: agent, open, payment: payment(), transactionId: "tx-1" });
    expect(closed.split(".")).toHaveLength(3);
    const header = JSON.parse(Buffer.from(closed.split(".")[0]!, "base64url").toString());
    expect(header).toMatchObject({ typ: "kb+jwt", alg: "ES256" });
    const res = await verifyClosedMandate(closed, { open, userPublicJwk: user.publicJwk, payment: payment(), transactionId: "tx-1", now: T0 });
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    expect(res.closed).toMatchObject({
      vct: "mandate.payment.1",
      transaction_id: "tx-1",
      payee: { id: PAYEE },
      payment_amount: { amount: "1000000", network: "eip155:8453" },
      payment_instrument: { type: "x402" },
      mandate_id: "mandate-1",
    });
    expect(res.budget?.units).toBe(10n ** 18n);
  });

  it("refuses a closed mandate signed by a key other than the open mandate's cnf", async () => {
    const { user, other } = await testKeys();
    const open = await openMandate();
    const closed = await makeClosedMandate({ agentKey: other, open, payment: payment(), transactionId: "tx-1" });
    const res = await verifyClosedMandate(closed, { open, userPublicJwk: user.publicJwk, payment: payment(), now: T0 });
    expect(res).toMatchObject({ ok: false, code: "key_binding" });
  });

  it("refuses a closed mandate bound to another open mandate (sd_hash)", async () => {
    const { user, agent } = await testKeys();
    const open = await openMandate();
    const otherOpen = await openMandate({ id: "mandate-2" });
    const closed = await makeClosedMandate({ agentKey: agent, open: otherOpen, payment: payment(), transactionId: "tx-1" });
    expect(await verifyClosedMandate(closed, { open, userPublicJwk: user.publicJwk, payment: payment(), now: T0 })).toMatchObject({ ok: false, code: "key_binding" });
  });

  it("refuses a payment that differs from the closed mandate, a wrong nonce, and a payment outside the open mandate", async () => {
    const { user, agent } = await testKeys();
    const open = await openMandate();
    const closed = await makeClosedMandate({ agentKey: agent, open, payment: payment(), transactionId: "tx-1" });
    const base = { open, userPublicJwk: user.publicJwk, now: T0 };
    expect(await verifyClosedMandate(closed, { ...base, payment: payment({ amount: "2000000" }) })).toMatchObject({ ok: false, field: "payment_amount" });
    expect(await verifyClosedMandate(closed, { ...base, payment: payment({ payTo: "0x3333333333333333333333333333333333333333" }) })).toMatchObject({ ok: false, field: "payee" });
    expect(await verifyClosedMandate(closed, { ...base, payment: payment(), transactionId: "tx-2" })).toMatchObject({ ok: false, code: "key_binding" });

    const tooBig = payment({ amount: "6000000" });
    const closedBig = await makeClosedMandate({ agentKey: agent, open, payment: tooBig, transactionId: "tx-3" });
    expect(await verifyClosedMandate(closedBig, { ...base, payment: tooBig })).toMatchObject({ ok: false, constraint: "payment.amount_range", code: "amount_above_range" });
    expect(await verifyClosedMandate(closed, { ...base, payment: payment(), spent: { amount: 10n * 10n ** 18n } })).toMatchObject({ ok: false, constraint: "payment.budget" });
  });

  it("refuses when the open mandate is revoked or expired", async () => {
    const { user, agent } = await testKeys();
    const open = await openMandate();
    const closed = await makeClosedMandate({ agentKey: agent, open, payment: payment(), transactionId: "tx-1" });
    const base = { open, userPublicJwk: user.publicJwk, payment: payment() };
    expect(await verifyClosedMandate(closed, { ...base, now: T0, isRevoked: () => true })).toMatchObject({ ok: false, code: "revoked" });
    expect(await verifyClosedMandate(closed, { ...base, now: T0 + 40 * 86_400 })).toMatchObject({ ok: false, code: "expired" });
  });

  it("hashes the chain deterministically into a 32-byte EIP-3009 nonce", async () => {
    const { agent } = await testKeys();
    const open = await openMandate();
    const closed = await makeClosedMandate({ agentKey: agent, open, payment: payment(), transactionId: "tx-1" });
    const h = mandateChainHash(open, closed);
    expect(h).toMatch(/^0x[0-9a-f]{64}$/);
    expect(mandateChainHash(open, closed)).toBe(h);
    expect(mandateChainHash(open.replace(/~$/, ""), closed)).toBe(h);
    expect(mandateChain(open, closed)).toBe(`${open.replace(/~+$/, "")}~~${closed}`);
    const closed2 = await makeClosedMandate({ agentKey: agent, open, payment: payment(), transactionId: "tx-2" });
    expect(mandateChainHash(open, closed2)).not.toBe(h);
  });
});
