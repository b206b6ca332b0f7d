// The aggregate3 coalescer with a stub sender: grouping, reads-before-writes order, payer
// contention, payee credits, whole-call failure and the in-flight cap.
import type { Address, Hex } from "viem";
import { describe, expect, it } from "vitest";
import { createCallBatcher, type Aggregate3Call, type Aggregate3Result, type CallGroup } from "../src/index.ts";

const T = "0x00000000000000000000000000000000000000aa" as Address;
const call = (tag: string): Aggregate3Call => ({ target: T, callData: `0x${Buffer.from(tag).toString("hex")}` as Hex });
const tagOf = (c: Aggregate3Call) => Buffer.from(c.callData.slice(2), "hex").toString();
/** Echoes each call's tag back as its result; tags starting with "fail" fail. */
const echo = (calls: readonly Aggregate3Call[]): Aggregate3Result[] => calls.map((c) => ({ success: !tagOf(c).startsWith("fail"), returnData: c.callData }));
const group = (id: string, key: string, payee = "payee"): CallGroup => ({ reads: [call(`${id}.r1`), call(`${id}.r2`)], writes: [call(`${id}.w`)], key, credits: [payee] });

function recorder(delayMs = 5) {
  const sent: string[][] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const send = async (calls: readonly Aggregate3Call[]) => {
    sent.push(calls.map(tagOf));
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    await new Promise((r) => setTimeout(r, delayMs));
    inFlight--;
    return echo(calls);
  };
  return { sent, send, maxInFlight: () => maxInFlight };
}

describe("createCallBatcher", () => {
  it("puts concurrent groups of different payers in one call, reads first, and splits results back", async () => {
    const rec = recorder();
    const b = createCallBatcher({ send: rec.send });
    const results = await Promise.all(["a", "b", "c"].map((id) => b.submit(group(id, id))));
    expect(rec.sent).toEqual([["a.r1", "a.r2", "b.r1", "b.r2", "c.r1", "c.r2", "a.w", "b.w", "c.w"]]);
    results.forEach((r, i) => {
      const id = ["a", "b", "c"][i]!;
      expect(r.reads.map((x) => Buffer.from(x.returnData.slice(2), "hex").toString())).toEqual([`${id}.r1`, `${id}.r2`]);
      expect(r.writes.map((x) => Buffer.from(x.returnData.slice(2), "hex").toString())).toEqual([`${id}.w`]);
      expect(r.contended).toBe(false);
    });
    expect(b.stats).toEqual({ batches: 1, groups: 3, calls: 9 });
  });

  it("marks a later group of the same payer contended, and keeps `alone` groups apart", async () => {
    const rec = recorder();
    const b = createCallBatcher({ send: rec.send });
    const [first, second] = await Promise.all([b.submit(group("a1", "a")), b.submit(group("a2", "a"))]);
    expect(rec.sent).toHaveLength(1);
    expect([first.contended, second.contended]).toEqual([false, true]);
    rec.sent.length = 0;
    const r = await Promise.all([b.submit(group("a1", "a")), b.submit({ ...group("a2", "a"), alone: true }), b.submit(group("z", "z"))]);
    expect(rec.sent).toHaveLength(2);
    expect(rec.sent[0]).toEqual(["a1.r1", "a1.r2", "z.r1", "z.r2", "a1.w", "z.w"]);
    expect(r.map((x) => x.contended)).toEqual([false, false, false]);
  });

  it("sends an identical group once and gives both callers its results", async () => {
    const rec = recorder();
    const b = createCallBatcher({ send: rec.send });
    const [x, y] = await Promise.all([b.submit(group("a", "a")), b.submit(group("a", "a"))]);
    expect(rec.sent).toEqual([["a.r1", "a.r2", "a.w"]]);
    expect(y).toEqual(x);
    expect(y.contended).toBe(false);
  });

  it("never batches a payer with a group that credits it", async () => {
    const rec = recorder();
    const b = createCallBatcher({ send: rec.send });
    await Promise.all([b.submit(group("a", "a", "bob")), b.submit(group("bob", "bob", "carol")), b.submit(group("c", "c", "bob"))]);
    expect(rec.sent.map((s) => s.filter((t) => t.endsWith(".w")))).toEqual([["a.w", "c.w"], ["bob.w"]]);
  });

  it("respects maxCalls (never splitting a group) and the in-flight cap", async () => {
    const rec = recorder(20);
    const b = createCallBatcher({ send: rec.send, maxCalls: 7, maxInFlight: 2 });
    const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => b.submit(group(`g${i}`, `k${i}`))));
    expect(rec.sent.every((s) => s.length <= 6 && s.length % 3 === 0)).toBe(true);
    expect(rec.sent.flat()).toHaveLength(30);
    expect(rec.maxInFlight()).toBeLessThanOrEqual(2);
    rs.forEach((r, i) => expect(Buffer.from(r.writes[0]!.returnData.slice(2), "hex").toString()).toBe(`g${i}.w`));
  });

  it("keeps one group's failing call out of the others' results", async () => {
    const b = createCallBatcher({ send: async (calls) => echo(calls) });
    const [bad, good] = await Promise.all([
      b.submit({ reads: [call("fail.r")], writes: [call("fail.w")], key: "x" }),
      b.submit({ reads: [call("ok.r")], writes: [call("ok.w")], key: "y" }),
    ]);
    expect([bad.reads[0]!.success, bad.writes[0]!.success]).toEqual([false, false]);
    expect([good.reads[0]!.success, good.writes[0]!.success]).toEqual([true, true]);
  });

  it("rejects every group of a failed eth_call, and recovers for the next", async () => {
    let fail = true;
    const b = createCallBatcher({
      send: async (calls) => {
        if (fail) throw new Error("rpc down");
        return echo(calls);
      },
    });
    const settled = await Promise.allSettled([b.submit(group("a", "a")), b.submit(group("b", "b"))]);
    expect(settled.map((s) => s.status)).toEqual(["rejected", "rejected"]);
    expect((settled[0] as PromiseRejectedResult).reason.message).toBe("rpc down");
    fail = false;
    await expect(b.submit(group("c", "c"))).resolves.toMatchObject({ contended: false });
    const short = createCallBatcher({ send: async (calls) => echo(calls).slice(1) });
    await expect(short.submit(group("d", "d"))).rejects.toThrow(/answered 2 results for 3 calls/);
  });
});
