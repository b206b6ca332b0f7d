/**
 * Settle-once and answer-once, run against each ledger backend (PGlite and PostgreSQL).
 * `open` returns a fresh ledger on the backend's shared store each call, so two calls model
 * two facilitator processes.
 */
import { expect, it } from "vitest";
import { Reason } from "@tollgate/core";
import { createFacilitatorApp } from "../src/app.ts";
import type { Ledger, PaymentEntry } from "../src/ledger/ledger.ts";
import { paymentEntry } from "../src/payment.ts";
import { body, keyOf, nonce, OTHER_PAYER_KEY, post, stubFacilitator, stubScheme } from "./helpers.ts";

const EXT = "tollgate-settlement";
const tx = (n: number) => "0x" + n.toString(16).padStart(64, "0");

export function idempotencySuite(open: () => Promise<Ledger>) {
  it("50 concurrent /settle of one payload: one settlement, one success, 49 duplicate_settlement naming it; a later copy too", async () => {
    const ledger = await open();
    const { scheme, facilitator } = stubFacilitator(stubScheme(40));
    const app = createFacilitatorApp({ facilitator, ledger, settle: { pollMs: 10 } });
    const b = body();
    const responses = await Promise.all(Array.from({ length: 50 }, () => app.request(post("/settle", b))));
    const answers = await Promise.all(responses.map((r) => r.json()));
    expect(responses.every((r) => r.status === 200)).toBe(true);
    expect(scheme.settleCalls).toBe(1);
    const successes = answers.filter((a) => a.success);
    expect(successes).toHaveLength(1);
    expect(successes[0]).toMatchObject({ success: true, network: b.paymentRequirements.network, transaction: tx(1) });
    const duplicates = answers.filter((a) => !a.success);
    expect(duplicates).toHaveLength(49);
    for (const d of duplicates) {
      expect(d).toMatchObject({ success: false, errorReason: Reason.duplicateSettlement, transaction: "", extensions: { [EXT]: { status: "settled", transaction: tx(1) } } });
    }

    // Settled again later (a replayed header): refused, no new transaction.
    const again = await (await app.request(post("/settle", b))).json();
    expect(again).toMatchObject({ success: false, errorReason: Reason.duplicateSettlement, transaction: "" });
    expect(scheme.settleCalls).toBe(1);

    const row = await ledger.get(keyOf(b));
    expect(row).toMatchObject({ status: "settled", answered: true, attempts: 1, amount: "10000", transaction: tx(1) });
    await app.audit.drain();
    const events = (await ledger.events(keyOf(b))).filter((e) => e.kind === "settle");
    expect(events).toHaveLength(51);
    expect(events.filter((e) => e.outcome === "settled")).toHaveLength(1);
    expect(events.filter((e) => e.outcome === "duplicate")).toHaveLength(50);
    await ledger.close();
  });

  it("two facilitator instances sharing the store: one settlement, one success", async () => {
    const [l1, l2] = [await open(), await open()];
    const scheme = stubScheme(60);
    const a1 = createFacilitatorApp({ facilitator: stubFacilitator(scheme).facilitator, ledger: l1, settle: { pollMs: 10 } });
    const a2 = createFacilitatorApp({ facilitator: stubFacilitator(scheme).facilitator, ledger: l2, settle: { pollMs: 10 } });
    const b = body();
    const responses = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a1 : a2).request(post("/settle", b))));
    const answers = await Promise.all(responses.map((r) => r.json()));
    expect(scheme.settleCalls).toBe(1);
    expect(answers.filter((a) => a.success)).toHaveLength(1);
    expect(answers.filter((a) => a.errorReason === Reason.duplicateSettlement)).toHaveLength(19);
    await l1.close();
    await l2.close();
  });

  it("another payload for an authorization already settled (same payer and nonce): 200 invalid_payload_authorization_reused", async () => {
    const ledger = await open();
    const { scheme, facilitator } = stubFacilitator(stubScheme(5));
    const app = createFacilitatorApp({ facilitator, ledger });
    const n = nonce();
    const first = await app.request(post("/settle", body({ nonce: n })));
    expect((await first.json()).success).toBe(true);
    const other = await app.request(post("/settle", body({ nonce: n, validBefore: "99999999998" }))); // signed anew, same key
    expect(other.status).toBe(200);
    expect(await other.json()).toMatchObject({ success: false, errorReason: Reason.authorizationReused, transaction: "" });
    expect(scheme.settleCalls).toBe(1);
    await ledger.close();
  });

  it("payment-identifier: same id and payload → the stored success marked replay; another payload → conflict at 200; ids are per verified payer", async () => {
    const ledger = await open();
    const { scheme, facilitator } = stubFacilitator(stubScheme(20));
    const app = createFacilitatorApp({ facilitator, ledger, settle: { pollMs: 10 } });
    const id = `pay_${nonce().slice(2, 34)}`;
    const b = body({ id });
    // Concurrent copies: one success, the rest replays of it.
    const answers = await Promise.all(Array.from({ length: 8 }, async () => (await app.request(post("/settle", b))).json()));
    const fresh = answers.filter((a) => a.success && !a.extensions?.[EXT]?.replay);
    const replays = answers.filter((a) => a.success && a.extensions?.[EXT]?.replay === true);
    expect(fresh).toHaveLength(1);
    expect(replays).toHaveLength(7);
    for (const r of replays) expect(r).toMatchObject({ ...fresh[0], extensions: { [EXT]: { status: "settled", replay: true, transaction: tx(1) } } });
    const later = await (await app.request(post("/settle", b))).json();
    expect(later.extensions[EXT].replay).toBe(true);
    // The same payload without its identifier is a plain duplicate.
    const { extensions: _e, ...withoutId } = b.paymentPayload;
    expect(await (await app.request(post("/settle", { ...b, paymentPayload: withoutId }))).json()).toMatchObject({ success: false, errorReason: Reason.duplicateSettlement });

    const conflict = await app.request(post("/settle", body({ id })));
    expect(conflict.status).toBe(200);
    expect(await conflict.json()).toMatchObject({ success: false, errorReason: Reason.paymentIdentifierConflict, transaction: "" });
    // Same authorization, same id, other content: a conflict too.
    const n = nonce();
    const id2 = `pay_${nonce().slice(2, 34)}`;
    expect((await (await app.request(post("/settle", body({ nonce: n, id: id2 })))).json()).success).toBe(true);
    expect(await (await app.request(post("/settle", body({ nonce: n, id: id2, validBefore: "99999999998" })))).json()).toMatchObject({ errorReason: Reason.paymentIdentifierConflict });
    expect(scheme.settleCalls).toBe(2);
    // Another payer may use the same id: identifiers are scoped per (verified) payer.
    const otherPayer = await app.request(post("/settle", body({ id, key: OTHER_PAYER_KEY })));
    expect((await otherPayer.json()).success).toBe(true);
    expect(scheme.settleCalls).toBe(3);
    await ledger.close();
  });

  it("a failure that moved nothing answers every waiter once, and a later retry may settle", async () => {
    const ledger = await open();
    const scheme = stubScheme(30);
    scheme.failWith = Reason.insufficientFunds;
    const app = createFacilitatorApp({ facilitator: stubFacilitator(scheme).facilitator, ledger, settle: { pollMs: 10 } });
    const b = body();
    const texts = await Promise.all(Array.from({ length: 10 }, async () => (await app.request(post("/settle", b))).text()));
    expect(scheme.settleCalls).toBe(1);
    expect(new Set(texts).size).toBe(1);
    expect(JSON.parse(texts[0]!)).toMatchObject({ success: false, errorReason: Reason.insufficientFunds, transaction: "" });
    scheme.failWith = undefined; // the payer topped up: the same authorization is still unspent
    const retry = await app.request(post("/settle", b));
    expect((await retry.json()).success).toBe(true);
    expect(scheme.settleCalls).toBe(2);
    await ledger.close();
  });

  it("a failure mined on-chain (reverted) is never sent again: later copies get that failure", async () => {
    const ledger = await open();
    const scheme = stubScheme(5);
    scheme.revertWith = Reason.invalidTransactionState;
    const app = createFacilitatorApp({ facilitator: stubFacilitator(scheme).facilitator, ledger, settle: { pollMs: 10 } });
    const b = body();
    const first = await (await app.request(post("/settle", b))).json();
    expect(first).toMatchObject({ success: false, errorReason: Reason.invalidTransactionState, transaction: "", extensions: { [EXT]: { status: "failed", transaction: tx(1) } } });
    scheme.revertWith = undefined;
    const again = await (await app.request(post("/settle", b))).json();
    expect(again).toMatchObject({ success: false, errorReason: Reason.invalidTransactionState, transaction: "" });
    expect(scheme.settleCalls).toBe(1);
    expect(await ledger.get(keyOf(b))).toMatchObject({ status: "failed", transaction: tx(1) });
    await ledger.close();
  });

  it("a request for a row being settled waits only so long, then answers settlement_pending (no hash in transaction)", async () => {
    const [l1, l2] = [await open(), await open()];
    const scheme = stubScheme(600);
    const slow = createFacilitatorApp({ facilitator: stubFacilitator(scheme).facilitator, ledger: l1 });
    const impatient = createFacilitatorApp({ facilitator: stubFacilitator(scheme).facilitator, ledger: l2, settle: { waitMs: 100, pollMs: 20 } });
    const b = body();
    const first = slow.request(post("/settle", b));
    await new Promise((r) => setTimeout(r, 150));
    const second = await impatient.request(post("/settle", b));
    expect(await second.json()).toMatchObject({ success: false, errorReason: Reason.settlementPending, transaction: "", extensions: { [EXT]: { status: "pending" } } });
    expect((await (await first).json()).success).toBe(true);
    expect(scheme.settleCalls).toBe(1);
    await l1.close();
    await l2.close();
  });

  it("settled by the chain after a pending answer: the first /settle after it gets the success, the next a duplicate", async () => {
    const ledger = await open();
    const { scheme, facilitator } = stubFacilitator(stubScheme(5));
    const app = createFacilitatorApp({ facilitator, ledger, settle: { pollMs: 10, waitMs: 50 } });
    const b = body();
    const key = keyOf(b);
    // What the engine leaves after a receipt timeout: a claimed row, a pending answer, a hash.
    const entry = entryFor(b, key);
    expect(await ledger.claim(entry, "settler", 60_000)).toEqual({ claimed: true });
    const pending = pendingResult(entry.network, entry.payer, tx(7));
    expect(await ledger.complete(key, "settler", pending)).toBe(true);
    const meanwhile = await (await app.request(post("/settle", b))).json();
    expect(meanwhile).toMatchObject({ success: false, errorReason: Reason.settlementPending, transaction: "", extensions: { [EXT]: { status: "pending", transaction: tx(7) } } });
    // The reconciler reads the receipt.
    expect(await ledger.resolve(key, { success: true, transaction: tx(7), network: b.paymentRequirements.network, payer: entry.payer })).toBe(true);
    const [x, y] = await Promise.all([app.request(post("/settle", b)), app.request(post("/settle", b))]).then((rs) => Promise.all(rs.map((r) => r.json())));
    expect([x, y].filter((a) => a.success)).toEqual([{ success: true, transaction: tx(7), network: b.paymentRequirements.network, payer: entry.payer }]);
    expect([x, y].filter((a) => a.errorReason === Reason.duplicateSettlement)).toHaveLength(1);
    expect(scheme.settleCalls).toBe(0);
    await ledger.close();
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
    expect(await ledger.complete(entry.key, "dead", settled("0x1"))).toBe(false);
    expect(await ledger.get(entry.key)).toMatchObject({ status: "pending", attempts: 2 });
    await ledger.close();
  });

  it("a failed row is claimable again only when nothing sent for it was mined", async () => {
    const ledger = await open();
    const base = (n: string) => ({ key: `eip155:1|0xa|0xb|${n}`, network: "eip155:1", scheme: "exact", asset: "0xa", payer: "0xb", payee: "0xc", amount: "5", nonce: n, requestHash: "h1" });
    const failed = { success: false, errorReason: "x", transaction: "", network: "eip155:1" as const };
    // Nothing sent (an RPC outage before broadcast): may be retried.
    const quiet = base(nonce());
    await ledger.claim(quiet, "t", 60_000);
    expect(await ledger.complete(quiet.key, "t", { status: "failed", onChain: false, transaction: "", response: failed })).toBe(true);
    expect((await ledger.claim(quiet, "t2", 60_000)).claimed).toBe(true);
    // Reverted (reported by the scheme): not again.
    const reverted = base(nonce());
    await ledger.claim(reverted, "t", 60_000);
    expect(await ledger.complete(reverted.key, "t", { status: "failed", onChain: true, transaction: "0xr", response: failed })).toBe(true);
    expect((await ledger.claim(reverted, "t2", 60_000)).claimed).toBe(false);
    // Reverted (reported by the chain log, then failed by the reconciler): not again either.
    const logged = base(nonce());
    await ledger.claim(logged, "t", 60_000);
    await ledger.recordTransaction({ keys: [logged.key], hash: "0xl", network: "eip155:1", signer: "0xs", nonce: 1 });
    await ledger.markOutcomes("0xl", [{ key: logged.key, outcome: "reverted" }]);
    expect(await ledger.resolve(logged.key, failed)).toBe(true);
    expect((await ledger.claim(logged, "t2", 60_000)).claimed).toBe(false);
    // Dropped (never mined, nothing spent): may be retried.
    const dropped = base(nonce());
    await ledger.claim(dropped, "t", 60_000);
    await ledger.recordTransaction({ keys: [dropped.key], hash: "0xd", network: "eip155:1", signer: "0xs", nonce: 2 });
    await ledger.markOutcomes("0xd", [{ key: dropped.key, outcome: "dropped" }]);
    expect(await ledger.resolve(dropped.key, failed)).toBe(true);
    expect((await ledger.claim(dropped, "t2", 60_000)).claimed).toBe(true);
    await ledger.close();
  });
  it("the write-ahead is fenced: a payment finished elsewhere refuses its transaction (nothing recorded), and a stale failure verdict is refused", async () => {
    const ledger = await open();
    const base = (n: string) => ({ key: `eip155:1|0xa|0xb|${n}`, network: "eip155:1", scheme: "exact", asset: "0xa", payer: "0xb", payee: "0xc", amount: "5", nonce: n, requestHash: "h1" });
    const failed = { success: false, errorReason: "x", transaction: "", network: "eip155:1" as const };
    // A settler claimed, its lease ran out while it was slow, and the row was failed meanwhile.
    const late = base(nonce());
    const live = base(nonce());
    await ledger.claim(late, "slow", 60_000);
    await ledger.claim(live, "other", 60_000);
    expect(await ledger.resolve(late.key, failed, null)).toBe(true);
    // One transaction carrying both: refused whole, naming the finished one; nothing recorded.
    const hash = tx(100);
    expect(await ledger.recordTransaction({ keys: [live.key, late.key], hash, network: "eip155:1", signer: "0xs", nonce: 7 })).toEqual([late.key]);
    expect((await ledger.get(live.key))?.transaction).toBeNull();
    // So the failed row is still claimable (nothing of it in flight), and the live one still its settler's.
    expect((await ledger.claim(late, "retry", 60_000)).claimed).toBe(true);
    // Two transactions in one group commit: only the one with the finished payment is refused.
    const done = base(nonce());
    await ledger.claim(done, "t", 60_000);
    expect(await ledger.resolve(done.key, failed)).toBe(true);
    const [a, b] = await Promise.all([
      ledger.recordTransaction({ keys: [live.key], hash: tx(101), network: "eip155:1", signer: "0xs", nonce: 8 }),
      ledger.recordTransaction({ keys: [done.key], hash: tx(102), network: "eip155:1", signer: "0xs", nonce: 9 }),
    ]);
    expect(a).toEqual([]);
    expect(b).toEqual([done.key]);
    expect((await ledger.get(live.key))?.transaction).toBe(tx(101));
    // A failure judged on the row before that write-ahead (it named no transaction then) is refused;
    // judged on what the row names now, it applies.
    expect(await ledger.resolve(live.key, failed, null)).toBe(false);
    expect((await ledger.get(live.key))?.status).toBe("pending");
    expect(await ledger.resolve(live.key, failed, tx(101))).toBe(true);
    await ledger.close();
  });
}

function settled(transaction: string) {
  return { status: "settled" as const, transaction, response: { success: true, transaction, network: "eip155:1" as const } };
}

function pendingResult(network: string, payer: string, transaction: string) {
  return {
    status: "pending" as const,
    transaction,
    response: { success: false, errorReason: Reason.settlementPending, transaction: "", network: network as `${string}:${string}`, payer, extensions: { [EXT]: { status: "pending", transaction } } },
  };
}

function entryFor(b: ReturnType<typeof body>, key: string): PaymentEntry {
  return paymentEntry({ x402Version: 2, payload: b.paymentPayload, requirements: b.paymentRequirements }, { payer: key.split("|")[2]!, key }, undefined);
}
