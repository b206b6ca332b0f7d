// The relayer gate of the batch-settlement service (schemes/batch-settlement.ts refusedUnlessHeld),
// with stubs: a process that does not hold the relayer refuses /settle; the first /settle after the
// relayer was taken (and again after every loss and re-take) waits for one recovery pass, so a
// transaction the last holder wrote ahead gets its nonce back before a new send could take it.
import type { PaymentPayload, PaymentRequirements, SettleResponse } from "@tollgate/core";
import type { BatchSettlementFacilitator } from "@tollgate/evm";
import { describe, expect, it } from "vitest";
import { RELAYER_UNAVAILABLE, refusedUnlessHeld } from "../src/schemes/batch-settlement.ts";
import { onePassAtATime, recoveredUnderLease, type LeasedKey } from "../src/schemes/leased-key.ts";

const network = "eip155:31337";
const requirements = { scheme: "batch-settlement", network, amount: "1", asset: "0x", payTo: "0x", maxTimeoutSeconds: 60, extra: {} } as PaymentRequirements;
const payload = { x402Version: 2, accepted: requirements, payload: {} } as PaymentPayload;

function stubs() {
  const order: string[] = [];
  const lease = { held: true, generation: 0 };
  const inner = {
    scheme: "batch-settlement",
    networks: [network],
    async settle(): Promise<SettleResponse> {
      order.push("send");
      return { success: true, transaction: "0xabc", network };
    },
  } as unknown as BatchSettlementFacilitator;
  const relayer = {
    address: "0x1111111111111111111111111111111111111111",
    holds: () => lease.held,
    leases: { generation: () => lease.generation },
    unavailableMessage: () => "held by another facilitator instance",
  } as unknown as LeasedKey;
  const pass = onePassAtATime(async () => {
    order.push("recover:start");
    await new Promise((r) => setTimeout(r, 20));
    order.push("recover:done");
  });
  return { gate: refusedUnlessHeld(inner, relayer, recoveredUnderLease(relayer, pass)), order, lease };
}

describe("batch-settlement relayer gate", () => {
  it("recovers once before the first send, and again after the lease was lost and taken back", async () => {
    const { gate, order, lease } = stubs();
    await Promise.all([gate.settle(payload, requirements), gate.settle(payload, requirements)]);
    expect(order).toEqual(["recover:start", "recover:done", "send", "send"]); // both waited for the one pass
    order.length = 0;
    await gate.settle(payload, requirements);
    expect(order).toEqual(["send"]); // recovered under this lease already
    lease.generation++; // lost, then taken again
    order.length = 0;
    await gate.settle(payload, requirements);
    expect(order).toEqual(["recover:start", "recover:done", "send"]);
  });

  it("a process that does not hold the relayer refuses without recovering or sending", async () => {
    const { gate, order, lease } = stubs();
    lease.held = false;
    const r = await gate.settle(payload, requirements);
    expect(r).toMatchObject({ success: false, errorReason: RELAYER_UNAVAILABLE, transaction: "" });
    expect(order).toEqual([]);
  });
});
