// The paywall's batch-settlement branch with a stub facilitator (no chain): a deposit settles
// before the handler, a voucher is checked off-chain against a fresh snapshot (else /verify),
// the charge is committed durably only after the handler succeeded, one request per channel,
// the spec's receipt shape; and the file channel store.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeBase64Json, type FacilitatorClient, type PaymentPayload, type PaymentRequired, type PaymentRequirements, type SettleResponse } from "@tollgate/core";
import { batchSettlementEvmClient, batchSettlementEvmServer } from "@tollgate/evm";
import { getAddress } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterEach, describe, expect, it } from "vitest";
import { claimAndSettle, createPaywall, fileChannelStore, memoryChannelStore, setCharge, settleChannelsEvery, type ChannelStore, type Decision, type PaidDecision, type ChannelRecord } from "../src/index.ts";

const token = getAddress(`0x${"cd".repeat(20)}`);
const payTo = getAddress(`0x${"ef".repeat(20)}`);
const authorizer = getAddress(`0x${"ab".repeat(20)}`);
const payer = privateKeyToAccount(`0x${"01".repeat(32)}`);
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function stubFacilitator() {
  const calls: string[] = [];
  let balance = 0n;
  const client: FacilitatorClient = {
    async supported() {
      return { kinds: [{ x402Version: 2, scheme: "batch-settlement", network: "eip155:31337", extra: { receiverAuthorizer: authorizer } }], extensions: [], signers: {} };
    },
    async verify(payload) {
      calls.push(`verify:${(payload.payload as { type: string }).type}`);
      return { isValid: true, payer: payer.address, extra: { balance: balance.toString(), totalClaimed: "0", withdrawRequestedAt: 0, refundNonce: "0" } } as never;
    },
    async settle(payload) {
      const p = payload.payload as { type: string; deposit?: { amount: string } };
      calls.push(`settle:${p.type}`);
      balance += BigInt(p.deposit?.amount ?? "0");
      return { success: true, transaction: "0x" + "77".repeat(32), network: "eip155:31337", payer: payer.address, amount: p.deposit?.amount ?? "", extra: { channelState: { balance: balance.toString(), totalClaimed: "0", withdrawRequestedAt: 0, refundNonce: "0" } } } as SettleResponse;
    },
  };
  return { client, calls };
}

function setup(store: ChannelStore, maxSnapshotAgeMs?: number) {
  const f = stubFacilitator();
  const paywall = createPaywall({
    facilitator: f.client,
    schemes: [batchSettlementEvmServer({ assets: [{ network: "eip155:31337", address: token, decimals: 6, name: "USD Coin", version: "2", symbol: "USDC" }] })],
    routes: { "GET /paid": { scheme: "batch-settlement", price: { amount: "1000", asset: token }, network: "eip155:31337", payTo } },
    channels: { store, ...(maxSnapshotAgeMs !== undefined ? { maxSnapshotAgeMs } : {}) },
    checkAtStart: false,
  });
  const client = batchSettlementEvmClient({ account: payer, depositMultiplier: 5 });
  let offer: PaymentRequirements | undefined;
  async function request(inner?: Record<string, unknown>): Promise<Decision> {
    if (!offer) {
      const first = await paywall.handle({ method: "GET", url: "http://shop.test/paid", headers: () => undefined });
      offer = (JSON.parse(Buffer.from((first as { headers: Record<string, string> }).headers["PAYMENT-REQUIRED"]!, "base64").toString()) as PaymentRequired).accepts[0]!;
    }
    const payload: PaymentPayload = { x402Version: 2, resource: { url: "http://shop.test/paid" }, accepted: offer, payload: inner ?? (await client.createPayload(offer, { x402Version: 2 })) };
    const header = encodeBase64Json(payload);
    return paywall.handle({ method: "GET", url: "http://shop.test/paid", headers: (n) => (n.toLowerCase() === "payment-signature" ? header : undefined) });
  }
  return { paywall, client, request, calls: f.calls, offer: () => offer! };
}

const receiptOf = (headers: Record<string, string>) => JSON.parse(Buffer.from(headers["PAYMENT-RESPONSE"]!, "base64").toString()) as SettleResponse & { extra: { chargedAmount: string; channelState: Record<string, unknown> } };
const errorOf = (d: Decision) => (JSON.parse(Buffer.from((d as { headers: Record<string, string> }).headers["PAYMENT-REQUIRED"]!, "base64").toString()) as PaymentRequired).error;

describe("paywall channels", () => {
  it("settles the deposit before the handler, serves vouchers off-chain, commits after success", async () => {
    const store = memoryChannelStore();
    const s = setup(store);
    const first = (await s.request()) as PaidDecision;
    expect(first.kind).toBe("paid");
    expect(s.calls).toEqual(["verify:deposit", "settle:deposit"]); // the money is in before anything is served
    const [pending] = await store.list();
    expect(pending!.chargedCumulativeAmount).toBe("0"); // nothing charged until the handler succeeded
    const done = await first.settle({ status: 200 });
    const r1 = receiptOf((done as { headers: Record<string, string> }).headers);
    expect(r1).toMatchObject({ success: true, transaction: "0x" + "77".repeat(32), amount: "5000", extra: { chargedAmount: "1000", channelState: { chargedCumulativeAmount: "1000", balance: "5000" } } });

    const second = (await s.request()) as PaidDecision;
    expect(s.calls).toHaveLength(2); // voucher checked locally: no facilitator call
    const r2 = receiptOf(((await second.settle({ status: 200 })) as { headers: Record<string, string> }).headers);
    expect(r2).toMatchObject({ success: true, transaction: "", amount: "", extra: { chargedAmount: "1000", channelState: { chargedCumulativeAmount: "2000" } } });
    expect((await store.list())[0]!.signedMaxClaimable).toBe("2000");
  });

  it("a failed handler commits nothing; the same voucher is then accepted again", async () => {
    const store = memoryChannelStore();
    const s = setup(store);
    await ((await s.request()) as PaidDecision).settle({ status: 200 });
    const inner = await s.client.createPayload(s.offer(), { x402Version: 2 });
    const failed = (await s.request(inner)) as PaidDecision;
    expect(await failed.settle({ status: 500 })).toEqual({ kind: "ok", headers: {} });
    expect((await store.list())[0]!.chargedCumulativeAmount).toBe("1000");
    const retried = (await s.request(inner)) as PaidDecision;
    expect(retried.kind).toBe("paid");
    await retried.settle({ status: 200 });
    expect((await store.list())[0]!.chargedCumulativeAmount).toBe("2000");
  });

  it("a failed handler on the deposit's request charges nothing, and its error carries the deposit's receipt", async () => {
    const store = memoryChannelStore();
    const s = setup(store);
    const first = (await s.request()) as PaidDecision;
    const failed = (await first.settle({ status: 503 })) as { kind: string; headers: Record<string, string> };
    expect(failed.kind).toBe("ok");
    expect(receiptOf(failed.headers)).toMatchObject({ success: true, transaction: "0x" + "77".repeat(32), amount: "5000", extra: { chargedAmount: "0", channelState: { chargedCumulativeAmount: "0", balance: "5000" } } });
    expect((await store.list())[0]!.chargedCumulativeAmount).toBe("0");
  });

  it("one request per channel: the second is answered channel_busy until the first is settled", async () => {
    const s = setup(memoryChannelStore());
    await ((await s.request()) as PaidDecision).settle({ status: 200 });
    const first = (await s.request()) as PaidDecision;
    const inner = await s.client.createPayload(s.offer(), { x402Version: 2 });
    const busy = await s.request(inner);
    expect(busy.kind).toBe("respond");
    expect(errorOf(busy)).toMatch(/^invalid_batch_settlement_evm_channel_busy/);
    await s.client.onPaymentResponse({ requirements: s.offer(), payload: inner, status: 402 });
    await first.settle({ status: 200 });
    expect((await s.request()).kind).toBe("paid");
  });

  it("two instances sharing one store: a voucher is served by one of them at a time, and once", async () => {
    const store = memoryChannelStore();
    const a = setup(store);
    const b = setup(store); // another server instance: its own paywall and in-process lock
    await ((await a.request()) as PaidDecision).settle({ status: 200 });
    const inner = await a.client.createPayload(a.offer(), { x402Version: 2 });
    const onA = (await a.request(inner)) as PaidDecision;
    expect(onA.kind).toBe("paid");
    // The same voucher at the other instance while the first serves it: the store's lease says busy.
    const onB = await b.request(inner);
    expect(errorOf(onB)).toMatch(/^invalid_batch_settlement_evm_channel_busy/);
    await onA.settle({ status: 200 });
    // Afterwards the other instance sees the charge: the same voucher again is the corrective 402.
    const again = await b.request(inner);
    expect(errorOf(again)).toBe("invalid_batch_settlement_evm_cumulative_amount_mismatch");
    expect((await store.list())[0]!.chargedCumulativeAmount).toBe("2000");
  });

  it("a request that outlives its hold on a shared store commits nothing and releases nothing", async () => {
    const memory = memoryChannelStore();
    // Leases of 30 ms, as if the handler had run past maxTimeoutSeconds + 60 s.
    const store: ChannelStore = { ...memory, leases: { ...memory.leases!, take: (id, owner) => memory.leases!.take(id, owner, 30) } };
    const a = setup(store);
    const b = setup(store);
    await ((await a.request()) as PaidDecision).settle({ status: 200 });
    const inner = await a.client.createPayload(a.offer(), { x402Version: 2 });
    const slow = (await a.request(inner)) as PaidDecision;
    await new Promise((r) => setTimeout(r, 60));
    const onB = (await b.request(inner)) as PaidDecision;
    expect(onB.kind).toBe("paid");
    await onB.settle({ status: 200 });
    const late = await slow.settle({ status: 200 });
    expect(late.kind).toBe("respond");
    expect(errorOf(late as Decision)).toMatch(/^invalid_batch_settlement_evm_channel_busy.*outlived its hold/);
    expect((late as { headers: Record<string, string> }).headers["PAYMENT-RESPONSE"]).toBeUndefined();
    expect((await store.list())[0]!.chargedCumulativeAmount).toBe("2000"); // charged once
  });

  it("a forged voucher is refused before the channel is locked: the payer's own request is never kept busy by it", async () => {
    const s = setup(memoryChannelStore());
    await ((await s.request()) as PaidDecision).settle({ status: 200 });
    const first = (await s.request()) as PaidDecision; // holds the channel until settled
    const signedByPayer = await s.client.createPayload(s.offer(), { x402Version: 2 });
    await s.client.onPaymentResponse({ requirements: s.offer(), payload: signedByPayer, status: 402 }); // never sent: the client takes it back
    const forged = { ...(signedByPayer as Record<string, unknown>) };
    const voucher = forged.voucher as Record<string, unknown>;
    forged.voucher = { ...voucher, signature: await privateKeyToAccount(`0x${"02".repeat(32)}`).signMessage({ message: "not a voucher" }) };
    const refused = await s.request(forged);
    expect(errorOf(refused)).toMatch(/^invalid_batch_settlement_evm_voucher_signature/); // not channel_busy: the lock was never asked for
    await first.settle({ status: 200 });
    // While a forged voucher is being refused, the channel stays free for the real one.
    const calls = s.calls.length;
    await s.request(forged);
    expect((await s.request()).kind).toBe("paid");
    expect(s.calls).toHaveLength(calls); // neither asked the facilitator
  });

  it("a handler's charge below the price is what the channel commits; the client's next voucher follows it", async () => {
    const store = memoryChannelStore();
    const s = setup(store);
    await ((await s.request()) as PaidDecision).settle({ status: 200 }); // deposit + first request: 1000
    const second = (await s.request()) as PaidDecision;
    expect(() => setCharge(second.payment, "1001")).toThrow(/above the 1000/); // the voucher's price is the ceiling
    setCharge(second.payment, "25%");
    const done = (await second.settle({ status: 200 })) as { headers: Record<string, string> };
    const receipt = receiptOf(done.headers);
    expect(receipt.extra).toMatchObject({ chargedAmount: "250", channelState: { chargedCumulativeAmount: "1250" } });
    const [record] = await store.list();
    expect(record).toMatchObject({ chargedCumulativeAmount: "1250", signedMaxClaimable: "2000" }); // signed ceiling above the charge
    // The client reads the receipt, so its next voucher is 1250 + 1000, accepted without a corrective 402.
    await s.client.onPaymentResponse({ requirements: s.offer(), payload: (second.payment.payload as PaymentPayload).payload, status: 200, receipt });
    const third = (await s.request()) as PaidDecision;
    expect(third.kind).toBe("paid");
    await third.settle({ status: 200 });
    expect((await store.list())[0]).toMatchObject({ chargedCumulativeAmount: "2250", signedMaxClaimable: "2250" });
  });

  it("asks /verify when the snapshot is stale", async () => {
    const s = setup(memoryChannelStore(), 0);
    await ((await s.request()) as PaidDecision).settle({ status: 200 });
    await new Promise((r) => setTimeout(r, 2));
    await ((await s.request()) as PaidDecision).settle({ status: 200 });
    expect(s.calls).toEqual(["verify:deposit", "settle:deposit", "verify:voucher"]);
  });

  it("answers a cumulative mismatch with the corrective 402: channelState and voucherState", async () => {
    const s = setup(memoryChannelStore());
    await ((await s.request()) as PaidDecision).settle({ status: 200 });
    const stale = batchSettlementEvmClient({ account: payer });
    const d = await s.request(await stale.createPayload(s.offer(), { x402Version: 2 }));
    const required = JSON.parse(Buffer.from((d as { headers: Record<string, string> }).headers["PAYMENT-REQUIRED"]!, "base64").toString()) as PaymentRequired;
    expect(required.error).toBe("invalid_batch_settlement_evm_cumulative_amount_mismatch");
    expect(required.accepts[0]!.extra).toMatchObject({ channelState: { chargedCumulativeAmount: "1000", balance: "5000" }, voucherState: { signedMaxClaimable: "1000" } });
  });

  it("refuses a malformed payload with the field named", async () => {
    const s = setup(memoryChannelStore());
    const inner = (await s.client.createPayload((await s.request(), s.offer()), { x402Version: 2 })) as Record<string, unknown>;
    const d = await s.request({ ...inner, voucher: { ...(inner.voucher as object), maxClaimableAmount: "1e3" } });
    expect(errorOf(d)).toMatch(/^invalid_batch_settlement_evm_voucher_payload: paymentPayload\.payload\.voucher\.maxClaimableAmount/);
  });
});

describe("fileChannelStore", () => {
  const record = (id: string, charged: string): ChannelRecord => ({
    channelId: id,
    network: "eip155:31337",
    channelConfig: {},
    receiver: payTo.toLowerCase(),
    token: token.toLowerCase(),
    payer: payer.address.toLowerCase(),
    chargedCumulativeAmount: charged,
    signedMaxClaimable: charged,
    signature: "0x",
    balance: "10",
    totalClaimed: "0",
    withdrawRequestedAt: 0,
    refundNonce: "0",
    onchainSyncedAt: 0,
    lastRequestTimestamp: 0,
  });

  it("keeps records across instances (a restart), replaces atomically, refuses names that are not channel ids", async () => {
    const dir = mkdtempSync(join(tmpdir(), "channels-"));
    dirs.push(dir);
    const a = fileChannelStore(dir);
    const id = `0x${"12".repeat(32)}`;
    await a.put(record(id, "5"));
    await a.put(record(id, "6"));
    const b = fileChannelStore(dir);
    expect((await b.get(id))?.chargedCumulativeAmount).toBe("6");
    expect(await b.list()).toHaveLength(1);
    expect(readdirSync(dir)).toEqual([`${id}.json`]); // no temporary file left behind
    expect(await b.get("../../etc/passwd")).toBeUndefined();
    await expect(b.put(record("../x", "1"))).rejects.toThrow(/not a channel id/);
    await b.delete(id);
    expect(await a.get(id)).toBeUndefined();
  });
});

describe("claimAndSettle", () => {
  it("claims the unclaimed charges of a group in one payload, then sweeps; a filter picks channels with a pending withdrawal", async () => {
    const store = memoryChannelStore();
    const base = { network: "eip155:31337", receiver: payTo.toLowerCase(), token: token.toLowerCase(), payer: payer.address.toLowerCase(), signature: "0x01", balance: "9000", refundNonce: "0", onchainSyncedAt: 0, lastRequestTimestamp: 0 };
    const config = (salt: string) => ({ payer: payer.address, payerAuthorizer: payer.address, receiver: payTo, receiverAuthorizer: authorizer, token, withdrawDelay: 900, salt });
    await store.put({ ...base, channelId: `0x${"01".repeat(32)}`, channelConfig: config(`0x${"01".repeat(32)}`), chargedCumulativeAmount: "3000", signedMaxClaimable: "3000", totalClaimed: "1000", withdrawRequestedAt: 0 });
    await store.put({ ...base, channelId: `0x${"02".repeat(32)}`, channelConfig: config(`0x${"02".repeat(32)}`), chargedCumulativeAmount: "5000", signedMaxClaimable: "6000", totalClaimed: "0", withdrawRequestedAt: 1_700_000_000 });
    await store.put({ ...base, channelId: `0x${"03".repeat(32)}`, channelConfig: config(`0x${"03".repeat(32)}`), chargedCumulativeAmount: "2000", signedMaxClaimable: "2000", totalClaimed: "2000", withdrawRequestedAt: 0 });
    const sent: Array<Record<string, unknown>> = [];
    const facilitator: FacilitatorClient = {
      supported: async () => ({ kinds: [], extensions: [], signers: {} }),
      verify: async () => ({ isValid: true }),
      settle: async (p) => {
        sent.push(p.payload);
        const type = (p.payload as { type: string }).type;
        return { success: true, transaction: `0x${type === "claim" ? "aa" : "bb"}`, network: "eip155:31337", amount: type === "claim" ? "" : "7000" };
      },
    };
    const channels = batchSettlementEvmServer().channels;
    const urgent = await claimAndSettle({ store, facilitator, channels, filter: (r) => r.withdrawRequestedAt > 0 });
    expect(urgent).toMatchObject([{ channels: 1, claimed: "5000", claimTransactions: ["0xaa"], settleTransaction: "0xbb", settled: "7000" }]);
    expect(sent[0]).toMatchObject({ type: "claim", claims: [{ voucher: { maxClaimableAmount: "6000" }, totalClaimed: "5000" }] });
    expect(sent[1]).toMatchObject({ type: "settle", receiver: payTo, token });
    const rest = await claimAndSettle({ store, facilitator, channels });
    expect(rest).toMatchObject([{ channels: 1, claimed: "2000" }]);
    expect(await claimAndSettle({ store, facilitator, channels })).toEqual([]);
  });
});

describe("claimAndSettle next to requests", () => {
  it("a claim while a request holds the channel never writes over the request's charge", async () => {
    const memory = memoryChannelStore();
    // Plain writes made after the claim went out wait until the request has committed: without
    // the channel's lease the claim would write back the record it read before that commit.
    let afterClaim = false;
    let committedGate!: () => void;
    const requestCommitted = new Promise<void>((r) => (committedGate = r));
    const store: ChannelStore = { ...memory, put: async (r) => ((afterClaim ? await requestCommitted : undefined), memory.put(r)) };
    const s = setup(store);
    await ((await s.request()) as PaidDecision).settle({ status: 200 });
    const pending = (await s.request()) as PaidDecision; // holds the channel; will charge 2000
    const facilitator: FacilitatorClient = {
      supported: async () => ({ kinds: [], extensions: [], signers: {} }),
      verify: async () => ({ isValid: true }),
      settle: async (p) => {
        if ((p.payload as { type: string }).type === "claim") afterClaim = true;
        return { success: true, transaction: "0xaa", network: "eip155:31337", amount: "" };
      },
    };
    const claiming = claimAndSettle({ store, facilitator, channels: batchSettlementEvmServer().channels, settle: false });
    await new Promise((r) => setTimeout(r, 20));
    afterClaim = false;
    await pending.settle({ status: 200 });
    committedGate();
    expect((await claiming)[0]).toMatchObject({ channels: 1, claimed: "1000" });
    expect((await memory.list())[0]!.chargedCumulativeAmount).toBe("2000");
    // The next pass claims what the request added.
    expect((await claimAndSettle({ store, facilitator, channels: batchSettlementEvmServer().channels, settle: false }))[0]).toMatchObject({ claimed: "2000" });
  });
});

describe("settleChannelsEvery", () => {
  const base = { network: "eip155:31337", receiver: payTo.toLowerCase(), token: token.toLowerCase(), payer: payer.address.toLowerCase(), signature: "0x01", balance: "9000", refundNonce: "0", onchainSyncedAt: 0, lastRequestTimestamp: 0 };
  const record = (n: number, charged: string, withdrawRequestedAt = 0): ChannelRecord => {
    const id = `0x${n.toString(16).padStart(2, "0").repeat(32)}`;
    return { ...base, channelId: id, channelConfig: { payer: payer.address, payerAuthorizer: payer.address, receiver: payTo, receiverAuthorizer: authorizer, token, withdrawDelay: 900, salt: id }, chargedCumulativeAmount: charged, signedMaxClaimable: charged, totalClaimed: "0", withdrawRequestedAt };
  };
  /** A facilitator that takes 20 ms per settle and records what it was asked, and how many at once. */
  function slowFacilitator() {
    const claimed: string[][] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const facilitator: FacilitatorClient = {
      supported: async () => ({ kinds: [], extensions: [], signers: {} }),
      verify: async () => ({ isValid: true }),
      settle: async (p) => {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        await new Promise((r) => setTimeout(r, 20));
        inFlight--;
        const payload = p.payload as { type: string; claims?: Array<{ totalClaimed: string }> };
        if (payload.type === "claim") claimed.push(payload.claims!.map((c) => c.totalClaimed));
        return { success: true, transaction: "0xaa", network: "eip155:31337", amount: "" };
      },
    };
    return { facilitator, claimed, maxInFlight: () => maxInFlight };
  }
  const until = async (check: () => Promise<boolean> | boolean, ms = 5_000) => {
    const end = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > end) throw new Error("timed out");
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  it("claims a pending withdrawal's channel on the short pass, everything on the full one, one pass at a time; stop with flush claims what came after", async () => {
    const store = memoryChannelStore();
    await store.put(record(1, "3000"));
    await store.put(record(2, "5000", 1_700_000_000));
    const f = slowFacilitator();
    const passes: string[] = [];
    const loop = settleChannelsEvery({ store, facilitator: f.facilitator, channels: batchSettlementEvmServer().channels, everyMs: 400, withdrawalsEveryMs: 50, onResult: (_r, pass) => passes.push(pass) });
    try {
      await until(() => f.claimed.length >= 1);
      // The withdrawal pass came first and took only the channel whose withdrawal is pending.
      expect(f.claimed[0]).toEqual(["5000"]);
      expect((await store.get(record(2, "0").channelId))!.totalClaimed).toBe("5000");
      await until(() => passes.includes("all"));
      expect((await store.get(record(1, "0").channelId))!.totalClaimed).toBe("3000");
      // Nothing new: later passes send nothing.
      const sent = f.claimed.length;
      await new Promise((r) => setTimeout(r, 500));
      expect(f.claimed.length).toBe(sent);
      await store.put({ ...(await store.get(record(1, "0").channelId))!, chargedCumulativeAmount: "4000", signedMaxClaimable: "4000" });
    } finally {
      await loop.stop({ flush: true });
    }
    expect((await store.get(record(1, "0").channelId))!.totalClaimed).toBe("4000");
    expect(f.maxInFlight()).toBe(1);
    const after = f.claimed.length;
    await new Promise((r) => setTimeout(r, 500));
    expect(f.claimed.length).toBe(after); // stopped: no timer left
  });

  it("instances sharing a store take turns: of two passes at once, one claims", async () => {
    const store = memoryChannelStore();
    await store.put(record(6, "4000"));
    const f = slowFacilitator();
    const o = { store, facilitator: f.facilitator, channels: batchSettlementEvmServer().channels, everyMs: 600_000, withdrawalsEveryMs: 600_000 };
    const [one, two] = [settleChannelsEvery(o), settleChannelsEvery(o)];
    try {
      const [a, b] = await Promise.all([one.runNow(), two.runNow()]);
      expect([a.length, b.length].sort()).toEqual([0, 1]);
      expect(f.claimed).toEqual([["4000"]]);
      // The turn was given back: the next pass runs (and finds nothing new).
      expect(await two.runNow()).toEqual([]);
      await store.put({ ...(await store.get(record(6, "0").channelId))!, chargedCumulativeAmount: "5000", signedMaxClaimable: "5000" });
      expect(await one.runNow()).toMatchObject([{ claimed: "1000" }]);
    } finally {
      await one.stop();
      await two.stop();
    }
  });

  it("refuses an interval a withdrawal could outrun, and a withdrawal pass slower than the full one", () => {
    const o = { store: memoryChannelStore(), facilitator: slowFacilitator().facilitator, channels: batchSettlementEvmServer().channels };
    expect(() => settleChannelsEvery({ ...o, everyMs: 15 * 60_000 })).toThrow(/everyMs must be .* below 840000 \(14 min\)/);
    expect(() => settleChannelsEvery({ ...o, everyMs: Number.NaN })).toThrow(RangeError);
    expect(() => settleChannelsEvery({ ...o, everyMs: 60_000, withdrawalsEveryMs: 120_000 })).toThrow(/withdrawalsEveryMs/);
  });

  it("a pass that throws is reported and the loop goes on; runNow returns a full pass's results", async () => {
    const store = memoryChannelStore();
    await store.put(record(3, "2000"));
    let failList = 1;
    const failing: typeof store = { ...store, list: async () => (failList-- > 0 ? Promise.reject(new Error("disk gone")) : store.list()) };
    const errors: unknown[] = [];
    const f = slowFacilitator();
    const loop = settleChannelsEvery({ store: failing, facilitator: f.facilitator, channels: batchSettlementEvmServer().channels, everyMs: 100, withdrawalsEveryMs: 100, onError: (e) => errors.push(e) });
    try {
      await until(() => f.claimed.length === 1);
      expect(String(errors[0])).toMatch(/disk gone/);
      await store.put({ ...(await store.get(record(3, "0").channelId))!, chargedCumulativeAmount: "2500", signedMaxClaimable: "2500" });
      const results = await loop.runNow();
      expect(results).toMatchObject([{ channels: 1, claimed: "500" }]);
    } finally {
      await loop.stop();
    }
  });
});
