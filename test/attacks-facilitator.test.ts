/**
 * The facilitator service attacked as a hostile client would, over real HTTP, on a real anvil
 * chain, with money checked on chain after every attempt:
 *
 * - one payment, many responses: 8 and 50 concurrent /settle of one payload, a sequential replay,
 *   payment-identifier replays and conflicts, an authorization re-signed with other content;
 * - unauthenticated writes: forged and unsigned payloads naming a victim payer (ledger rows,
 *   events, the victim's rate-limit bucket and payment-identifier);
 * - malformed bodies: 100 000 levels of nesting, missing x402Version;
 * - gas for nothing: a zero amount;
 * - never charged without the resource: a settlement left pending, then mined, is handed out to
 *   the next /settle of the same payload, once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { Reason, type PaymentPayload, type PaymentRequirements } from "@tollgate/core";
import { devAccount, startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { eip3009Abi, transferWithAuthorizationTypes } from "@tollgate/evm";
import { createLedger, startFacilitator, type Ledger, type RunningFacilitator } from "@tollgate/facilitator";
import { createPublicClient, http, type Address, type Hex, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

const EXT = "tollgate-settlement";

let net: RunningLocalNetwork;
let chain: PublicClient;
let ledger: Ledger;
/** The service under attack (fee payer: the devnet facilitator account). */
let service: RunningFacilitator;
/** A second instance on the same store for the pending path: short receipt wait, its own fee payer. */
let slow: RunningFacilitator;
const slowKey = devAccount(8);

/** Per-payer bucket of the service: a victim named 100 times by forgeries would be empty if it counted them. */
const PAYER_BURST = 60;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 8 });
  chain = createPublicClient({ transport: http(net.rpcUrl) });
  ledger = await createLedger();
  const networks = [{ network: net.network, rpcUrl: net.rpcUrl, batchSettler: net.batchSettler.address, assets: [{ address: net.usdc.address, name: net.usdc.name, version: net.usdc.version, decimals: net.usdc.decimals }] }];
  service = await startFacilitator(
    {
      port: 0,
      logLevel: "silent",
      networks,
      privateKeys: [net.accounts.facilitator.privateKey],
      settle: { pollMs: 25 },
      // Large enough for 100 000 levels of nesting to reach the parser (the depth check, not 413).
      bodyLimitBytes: 512 * 1024,
      rateLimit: { perPayer: { perSecond: 0.001, burst: PAYER_BURST } },
    },
    { ledger },
  );
  slow = await startFacilitator(
    {
      port: 0,
      logLevel: "silent",
      networks,
      privateKeys: [slowKey.privateKey],
      settle: { pollMs: 25, waitMs: 300 },
      settlement: { receiptTimeoutMs: 300, reconcileIntervalMs: 200 },
    },
    { ledger },
  );
}, 180_000);

afterAll(async () => {
  await slow?.close();
  await service?.close();
  await ledger?.close();
  await net?.stop();
});

// ------------------------------------------------------------------------------------ helpers

function requirements(amount: string): PaymentRequirements {
  return { scheme: "exact", network: net.network, amount, asset: net.usdc.address, payTo: net.accounts.payee.address, maxTimeoutSeconds: 300, extra: { name: net.usdc.name, version: net.usdc.version } };
}

interface Signed {
  body: string;
  from: Address;
  nonce: Hex;
  amount: bigint;
}

interface SignOptions {
  amount?: string;
  nonce?: Hex;
  /** Varies the signed content under one authorization key. */
  validBefore?: bigint;
  id?: string;
  /** Names this payer in `authorization.from` whoever signs (a forgery when it is not the signer). */
  from?: Address;
  signature?: Hex;
}

/** A real EIP-3009 authorization signed by `key`, as the /verify and /settle body. */
async function sign(key: Hex, o: SignOptions = {}): Promise<Signed> {
  const q = requirements(o.amount ?? "1000");
  const account = privateKeyToAccount(key);
  const message = {
    from: o.from ?? account.address,
    to: net.accounts.payee.address,
    value: BigInt(q.amount),
    validAfter: 0n,
    validBefore: o.validBefore ?? BigInt(Math.floor(Date.now() / 1000) + 240),
    nonce: o.nonce ?? (`0x${randomBytes(32).toString("hex")}` as Hex),
  };
  const signature =
    o.signature ??
    (await account.signTypedData({
      domain: { name: net.usdc.name, version: net.usdc.version, chainId: net.chainId, verifyingContract: net.usdc.address },
      types: transferWithAuthorizationTypes,
      primaryType: "TransferWithAuthorization",
      message,
    }));
  const authorization = { from: message.from, to: message.to, value: String(message.value), validAfter: "0", validBefore: String(message.validBefore), nonce: message.nonce };
  const paymentPayload: PaymentPayload = {
    x402Version: 2,
    accepted: q,
    payload: { signature, authorization },
    ...(o.id ? { extensions: { "payment-identifier": { info: { required: false, id: o.id } } } } : {}),
  };
  return { body: JSON.stringify({ x402Version: 2, paymentPayload, paymentRequirements: q }), from: message.from, nonce: message.nonce, amount: message.value };
}

const payerKey = (i: number) => net.accounts.payers[i]!.privateKey;

async function call(url: string, path: "/verify" | "/settle", body: string): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body });
  return { status: res.status, json: await res.json() };
}
const settle = (body: string, url = service.url) => call(url, "/settle", body);
const verify = (body: string, url = service.url) => call(url, "/verify", body);

const tokenBalance = (a: Address) => chain.readContract({ address: net.usdc.address, abi: eip3009Abi, functionName: "balanceOf", args: [a] }) as Promise<bigint>;
const authorizationUsed = (p: Signed) =>
  chain.readContract({ address: net.usdc.address, abi: eip3009Abi, functionName: "authorizationState", args: [p.from, p.nonce] }) as Promise<boolean>;

/** What an attempt may change on chain: the payee's tokens, and the fee payers' nonces and ETH. */
async function chainState() {
  const feePayers = [net.accounts.facilitator.address, slowKey.address];
  return {
    payee: await tokenBalance(net.accounts.payee.address),
    nonces: await Promise.all(feePayers.map((a) => chain.getTransactionCount({ address: a }))),
    eth: await Promise.all(feePayers.map((a) => chain.getBalance({ address: a }))),
  };
}

const keyOf = (p: Signed) => `${net.network}|${net.usdc.address.toLowerCase()}|${p.from.toLowerCase()}|${p.nonce.toLowerCase()}`;

async function rowsAndEventsFor(payer: string): Promise<number> {
  await service.app.audit.drain();
  const rows = await ledger.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${ledger.schema}.payments WHERE lower(payer) = $1`, [payer.toLowerCase()]);
  const events = await ledger.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${ledger.schema}.payment_events WHERE lower(payer) = $1`, [payer.toLowerCase()]);
  return Number(rows[0]!.n) + Number(events[0]!.n);
}

function expectOneSuccess(answers: any[], statuses: number[], p: Signed) {
  expect(statuses.every((s) => s === 200)).toBe(true);
  const successes = answers.filter((a) => a.success === true);
  expect(successes).toHaveLength(1);
  const tx = successes[0].transaction;
  expect(tx).toMatch(/^0x[0-9a-f]{64}$/);
  for (const a of answers.filter((x) => !x.success)) {
    // The others are told it was settled (naming the first transaction), or to wait.
    expect([Reason.duplicateSettlement, Reason.settlementPending]).toContain(a.errorReason);
    expect(a.transaction).toBe("");
    if (a.errorReason === Reason.duplicateSettlement) expect(a.extensions[EXT]).toEqual({ status: "settled", transaction: tx });
  }
  void p;
  return tx as Hex;
}

// -------------------------------------------------------------------------------------- tests

describe("one payment, one success", () => {
  for (const [n, payer] of [
    [8, 0],
    [50, 1],
  ] as const) {
    it(`${n} concurrent /settle of one payload: exactly one success:true and one transfer`, async () => {
      const p = await sign(payerKey(payer), { amount: String(1000 + n) });
      const before = await chainState();
      const results = await Promise.all(Array.from({ length: n }, () => settle(p.body)));
      const tx = expectOneSuccess(
        results.map((r) => r.json),
        results.map((r) => r.status),
        p,
      );
      const receipt = await chain.getTransactionReceipt({ hash: tx });
      expect(receipt.status).toBe("success");
      expect(await tokenBalance(net.accounts.payee.address)).toBe(before.payee + p.amount);
      expect((await chainState()).nonces[0]).toBe(before.nonces[0]! + 1);
      expect(await ledger.get(keyOf(p))).toMatchObject({ status: "settled", answered: true, attempts: 1 });
    }, 120_000);
  }

  it("a sequential replay of a settled payload: duplicate_settlement naming the first transaction, nothing sent", async () => {
    const p = await sign(payerKey(2), { amount: "1200" });
    const first = await settle(p.body);
    expect(first.json).toMatchObject({ success: true });
    const before = await chainState();
    for (let i = 0; i < 3; i++) {
      const again = await settle(p.body);
      expect(again.status).toBe(200);
      expect(again.json).toEqual({
        success: false,
        errorReason: Reason.duplicateSettlement,
        errorMessage: expect.any(String),
        transaction: "",
        network: net.network,
        payer: p.from.toLowerCase(),
        extensions: { [EXT]: { status: "settled", transaction: first.json.transaction } },
      });
      // Verify agrees: the chain says used, and the success was handed out already.
      expect((await verify(p.body)).json).toMatchObject({ isValid: false, invalidReason: Reason.evmNonceUsed });
    }
    expect(await chainState()).toEqual(before);
  }, 60_000);

  it("payment-identifier: concurrent copies get one success and replays marked replay:true; one transfer", async () => {
    const id = `order_${randomBytes(12).toString("hex")}`;
    const p = await sign(payerKey(2), { amount: "1300", id });
    const before = await chainState();
    const answers = (await Promise.all(Array.from({ length: 8 }, () => settle(p.body)))).map((r) => r.json);
    const fresh = answers.filter((a) => a.success && !a.extensions?.[EXT]?.replay);
    const replays = answers.filter((a) => a.success && a.extensions?.[EXT]?.replay === true);
    expect(fresh).toHaveLength(1);
    expect(replays).toHaveLength(7);
    for (const r of replays) expect(r).toMatchObject({ transaction: fresh[0].transaction, extensions: { [EXT]: { status: "settled", replay: true } } });
    expect((await settle(p.body)).json.extensions[EXT].replay).toBe(true);
    // The identifier's payload is valid at verify for its replay (the paywall answers it from its cache).
    expect((await verify(p.body)).json.isValid).toBe(true);
    expect(await tokenBalance(net.accounts.payee.address)).toBe(before.payee + p.amount);
    expect((await chainState()).nonces[0]).toBe(before.nonces[0]! + 1);
  }, 60_000);

  it("same payment-identifier with another payload: 200 invalid_payment_identifier_conflict, nothing sent", async () => {
    const id = `order_${randomBytes(12).toString("hex")}`;
    const first = await sign(payerKey(3), { amount: "1400", id });
    expect((await settle(first.body)).json.success).toBe(true);
    const other = await sign(payerKey(3), { amount: "1401", id });
    const before = await chainState();
    for (const path of ["/settle"] as const) {
      const r = await call(service.url, path, other.body);
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ success: false, errorReason: Reason.paymentIdentifierConflict, transaction: "" });
    }
    expect(await chainState()).toEqual(before);
    expect(await authorizationUsed(other)).toBe(false);
  }, 60_000);

  it("one authorization re-signed with other content after it settled: 200 invalid_payload_authorization_reused", async () => {
    const p = await sign(payerKey(3), { amount: "1500" });
    expect((await settle(p.body)).json.success).toBe(true);
    const resigned = await sign(payerKey(3), { amount: "1500", nonce: p.nonce, validBefore: BigInt(Math.floor(Date.now() / 1000) + 200) });
    const before = await chainState();
    const r = await settle(resigned.body);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ success: false, errorReason: Reason.authorizationReused, transaction: "" });
    expect(await chainState()).toEqual(before);
  }, 60_000);
});

describe("nothing is written or limited for a payer who did not sign", () => {
  it("forged and unsigned payloads naming a victim: refused, no row, no event, bucket and identifier untouched", async () => {
    const victimKey = payerKey(4);
    const victim = privateKeyToAccount(victimKey).address;
    const id = `victim_${randomBytes(12).toString("hex")}`;
    expect(await rowsAndEventsFor(victim)).toBe(0);
    const before = await chainState();
    const attacker = generatePrivateKey();
    const forgeries = [
      ...(await Promise.all(Array.from({ length: 50 }, () => sign(attacker, { from: victim, id })))), // the attacker's signature, the victim named
      ...(await Promise.all(Array.from({ length: 50 }, () => sign(attacker, { from: victim, signature: `0x${randomBytes(65).toString("hex")}` as Hex, id })))), // no signature at all
    ];
    for (const f of forgeries) {
      for (const path of ["/verify", "/settle"] as const) {
        const r = await call(service.url, path, f.body);
        expect(r.status, path).toBe(200);
        const reason = path === "/verify" ? r.json.invalidReason : r.json.errorReason;
        expect([Reason.evmSignature, Reason.evmContractWalletNotAllowed]).toContain(reason);
      }
    }
    expect(await rowsAndEventsFor(victim)).toBe(0);
    for (const f of forgeries.slice(0, 5)) expect(await ledger.get(keyOf(f))).toBeUndefined();
    expect(await chainState()).toEqual(before);
    // 200 forged requests named the victim; its bucket (burst 60) is untouched, its identifier free.
    const real = await sign(victimKey, { amount: "1600", id });
    expect((await verify(real.body)).status).toBe(200);
    const settled = await settle(real.body);
    expect(settled.status).toBe(200);
    expect(settled.json.success).toBe(true);
    expect(settled.json.payer.toLowerCase()).toBe(victim.toLowerCase());
    expect(await ledger.get(keyOf(real))).toMatchObject({ status: "settled", paymentIdentifier: id });
  }, 120_000);
});

describe("malformed and worthless requests", () => {
  it("100 000 levels of nesting: 400 naming the depth, never a 500; nested inside a valid body too", async () => {
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    for (const path of ["/verify", "/settle"] as const) {
      const bare = await call(service.url, path, deep);
      expect(bare.status).toBe(400);
      expect(bare.json.invalidMessage ?? bare.json.errorMessage).toMatch(/nested deeper than 32 levels/);
      const p = JSON.parse((await sign(payerKey(5))).body);
      const wrapped = JSON.stringify(p).replace('"payload":{', `"payload":{"deep":${"[".repeat(60_000)}${"]".repeat(60_000)},`);
      const inner = await call(service.url, path, wrapped);
      expect(inner.status).toBe(400);
      expect(inner.json.invalidMessage ?? inner.json.errorMessage).toMatch(/nested deeper than 32 levels/);
    }
    expect((await fetch(`${service.url}/health`)).status).toBe(200);
  }, 60_000);

  it("missing x402Version: 400 invalid_x402_version naming the field", async () => {
    const p = JSON.parse((await sign(payerKey(5))).body);
    delete p.x402Version;
    for (const path of ["/verify", "/settle"] as const) {
      const r = await call(service.url, path, JSON.stringify(p));
      expect(r.status).toBe(400);
      expect(r.json).toMatchObject(path === "/verify" ? { isValid: false, invalidReason: Reason.invalidX402Version } : { success: false, errorReason: Reason.invalidX402Version, transaction: "" });
      expect(r.json.invalidMessage ?? r.json.errorMessage).toMatch(/^x402Version: is required/);
    }
  }, 30_000);

  it("zero amount, properly signed: invalid_amount_zero at verify and settle; no gas spent, no nonce used", async () => {
    const p = await sign(payerKey(5), { amount: "0" });
    const before = await chainState();
    const v = await verify(p.body);
    expect(v.status).toBe(200);
    expect(v.json).toMatchObject({ isValid: false, invalidReason: Reason.amountZero });
    const s = await settle(p.body);
    expect(s.status).toBe(200);
    expect(s.json).toMatchObject({ success: false, errorReason: Reason.amountZero, transaction: "" });
    expect(await chainState()).toEqual(before);
    expect(await authorizationUsed(p)).toBe(false);
  }, 30_000);
});

describe("never charged without the resource", () => {
  it("a settlement left pending, then mined: the next /settle of the same payload gets the success, once", async () => {
    const p = await sign(payerKey(6), { amount: "1700" });
    const payeeBefore = await tokenBalance(net.accounts.payee.address);
    await chain.request({ method: "evm_setAutomine" as never, params: [false] as never });
    let pendingTx: string;
    try {
      const first = await settle(p.body, slow.url);
      expect(first.status).toBe(200);
      expect(first.json).toMatchObject({ success: false, errorReason: Reason.settlementPending, transaction: "", extensions: { [EXT]: { status: "pending" } } });
      pendingTx = first.json.extensions[EXT].transaction;
      expect(pendingTx).toMatch(/^0x[0-9a-f]{64}$/);
      // A copy meanwhile: still pending (waitMs 300), nothing new sent.
      const copy = await settle(p.body, slow.url);
      expect(copy.json).toMatchObject({ success: false, errorReason: Reason.settlementPending, transaction: "" });
      await chain.request({ method: "evm_mine" as never, params: [] as never });
    } finally {
      await chain.request({ method: "evm_setAutomine" as never, params: [true] as never });
    }
    // The transaction landed; the row is settled by the engine or the reconciler (not answered yet).
    const deadline = Date.now() + 20_000;
    while ((await ledger.get(keyOf(p)))?.status !== "settled" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await ledger.get(keyOf(p))).toMatchObject({ status: "settled", answered: false, transaction: pendingTx });
    // The client's retry of the same payload: verify passes although the nonce is used on chain…
    expect((await verify(p.body)).json).toMatchObject({ isValid: true });
    // …and /settle hands out the success, on either instance, once.
    const retries = await Promise.all([settle(p.body), settle(p.body, slow.url), settle(p.body)]);
    const successes = retries.filter((r) => r.json.success);
    expect(successes).toHaveLength(1);
    expect(successes[0]!.json).toMatchObject({ success: true, transaction: pendingTx });
    expect(retries.filter((r) => r.json.errorReason === Reason.duplicateSettlement)).toHaveLength(2);
    expect(await tokenBalance(net.accounts.payee.address)).toBe(payeeBefore + p.amount);
    expect((await verify(p.body)).json).toMatchObject({ isValid: false, invalidReason: Reason.evmNonceUsed });
  }, 90_000);
});
