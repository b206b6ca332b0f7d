// The settlement engine against a real anvil (one per file): nonces under load, batching,
// several signers, fee bumps of stuck transactions, bounded receipt waits and resuming.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Reason, type PaymentPayload, type PaymentRequirements } from "@tollgate/core";
import { devAccount, startLocalNetwork, type DevAccount, type RunningLocalNetwork } from "@tollgate/devnet";
import {
  createPublicClient,
  createTestClient,
  createWalletClient,
  custom,
  decodeEventLog,
  http,
  toHex,
  type Address,
  type Hex,
  type PublicClient,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { batchSettlerAbi, eip3009Abi } from "../src/contracts/index.ts";
import { exactEvmClient, exactEvmFacilitator, type ExactEvmSubmit } from "../src/exact/index.ts";
import {
  createSettlementEngine,
  type FinalEvent,
  type SettlementResult,
  type SettlementCall,
  type SettlementEngineConfig,
  type SubmittedEvent,
} from "../src/settlement/index.ts";

let net: RunningLocalNetwork;
let client: PublicClient;
let test: ReturnType<typeof createTestClient>;
const signerA = devAccount(1);
const signerB = devAccount(9);

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 4 });
  // Short polling: waitForTransactionReceipt would otherwise watch blocks every 4 s.
  client = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 50 }) as PublicClient;
  test = createTestClient({ mode: "anvil", transport: http(net.rpcUrl) });
});

afterAll(async () => {
  await net?.stop();
});

let nonceCounter = 0n;
function freshNonce(): Hex {
  // Distinct across the file, random enough across runs.
  nonceCounter++;
  return toHex((BigInt(Date.now()) << 64n) | nonceCounter, { size: 32 });
}

async function authorize(payer: DevAccount, value: bigint, opts: { validBefore?: bigint } = {}): Promise<SettlementCall> {
  const account = privateKeyToAccount(payer.privateKey);
  const authorization = {
    from: payer.address,
    to: net.accounts.payee.address,
    value,
    validAfter: 0n,
    validBefore: opts.validBefore ?? BigInt(Math.floor(Date.now() / 1000) + 3600),
    nonce: freshNonce(),
  };
  const signature = await account.signTypedData({
    domain: { name: net.usdc.name, version: net.usdc.version, chainId: net.chainId, verifyingContract: net.usdc.address },
    types: {
      TransferWithAuthorization: [
        { name: "from", type: "address" },
        { name: "to", type: "address" },
        { name: "value", type: "uint256" },
        { name: "validAfter", type: "uint256" },
        { name: "validBefore", type: "uint256" },
        { name: "nonce", type: "bytes32" },
      ],
    },
    primaryType: "TransferWithAuthorization",
    message: authorization,
  });
  // Wire form: decimal strings, as the exact facilitator hands them over.
  return {
    network: net.network,
    asset: net.usdc.address,
    authorization: {
      ...authorization,
      value: authorization.value.toString(),
      validAfter: authorization.validAfter.toString(),
      validBefore: authorization.validBefore.toString(),
    },
    signature,
  };
}

/** This file's anvil behind a custom transport: `intercept` sees every call, answers it or passes it on (`forward`). */
function anvilVia(intercept: (method: string, params: unknown, forward: () => Promise<unknown>) => Promise<unknown>): PublicClient {
  const upstream = createPublicClient({ transport: http(net.rpcUrl) });
  return createPublicClient({
    transport: custom({ request: ({ method, params }) => intercept(method, params, () => upstream.request({ method, params } as never)) }),
  }) as PublicClient;
}

function balance(address: Address): Promise<bigint> {
  return client.readContract({ address: net.usdc.address, abi: eip3009Abi, functionName: "balanceOf", args: [address] });
}

function engineFor(overrides: Partial<SettlementEngineConfig> = {}) {
  return createSettlementEngine({
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, batchSettler: net.batchSettler.address }],
    signers: [signerA.privateKey, signerB.privateKey],
    pollingIntervalMs: 20,
    ...overrides,
  });
}

/** Many distinct authorizations, spread over the payers. */
async function authorizations(n: number, value: bigint): Promise<SettlementCall[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => authorize(net.accounts.payers[i % net.accounts.payers.length]!, value)));
}

/** The hash a result names (settled, pending, or a mined failure). */
function txOf(r: SettlementResult): Hex {
  if (!r.transaction) throw new Error(`no transaction in ${JSON.stringify(r)}`);
  return r.transaction;
}

async function countTransactions(fromBlock: bigint, toBlock: bigint): Promise<number> {
  let n = 0;
  for (let b = fromBlock; b <= toBlock; b++) n += await client.getBlockTransactionCount({ blockNumber: b });
  return n;
}

async function settleAll(batching: boolean, n: number) {
  const calls = await authorizations(n, 1_000n);
  const payee = net.accounts.payee.address;
  const payeeBefore = await balance(payee);
  const payersBefore = await Promise.all(net.accounts.payers.map((p) => balance(p.address)));
  const blockBefore = await client.getBlockNumber({ cacheTime: 0 });
  const errors: unknown[] = [];
  const engine = engineFor({ batching, onError: (e) => errors.push(e) });
  const started = performance.now();
  const results = await Promise.all(calls.map((c) => engine.submit(c)));
  const seconds = (performance.now() - started) / 1000;
  await engine.close();
  const blockAfter = await client.getBlockNumber({ cacheTime: 0 });

  expect(results.filter((r) => r.status !== "settled")).toEqual([]);
  expect(errors).toEqual([]);
  expect(await balance(payee)).toBe(payeeBefore + 1_000n * BigInt(n));
  const payersAfter = await Promise.all(net.accounts.payers.map((p) => balance(p.address)));
  payersAfter.forEach((after, i) => expect(after).toBe(payersBefore[i]! - 1_000n * BigInt(n / net.accounts.payers.length)));
  const transactions = await countTransactions(blockBefore + 1n, blockAfter);
  const stats = engine.stats();
  console.info(
    `[settlement] batching=${batching}: ${n} settlements in ${seconds.toFixed(2)} s = ${(n / seconds).toFixed(0)}/s, ` +
      `${transactions} transactions, signers used: ${stats.signers.map((s) => s.sent).join("/")}`,
  );
  return { results, transactions, stats };
}

describe("settlement engine on anvil", () => {
  it("batching on: 200 concurrent authorizations settle in far fewer transactions, on both signers", async () => {
    const { results, transactions, stats } = await settleAll(true, 200);
    expect(transactions).toBe(stats.transactions);
    expect(transactions).toBeLessThanOrEqual(20);
    expect(new Set(results.map((r) => r.transaction)).size).toBe(transactions);
    // Both fee payers carried batches.
    expect(stats.signers.every((s) => s.sent > 0)).toBe(true);
    expect(stats.signers.every((s) => s.inFlight === 0)).toBe(true);
  });

  it("batching off: 200 concurrent authorizations, one transaction each, no nonce errors", async () => {
    const { results, transactions, stats } = await settleAll(false, 200);
    expect(transactions).toBe(200);
    expect(new Set(results.map((r) => r.transaction)).size).toBe(200);
    expect(stats.signers.every((s) => s.sent > 50)).toBe(true);
    // 0.8 s alone; once, in a clean-clone run with the browser tests beside it, over 60 s (not yet
    // explained: every wait in the engine is bounded by receiptTimeoutMs, so a starved anvil is
    // the suspect). The longer limit tells a slow machine from a hang.
  }, 180_000);

  it("an invalid item inside a batch fails alone, with its reason, from the receipt's logs", async () => {
    const good = await authorizations(3, 7n);
    const bad = await authorize(net.accounts.payers[0]!, 7n);
    const tampered: SettlementCall = { ...bad, authorization: { ...bad.authorization, value: "8" } }; // signature no longer matches
    const finals: FinalEvent[] = [];
    // preflight off so the bad item really goes on chain inside the batch.
    const engine = engineFor({ preflight: false, maxWaitMs: 50, onFinal: (e) => void finals.push(e) });
    const [r0, r1, rBad, r2] = await Promise.all([good[0]!, good[1]!, tampered, good[2]!].map((c) => engine.submit(c)));
    await engine.close();
    for (const r of [r0, r1, r2]) expect(r).toEqual({ transaction: txOf(r0!), status: "settled" });
    expect(rBad).toEqual({ transaction: txOf(r0!), status: "failed", reason: Reason.evmSignature, message: expect.any(String) });
    expect(finals).toHaveLength(1);
    expect(finals[0]!.status).toBe("success");
    expect(finals[0]!.items.map((i) => i.status)).toEqual(["success", "success", "reverted", "success"]);
    // BatchSettler logs only the failure (ItemFailed, with the token's revert data); the settled
    // items are proven by the token's own logs (Transfer + AuthorizationUsed each).
    const receipt = await client.getTransactionReceipt({ hash: txOf(r0!) });
    const fromSettler = receipt.logs.filter((l) => l.address.toLowerCase() === net.batchSettler.address.toLowerCase());
    expect(fromSettler).toHaveLength(1);
    const failed = decodeEventLog({ abi: batchSettlerAbi, data: fromSettler[0]!.data, topics: fromSettler[0]!.topics });
    expect(failed).toMatchObject({ eventName: "ItemFailed", args: { index: 2n, nonce: tampered.authorization.nonce, from: tampered.authorization.from } });
    expect(receipt.logs.filter((l) => l.address.toLowerCase() === net.usdc.address.toLowerCase())).toHaveLength(6);
    // And resuming from the hash tells the same story per item.
    const asBad = await engine.reconcile(txOf(r0!), { token: net.usdc.address, item: { from: tampered.authorization.from, nonce: tampered.authorization.nonce } });
    expect(asBad.status).toBe("reverted");
    const asGood = await engine.reconcile(txOf(r0!), { token: net.usdc.address, item: { from: good[1]!.authorization.from, nonce: good[1]!.authorization.nonce } });
    expect(asGood.status).toBe("success");
  });

  it("with preflight, a failing item is refused up front (no gas) and the rest settle together", async () => {
    const good = await authorizations(2, 5n);
    const expired = await authorize(net.accounts.payers[1]!, 5n, { validBefore: 1n });
    const engine = engineFor({ maxWaitMs: 50 });
    const settled = await Promise.all([good[0]!, expired, good[1]!].map((c) => engine.submit(c)));
    await engine.close();
    expect(settled[0]).toMatchObject({ status: "settled" });
    expect(settled[2]).toMatchObject({ status: "settled" });
    // A value, not a thrown error; no transaction: nothing was sent for it.
    expect(settled[1]).toEqual({ status: "failed", reason: Reason.evmValidBefore, message: expect.any(String) });
    expect(engine.stats().transactions).toBe(1);
  });

  it("plugs into the exact facilitator's submit hook: concurrent settles share batches", async () => {
    const engine = engineFor({ maxWaitMs: 20 });
    const submit: ExactEvmSubmit = engine.submit; // the hook's exact type
    const facilitator = exactEvmFacilitator({
      networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [net.usdc] }],
      signer: privateKeyToAccount(signerA.privateKey),
      submit,
    });
    const req: PaymentRequirements = {
      scheme: "exact",
      network: net.network,
      amount: "100",
      asset: net.usdc.address,
      payTo: net.accounts.payee.address,
      maxTimeoutSeconds: 60,
      extra: { name: net.usdc.name, version: net.usdc.version },
    };
    const payloads: PaymentPayload[] = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const client = exactEvmClient({ account: privateKeyToAccount(net.accounts.payers[i % 4]!.privateKey) });
        return { x402Version: 2 as const, accepted: req, payload: await client.createPayload(req, { x402Version: 2 }) };
      }),
    );
    const before = await balance(net.accounts.payee.address);
    const responses = await Promise.all(payloads.map((p) => facilitator.settle(p, req)));
    await engine.close();
    expect(responses.map((r) => r.success)).toEqual(Array(12).fill(true));
    expect(await balance(net.accounts.payee.address)).toBe(before + 1_200n);
    expect(engine.stats().transactions).toBeLessThanOrEqual(4);
  });

  it("works on nodes without eth_simulateV1 (eth_call + eth_estimateGas)", async () => {
    const methods: string[] = [];
    // The real anvil behind a transport that refuses eth_simulateV1, like many RPC providers do.
    const noSimulate = anvilVia(async (method, _params, forward) => {
      methods.push(method);
      if (method === "eth_simulateV1") throw Object.assign(new Error("the method eth_simulateV1 does not exist/is not available"), { code: -32601 });
      return forward();
    });
    const engine = createSettlementEngine({
      networks: [{ network: net.network, client: noSimulate, batchSettler: net.batchSettler.address }],
      signers: [signerA.privateKey],
      pollingIntervalMs: 20,
      maxWaitMs: 50,
    });
    const good = await authorizations(3, 4n);
    const used = good[0]!; // the same authorization twice: the copy joins the first (one send, one result)
    const settled = await Promise.all([...good, { ...used, authorization: { ...used.authorization } }].map((c) => engine.submit(c)));
    await engine.close();
    // The three distinct ones settle in one batch; the copy got the first's answer, nothing more was sent.
    expect(settled.slice(0, 3).map((s) => s.status)).toEqual(["settled", "settled", "settled"]);
    expect(settled[3]).toEqual(settled[0]);
    expect(engine.stats().items).toBe(3);
    expect(methods.filter((m) => m === "eth_simulateV1")).toHaveLength(1);
    expect(methods).toContain("eth_estimateGas");
    // A direct one whose nonce is already used is refused with the token's reason.
    const again = createSettlementEngine({ networks: [{ network: net.network, client: noSimulate }], signers: [signerA.privateKey] });
    expect(await again.submit(used)).toMatchObject({ status: "failed", reason: Reason.evmNonceUsed });
    await again.close();
  });

  it("refuses bad input and settlements above the gas cap without sending anything", async () => {
    const engine = engineFor({ batching: false, maxGasPerSettlement: 20_000n });
    const call = await authorize(net.accounts.payers[2]!, 3n);
    expect(await engine.submit({ ...call, network: "eip155:1" })).toMatchObject({ status: "failed", reason: Reason.invalidNetwork });
    expect(await engine.submit({ ...call, authorization: { ...call.authorization, value: "-1" } })).toMatchObject({ status: "failed", message: expect.stringMatching(/authorization\.value/) });
    expect(await engine.submit({ ...call, signature: "0x1234" })).toMatchObject({ status: "failed", reason: Reason.evmSignature });
    expect(await engine.submit(call)).toMatchObject({ status: "failed", message: expect.stringMatching(/exceeds the cap/) });
    expect(engine.stats().transactions).toBe(0);
    await engine.close();
  });

  it("resyncs after the signer's nonce moved behind its back, and honours the fee cap", async () => {
    const cap = 3_000_000_000n;
    const engine = engineFor({ batching: false, signers: [signerA.privateKey], maxFeePerGasCap: cap });
    expect((await engine.submit(await authorize(net.accounts.payers[0]!, 2n))).status).toBe("settled");
    // Someone else uses the same key: the engine's local counter is now stale.
    const wallet = createWalletClient({ account: privateKeyToAccount(signerA.privateKey), transport: http(net.rpcUrl) });
    const outside = await wallet.sendTransaction({ chain: null, to: signerB.address, value: 1n });
    await client.waitForTransactionReceipt({ hash: outside });
    const r = await engine.submit(await authorize(net.accounts.payers[0]!, 2n));
    expect(r.status).toBe("settled");
    const tx = await client.getTransaction({ hash: txOf(r) });
    expect(tx.maxFeePerGas! <= cap).toBe(true);
    await engine.close();
  });

  it("an idle engine sends a lone settlement at once: maxWaitMs is a bound, not a delay (default polling)", async () => {
    // No pollingIntervalMs: the engine picks a dev-chain period itself.
    const engine = createSettlementEngine({
      networks: [{ network: net.network, rpcUrl: net.rpcUrl, batchSettler: net.batchSettler.address }],
      signers: [signerA.privateKey, signerB.privateKey],
      maxWaitMs: 5_000,
    });
    await engine.submit(await authorize(net.accounts.payers[0]!, 1n)); // warm-up: nonces, fees, chain detection
    const call = await authorize(net.accounts.payers[1]!, 1n);
    const started = performance.now();
    const r = await engine.submit(call);
    const ms = performance.now() - started;
    await engine.close();
    expect(r.status).toBe("settled");
    expect(ms).toBeLessThan(1_000);
  });

  it("a burst of 300 submits over many event-loop turns fills large batches on both signers", async () => {
    const calls = await authorizations(300, 1n);
    const sizes: number[] = [];
    const engine = engineFor({ onSubmitted: (e) => void sizes.push(e.items.length) });
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < calls.length; i++) {
      // Ten per turn: arrivals spread out, as HTTP requests come in.
      if (i % 10 === 0) await new Promise((r) => setImmediate(r));
      pending.push(engine.submit(calls[i]!));
    }
    const results = (await Promise.all(pending)) as { status: string }[];
    await engine.close();
    expect(results.every((r) => r.status === "settled")).toBe(true);
    const stats = engine.stats();
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(300);
    expect(300 / stats.transactions).toBeGreaterThanOrEqual(20);
    expect(stats.signers.every((s) => s.sent > 0)).toBe(true);
    expect(stats.queued).toBe(0);
  });

  it("group commit: while the only signer is busy, arrivals accumulate and leave as one batch when it frees", async () => {
    const base = privateKeyToAccount(signerA.privateKey);
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    let signed = 0;
    // The first signature waits for the gate: the lane stays busy while the others arrive.
    const slow = {
      ...base,
      async signTransaction(...args: Parameters<typeof base.signTransaction>) {
        if (signed++ === 0) await gate;
        return base.signTransaction(...args);
      },
    } as typeof base;
    const sizes: number[] = [];
    const engine = engineFor({ signers: [slow], maxWaitMs: 5_000, onSubmitted: (e) => void sizes.push(e.items.length) });
    const calls = await authorizations(21, 1n);
    const first = engine.submit(calls[0]!);
    const rest: Promise<unknown>[] = [];
    for (const c of calls.slice(1)) {
      await new Promise((r) => setTimeout(r, 2));
      rest.push(engine.submit(c));
    }
    expect(engine.stats().queued).toBe(20);
    open();
    const results = [await first, ...((await Promise.all(rest)) as unknown[])] as { status: string; transaction: Hex }[];
    await engine.close();
    expect(results.every((r) => r.status === "settled")).toBe(true);
    expect(sizes).toEqual([1, 20]);
    expect(new Set(results.slice(1).map((r) => r.transaction)).size).toBe(1);
  });

  it("onFinal completes before submit() resolves; onSubmitted before the hash is seen", async () => {
    const order: string[] = [];
    const engine = engineFor({
      onSubmitted: async (e) => {
        await new Promise((r) => setTimeout(r, 30));
        order.push(`submitted:${e.items.length}`);
      },
      onFinal: async (e) => {
        await new Promise((r) => setTimeout(r, 100));
        order.push(`final:${e.items.length}`);
      },
    });
    const calls = await authorizations(3, 1n);
    const results = await Promise.all(
      calls.map(async (c) => {
        const r = await engine.submit(c);
        order.push("resolved");
        return r;
      }),
    );
    await engine.close();
    expect(results.every((r) => r.status === "settled")).toBe(true);
    expect(order).toEqual(["submitted:3", "final:3", "resolved", "resolved", "resolved"]);
  });

  // It once failed under full-suite load with four "pending" results: the poller had counted a block
  // whose receipt anvil could not yet serve (see the "looked up again" test below).
  it("signerUsable: work goes only to usable signers; none usable refuses; a signer back re-reads its nonce", async () => {
    let sends = 0;
    const counting = anvilVia((method, _params, forward) => {
      if (method === "eth_sendRawTransaction") sends++;
      return forward();
    });
    let usable = new Set<string>([signerA.address]);
    const engine = createSettlementEngine({
      networks: [{ network: net.network, client: counting, batchSettler: net.batchSettler.address }],
      signers: [signerA.privateKey, signerB.privateKey],
      pollingIntervalMs: 20,
      signerUsable: (signer) => usable.has(signer),
    });
    const sentBy = () => Object.fromEntries(engine.stats().signers.map((x) => [x.address, x.sent]));
    expect((await engine.submit(await authorize(net.accounts.payers[0]!, 1n))).status).toBe("settled"); // A's nonce is now cached

    usable = new Set([signerB.address]);
    const results = await Promise.all((await authorizations(4, 1n)).map((c) => engine.submit(c)));
    expect(results.map((r) => `${r.status}${r.status === "failed" ? ` ${r.reason}` : ""}`)).toEqual(["settled", "settled", "settled", "settled"]);
    expect(sentBy()).toEqual({ [signerA.address]: 1, [signerB.address]: 1 });

    usable = new Set();
    const before = engine.stats().transactions;
    expect(await engine.submit(await authorize(net.accounts.payers[1]!, 1n))).toMatchObject({ status: "failed", reason: Reason.facilitatorNotReady });
    expect(engine.stats().transactions).toBe(before);

    // While A was withdrawn, another process used its key: its cached nonce is stale.
    const wallet = createWalletClient({ account: privateKeyToAccount(signerA.privateKey), transport: http(net.rpcUrl) });
    await client.waitForTransactionReceipt({ hash: await wallet.sendTransaction({ chain: null, to: signerB.address, value: 1n }) });
    usable = new Set([signerA.address]);
    const sendsBefore = sends;
    expect((await engine.submit(await authorize(net.accounts.payers[2]!, 1n))).status).toBe("settled");
    expect(sends - sendsBefore).toBe(1); // re-read, not a nonce error and a retry
    expect(sentBy()[signerA.address]).toBe(2);
    await engine.close();
  });

  it("a receipt missing just after its block appears is looked up again (the node's head can run ahead of its receipt index)", async () => {
    // Under load anvil has answered eth_blockNumber with the new block while the receipt lookup
    // for a transaction in it still said "not found"; a poller that then counted that block as
    // checked waited for the next block, which on an idle chain never comes.
    const misses = new Map<string, number>();
    const log: string[] = [];
    const lagging = anvilVia(async (method, params, forward) => {
      log.push(`${method} ${performance.now().toFixed(0)}`);
      if (method === "eth_getTransactionReceipt") {
        const hash = String((params as unknown[])[0]).toLowerCase();
        const n = misses.get(hash) ?? 0;
        // The lookup right after sending and the poller's first one both miss.
        if (n < 2) {
          misses.set(hash, n + 1);
          // Mined by now (automine): make sure the poller sees the new head first.
          await client.getBlockNumber({ cacheTime: 0 });
          return null;
        }
      }
      return forward();
    });
    const engine = createSettlementEngine({
      networks: [{ network: net.network, client: lagging, batchSettler: net.batchSettler.address }],
      signers: [signerB.privateKey],
      pollingIntervalMs: 20,
      receiptTimeoutMs: 3_000,
    });
    try {
      const r = await engine.submit(await authorize(net.accounts.payers[0]!, 1n));
      expect(r.status, log.join("\n")).toBe("settled");
      expect([...misses.values()]).toEqual([2]);
    } finally {
      await engine.close({ timeoutMs: 1_000 });
    }
  });

  it("consumeNonce: a nonce whose transaction never reached the node gets used by a no-op, so that transaction can never land", async () => {
    const engine = engineFor({ batching: false, signers: [signerB.privateKey] });
    const account = privateKeyToAccount(signerB.privateKey);
    const next = await client.getTransactionCount({ address: signerB.address, blockTag: "pending" });
    // Signed and "written ahead" at `next`, never broadcast (the process died).
    const call = await authorize(net.accounts.payers[1]!, 1n);
    const lost = await account.signTransaction({ type: "eip1559", chainId: net.chainId, nonce: next, to: net.usdc.address, data: "0x", gas: 100_000n, maxFeePerGas: 10n ** 10n, maxPriorityFeePerGas: 1n });
    expect(await engine.consumeNonce(net.network, signerB.address, next)).toBe("filled");
    // Mined: the latest block's count moves past it (anvil may report the new head a moment later under load).
    let mined = await client.getTransactionCount({ address: signerB.address });
    for (let i = 0; i < 50 && mined < next + 1; i++) {
      await new Promise((r) => setTimeout(r, 20));
      mined = await client.getTransactionCount({ address: signerB.address });
    }
    expect(mined).toBe(next + 1);
    await expect(client.sendRawTransaction({ serializedTransaction: lost })).rejects.toThrow(/nonce/i);
    // Used already: nothing sent; an unknown signer: nothing either.
    expect(await engine.consumeNonce(net.network, signerB.address, next)).toBe("taken");
    expect(await engine.consumeNonce(net.network, signerA.address, next)).toBe("unknown");
    // The lane re-reads its nonce: the next settlement goes through.
    expect(await engine.submit(call)).toMatchObject({ status: "settled" });
    await engine.close();
  });

  describe("without automine", () => {
    beforeAll(async () => {
      await test.setAutomine(false);
    });
    afterAll(async () => {
      await test.setAutomine(true);
    });

    it("receipt timeout answers pending; waitFor resolves to success once mined", async () => {
      const finals: FinalEvent[] = [];
      const engine = engineFor({ batching: false, receiptTimeoutMs: 300, onFinal: (e) => void finals.push(e) });
      const call = await authorize(net.accounts.payers[3]!, 11n);
      const started = Date.now();
      const r = await engine.submit(call);
      expect(r.status).toBe("pending");
      expect(Date.now() - started).toBeLessThan(3_000);
      expect((await engine.reconcile(txOf(r))).status).toBe("pending");
      const waiting = engine.waitFor(txOf(r), { item: { from: call.authorization.from, nonce: call.authorization.nonce } });
      await test.mine({ blocks: 1 });
      const outcome = await waiting;
      expect(outcome).toMatchObject({ transaction: txOf(r), status: "success" });
      await engine.close();
      expect(finals.map((f) => f.transaction)).toEqual([txOf(r)]);

      // A fresh engine (as after a restart) reads the same outcome from the chain.
      const restarted = engineFor();
      expect(await restarted.waitFor(txOf(r), { timeoutMs: 1_000, token: net.usdc.address, item: { from: call.authorization.from, nonce: call.authorization.nonce } })).toMatchObject({ status: "success" });
      await restarted.close();
    });

    it("finds receipts after a few new blocks (scanned) and after many (looked up directly)", async () => {
      const submitted: SubmittedEvent[] = [];
      const engine = engineFor({ batching: false, signers: [signerA.privateKey], receiptTimeoutMs: 10_000, onSubmitted: (e) => void submitted.push(e) });
      for (const blocks of [3, 40]) {
        const call = await authorize(net.accounts.payers[2]!, 3n);
        submitted.length = 0;
        const result = engine.submit(call);
        await until(() => submitted.length === 1);
        await new Promise((r) => setTimeout(r, 100)); // the poller has looked once and found nothing
        await test.mine({ blocks });
        const r = await result;
        expect(r).toEqual({ transaction: submitted[0]!.transaction, status: "settled" });
      }
      await engine.close();
    });

    it("a stuck transaction is replaced with higher fees and reported once, from the hash that landed", async () => {
      const submitted: SubmittedEvent[] = [];
      const finals: FinalEvent[] = [];
      const engine = engineFor({
        batching: false,
        signers: [signerB.privateKey],
        receiptTimeoutMs: 10_000,
        replacement: { bumpAfterMs: 150 },
        onSubmitted: (e) => void submitted.push(e),
        onFinal: (e) => void finals.push(e),
      });
      const call = await authorize(net.accounts.payers[3]!, 13n);
      const result = engine.submit(call);
      await until(() => submitted.length >= 2);
      const [first, second] = submitted;
      expect(second!.nonce).toBe(first!.nonce);
      expect(second!.replaces).toBe(first!.transaction);
      expect(second!.maxFeePerGas * 8n >= first!.maxFeePerGas * 9n).toBe(true);
      expect(second!.maxPriorityFeePerGas * 8n >= first!.maxPriorityFeePerGas * 9n).toBe(true);
      // The node dropped the first for the second: only the replacement is still known.
      const tx2 = await client.getTransaction({ hash: second!.transaction });
      expect(tx2.maxFeePerGas).toBe(second!.maxFeePerGas);
      await expect(client.getTransaction({ hash: first!.transaction })).rejects.toThrow();
      await test.mine({ blocks: 1 });
      const r = await result;
      const landed = submitted.map((s) => s.transaction).filter((h) => h === txOf(r));
      expect(landed).toHaveLength(1);
      expect(r.status).toBe("settled");
      await engine.close();
      expect(finals).toHaveLength(1);
      expect(finals[0]!.transaction).toBe(txOf(r));
      expect(engine.stats().replacements).toBeGreaterThanOrEqual(1);
      // Resuming with all hashes of that nonce finds the one that landed.
      const resumed = engineFor();
      const outcome = await resumed.waitFor(submitted.map((s) => s.transaction), { timeoutMs: 1_000 });
      expect(outcome).toMatchObject({ transaction: txOf(r), status: "success" });
      await resumed.close();
    });
  });
});

async function until(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}
