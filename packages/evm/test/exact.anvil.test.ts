// The exact EVM scheme end to end on a real anvil: sign -> verify -> settle, and every refusal
// returns its exact reason code and moves no funds.
import { Reason, type PaymentPayload, type PaymentRequirements, type SchemeFacilitator } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { createPublicClient, createTestClient, http, isAddress, type Address, type Hex, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exactEvmClient, exactEvmFacilitator, eip3009Abi, type ExactEvmFacilitatorConfig, type ExactEvmPayload } from "../src/index.ts";

let net: RunningLocalNetwork;
let chain: PublicClient;
let payers: PrivateKeyAccount[];
let facilitatorSigner: PrivateKeyAccount;
let facilitator: SchemeFacilitator;
let payerIndex = 0;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 3 });
  chain = createPublicClient({ transport: http(net.rpcUrl) });
  payers = net.accounts.payers.map((p) => privateKeyToAccount(p.privateKey));
  facilitatorSigner = privateKeyToAccount(net.accounts.facilitator.privateKey);
  facilitator = makeFacilitator();
});

afterAll(async () => {
  await net?.stop();
});

function makeFacilitator(extra: Partial<ExactEvmFacilitatorConfig> & { multicall3?: false } = {}) {
  const { multicall3, ...rest } = extra;
  return exactEvmFacilitator({
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [net.usdc], ...(multicall3 === false ? { multicall3 } : {}) }],
    signer: facilitatorSigner,
    receiptTimeoutMs: 10_000,
    pollingIntervalMs: 200,
    ...rest,
  });
}

function requirements(over: Partial<PaymentRequirements> = {}): PaymentRequirements {
  return {
    scheme: "exact",
    network: net.network,
    amount: "10000",
    asset: net.usdc.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 60,
    extra: { name: net.usdc.name, version: net.usdc.version },
    ...over,
  };
}

/** A payer for the next test (rotates through the funded ones). */
function nextPayer() {
  return payers[payerIndex++ % payers.length]!;
}

async function sign(req: PaymentRequirements, opts: { account?: PrivateKeyAccount; now?: number } = {}): Promise<PaymentPayload> {
  const account = opts.account ?? nextPayer();
  const client = exactEvmClient({ account, ...(opts.now !== undefined ? { now: () => opts.now! } : {}) });
  const payload = await client.createPayload(req, { x402Version: 2 });
  return { x402Version: 2, accepted: req, payload };
}

const balanceOf = (address: Address) => chain.readContract({ address: net.usdc.address, abi: eip3009Abi, functionName: "balanceOf", args: [address] });

function inner(p: PaymentPayload): ExactEvmPayload {
  return p.payload as unknown as ExactEvmPayload;
}

function withPayload(p: PaymentPayload, change: (x: ExactEvmPayload) => ExactEvmPayload): PaymentPayload {
  return { ...p, payload: change(structuredClone(inner(p))) as unknown as Record<string, unknown> };
}

/** verify and settle both refuse with `reason`, nothing is sent, and no balance moves. */
async function expectRefused(p: PaymentPayload, req: PaymentRequirements, reason: string, f: SchemeFacilitator = facilitator) {
  const claimed = (inner(p) as Partial<ExactEvmPayload> | undefined)?.authorization?.from;
  const from = (claimed && isAddress(claimed) ? claimed : net.accounts.payers[0]!.address) as Address;
  const before = [await balanceOf(from), await balanceOf(net.accounts.payee.address)];
  const v = await f.verify(p, req);
  expect(v, v.invalidMessage).toMatchObject({ isValid: false, invalidReason: reason });
  expect(v.invalidMessage).toBeTruthy();
  const s = await f.settle(p, req);
  expect(s, s.errorMessage).toMatchObject({ success: false, errorReason: reason, transaction: "", network: req.network });
  expect([await balanceOf(from), await balanceOf(net.accounts.payee.address)]).toEqual(before);
  return v;
}

const strip0x = (h: string) => h.slice(2);

describe("exact EVM on anvil", () => {
  it("signs, verifies and settles: payer -amount, payee +amount", async () => {
    const req = requirements({ amount: "12345" });
    const p = await sign(req);
    const from = inner(p).authorization.from;
    const [payerBefore, payeeBefore] = [await balanceOf(from), await balanceOf(net.accounts.payee.address)];

    expect(await facilitator.verify(p, req)).toEqual({ isValid: true, payer: from });
    const s = await facilitator.settle(p, req);
    expect(s).toEqual({ success: true, transaction: expect.stringMatching(/^0x[0-9a-f]{64}$/), network: net.network, payer: from, amount: "12345" });

    const receipt = await chain.getTransactionReceipt({ hash: s.transaction as Hex });
    expect(receipt.status).toBe("success");
    expect(receipt.from.toLowerCase()).toBe(facilitatorSigner.address.toLowerCase());
    expect(await balanceOf(from)).toBe(payerBefore - 12345n);
    expect(await balanceOf(net.accounts.payee.address)).toBe(payeeBefore + 12345n);
    expect(facilitator.signers(net.network)).toEqual([facilitatorSigner.address]);
    expect(facilitator.networks).toEqual([net.network]);

    // The same authorization again: the nonce is spent, verify and settle agree.
    await expectRefused(p, req, Reason.evmNonceUsed);
  });

  it("refuses a tampered amount", async () => {
    const req = requirements();
    const p = await sign(req);
    // The payload claims more than it signed, matching the requirements: the signature breaks.
    const more = requirements({ amount: "20000" });
    await expectRefused(withPayload({ ...p, accepted: more }, (x) => ({ ...x, authorization: { ...x.authorization, value: "20000" } })), more, Reason.evmSignature);
    // The payload's value no longer matches the requirements.
    await expectRefused(withPayload(p, (x) => ({ ...x, authorization: { ...x.authorization, value: "9999" } })), req, Reason.evmValueMismatch);
    // Signed for less than required.
    await expectRefused(await sign(requirements({ amount: "9999" })), req, Reason.evmValueMismatch);
  });

  it("refuses a payment to another address", async () => {
    const p = await sign(requirements({ payTo: net.accounts.deployer.address }));
    await expectRefused(p, requirements(), Reason.evmRecipientMismatch);
  });

  it("refuses expired and not-yet-valid authorizations", async () => {
    const now = Math.floor(Date.now() / 1000);
    await expectRefused(await sign(requirements(), { now: now - 3600 }), requirements(), Reason.evmValidBefore);
    await expectRefused(await sign(requirements(), { now: now + 3600 }), requirements(), Reason.evmValidAfter);
    // Too close to expiry to land (validBefore within minValiditySeconds).
    await expectRefused(await sign(requirements({ maxTimeoutSeconds: 3 }), { now }), requirements({ maxTimeoutSeconds: 3 }), Reason.evmValidBefore);
    // A window far longer than the requirements allow.
    await expectRefused(await sign(requirements({ maxTimeoutSeconds: 86_400 })), requirements(), Reason.evmValidityTooLong);
  });

  it("refuses a signature for another chain id", async () => {
    const p = await sign(requirements({ network: "eip155:1" }));
    await expectRefused({ ...p, accepted: requirements() }, requirements(), Reason.evmSignature);
  });

  it("refuses requirements naming the wrong token domain", async () => {
    const wrongName = requirements({ extra: { name: "USDC", version: "2" } });
    const v = await expectRefused(await sign(wrongName), wrongName, Reason.evmTokenDomainMismatch);
    expect(v.invalidMessage).toContain('name="USD Coin"');
    const wrongVersion = requirements({ extra: { name: "USD Coin", version: "1" } });
    await expectRefused(await sign(wrongVersion), wrongVersion, Reason.evmTokenDomainMismatch);
    const missing = requirements({ extra: {} });
    const p = await sign(requirements());
    await expectRefused({ ...p, accepted: missing }, missing, Reason.invalidPaymentRequirements);
  });

  it("refuses a payer without enough balance", async () => {
    const poor = privateKeyToAccount(generatePrivateKey());
    await expectRefused(await sign(requirements(), { account: poor }), requirements(), Reason.insufficientFunds);
  });

  it("refuses a signature by another key and a malleable (high-s) signature", async () => {
    const victim = nextPayer();
    const p = await sign(requirements(), { account: privateKeyToAccount(generatePrivateKey()) });
    await expectRefused(withPayload(p, (x) => ({ ...x, authorization: { ...x.authorization, from: victim.address } })), requirements(), Reason.evmSignature);

    const good = await sign(requirements());
    const sig = strip0x(inner(good).signature);
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    const highS = (n - BigInt("0x" + sig.slice(64, 128))).toString(16).padStart(64, "0");
    const flippedV = sig.slice(128) === "1b" ? "1c" : "1b";
    const malleable = `0x${sig.slice(0, 64)}${highS}${flippedV}` as Hex;
    const v = await expectRefused(withPayload(good, (x) => ({ ...x, signature: malleable })), requirements(), Reason.evmSignature);
    expect(v.invalidMessage).toMatch(/malleable/);
    // The untouched payload is still good: the refusals consumed nothing.
    expect(await facilitator.verify(good, requirements())).toMatchObject({ isValid: true });
  });

  it("refuses malformed payload fields, naming the field", async () => {
    const p = await sign(requirements());
    const cases: [(x: ExactEvmPayload) => unknown, string][] = [
      [(x) => ({ ...x, signature: "0xdeadbeef" }), "paymentPayload.payload.signature"],
      [(x) => ({ ...x, authorization: { ...x.authorization, value: "1e4" } }), "paymentPayload.payload.authorization.value"],
      [(x) => ({ ...x, authorization: { ...x.authorization, nonce: "0x01" } }), "paymentPayload.payload.authorization.nonce"],
      [(x) => ({ ...x, authorization: { ...x.authorization, from: "alice" } }), "paymentPayload.payload.authorization.from"],
      [(x) => ({ ...x, authorization: { ...x.authorization, validBefore: -1 } }), "paymentPayload.payload.authorization.validBefore"],
      [() => ({}), "paymentPayload.payload.signature"],
      [() => "nope", "paymentPayload.payload"],
    ];
    for (const [change, field] of cases) {
      const bad = { ...p, payload: change(structuredClone(inner(p))) as Record<string, unknown> };
      const v = await expectRefused(bad, requirements(), Reason.invalidPayload);
      expect(v.invalidMessage).toContain(field);
    }
  });

  it("refuses assets outside the allowlist and networks it does not serve", async () => {
    const other = requirements({ asset: net.batchSettler.address });
    await expectRefused(await sign(other), other, Reason.evmAssetNotAllowed);
    const mainnet = requirements({ network: "eip155:1" });
    await expectRefused(await sign(mainnet), mainnet, Reason.invalidNetwork);
  });

  it("reports a failing dry run as simulation failure", async () => {
    // The facilitator's clock runs an hour behind the chain, so its own time checks pass
    // but the token sees an expired authorization.
    const now = Math.floor(Date.now() / 1000);
    const lagging = makeFacilitator({ now: () => now - 3600 });
    const p = await sign(requirements(), { now: now - 3590 });
    const v = await expectRefused(p, requirements(), Reason.evmSimulationFailed, lagging);
    expect(v.invalidMessage).toMatch(/AuthorizationExpired/);
  });

  it("does all chain reads of a verify in one eth_call through Multicall3", async () => {
    const methods: string[] = [];
    const transport = http(net.rpcUrl);
    const counting = createPublicClient({
      transport: (opts) => {
        const t = transport(opts);
        return { ...t, request: (async (args: { method: string }) => { methods.push(args.method); return t.request(args as never); }) as typeof t.request };
      },
    });
    const f = exactEvmFacilitator({ networks: [{ network: net.network, publicClient: counting, assets: [net.usdc] }], signer: facilitatorSigner });
    const p = await sign(requirements());
    expect(await f.verify(p, requirements())).toMatchObject({ isValid: true }); // first: chain id + Multicall3 probe + batch
    methods.length = 0;
    expect(await f.verify(p, requirements())).toMatchObject({ isValid: true });
    expect(methods).toEqual(["eth_call"]);
  });

  it("works without Multicall3 (one call per read)", async () => {
    const plain = makeFacilitator({ multicall3: false });
    const p = await sign(requirements({ amount: "7" }));
    expect(await plain.verify(p, requirements({ amount: "7" }))).toMatchObject({ isValid: true });
    expect(await plain.settle(p, requirements({ amount: "7" }))).toMatchObject({ success: true });
    await expectRefused(p, requirements({ amount: "7" }), Reason.evmNonceUsed, plain);
    await expectRefused(await sign(requirements(), { account: privateKeyToAccount(generatePrivateKey()) }), requirements(), Reason.insufficientFunds, plain);
  });

  it("concurrent settles of one authorization share one transaction (which one may answer success is the ledger's call)", async () => {
    const p = await sign(requirements());
    const from = inner(p).authorization.from;
    const before = await balanceOf(from);
    const sentBefore = await chain.getTransactionCount({ address: facilitatorSigner.address });
    const results = await Promise.all([facilitator.settle(p, requirements()), facilitator.settle(p, requirements())]);
    // No in-flight set in the scheme refuses the copy: the sender merges it into the first send.
    expect(results[0]).toMatchObject({ success: true });
    expect(results[1]).toEqual(results[0]);
    expect(await balanceOf(from)).toBe(before - 10000n);
    expect(await chain.getTransactionCount({ address: facilitatorSigner.address })).toBe(sentBefore + 1);
    // Afterwards the chain answers: the nonce is used.
    expect(await facilitator.settle(p, requirements())).toMatchObject({ success: false, errorReason: Reason.evmNonceUsed });
  });

  it("hands settlement to a custom submitter and passes its pending result on as a value", async () => {
    const calls: unknown[] = [];
    const pendingHash = `0x${"ab".repeat(32)}` as Hex;
    const hooked = makeFacilitator({
      submit: async (call) => {
        calls.push(call);
        return { status: "pending", transaction: pendingHash };
      },
    });
    const p = await sign(requirements());
    const s = await hooked.settle(p, requirements());
    // Spec: a settle that did not settle has transaction ""; the hash travels in our extension.
    expect(s).toMatchObject({
      success: false,
      errorReason: Reason.settlementPending,
      transaction: "",
      extensions: { "tollgate-settlement": { status: "pending", transaction: pendingHash } },
    });
    expect(calls).toEqual([
      expect.objectContaining({ network: net.network, asset: net.usdc.address, signature: inner(p).signature, data: expect.stringMatching(/^0x/) }),
    ]);
    // The scheme keeps no in-flight set: a second settle reaches the submitter, whose job (with the
    // facilitator's ledger) it is to merge or refuse it.
    expect(await hooked.settle(p, requirements())).toMatchObject({ success: false, errorReason: Reason.settlementPending });
    expect(calls).toHaveLength(2);
    // A submitter that throws answers a failure, never a crash.
    const throwing = makeFacilitator({ submit: async () => Promise.reject(new Error("boom")) });
    expect(await throwing.settle(await sign(requirements()), requirements())).toMatchObject({ success: false, errorReason: Reason.unexpectedSettleError, transaction: "" });
  });

  it("settleDryRun: false leaves the dry run to the submitter and keeps every other check", async () => {
    expect(() => makeFacilitator({ settleDryRun: false })).toThrow(/settleDryRun/);
    const now = Math.floor(Date.now() / 1000);
    const calls: unknown[] = [];
    // An hour behind the chain: its own time checks pass, only the token (a dry run) would refuse.
    const lagging = makeFacilitator({
      now: () => now - 3600,
      settleDryRun: false,
      submit: async (call) => {
        calls.push(call);
        return { status: "settled", transaction: `0x${"cd".repeat(32)}` as Hex };
      },
    });
    const expired = await sign(requirements(), { now: now - 3590 });
    // verify still dry-runs; settle hands it over for the submitter's simulation to judge.
    expect(await lagging.verify(expired, requirements())).toMatchObject({ isValid: false, invalidReason: Reason.evmSimulationFailed });
    expect(await lagging.settle(expired, requirements())).toMatchObject({ success: true });
    expect(calls).toHaveLength(1);
    // The on-chain reads stay: no balance, and a used nonce, are refused before the submitter.
    const poor = await sign(requirements(), { account: privateKeyToAccount(generatePrivateKey()), now: now - 3590 });
    expect(await lagging.settle(poor, requirements())).toMatchObject({ success: false, errorReason: Reason.insufficientFunds });
    const used = await sign(requirements());
    expect(await facilitator.settle(used, requirements())).toMatchObject({ success: true });
    const usedLagging = makeFacilitator({ settleDryRun: false, submit: async (call) => (calls.push(call), { status: "settled", transaction: `0x${"ef".repeat(32)}` as Hex }) });
    expect(await usedLagging.settle(used, requirements())).toMatchObject({ success: false, errorReason: Reason.evmNonceUsed });
    expect(calls).toHaveLength(1);
  });

  it("answers settlement_pending with the hash when the receipt does not come in time", async () => {
    const test = createTestClient({ mode: "anvil", transport: http(net.rpcUrl) });
    const slow = makeFacilitator({ receiptTimeoutMs: 1_000 });
    const p = await sign(requirements());
    const from = inner(p).authorization.from;
    const before = await balanceOf(from);
    await test.setAutomine(false);
    let s;
    try {
      s = await slow.settle(p, requirements());
    } finally {
      await test.mine({ blocks: 1 });
      await test.setAutomine(true);
    }
    const hash = (s.extensions?.["tollgate-settlement"] as { transaction?: Hex } | undefined)?.transaction;
    expect(s).toMatchObject({ success: false, errorReason: Reason.settlementPending, transaction: "" });
    expect(hash).toMatch(/^0x[0-9a-f]{64}$/);
    // It landed after all: the reported hash is the real transaction.
    const receipt = await chain.waitForTransactionReceipt({ hash: hash!, timeout: 5_000 });
    expect(receipt.status).toBe("success");
    expect(await balanceOf(from)).toBe(before - 10000n);
  });
});
