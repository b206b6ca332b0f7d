/**
 * The reconciler's verdicts against a stub chain and a stub ledger (no anvil, no store):
 * - a hash a (load-balanced, lagging) node does not know is never "dropped" while its nonce is
 *   not consumed, however long;
 * - a consumed nonce without a receipt is dropped only when seen so on passes `dropAfterMs` apart;
 * - a nonce left unused that long is filled (the engine's consumeNonce), then that rule applies;
 * - a receipt whose AuthorizationUsed comes from another contract than the token is not a
 *   settlement (the shared receipt reader filters by emitter).
 */
import { describe, expect, it } from "vitest";
import { toEventSelector, toHex, type Hex, type PublicClient } from "viem";
import { createPublicClient, custom } from "viem";
import type { Ledger, PaymentRecord, PaymentTransaction } from "../src/ledger/ledger.ts";
import { createReconciler } from "../src/reconciler.ts";

const NETWORK = "eip155:31337";
const TOKEN = "0x5fbdb2315678afecb367f032d93f642f64180aa3";
const OTHER = "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512";
const SIGNER = "0x70997970c51812dc3a010c7d01b50e20d6dc79c8";
const PAYER = "0x90f79bf6eb2c4f870365e785982e1f101e93b906";
const NONCE = toHex(42n, { size: 32 });
const HASH = `0x${"ab".repeat(32)}` as Hex;
const AUTHORIZATION_USED = toEventSelector("AuthorizationUsed(address,bytes32)");

function record(): PaymentRecord {
  return {
    id: "1",
    key: `${NETWORK}|${TOKEN}|${PAYER}|${NONCE}`,
    network: NETWORK,
    scheme: "exact",
    asset: TOKEN,
    payer: PAYER,
    payee: OTHER,
    amount: "1000",
    nonce: NONCE,
    requestHash: "h",
    status: "pending",
    transaction: HASH,
    reason: null,
    paymentIdentifier: null,
    response: null,
    answered: false,
    attempts: 1,
    createdAt: new Date(0),
    updatedAt: new Date(0),
  } as PaymentRecord;
}

/** A ledger holding one pending payment with one transaction (signer nonce 5); records what the reconciler writes. */
function stubLedger() {
  const writes: Array<{ kind: string; args: unknown[] }> = [];
  let resolved = false;
  const tx: PaymentTransaction = { key: record().key, hash: HASH, network: NETWORK, signer: SIGNER, nonce: 5, sent: true, outcome: null, createdAt: new Date(0) };
  const ledger = {
    failAbandoned: async () => 0,
    unresolved: async () => (resolved ? [] : [{ record: record(), transactions: [{ ...tx, outcome: writes.some((w) => w.kind === "markOutcomes") ? ("dropped" as const) : null }] }]),
    markOutcomes: async (...args: unknown[]) => void writes.push({ kind: "markOutcomes", args }),
    resolve: async (...args: unknown[]) => {
      writes.push({ kind: "resolve", args });
      resolved = true;
      return true;
    },
  } as unknown as Ledger;
  return { ledger, writes };
}

/** A node that knows nothing about the hash (no receipt, no transaction) and reports `mined` as the signer's nonce. */
function stubChain(opts: { mined: () => number; receipt?: () => unknown }): PublicClient {
  return createPublicClient({
    transport: custom({
      async request({ method }: { method: string }) {
        if (method === "eth_getTransactionCount") return toHex(opts.mined());
        if (method === "eth_getTransactionReceipt") return opts.receipt?.() ?? null;
        if (method === "eth_getTransactionByHash") return null;
        throw new Error(`unexpected ${method}`);
      },
    }),
  }) as PublicClient;
}

function receiptWithLogFrom(emitter: string) {
  return {
    transactionHash: HASH,
    transactionIndex: "0x0",
    blockHash: `0x${"cd".repeat(32)}`,
    blockNumber: "0x10",
    from: SIGNER,
    to: emitter,
    cumulativeGasUsed: "0x5208",
    gasUsed: "0x5208",
    effectiveGasPrice: "0x1",
    contractAddress: null,
    logsBloom: `0x${"00".repeat(256)}`,
    status: "0x1",
    type: "0x2",
    logs: [
      {
        address: emitter,
        topics: [AUTHORIZATION_USED, `0x${PAYER.slice(2).padStart(64, "0")}`, NONCE],
        data: "0x",
        blockNumber: "0x10",
        transactionHash: HASH,
        transactionIndex: "0x0",
        blockHash: `0x${"cd".repeat(32)}`,
        logIndex: "0x0",
        removed: false,
      },
    ],
  };
}

describe("reconciler", () => {
  it("a hash one node does not know is never dropped while the signer's nonce is not consumed", async () => {
    const { ledger, writes } = stubLedger();
    let now = 0;
    const reconciler = createReconciler({ ledger, clientFor: () => stubChain({ mined: () => 5 }), dropAfterMs: 1_000, now: () => now });
    for (let pass = 0; pass < 5; pass++) {
      now += 10_000;
      expect(await reconciler.runOnce()).toBe(0);
    }
    expect(writes).toEqual([]);
  });

  it("a consumed nonce without a receipt: dropped only on a second look at least dropAfterMs later", async () => {
    const { ledger, writes } = stubLedger();
    let now = 0;
    const reconciler = createReconciler({ ledger, clientFor: () => stubChain({ mined: () => 6 }), dropAfterMs: 1_000, now: () => now });
    expect(await reconciler.runOnce()).toBe(0); // first seen consumed
    now += 500;
    expect(await reconciler.runOnce()).toBe(0); // not long enough
    expect(writes).toEqual([]);
    now += 600;
    expect(await reconciler.runOnce()).toBe(1);
    expect(writes.map((w) => w.kind)).toEqual(["markOutcomes", "resolve"]);
    expect(writes[0]!.args).toEqual([HASH, [{ key: record().key, outcome: "dropped" }]]);
    expect(writes[1]!.args[1]).toMatchObject({ success: false, transaction: "" });
  });

  it("a nonce left unused (written ahead, maybe never broadcast): after dropAfterMs it is filled, then the usual rule drops it", async () => {
    const { ledger, writes } = stubLedger();
    let now = 0;
    let mined = 5;
    const fills: Array<[string, string, number]> = [];
    const reconciler = createReconciler({
      ledger,
      clientFor: () => stubChain({ mined: () => mined }),
      dropAfterMs: 1_000,
      now: () => now,
      consumeNonce: async (network, signer, nonce) => {
        fills.push([network, signer, nonce]);
        mined = nonce + 1; // the filler was mined
        return "filled";
      },
    });
    await reconciler.runOnce(); // first seen unused
    expect(fills).toEqual([]);
    now += 1_500;
    await reconciler.runOnce(); // still unused after dropAfterMs: filled; not dropped yet
    expect(fills).toEqual([[NETWORK, SIGNER, 5]]);
    expect(writes).toEqual([]);
    now += 100;
    await reconciler.runOnce(); // consumed, first look
    now += 1_100;
    expect(await reconciler.runOnce()).toBe(1); // consumed, second look: dropped
    expect(writes[0]!.args).toEqual([HASH, [{ key: record().key, outcome: "dropped" }]]);
  });

  it("a receipt whose AuthorizationUsed is logged by another contract is not a settlement", async () => {
    const { ledger, writes } = stubLedger();
    const reconciler = createReconciler({ ledger, clientFor: () => stubChain({ mined: () => 6, receipt: () => receiptWithLogFrom(OTHER) }) });
    await reconciler.runOnce();
    expect(writes[0]!.args).toEqual([HASH, [{ key: record().key, outcome: "reverted" }]]);
    expect(writes[1]!.args[1]).toMatchObject({ success: false });
    // From the token itself it is one.
    const real = stubLedger();
    await createReconciler({ ledger: real.ledger, clientFor: () => stubChain({ mined: () => 6, receipt: () => receiptWithLogFrom(TOKEN) }) }).runOnce();
    expect(real.writes[0]!.args).toEqual([HASH, [{ key: record().key, outcome: "success" }]]);
    expect(real.writes[1]!.args[1]).toMatchObject({ success: true, transaction: HASH });
  });
});
