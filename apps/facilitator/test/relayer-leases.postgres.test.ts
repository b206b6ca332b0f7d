/**
 * Two facilitator instances on one PostgreSQL schema, configured alike (the same batch-settlement
 * relayer key, the same gas sponsor key), on one anvil:
 * - exactly one holds the relayer's lease; deposits sent to both never give two transactions one
 *   relayer nonce; the other refuses with `relayer_unavailable` and moves nothing;
 * - a holder that stops renewing (dead) loses the key at the lease's expiry: the other takes it,
 *   finishes the transaction the dead holder had only written ahead, and settles;
 * - after the holder closes, the other takes over within the lease TTL and settles, a deposit it
 *   refused before included;
 * - the gas sponsor key is leased the same way (one holder, failover on close).
 * Skipped (saying why) only when no PostgreSQL answers.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import pg from "pg";
import express from "express";
import { httpFacilitatorClient, type Network, type PaymentPayload, type PaymentRequirements } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import {
  ERC3009_DEPOSIT_COLLECTOR_ADDRESS,
  PERMIT2_ADDRESS,
  SponsorReason,
  batchSettlementAbi,
  memorySponsorStore,
  withErc20ApprovalSponsoring,
  computeChannelId,
  erc20PermitAbi,
  erc3009DepositNonce,
  exactEvmClient,
  exactEvmServer,
  loadArtifact,
  receiveWithAuthorizationTypes,
  voucherTypedData,
  type ChannelConfig,
} from "@tollgate/evm";
import { paymentMiddleware } from "@tollgate/express";
import { createPublicClient, createTestClient, createWalletClient, http, keccak256, parseEther, toHex, type Abi, type Address, type Hex, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { startFacilitator, type RunningFacilitator } from "../src/start.ts";
import { listen, type Closable } from "../../../test/support/listen.ts";

const DATABASE_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const schema = `tollgate_relayer_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
const LEASE_MS = 2000;
const API_KEY = "relayer-lease-test-key-0123";
const relayerKey = generatePrivateKey();
const relayer = privateKeyToAccount(relayerKey);
const sponsorKey = generatePrivateKey();
const sponsor = privateKeyToAccount(sponsorKey);
const authorizer = privateKeyToAccount(generatePrivateKey());

const db = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3000 });
const unreachable = await db.connect().then(
  () => undefined,
  (e: Error) => e.message,
);
if (unreachable) console.warn(`skipping relayer lease tests: PostgreSQL unreachable (${unreachable})`);

let net: RunningLocalNetwork;
let chain: PublicClient;
let payer: PrivateKeyAccount;
let first: RunningFacilitator;
let second: RunningFacilitator;
/** A paywall selling one exact Permit2 route in the plain token (it builds the sponsored payments' requirements). */
let paywall: Closable;

function config() {
  return {
    port: 0,
    host: "127.0.0.1",
    logLevel: "silent" as const,
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [net.usdc, net.plainToken].map((a) => ({ address: a.address, name: a.name, version: a.version, decimals: a.decimals })) }],
    privateKeys: [net.accounts.facilitator.privateKey],
    apiKeys: [API_KEY],
    databaseUrl: DATABASE_URL,
    databaseSchema: schema,
    signerLeaseMs: LEASE_MS,
    batchSettlement: { relayerKey, receiptTimeoutMs: 20_000 },
    gasSponsoring: { sponsorKey },
  };
}

beforeAll(async () => {
  if (unreachable) return;
  net = await startLocalNetwork({ payers: 1 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  payer = privateKeyToAccount(net.accounts.payers[0]!.privateKey);
  const test = createTestClient({ mode: "anvil", chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
  await test.setBalance({ address: relayer.address, value: parseEther("100") });
  await test.setBalance({ address: sponsor.address, value: parseEther("1") });
  // One after the other: the first takes every free lease before the second exists.
  first = await startFacilitator(config());
  second = await startFacilitator(config());
  const app = express();
  const token = { ...net.plainToken, network: net.network as Network, symbol: "PUSD", assetTransferMethod: "permit2" as const };
  app.use(
    paymentMiddleware({
      facilitator: httpFacilitatorClient({ url: first.url }),
      schemes: [exactEvmServer({ assets: [token] })],
      routes: { "GET /exact": { price: { amount: "3000", asset: net.plainToken.address }, network: net.network as Network, payTo: net.accounts.payee.address } },
    }),
  );
  app.get("/exact", (_req, res) => void res.json({ ok: true }));
  paywall = await listen(app);
}, 120_000);

afterAll(async () => {
  await paywall?.close().catch(() => undefined);
  await first?.close().catch(() => undefined);
  await second?.close().catch(() => undefined);
  if (!unreachable) await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
  await db.end().catch(() => undefined);
  await net?.stop();
});

const salt = (): Hex => toHex(crypto.getRandomValues(new Uint8Array(32)));

function requirements(): PaymentRequirements {
  return {
    scheme: "batch-settlement",
    network: net.network,
    amount: "1000",
    asset: net.usdc.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 600,
    extra: { receiverAuthorizer: authorizer.address, withdrawDelay: 900, name: net.usdc.name, version: net.usdc.version },
  };
}

const channel = (): ChannelConfig => ({ payer: payer.address, payerAuthorizer: payer.address, receiver: net.accounts.payee.address, receiverAuthorizer: authorizer.address, token: net.usdc.address, withdrawDelay: 900, salt: salt() });

async function depositPayload(cfg: ChannelConfig, amount: bigint) {
  const channelId = computeChannelId(cfg, net.chainId);
  const s = BigInt(salt());
  const validBefore = BigInt(Math.floor(Date.now() / 1000) + 600);
  const signature = await payer.signTypedData({
    domain: { name: net.usdc.name, version: net.usdc.version, chainId: net.chainId, verifyingContract: net.usdc.address },
    types: receiveWithAuthorizationTypes,
    primaryType: "ReceiveWithAuthorization",
    message: { from: payer.address, to: ERC3009_DEPOSIT_COLLECTOR_ADDRESS, value: amount, validAfter: 0n, validBefore, nonce: erc3009DepositNonce(channelId, s) },
  });
  const voucher = { channelId, maxClaimableAmount: "1000", signature: await payer.signTypedData(voucherTypedData(channelId, 1000n, net.chainId)) };
  return { type: "deposit", channelConfig: cfg, voucher, deposit: { amount: amount.toString(), authorization: { erc3009Authorization: { validAfter: "0", validBefore: validBefore.toString(), salt: s.toString(), signature } } } };
}

async function call(service: RunningFacilitator, path: "/verify" | "/settle", payload: Record<string, unknown>) {
  const q = requirements();
  const res = await fetch(`${service.url}${path}`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` }, body: JSON.stringify({ x402Version: 2, paymentPayload: { x402Version: 2, accepted: q, payload }, paymentRequirements: q }) });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, any>;
}

const channelBalance = async (channelId: Hex) => (await chain.readContract({ address: net.batchSettlement.address, abi: batchSettlementAbi, functionName: "channels", args: [channelId] }))[0];

async function leaseRows(signer: string) {
  return (await db.query(`SELECT holder, expires_at > now() AS live FROM ${schema}.signer_leases WHERE signer = $1`, [signer.toLowerCase()])).rows as Array<{ holder: string; live: boolean }>;
}

async function relayerTxs() {
  return (await db.query(`SELECT hash, nonce::int AS nonce, status FROM ${schema}.batch_transactions WHERE from_address = $1 ORDER BY nonce`, [relayer.address.toLowerCase()])).rows as Array<{ hash: string; nonce: number; status: string }>;
}

/** A payer holding 10_000 of the plain token, no ETH, no Permit2 allowance. */
async function gaslessPayer(): Promise<PrivateKeyAccount> {
  const owner = privateKeyToAccount(generatePrivateKey());
  const deployer = createWalletClient({ account: privateKeyToAccount(net.accounts.deployer.privateKey), chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
  await chain.waitForTransactionReceipt({ hash: await deployer.writeContract({ address: net.plainToken.address, abi: loadArtifact("PlainToken").abi as Abi, functionName: "mint", args: [owner.address, 10_000n] }) });
  return owner;
}

/** The payment a wallet without EIP-2612 support builds from the paywall's 402: Permit2 plus a signed approve. */
async function sponsoredPayment(owner: PrivateKeyAccount): Promise<PaymentPayload> {
  const required = JSON.parse(Buffer.from((await fetch(`${paywall.url}/exact`)).headers.get("PAYMENT-REQUIRED")!, "base64").toString()) as { accepts: PaymentPayload["accepted"][]; extensions: Record<string, unknown> };
  const req = required.accepts[0]!;
  // `nonces` does not answer: the token looks like one without EIP-2612, so the approval path is taken.
  const reader = new Proxy(chain, {
    get: (target, prop, receiver) =>
      prop === "readContract" ? (args: { functionName: string }) => (args.functionName === "nonces" ? Promise.reject(new Error("no EIP-2612")) : target.readContract(args as never)) : Reflect.get(target, prop, receiver),
  });
  const client = exactEvmClient({ account: owner, chainReader: () => reader });
  const context = { x402Version: 2 as const, extensions: required.extensions };
  const payload = await client.createPayload(req, context);
  const extensions = await client.payloadExtensions?.(req, payload, context);
  return { x402Version: 2, accepted: req, payload, ...(extensions ? { extensions } : {}) };
}

async function settlePayment(service: RunningFacilitator, payment: PaymentPayload) {
  const res = await fetch(`${service.url}/settle`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` }, body: JSON.stringify({ x402Version: 2, paymentPayload: payment, paymentRequirements: payment.accepted }) });
  return (await res.json()) as Record<string, any>;
}

const eth = (who: Address) => chain.getBalance({ address: who });
const nonceOf = (who: Address) => chain.getTransactionCount({ address: who });

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(Boolean(unreachable))("a relayer key shared by two facilitator instances on one PostgreSQL", () => {
  const refusedBySecond: Array<{ payload: Record<string, unknown>; channelId: Hex }> = [];

  it("is leased to exactly one instance (its own group: the exact key is leased apart)", async () => {
    const rows = await leaseRows(relayer.address);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.holder).toMatch(/#batch-relayer$/);
    expect(first.batchSettlement!.relayer.holds(net.network)).toBe(true);
    expect(second.batchSettlement!.relayer.holds(net.network)).toBe(false);
    expect(first.sponsoring!.sponsor.holds(net.network)).toBe(true);
    expect(second.sponsoring!.sponsor.holds(net.network)).toBe(false);
    // The hard check inside the relayer's account (a lease lost after the /settle check): no signature.
    const tx = { type: "eip1559", chainId: net.chainId, to: relayer.address, value: 0n, gas: 21_000n, nonce: 0, maxFeePerGas: 1n, maxPriorityFeePerGas: 1n } as const;
    await expect(second.batchSettlement!.relayer.account.signTransaction(tx)).rejects.toThrow(/held by another facilitator instance/);
    await expect(first.batchSettlement!.relayer.account.signTransaction(tx)).resolves.toMatch(/^0x02/);
    const sponsorRows = await leaseRows(sponsor.address);
    expect(sponsorRows).toHaveLength(1);
    expect(sponsorRows[0]!.holder).toMatch(/#gas-sponsor$/);
    // The exact engine's key is still leased (in the default group) despite the extra holders.
    const exact = await leaseRows(privateKeyToAccount(net.accounts.facilitator.privateKey).address);
    expect(exact).toHaveLength(1);
    expect(exact[0]!.holder).not.toContain("#");
  });

  it("settles deposits sent to both at the holder only; the other refuses, moving nothing; no relayer nonce is used twice", async () => {
    const nonceBefore = await chain.getTransactionCount({ address: relayer.address });
    const payloads = await Promise.all(Array.from({ length: 6 }, async () => {
      const cfg = channel();
      return { payload: await depositPayload(cfg, 10_000n), channelId: computeChannelId(cfg, net.chainId) };
    }));
    // /verify is read-only: both instances answer it.
    for (const service of [first, second]) expect(await call(service, "/verify", payloads[0]!.payload)).toMatchObject({ isValid: true });
    const answers = await Promise.all(payloads.map((p, i) => call(i % 2 === 0 ? first : second, "/settle", p.payload)));
    for (const [i, a] of answers.entries()) {
      if (i % 2 === 0) {
        expect(a).toMatchObject({ success: true });
        expect(await channelBalance(payloads[i]!.channelId)).toBe(10_000n);
      } else {
        expect(a).toMatchObject({ success: false, errorReason: "relayer_unavailable", transaction: "" });
        expect(a.errorMessage).toContain("held by another facilitator instance");
        expect(a.errorMessage).toContain(relayer.address);
        expect(await channelBalance(payloads[i]!.channelId)).toBe(0n);
        refusedBySecond.push(payloads[i]!);
      }
    }
    const txs = await relayerTxs();
    expect(new Set(txs.map((t) => t.nonce)).size).toBe(txs.length);
    expect(txs.every((t) => t.status === "success")).toBe(true);
    expect(await chain.getTransactionCount({ address: relayer.address })).toBe(nonceBefore + 3);
  });

  it("the gas sponsor: the instance without its lease funds nothing (retryable refusal, no row); the holder funds and settles the same payment", async () => {
    const owner = await gaslessPayer();
    const payment = await sponsoredPayment(owner);
    const [sponsorBalance, sponsorNonce] = [await eth(sponsor.address), await nonceOf(sponsor.address)];
    const refused = await settlePayment(second, payment);
    expect(refused).toMatchObject({ success: false, errorReason: SponsorReason.sponsorUnavailable });
    expect(refused.errorMessage).toContain("held by another facilitator instance");
    expect(await eth(sponsor.address)).toBe(sponsorBalance);
    expect(await nonceOf(sponsor.address)).toBe(sponsorNonce);
    expect(await eth(owner.address)).toBe(0n);
    // No sponsored-approval row: nothing blocks the payer's retry at the holder.
    expect((await db.query(`SELECT count(*)::int AS n FROM ${schema}.sponsored_approvals WHERE payer = $1`, [owner.address.toLowerCase()])).rows[0].n).toBe(0);

    expect(await settlePayment(first, payment)).toMatchObject({ success: true });
    expect(await nonceOf(sponsor.address)).toBe(sponsorNonce + 1);
    expect(await chain.readContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "allowance", args: [owner.address, PERMIT2_ADDRESS] })).toBeGreaterThan(0n);
  }, 30_000);

  it("the gas sponsor's lease lost between the check and the signature: nothing signed, the row stays open (not failed), the retry funds once", async () => {
    const owner = await gaslessPayer();
    const payment = await sponsoredPayment(owner);
    const store = memorySponsorStore();
    const asked: boolean[] = [];
    let answers = [true, false]; // held at the /settle check, lost right before the signature
    // The service's exact scheme judges the payment; its settle is stubbed: the engine settles only
    // under the service's settle-once claim (the test above goes through it), this one is about funding.
    let innerSettles = 0;
    const exact = first.settlement!.scheme;
    const inner = { ...exact, settle: async (_p: PaymentPayload, r: PaymentRequirements) => (innerSettles++, { success: true, transaction: "inner settle reached", network: r.network }) };
    const scheme = withErc20ApprovalSponsoring(inner, {
      sponsor,
      networks: [{ network: net.network as Network, chainId: net.chainId, client: chain }],
      policy: { maxGas: 100_000n, maxFeePerGas: parseEther("0.00000005"), maxFunding: parseEther("0.005") },
      limits: { perPayerMax: 3, perPayerWindowMs: 3_600_000 },
      store,
      receiptTimeoutMs: 10_000,
      canSend: () => {
        const a = answers.shift() ?? true;
        asked.push(a);
        return a;
      },
    });
    const sponsorNonce = await nonceOf(sponsor.address);
    expect(await scheme.settle(payment, payment.accepted)).toMatchObject({ success: false, errorReason: SponsorReason.sponsorUnavailable });
    expect(asked).toEqual([true, false]);
    expect(await nonceOf(sponsor.address)).toBe(sponsorNonce);
    expect(await eth(owner.address)).toBe(0n);
    const [row] = await store.open(net.network as Network);
    expect(row).toMatchObject({ payer: owner.address, status: "intent" });
    expect(row!.fundingRaw).toBeUndefined();
    answers = [];
    expect(innerSettles).toBe(0);
    answers = [];
    expect(await scheme.settle(payment, payment.accepted)).toMatchObject({ success: true, transaction: "inner settle reached" });
    expect(innerSettles).toBe(1);
    expect(await nonceOf(sponsor.address)).toBe(sponsorNonce + 1);
    expect(await chain.readContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "allowance", args: [owner.address, PERMIT2_ADDRESS] })).toBeGreaterThan(0n);
    expect(await store.open(net.network as Network)).toEqual([]);
  }, 30_000);

  it("a dead holder (no renewal) loses the key at the lease's expiry: the other takes it, finishes the dead holder's written-ahead transaction, and settles", async () => {
    // Written ahead by the holder, never broadcast: the holder then "dies" (its row is left to expire).
    const nonce = await chain.getTransactionCount({ address: relayer.address, blockTag: "pending" });
    const fees = await chain.estimateFeesPerGas();
    const raw = await relayer.signTransaction({ type: "eip1559", chainId: net.chainId, to: relayer.address, value: 0n, gas: 21_000n, nonce, maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas });
    const hash = keccak256(raw);
    await db.query(`INSERT INTO ${schema}.batch_transactions (hash, network, kind, from_address, nonce, raw, channel_ids, status) VALUES ($1, $2, 'deposit', $3, $4, $5, '[]', 'sent')`, [
      hash,
      net.network,
      relayer.address.toLowerCase(),
      nonce,
      raw,
    ]);
    const died = Date.now();
    await db.query(`UPDATE ${schema}.signer_leases SET holder = 'dead#batch-relayer', expires_at = now() + interval '1500 milliseconds' WHERE signer = $1`, [relayer.address.toLowerCase()]);
    // Neither instance may send while the dead holder's row is live; the first notices at its next renewal.
    await until("the first instance to notice it lost the relayer", async () => !first.batchSettlement!.relayer.holds(net.network), LEASE_MS);
    expect(second.batchSettlement!.relayer.holds(net.network)).toBe(false);
    // Refused before anything is read: even a payload that could never send is told to retry.
    expect(await call(first, "/settle", await depositPayload(channel(), 10_000n))).toMatchObject({ success: false, errorReason: "relayer_unavailable" });
    const status = async () => ((await db.query(`SELECT status FROM ${schema}.batch_transactions WHERE hash = $1`, [hash])).rows[0] as { status: string }).status;
    expect(await status()).toBe("sent");
    const holder = await until("a live instance to take the expired relayer lease", async () => {
      const [row] = await leaseRows(relayer.address);
      return row && row.holder !== "dead#batch-relayer" ? row.holder : undefined;
    }, 1500 + LEASE_MS);
    expect(Date.now() - died).toBeLessThan(1500 + LEASE_MS + 1000);
    // The new holder's recovery rebroadcast the stored bytes and recorded the receipt.
    await until("the dead holder's transaction to be finished", async () => (await status()) === "success", 10_000);
    expect(holder).toMatch(/#batch-relayer$/);
    const p = { payload: await depositPayload(channel(), 10_000n) };
    const answers = await Promise.all([call(first, "/settle", p.payload), call(second, "/settle", await depositPayload(channel(), 10_000n))]);
    expect(answers.filter((a) => a.success === true)).toHaveLength(1);
    expect(answers.filter((a) => a.errorReason === "relayer_unavailable")).toHaveLength(1);
    const txs = await relayerTxs();
    expect(new Set(txs.map((t) => t.nonce)).size).toBe(txs.length);
  }, 30_000);

  it("after the holder closes, the other takes the relayer within the lease TTL and settles, a deposit it refused before included", async () => {
    // Close whichever instance holds the key now; the other must take over.
    const firstHolds = first.batchSettlement!.relayer.holds(net.network);
    expect(second.batchSettlement!.relayer.holds(net.network)).toBe(!firstHolds);
    const [holder, other] = firstHolds ? [first, second] : [second, first];
    const closed = Date.now();
    await holder.close();
    const retried = refusedBySecond[0]!;
    const answer = await until(
      "the other instance to settle",
      async () => {
        const a = await call(other, "/settle", retried.payload);
        return a.errorReason === "relayer_unavailable" ? undefined : a;
      },
      LEASE_MS * 2,
    );
    expect(Date.now() - closed).toBeLessThan(LEASE_MS);
    expect(answer).toMatchObject({ success: true });
    expect(await channelBalance(retried.channelId)).toBe(10_000n);
    const txs = await relayerTxs();
    expect(new Set(txs.map((t) => t.nonce)).size).toBe(txs.length);
    // The gas sponsor's lease is the survivor's too (freed on close, taken on its next round).
    await until("the survivor to hold the gas sponsor", async () => other.sponsoring!.sponsor.holds(net.network), LEASE_MS);
    expect(await leaseRows(sponsor.address)).toHaveLength(1);
  }, 30_000);
});
