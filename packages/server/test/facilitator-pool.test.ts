// A resource server over several facilitators: which one is asked, when it fails over, and the
// rule that keeps money safe — a settlement that may be in flight at one facilitator is never
// sent to another as a fresh settlement without proof from the chain that it is unused.
import { describe, expect, it } from "vitest";
import { FacilitatorError, type FacilitatorClient, type PaymentPayload, type PaymentRequirements, type SettleResponse, type SupportedResponse } from "@tollgate/core";
import { facilitatorPool, type PoolEvent } from "../src/facilitators/pool.ts";
import { ASSET, PAY_TO, PAYER, TX } from "./fixtures.ts";

const NETWORK = "eip155:84532";
const requirements: PaymentRequirements = { scheme: "exact", network: NETWORK, amount: "10000", asset: ASSET, payTo: PAY_TO, maxTimeoutSeconds: 60 };
let n = 0;
const payload = (): PaymentPayload => ({ x402Version: 2, accepted: requirements, payload: { signature: `0x${(++n).toString(16).padStart(4, "0")}` } });

type Behaviour = "ok" | "down" | "timeout" | "500" | "401" | "pending";

interface Fake extends FacilitatorClient {
  name: string;
  behaviour: Behaviour;
  calls: { verify: number; settle: number; supported: number };
}

function fake(name: string, kinds: SupportedResponse["kinds"] = [{ x402Version: 2, scheme: "exact", network: NETWORK }]): Fake {
  const f: Fake = {
    name,
    behaviour: "ok",
    calls: { verify: 0, settle: 0, supported: 0 },
    async supported() {
      f.calls.supported++;
      if (f.behaviour === "down") throw new FacilitatorError(`${name} supported: connection refused`, "supported", undefined, "");
      return { kinds, extensions: [], signers: { "eip155:*": [`0x${name}`] } };
    },
    async verify() {
      f.calls.verify++;
      fails(f, "verify");
      return { isValid: true, payer: PAYER };
    },
    async settle(): Promise<SettleResponse> {
      f.calls.settle++;
      fails(f, "settle");
      if (f.behaviour === "pending") return { success: false, errorReason: "settlement_pending", transaction: "", network: NETWORK };
      return { success: true, transaction: `${TX.slice(0, -name.length)}${name}`, network: NETWORK, payer: PAYER };
    },
  };
  return f;
}

function fails(f: Fake, endpoint: "verify" | "settle"): void {
  if (f.behaviour === "down") throw new FacilitatorError(`${f.name} ${endpoint}: connection refused`, endpoint, undefined, "");
  if (f.behaviour === "timeout") throw new FacilitatorError(`${f.name} ${endpoint}: timed out`, endpoint, undefined, "");
  if (f.behaviour === "500") throw new FacilitatorError(`${f.name} ${endpoint}: HTTP 500`, endpoint, 500, "");
  if (f.behaviour === "401") throw new FacilitatorError(`${f.name} ${endpoint}: HTTP 401`, endpoint, 401, "");
}

describe("facilitatorPool", () => {
  it("asks only facilitators that settle the kind, and merges what they support", async () => {
    const a = fake("aa");
    const solanaOnly = fake("bb", [{ x402Version: 2, scheme: "exact", network: "solana:devnet" }]);
    const pool = facilitatorPool({ facilitators: [{ facilitator: solanaOnly, name: "bb" }, { facilitator: a, name: "aa" }] });
    const s = await pool.supported();
    expect(s.kinds.map((k) => k.network).sort()).toEqual([NETWORK, "solana:devnet"]);
    expect(s.signers["eip155:*"]).toEqual(["0xbb", "0xaa"]);
    await pool.verify(payload(), requirements);
    expect(solanaOnly.calls.verify).toBe(0);
    expect(a.calls.verify).toBe(1);
  });

  it("fails /verify over on connection errors, timeouts and 5xx, and opens the breaker", async () => {
    const a = fake("aa");
    const b = fake("bb");
    const events: PoolEvent[] = [];
    let t = 1_000_000;
    const pool = facilitatorPool({ facilitators: [{ facilitator: a, name: "a", reputation: 90 }, { facilitator: b, name: "b", reputation: 10 }], onEvent: (e) => events.push(e), now: () => t, breaker: { failures: 2, cooldownMs: 5_000 } });
    await pool.supported();
    for (const behaviour of ["down", "timeout"] as const) {
      a.behaviour = behaviour;
      expect((await pool.verify(payload(), requirements)).isValid).toBe(true);
    }
    expect(b.calls.verify).toBe(2);
    expect(pool.status().find((s) => s.name === "a")?.state).toBe("open");
    expect(events.filter((e) => e.kind === "breaker-open")).toEqual([{ kind: "breaker-open", facilitator: "a", error: "aa verify: timed out" }]);
    // Open: not asked at all until the cooldown passed.
    a.behaviour = "ok";
    await pool.verify(payload(), requirements);
    expect(a.calls.verify).toBe(2);
    t += 5_000;
    await pool.verify(payload(), requirements); // the half-open trial succeeds: closed again, preferred again
    expect(a.calls.verify).toBe(3);
    expect(pool.status().find((s) => s.name === "a")?.state).toBe("closed");
    a.behaviour = "500";
    b.behaviour = "500";
    await expect(pool.verify(payload(), requirements)).rejects.toThrow(/HTTP 500/);
  });

  it("settles at the facilitator that verified the payment", async () => {
    const a = fake("aa");
    const b = fake("bb");
    const pool = facilitatorPool({ facilitators: [a, b] });
    const p = payload();
    a.behaviour = "down";
    await pool.verify(p, requirements); // verified by b
    a.behaviour = "ok";
    expect((await pool.settle(p, requirements)).transaction.endsWith("bb")).toBe(true);
    expect(a.calls.settle).toBe(0);
  });

  it("never sends a settlement that may be in flight to a second facilitator without proof it is unused", async () => {
    const a = fake("aa");
    const b = fake("bb");
    const pool = facilitatorPool({ facilitators: [a, b], settleAttempts: 2 });
    const p = payload();
    await pool.verify(p, requirements);
    a.behaviour = "timeout";
    for (let i = 0; i < 6; i++) await expect(pool.settle(p, requirements)).rejects.toThrow(/timed out/);
    expect(a.calls.settle).toBe(6);
    expect(b.calls.settle).toBe(0);
    // A pending answer keeps it there too.
    a.behaviour = "pending";
    expect((await pool.settle(p, requirements)).errorReason).toBe("settlement_pending");
    a.behaviour = "ok";
    expect((await pool.settle(p, requirements)).transaction.endsWith("aa")).toBe(true);
    expect(b.calls.settle).toBe(0);
  });

  it("moves it once the first stopped answering and the chain proves the authorization unused", async () => {
    const a = fake("aa");
    const b = fake("bb");
    const events: PoolEvent[] = [];
    let unused = false;
    const proofs: string[] = [];
    const pool = facilitatorPool({
      facilitators: [{ facilitator: a, name: "a" }, { facilitator: b, name: "b" }],
      settleAttempts: 2,
      proveUnused: async (pl) => (proofs.push(String(pl.payload.signature)), unused),
      onEvent: (e) => events.push(e),
    });
    const p = payload();
    await pool.verify(p, requirements);
    a.behaviour = "500";
    await expect(pool.settle(p, requirements)).rejects.toThrow(/HTTP 500/); // 1st failure: not given up yet
    expect(proofs).toEqual([]);
    await expect(pool.settle(p, requirements)).rejects.toThrow(/HTTP 500/); // 2nd: asks the chain, which says "used or unknown"
    expect(proofs).toHaveLength(1);
    expect(b.calls.settle).toBe(0);
    unused = true;
    const answer = await pool.settle(p, requirements);
    expect(answer.transaction.endsWith("bb")).toBe(true);
    expect(events).toContainEqual({ kind: "settle-moved", from: "a", to: "b" });
    // A throwing proof is no proof.
    const c = facilitatorPool({ facilitators: [a, b], settleAttempts: 1, proveUnused: async () => { throw new Error("rpc down"); } });
    const q = payload();
    await expect(c.settle(q, requirements)).rejects.toThrow();
    await expect(c.settle(q, requirements)).rejects.toThrow();
    expect(b.calls.settle).toBe(1);
  });

  it("moves a settlement refused before processing (4xx) at once, and says when nobody can take it", async () => {
    const a = fake("aa");
    const b = fake("bb");
    const pool = facilitatorPool({ facilitators: [a, b] });
    a.behaviour = "401";
    expect((await pool.settle(payload(), requirements)).transaction.endsWith("bb")).toBe(true);
    b.behaviour = "401";
    await expect(pool.settle(payload(), requirements)).rejects.toThrow(/HTTP 401/);
    const other: PaymentRequirements = { ...requirements, network: "eip155:1" };
    await expect(facilitatorPool({ facilitators: [fake("cc")] }).settle(payload(), other)).rejects.toThrow(/no facilitator of the pool can settle exact on eip155:1/);
    expect(() => facilitatorPool({ facilitators: [] })).toThrow(TypeError);
  });

  it("prefers reputation, then latency, among healthy facilitators", async () => {
    const slow = fake("s1");
    const fast = fake("f1");
    const slowVerify = slow.verify;
    slow.verify = async (...a) => (await new Promise((r) => setTimeout(r, 30)), slowVerify(...a));
    const pool = facilitatorPool({ facilitators: [slow, fast] });
    await pool.verify(payload(), requirements); // slow first (unknown latency counts as fast; declaration order)
    await pool.verify(payload(), requirements); // fast: still unknown, so tried
    await pool.verify(payload(), requirements); // now both known: fast wins
    expect([slow.calls.verify, fast.calls.verify]).toEqual([1, 2]);
    const trusted = fake("t1");
    const ranked = facilitatorPool({ facilitators: [fast, { facilitator: trusted, reputation: 80 }] });
    await ranked.verify(payload(), requirements);
    expect(trusted.calls.verify).toBe(1);
  });
});
