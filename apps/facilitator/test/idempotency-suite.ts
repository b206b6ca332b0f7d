/**
 * Settle-once behaviour, run against each ledger backend (PGlite and PostgreSQL).
 * `open` returns a fresh ledger on the backend's shared store each call, so two calls model
 * two facilitator processes.
 */
import { expect, it } from "vitest";
import { Reason } from "@tollgate/core";
import { createFacilitatorApp } from "../src/app.ts";
import type { Ledger } from "../src/ledger/ledger.ts";
import { body, nonce, post, stubFacilitator, stubScheme } from "./helpers.ts";

export function idempotencySuite(open: () => Promise<Ledger>) {
  it("50 concurrent /settle of one payload: one settlement, 50 identical answers, replayed later", async () => {
    const ledger = await open();
    const { scheme, facilitator } = stubFacilitator(stubScheme(40));
    const app = createFacilitatorApp({ facilitator, ledger, settle: { pollMs: 10 } });
    const b = body();
    const responses = await Promise.all(Array.from({ length: 50 }, () => app.request(post("/settle", b))));
    const texts = await Promise.all(responses.map((r) => r.text()));
    expect(responses.every((r) => r.status === 200)).toBe(true);
    expect(scheme.settleCalls).toBe(1);
    expect(new Set(texts).size).toBe(1);
    const first = JSON.parse(texts[0]!);
    expect(first).toMatchObject({ success: true, network: b.paymentRequirements.network, transaction: "0x" + "1".padStart(64, "0") });

    // Settled again later (a client retrying): the stored success, not a new transaction.
    const again = await app.request(post("/settle", b));
    expect(again.status).toBe(200);
    expect(await again.text()).toBe(texts[0]);
    expect(scheme.settleCalls).toBe(1);

    const key = `${b.paymentRequirements.network}|${b.paymentRequirements.asset.toLowerCase()}|${b.paymentPayload.payload.authorization && (b.paymentPayload.payload.authorization as { from: string }).from.toLowerCase()}|${(b.paymentPayload.payload.authorization as { nonce: string }).nonce}`;
    const row = await ledger.get(key);
    expect(row).toMatchObject({ status: "settled", attempts: 1, amount: "10000", transaction: first.transaction });
    await app.audit.drain();
    const events = await ledger.events(key);
    expect(events.filter((e) => e.kind === "settle")).toHaveLength(51);
    expect(events.filter((e) => e.outcome === "settled")).toHaveLength(1);
    await ledger.close();
  });

  it("two facilitator instances sharing the store settle a payload once", async () => {
    const [l1, l2] = [await open(), await open()];
    const scheme = stubScheme(60);
    const a1 = createFacilitatorApp({ facilitator: stubFacilitator(scheme).facilitator, ledger: l1, settle: { pollMs: 10 } });
    const a2 = createFacilitatorApp({ facilitator: stubFacilitator(scheme).facilitator, ledger: l2, settle: { pollMs: 10 } });
    const b = body();
    const responses = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a1 : a2).request(post("/settle", b))));
    const texts = await Promise.all(responses.map((r) => r.text()));
    expect(scheme.settleCalls).toBe(1);
    expect(new Set(texts).size).toBe(1);
    expect(JSON.parse(texts[0]!).success).toBe(true);
    await l1.close();
    await l2.close();
  });

  it("refuses a different payload for an authorization already settled (same payer and nonce)", async () => {
    const ledger = await open();
    const { scheme, facilitator } = stubFacilitator(stubScheme(5));
    const app = createFacilitatorApp({ facilitator, ledger });
    const n = nonce();
    const first = await app.request(post("/settle", body({ nonce: n })));
    expect((await first.json()).success).toBe(true);
    const other = await app.request(post("/settle", body({ nonce: n }))); // new signature, same key
    expect(other.status).toBe(409);
    expect(await other.json()).toMatchObject({ success: false, errorReason: Reason.authorizationReused, transaction: "" });
    expect(scheme.settleCalls).toBe(1);
    await ledger.close();
  });

  it("payment-identifier: same id and payload replays; same id with another payload conflicts", async () => {
    const ledger = await open();
    const { scheme, facilitator } = stubFacilitator(stubScheme(5));
    const app = createFacilitatorApp({ facilitator, ledger });
    const id = `pay_${nonce().slice(2, 34)}`;
    const b = body({ id });
    const first = await (await app.request(post("/settle", b))).text();
    const replay = await app.request(post("/settle", b));
    expect(await replay.text()).toBe(first);
    const conflict = await app.request(post("/settle", body({ id })));
    expect(conflict.status).toBe(409);
    expect(await conflict.json()).toMatchObject({ success: false, errorReason: Reason.paymentIdentifierConflict });
    expect(scheme.settleCalls).toBe(1);
    // Another payer may use the same id: identifiers are scoped per payer.
    const otherPayer = await app.request(post("/settle", body({ id, from: "0x00000000000000000000000000000000000000a1" })));
    expect((await otherPayer.json()).success).toBe(true);
    expect(scheme.settleCalls).toBe(2);
    await ledger.close();
  });

  it("a failed settlement answers all concurrent waiters once, and a later retry may settle", async () => {
    const ledger = await open();
    const scheme = stubScheme(30);
    scheme.failWith = Reason.insufficientFunds;
    const app = createFacilitatorApp({ facilitator: stubFacilitator(scheme).facilitator, ledger, settle: { pollMs: 10 } });
    const b = body();
    const texts = await Promise.all(Array.from({ length: 10 }, async () => (await app.request(post("/settle", b))).text()));
    expect(scheme.settleCalls).toBe(1);
    expect(new Set(texts).size).toBe(1);
    expect(JSON.parse(texts[0]!)).toMatchObject({ success: false, errorReason: Reason.insufficientFunds });
    scheme.failWith = undefined; // the payer topped up: the same authorization is still unspent
    const retry = await app.request(post("/settle", b));
    expect((await retry.json()).success).toBe(true);
    expect(scheme.settleCalls).toBe(2);
    await ledger.close();
  });

  it("a duplicate waits only so long, then answers settlement_pending without settling", async () => {
    const [l1, l2] = [await open(), await open()];
    const scheme = stubScheme(600);
    const slow = createFacilitatorApp({ facilitator: stubFacilitator(scheme).facilitator, ledger: l1 });
    const impatient = createFacilitatorApp({ facilitator: stubFacilitator(scheme).facilitator, ledger: l2, settle: { waitMs: 100, pollMs: 20 } });
    const b = body();
    const first = slow.request(post("/settle", b));
    await new Promise((r) => setTimeout(r, 150));
    const second = await impatient.request(post("/settle", b));
    expect(await second.json()).toMatchObject({ success: false, errorReason: Reason.settlementPending, transaction: "" });
    expect((await (await first).json()).success).toBe(true);
    expect(scheme.settleCalls).toBe(1);
    await l1.close();
    await l2.close();
  });

  it("a claim whose settler died is taken over after its lease, only with the same content", async () => {
    const ledger = await open();
    const n = nonce().slice(2);
    const entry = { key: `eip155:1|0xa|0xb|${n}`, network: "eip155:1", scheme: "exact", asset: "0xa", payer: "0xb", payee: "0xc", amount: "5", nonce: n, requestHash: "h1" };
    expect(await ledger.claim(entry, "dead", 1)).toEqual({ claimed: true });
    await new Promise((r) => setTimeout(r, 20));
    expect((await ledger.claim({ ...entry, requestHash: "h2" }, "intruder", 60_000)).claimed).toBe(false);
    expect(await ledger.claim(entry, "heir", 60_000)).toEqual({ claimed: true });
    expect((await ledger.claim(entry, "third", 60_000)).claimed).toBe(false); // lease live again
    expect(await ledger.complete(entry.key, "dead", { success: true, transaction: "0x1", network: "eip155:1" })).toBe(false);
    expect(await ledger.get(entry.key)).toMatchObject({ status: "pending", attempts: 2 });
    await ledger.close();
  });
}
