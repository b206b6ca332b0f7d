/**
 * `batch-settlement` channels attacked as a hostile payer (or a hostile caller of the facilitator)
 * would, on a real anvil chain, through our resource server (express, in-memory channel store) and
 * our facilitator service (its own relayer and delegated receiver authorizer, API keys):
 *
 * - at the paywall: replayed and lower vouchers, vouchers bound to another channel, receiver or
 *   token, someone else's signature, a channel that has no deposit, one voucher sent ten times at
 *   once, amounts written every wrong way, malformed and oversized headers, bad channelConfig
 *   fields, a deposit with a forged EIP-3009 signature, a handler that throws, a refund asked by
 *   someone who is not the payer;
 * - at the facilitator: server-only payload types sent to /verify, claims inflated past what the
 *   payer signed or for channels this facilitator does not authorize, malformed claims, forged
 *   refunds and deposits, channels in a token outside its allowlist, claims that claim nothing new;
 * - a refund payload carrying the payer's own "authorizer" signatures, nonce or claims (the
 *   paywall completes a refund; the payer's fields must not replace the facilitator's).
 *
 * After every refused attempt: the handler did not run, nothing was committed to the store, and on
 * chain nothing moved (the relayer's nonce and ETH, the payer's, payee's and escrow's tokens).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { decodeBase64Json, encodeBase64Json, httpFacilitatorClient, type PaymentRequired, type PaymentRequirements } from "@tollgate/core";
import { devAccount, startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import {
  BATCH_SETTLEMENT_ADDRESS,
  ERC3009_DEPOSIT_COLLECTOR_ADDRESS,
  PERMIT2_ADDRESS,
  batchSettlementAbi,
  batchSettlementEvmClient,
  computeChannelId,
  erc3009DepositNonce,
  receiveWithAuthorizationTypes,
  voucherTypedData,
  type ChannelConfig,
} from "@tollgate/evm";
import { startFacilitator, type RunningFacilitator } from "@tollgate/facilitator";
import { wrapFetch } from "@tollgate/fetch";
import { memoryChannelStore, type ChannelStore } from "@tollgate/server";
import { createPublicClient, createWalletClient, erc20Abi, http, maxUint256, type Address, type Hex, type PublicClient } from "viem";
import { foundry } from "viem/chains";
import { privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { startChannelServer, type ChannelServer } from "./support/channel-server.ts";

const PRICE = 1_000n;
const API_KEY = "attacks-channels-api-key-0123456789";
/** Another server's key on the same facilitator, scoped to its own receiver. */
const TENANT_KEY = "attacks-channels-tenant-key-0123456789";
const tenantReceiver = privateKeyToAccount(`0x${"47".repeat(32)}`).address;
const relayerKey = devAccount(7).privateKey;
const relayer = privateKeyToAccount(relayerKey).address;
const authorizer = privateKeyToAccount(devAccount(8).privateKey);

let net: RunningLocalNetwork;
let chain: PublicClient;
let service: RunningFacilitator;
let server: ChannelServer;
let store: ChannelStore;
/** Handler runs of the paid route, and what the next runs do. */
let ran = 0;
let throwNext = 0;
let hold: Promise<void> | undefined;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 4 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  service = await startFacilitator({
    port: 0,
    host: "127.0.0.1",
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [{ address: net.usdc.address, name: net.usdc.name, version: net.usdc.version, decimals: net.usdc.decimals }] }],
    privateKeys: [devAccount(6).privateKey],
    apiKeys: [API_KEY, { key: TENANT_KEY, receivers: [tenantReceiver] }],
    batchSettlement: { relayerKey, receiverAuthorizerKey: devAccount(8).privateKey },
    logLevel: "silent",
  });
  store = memoryChannelStore();
  server = await startChannelServer({
    facilitator: httpFacilitatorClient({ url: service.url, headers: () => ({ Authorization: `Bearer ${API_KEY}` }) }),
    network: net.network,
    usdc: net.usdc,
    payTo: net.accounts.payee.address,
    amount: PRICE.toString(),
    store,
    handler: async (path) => {
      if (path !== "/paid") return;
      ran++;
      if (hold) await hold;
      if (throwNext > 0) {
        throwNext--;
        throw new Error("handler exploded");
      }
    },
  });
}, 120_000);

afterAll(async () => {
  await server?.close();
  await service?.close();
  await net?.stop();
});

// ------------------------------------------------------------------------------------ helpers

const payerAccount = (i: number) => privateKeyToAccount(net.accounts.payers[i]!.privateKey);
const usdc = (a: Address) => chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [a] });
const salt = (): Hex => `0x${randomBytes(32).toString("hex")}`;

/** A payer with its own channel (fresh salt), opened with one paid request (deposit of 10 requests). */
async function openChannel(i: number) {
  const account = payerAccount(i);
  const client = batchSettlementEvmClient({ account, depositMultiplier: 10, salt: salt() });
  const pay = wrapFetch(fetch, { schemes: [client] });
  const first = await pay(server.paidUrl);
  expect(first.status).toBe(200);
  const r = await requirements();
  const channel = client.channel(r)!;
  const config = client.channelConfig(r) as unknown as ChannelConfig;
  return { account, client, pay, r, channelId: channel.channelId as Hex, config, charged: () => client.channel(r)!.charged };
}

async function requirements(): Promise<PaymentRequirements> {
  const res = await fetch(server.paidUrl);
  expect(res.status).toBe(402);
  return (decodeBase64Json(res.headers.get("PAYMENT-REQUIRED"), "PAYMENT-REQUIRED") as { ok: true; value: PaymentRequired }).value.accepts[0]!;
}

const signVoucher = (signer: PrivateKeyAccount, channelId: Hex, max: bigint) => signer.signTypedData(voucherTypedData(channelId, max, net.chainId));

function header(accepted: PaymentRequirements, payload: Record<string, unknown>): Record<string, string> {
  return { "PAYMENT-SIGNATURE": encodeBase64Json({ x402Version: 2, accepted, payload }) };
}

/** The error a refused paid request names: the 402's `error`, or a 400 body's reason. */
async function refusal(res: Response): Promise<{ status: number; error: string; body: string }> {
  const body = await res.text();
  const h = res.headers.get("PAYMENT-REQUIRED");
  if (h) {
    const decoded = decodeBase64Json(h, "PAYMENT-REQUIRED");
    if (decoded.ok) return { status: res.status, error: String((decoded.value as PaymentRequired).error ?? ""), body };
  }
  return { status: res.status, error: body, body };
}

/** Everything a refused attempt must leave alone. */
async function moneyState(payer: Address) {
  return {
    relayerNonce: await chain.getTransactionCount({ address: relayer }),
    relayerEth: await chain.getBalance({ address: relayer }),
    payer: await usdc(payer),
    payee: await usdc(net.accounts.payee.address),
    escrow: await usdc(BATCH_SETTLEMENT_ADDRESS),
  };
}

async function onChain(channelId: Hex) {
  const [balance, totalClaimed] = (await chain.readContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "channels", args: [channelId] })) as readonly [bigint, bigint];
  return { balance, totalClaimed };
}

const charged = async (channelId: Hex) => (await store.get(channelId))?.chargedCumulativeAmount;

/** Sends one hand-made payload; expects a refusal without the handler running, nothing committed. */
async function expectRefused(channelId: Hex | undefined, headers: Record<string, string>): Promise<{ status: number; error: string; body: string }> {
  const runsBefore = ran;
  const committed = channelId && (await charged(channelId));
  const res = await fetch(server.paidUrl, { headers });
  const r = await refusal(res);
  expect(res.status, r.body.slice(0, 300)).not.toBe(200);
  expect(res.status).toBeLessThan(500);
  expect(ran).toBe(runsBefore);
  if (channelId) expect(await charged(channelId)).toBe(committed);
  return r;
}

// ---------------------------------------------------------------------------- the paywall

describe("channels at the paywall: vouchers that must not buy a response", () => {
  it("a replayed voucher, a lower one and a zero one: corrective 402, handler not run, nothing committed", async () => {
    const c = await openChannel(0);
    expect((await c.pay(server.paidUrl)).status).toBe(200);
    const now = c.charged();
    expect(now).toBe(2n * PRICE);
    const before = await moneyState(c.account.address);
    for (const max of [now, now - PRICE, 0n]) {
      const signature = await signVoucher(c.account, c.channelId, max);
      const r = await expectRefused(c.channelId, header(c.r, { type: "voucher", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: max.toString(), signature } }));
      expect(r.status).toBe(402);
      expect(r.error).toBe("invalid_batch_settlement_evm_cumulative_amount_mismatch");
    }
    expect(await charged(c.channelId)).toBe(now.toString());
    expect(await moneyState(c.account.address)).toEqual(before);
  }, 60_000);

  it("a voucher bound to another channel, receiver or token: refused naming the binding", async () => {
    const c = await openChannel(1);
    const next = c.charged() + PRICE;
    const stranger = "0x000000000000000000000000000000000000dEaD" as Address;
    const cases: Array<{ config: ChannelConfig; voucherId?: Hex; reason: RegExp }> = [
      // another channel's config, this channel's id
      { config: { ...c.config, salt: salt() }, voucherId: c.channelId, reason: /channel_id_mismatch/ },
      { config: { ...c.config, receiver: stranger }, reason: /receiver_mismatch/ },
      { config: { ...c.config, token: net.plainToken.address }, reason: /token_mismatch/ },
      { config: { ...c.config, receiverAuthorizer: stranger }, reason: /receiver_authorizer_mismatch/ },
      { config: { ...c.config, withdrawDelay: 901 }, reason: /withdraw_delay_mismatch/ },
    ];
    const before = await moneyState(c.account.address);
    for (const k of cases) {
      const id = k.voucherId ?? computeChannelId(k.config, net.chainId);
      const signature = await signVoucher(c.account, id, next);
      const r = await expectRefused(c.channelId, header(c.r, { type: "voucher", channelConfig: k.config, voucher: { channelId: id, maxClaimableAmount: next.toString(), signature } }));
      expect(r.status).toBe(402);
      expect(r.error).toMatch(k.reason);
    }
    // Another network: the payment matches no offer.
    const signature = await signVoucher(c.account, c.channelId, next);
    const other = await expectRefused(c.channelId, header({ ...c.r, network: "eip155:8453" }, { type: "voucher", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: next.toString(), signature } }));
    expect(other.status).toBe(402);
    expect(other.error).toMatch(/^invalid_payment_requirements_mismatch: .*eip155:8453/);
    expect(await moneyState(c.account.address)).toEqual(before);
    // The real next voucher still works: nothing above was counted.
    expect((await c.pay(server.paidUrl)).status).toBe(200);
    expect(await charged(c.channelId)).toBe(next.toString());
  }, 60_000);

  it("someone else's signature, or someone else naming himself payerAuthorizer of a copy of the channel: refused", async () => {
    const c = await openChannel(2);
    const next = c.charged() + PRICE;
    const thief = privateKeyToAccount(`0x${"42".repeat(32)}`);
    const before = await moneyState(c.account.address);
    // 1. The victim's channel, the thief's signature.
    const forged = await signVoucher(thief, c.channelId, next);
    const a = await expectRefused(c.channelId, header(c.r, { type: "voucher", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: next.toString(), signature: forged } }));
    expect(a.error).toMatch(/voucher_signature/);
    // 2. The victim's config with the thief as payerAuthorizer: another channel, never funded.
    const copy: ChannelConfig = { ...c.config, payerAuthorizer: thief.address };
    const copyId = computeChannelId(copy, net.chainId);
    const b = await expectRefused(copyId, header(c.r, { type: "voucher", channelConfig: copy, voucher: { channelId: copyId, maxClaimableAmount: PRICE.toString(), signature: await signVoucher(thief, copyId, PRICE) } }));
    expect(b.error).toMatch(/channel_not_found|exceeds_balance/);
    // 3. A signature that is not a signature.
    const c3 = await expectRefused(c.channelId, header(c.r, { type: "voucher", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: next.toString(), signature: `0x${"00".repeat(65)}` } }));
    expect(c3.error).toMatch(/voucher_signature/);
    expect(await moneyState(c.account.address)).toEqual(before);
  }, 60_000);

  it("never serves past the deposit: a voucher on a channel with no deposit, or for more than it holds", async () => {
    const account = payerAccount(3);
    const cfg: ChannelConfig = { payer: account.address, payerAuthorizer: account.address, receiver: net.accounts.payee.address, receiverAuthorizer: authorizer.address, token: net.usdc.address, withdrawDelay: 900, salt: salt() };
    const id = computeChannelId(cfg, net.chainId);
    const r = await requirements();
    const before = await moneyState(account.address);
    const none = await expectRefused(id, header(r, { type: "voucher", channelConfig: cfg, voucher: { channelId: id, maxClaimableAmount: PRICE.toString(), signature: await signVoucher(account, id, PRICE) } }));
    expect(none.error).toMatch(/channel_not_found/);
    expect(await store.get(id)).toBeUndefined();
    expect(await moneyState(account.address)).toEqual(before);
    // A funded channel (10 requests deposited), a voucher at the right cumulative, past the balance:
    // drain it request by request; the 11th is refused by the paywall before the handler.
    const c = await openChannel(3);
    const { balance } = await onChain(c.channelId);
    expect(balance).toBe(10n * PRICE);
    for (let i = 1; i < 10; i++) {
      const max = BigInt(i + 1) * PRICE;
      const res = await fetch(server.paidUrl, { headers: header(c.r, { type: "voucher", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: max.toString(), signature: await signVoucher(c.account, c.channelId, max) } }) });
      expect(res.status).toBe(200);
    }
    const past = 11n * PRICE;
    const drained = await moneyState(account.address);
    const over = await expectRefused(c.channelId, header(c.r, { type: "voucher", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: past.toString(), signature: await signVoucher(c.account, c.channelId, past) } }));
    expect(over.error).toMatch(/exceeds_balance/);
    expect(await charged(c.channelId)).toBe(balance.toString());
    expect(await moneyState(account.address)).toEqual(drained);
  }, 60_000);

  it("one voucher sent ten times at once: one response, one charge", async () => {
    const c = await openChannel(0);
    const next = c.charged() + PRICE;
    const h = header(c.r, { type: "voucher", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: next.toString(), signature: await signVoucher(c.account, c.channelId, next) } });
    let open!: () => void;
    hold = new Promise<void>((resolve) => (open = resolve));
    const runsBefore = ran;
    const pending = Array.from({ length: 10 }, () => fetch(server.paidUrl, { headers: h }));
    try {
      while (ran === runsBefore) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      hold = undefined;
      open();
    }
    const answers = await Promise.all(pending);
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(1);
    expect(statuses.filter((s) => s === 402)).toHaveLength(9);
    expect(ran).toBe(runsBefore + 1);
    expect(await charged(c.channelId)).toBe(next.toString());
    // Sent again afterwards: a replay.
    const again = await expectRefused(c.channelId, h);
    expect(again.error).toBe("invalid_batch_settlement_evm_cumulative_amount_mismatch");
  }, 60_000);

  it("amounts written every wrong way: 402 naming voucher.maxClaimableAmount, nothing run or committed", async () => {
    const c = await openChannel(1);
    const next = c.charged() + PRICE;
    const signature = await signVoucher(c.account, c.channelId, next);
    const amounts: unknown[] = [
      "-1",
      `-${next}`,
      "1e3",
      `0x${next.toString(16)}`,
      `${next}.0`,
      `0${next}`,
      `00${next}`,
      ` ${next}`,
      "",
      Number(next),
      null,
      true,
      [next.toString()],
      { value: next.toString() },
      (1n << 128n).toString(),
      "9".repeat(100),
    ];
    for (const amount of amounts) {
      const r = await expectRefused(c.channelId, header(c.r, { type: "voucher", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: amount, signature } })).catch((e: Error) => {
        throw new Error(`amount ${JSON.stringify(amount)}: ${e.message}`);
      });
      expect(r.status, JSON.stringify(amount)).toBe(402);
      expect(r.error, JSON.stringify(amount)).toMatch(/^invalid_batch_settlement_evm_voucher_payload: .*voucher\.maxClaimableAmount/);
    }
    // The same signed voucher, well written: served.
    expect((await fetch(server.paidUrl, { headers: header(c.r, { type: "voucher", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: next.toString(), signature } }) })).status).toBe(200);
  }, 60_000);

  it("malformed and oversized payment headers: 4xx naming the header, never a 500, nothing run", async () => {
    const c = await openChannel(2);
    const valid = encodeBase64Json({ x402Version: 2, accepted: c.r, payload: { type: "voucher" } });
    const enc = (payload: unknown) => encodeBase64Json({ x402Version: 2, accepted: c.r, ...(payload === undefined ? {} : { payload }) });
    const voucherOf = (voucher: unknown) => enc({ type: "voucher", channelConfig: c.config, ...(voucher === undefined ? {} : { voucher }) });
    // [header, status, what the answer must name]: a 400 body's `error`, or the 402's PAYMENT-REQUIRED `error`.
    const bad: Array<[string, number, RegExp | undefined]> = [
      ["not base64 at all !!!", 400, /^PAYMENT-SIGNATURE: not valid base64/],
      [Buffer.from("{not json").toString("base64"), 400, /^PAYMENT-SIGNATURE: not valid JSON/],
      [Buffer.from("[]").toString("base64"), 400, /^paymentPayload: .*expected object/],
      [Buffer.from('"a string"').toString("base64"), 400, /^paymentPayload: .*expected object/],
      [Buffer.from("null").toString("base64"), 400, /^paymentPayload: .*expected object/],
      [valid.slice(0, valid.length / 2), 400, /^PAYMENT-SIGNATURE: not valid JSON/],
      [enc(undefined), 400, /^paymentPayload\.payload: is required/],
      [enc("voucher"), 400, /^paymentPayload\.payload: .*expected record/],
      [enc({ type: "claim", claims: [] }), 402, /^invalid_batch_settlement_evm_payload_type: paymentPayload\.payload\.type/],
      [enc({ type: "settle", receiver: net.accounts.payee.address, token: net.usdc.address }), 402, /^invalid_batch_settlement_evm_payload_type: paymentPayload\.payload\.type/],
      [voucherOf(undefined), 402, /^invalid_batch_settlement_evm_voucher_payload: paymentPayload\.payload\.voucher: expected an object/],
      [voucherOf({ channelId: "0x12", maxClaimableAmount: "1", signature: "0x00" }), 402, /^invalid_batch_settlement_evm_voucher_payload: paymentPayload\.payload\.voucher\.channelId/],
      [voucherOf({ channelId: c.channelId, maxClaimableAmount: "2000", signature: `0x${"ab".repeat(5000)}` }), 402, /^invalid_batch_settlement_evm_voucher_payload: paymentPayload\.payload\.voucher\.signature/],
      // 200 KiB of padding: Node refuses the header block itself (431) before any of our code.
      [enc({ type: "voucher", channelConfig: c.config, pad: "x".repeat(200_000) }), 431, undefined],
    ];
    for (const [h, status, names] of bad) {
      const runsBefore = ran;
      const res = await fetch(server.paidUrl, { headers: { "PAYMENT-SIGNATURE": h } });
      const text = await res.text();
      expect(res.status, `${h.slice(0, 60)} → ${text.slice(0, 200)}`).toBe(status);
      const required = res.headers.get("PAYMENT-REQUIRED");
      const error = status === 402 ? String((decodeBase64Json(required, "PAYMENT-REQUIRED") as { ok: true; value: PaymentRequired }).value.error) : status === 400 ? String((JSON.parse(text) as { error: string }).error) : "";
      if (names) expect(error, h.slice(0, 60)).toMatch(names);
      if (status === 400) expect(JSON.parse(text)).toMatchObject({ reason: "invalid_payload" });
      expect(text).not.toMatch(/at .*\.ts:\d+|stack/i);
      expect(ran).toBe(runsBefore);
    }
    expect(await charged(c.channelId)).toBe(c.charged().toString());
    expect((await c.pay(server.paidUrl)).status).toBe(200);
  }, 60_000);

  it("channelConfig with bad addresses or withdrawDelay out of range: 402 naming the field", async () => {
    const c = await openChannel(3);
    const next = c.charged() + PRICE;
    const signature = await signVoucher(c.account, c.channelId, next);
    const cases: Array<[string, unknown]> = [
      ["payer", "0x1234"],
      ["payer", "alice.eth"],
      ["payerAuthorizer", 42],
      ["receiver", `0x${"g".repeat(40)}`],
      ["receiverAuthorizer", null],
      ["token", `${net.usdc.address}00`],
      ["withdrawDelay", 899],
      ["withdrawDelay", 2_592_001],
      ["withdrawDelay", -900],
      ["withdrawDelay", 900.5],
      ["withdrawDelay", "900"],
      ["withdrawDelay", 2 ** 60],
      ["salt", "0x01"],
    ];
    for (const [field, value] of cases) {
      const r = await expectRefused(c.channelId, header(c.r, { type: "voucher", channelConfig: { ...c.config, [field]: value }, voucher: { channelId: c.channelId, maxClaimableAmount: next.toString(), signature } }));
      expect(r.status).toBe(402);
      expect(r.error, `${field}=${JSON.stringify(value)}`).toMatch(new RegExp(`^invalid_batch_settlement_evm_voucher_payload: paymentPayload\\.payload\\.channelConfig\\.${field}`));
    }
  }, 60_000);

  it("a deposit with a forged EIP-3009 signature: refused, nothing on chain, the relayer spends no gas", async () => {
    const victim = payerAccount(0);
    const thief = privateKeyToAccount(`0x${"43".repeat(32)}`);
    const r = await requirements();
    const cfg: ChannelConfig = { payer: victim.address, payerAuthorizer: thief.address, receiver: net.accounts.payee.address, receiverAuthorizer: authorizer.address, token: net.usdc.address, withdrawDelay: 900, salt: salt() };
    const id = computeChannelId(cfg, net.chainId);
    const amount = 50n * PRICE;
    const s = BigInt(salt());
    const validBefore = BigInt(Math.floor(Date.now() / 1000) + 600);
    // The thief signs the victim's ReceiveWithAuthorization (a forgery), and one with random bytes.
    const thiefSigned = await thief.signTypedData({
      domain: { name: net.usdc.name, version: net.usdc.version, chainId: net.chainId, verifyingContract: net.usdc.address },
      types: receiveWithAuthorizationTypes,
      primaryType: "ReceiveWithAuthorization",
      message: { from: victim.address, to: ERC3009_DEPOSIT_COLLECTOR_ADDRESS, value: amount, validAfter: 0n, validBefore, nonce: erc3009DepositNonce(id, s) },
    });
    const before = await moneyState(victim.address);
    for (const signature of [thiefSigned, `0x${randomBytes(65).toString("hex")}`]) {
      const deposit = { amount: amount.toString(), authorization: { erc3009Authorization: { validAfter: "0", validBefore: validBefore.toString(), salt: s.toString(), signature } } };
      const res = await expectRefused(id, header(r, { type: "deposit", channelConfig: cfg, voucher: { channelId: id, maxClaimableAmount: PRICE.toString(), signature: await signVoucher(thief, id, PRICE) }, deposit }));
      expect(res.status).toBe(402);
      expect(res.error).toMatch(/receive_authorization_signature/);
    }
    expect(await moneyState(victim.address)).toEqual(before);
    expect(await onChain(id)).toEqual({ balance: 0n, totalClaimed: 0n });
    expect(await store.get(id)).toBeUndefined();
  }, 60_000);

  it("a handler that throws charges nothing: the client's same voucher, sent again, is served", async () => {
    const c = await openChannel(1);
    const committed = c.charged();
    const next = committed + PRICE;
    const h = header(c.r, { type: "voucher", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: next.toString(), signature: await signVoucher(c.account, c.channelId, next) } });
    throwNext = 1;
    const runsBefore = ran;
    const failed = await fetch(server.paidUrl, { headers: h });
    expect(failed.status).toBe(500);
    expect(failed.headers.get("PAYMENT-RESPONSE")).toBeNull();
    expect(ran).toBe(runsBefore + 1);
    expect(await charged(c.channelId)).toBe(committed.toString());
    const retried = await fetch(server.paidUrl, { headers: h });
    expect(retried.status).toBe(200);
    const receipt = decodeBase64Json(retried.headers.get("PAYMENT-RESPONSE"), "PAYMENT-RESPONSE") as { ok: true; value: { extra: { channelState: { chargedCumulativeAmount: string } } } };
    expect(receipt.value.extra.channelState.chargedCumulativeAmount).toBe(next.toString());
    expect(await charged(c.channelId)).toBe(next.toString());
  }, 60_000);

  it("a refund asked by someone who is not the payer: refused, the escrow stays; the payer's own refund works", async () => {
    const c = await openChannel(2);
    const chargedNow = c.charged();
    const thief = privateKeyToAccount(`0x${"44".repeat(32)}`);
    const before = await moneyState(c.account.address);
    const chainBefore = await onChain(c.channelId);
    // The thief's zero-charge voucher, and the payer's old voucher at another cumulative.
    const forged = await signVoucher(thief, c.channelId, chargedNow);
    const a = await expectRefused(c.channelId, header(c.r, { type: "refund", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: chargedNow.toString(), signature: forged } }));
    expect(a.error).toMatch(/voucher_signature/);
    const b = await expectRefused(c.channelId, header(c.r, { type: "refund", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: "0", signature: await signVoucher(c.account, c.channelId, 0n) } }));
    expect(b.error).toBe("invalid_batch_settlement_evm_cumulative_amount_mismatch");
    // The payer asks for more than is left, or a negative amount.
    const own = await signVoucher(c.account, c.channelId, chargedNow);
    for (const amount of [(chainBefore.balance - chargedNow + 1n).toString(), "-5", "0"]) {
      const r = await expectRefused(c.channelId, header(c.r, { type: "refund", amount, channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: chargedNow.toString(), signature: own } }));
      expect(r.error, amount).toMatch(/refund_amount_invalid|refund_payload/);
    }
    expect(await moneyState(c.account.address)).toEqual(before);
    expect(await onChain(c.channelId)).toEqual(chainBefore);
    // The payer's own: exactly the unclaimed remainder comes back, what was charged is claimed.
    const refunded = await c.client.refund(server.paidUrl);
    expect(refunded.success).toBe(true);
    expect((await usdc(c.account.address)) - before.payer).toBe(chainBefore.balance - chargedNow);
    expect(await onChain(c.channelId)).toEqual({ balance: chargedNow, totalClaimed: chargedNow });
  }, 60_000);

  it("a refund payload carrying the payer's own 'authorizer' signatures, nonce or claims: ignored, the paywall completes it", async () => {
    const c = await openChannel(3);
    const chargedNow = c.charged();
    const own = await signVoucher(c.account, c.channelId, chargedNow);
    const injected: Array<Record<string, unknown>> = [
      { claimAuthorizerSignature: `0x${"11".repeat(65)}` },
      { refundAuthorizerSignature: `0x${"22".repeat(65)}` },
      // A stale nonce and an empty claim list (that would leave the charge unclaimed, refundable).
      { refundNonce: "7", claims: [] },
    ];
    let refunded = 0n;
    for (const extra of injected) {
      const before = await moneyState(c.account.address);
      const res = await fetch(server.paidUrl, { headers: header(c.r, { type: "refund", amount: PRICE.toString(), ...extra, channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: chargedNow.toString(), signature: own } }) });
      expect(res.status, `${Object.keys(extra).join(",")}: ${(await refusal(res.clone())).error.slice(0, 200)}`).toBe(200);
      expect(await res.json()).toMatchObject({ refunded: PRICE.toString() });
      refunded += PRICE;
      const after = await moneyState(c.account.address);
      expect(after.payer - before.payer).toBe(PRICE);
      expect(after.relayerNonce).toBe(before.relayerNonce + 1);
      // What was charged is claimed in the same transaction, whatever the payload said.
      expect(await onChain(c.channelId)).toEqual({ balance: 10n * PRICE - refunded, totalClaimed: chargedNow });
    }
  }, 60_000);
});

// ------------------------------------------------------------------------ the facilitator

/** `auth`: this server's key (true), none (false), or another key. */
async function call(path: "/verify" | "/settle", payload: unknown, q: PaymentRequirements, auth: boolean | string = true): Promise<{ status: number; json: Record<string, any> }> {
  const key = auth === true ? API_KEY : auth;
  const res = await fetch(`${service.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ x402Version: 2, paymentPayload: { x402Version: 2, accepted: q, payload }, paymentRequirements: q }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

/** What the reference server sends for claim / settle / refund. */
const operation = (): PaymentRequirements => ({ scheme: "batch-settlement", network: net.network, amount: "0", asset: net.usdc.address, payTo: net.accounts.payee.address, maxTimeoutSeconds: 0, extra: {} });

function reasonOf(path: "/verify" | "/settle", json: Record<string, any>): string {
  return path === "/verify" ? json.invalidReason : json.errorReason;
}

describe("channels at the facilitator: nothing doomed is sent", () => {
  it("claim and settle payloads sent to /verify; a voucher sent to /settle: refused as the wrong type", async () => {
    const c = await openChannel(3);
    const claim = { type: "claim", claims: [{ voucher: { channel: c.config, maxClaimableAmount: c.charged().toString() }, signature: await signVoucher(c.account, c.channelId, c.charged()), totalClaimed: c.charged().toString() }] };
    const before = await moneyState(c.account.address);
    for (const payload of [claim, { type: "settle", receiver: net.accounts.payee.address, token: net.usdc.address }]) {
      const r = await call("/verify", payload, c.r);
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ isValid: false, invalidReason: "invalid_batch_settlement_evm_payload_type" });
      expect(r.json.invalidMessage).toMatch(/paymentPayload\.payload\.type/);
    }
    const v = await call("/settle", { type: "voucher", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: c.charged().toString(), signature: await signVoucher(c.account, c.channelId, c.charged()) } }, c.r);
    expect(v.json).toMatchObject({ success: false, errorReason: "invalid_batch_settlement_evm_payload_type", transaction: "" });
    expect(await moneyState(c.account.address)).toEqual(before);
  }, 60_000);

  it("claims inflated past what the payer signed, or past the deposit: simulation refuses, no gas spent", async () => {
    const c = await openChannel(0);
    const signedMax = c.charged();
    const signature = await signVoucher(c.account, c.channelId, signedMax);
    const { balance } = await onChain(c.channelId);
    const bigSig = await signVoucher(c.account, c.channelId, balance + 1n);
    const before = await moneyState(c.account.address);
    const chainBefore = await onChain(c.channelId);
    const inflated = [
      // totalClaimed above the signed maximum
      { voucher: { channel: c.config, maxClaimableAmount: signedMax.toString() }, signature, totalClaimed: (signedMax + 1n).toString() },
      // the signed maximum raised, the old signature kept
      { voucher: { channel: c.config, maxClaimableAmount: (signedMax * 5n).toString() }, signature, totalClaimed: (signedMax * 5n).toString() },
      // a real voucher above the deposit
      { voucher: { channel: c.config, maxClaimableAmount: (balance + 1n).toString() }, signature: bigSig, totalClaimed: (balance + 1n).toString() },
    ];
    for (const claim of inflated) {
      const r = await call("/settle", { type: "claim", claims: [claim] }, operation());
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ success: false, errorReason: "invalid_batch_settlement_evm_claim_simulation_failed", transaction: "" });
    }
    expect(await moneyState(c.account.address)).toEqual(before);
    expect(await onChain(c.channelId)).toEqual(chainBefore);
  }, 60_000);

  it("claims and refunds for channels this facilitator does not authorize: refused before any signature or gas", async () => {
    const account = payerAccount(1);
    const other = privateKeyToAccount(`0x${"45".repeat(32)}`);
    const cfg: ChannelConfig = { payer: account.address, payerAuthorizer: account.address, receiver: net.accounts.payee.address, receiverAuthorizer: other.address, token: net.usdc.address, withdrawDelay: 900, salt: salt() };
    const id = computeChannelId(cfg, net.chainId);
    const sig = await signVoucher(account, id, PRICE);
    const before = await moneyState(account.address);
    const claim = await call("/settle", { type: "claim", claims: [{ voucher: { channel: cfg, maxClaimableAmount: PRICE.toString() }, signature: sig, totalClaimed: PRICE.toString() }] }, operation());
    expect(claim.json).toMatchObject({ success: false, errorReason: "invalid_batch_settlement_evm_authorizer_address_mismatch", transaction: "" });
    const refund = await call("/settle", { type: "refund", channelConfig: cfg, voucher: { channelId: id, maxClaimableAmount: "0", signature: await signVoucher(account, id, 0n) }, amount: "1", refundNonce: "0", claims: [] }, operation());
    expect(refund.json.success).toBe(false);
    expect(refund.json.transaction).toBe("");
    expect(refund.json.errorReason).toMatch(/refund_no_balance|authorizer_address_mismatch/);
    // Without the API key nobody gets a signature at all.
    expect((await call("/settle", { type: "claim", claims: [] }, operation(), false)).status).toBe(401);
    expect(await moneyState(account.address)).toEqual(before);
  }, 60_000);

  it("another server's key, scoped to its receivers: the delegated authorizer signs no claim or refund of this server's channels, nothing moves", async () => {
    // The payer of a channel here also runs a server on the same facilitator: with its own key it
    // asks for a refund of what this server served but has not claimed yet, then for a claim.
    const c = await openChannel(3);
    const charged = c.charged();
    const signature = await signVoucher(c.account, c.channelId, charged);
    const before = await moneyState(c.account.address);
    const chainBefore = await onChain(c.channelId);
    const refund = { type: "refund", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: charged.toString(), signature }, amount: "1000", refundNonce: "0", claims: [] };
    const refused = await call("/settle", refund, operation(), TENANT_KEY);
    expect(refused.json).toMatchObject({ success: false, errorReason: "unauthorized", transaction: "" });
    expect(refused.json.errorMessage).toMatch(/channelConfig\.receiver: 0x[0-9a-fA-F]{40} is not among the receivers this API key acts for/);
    // A body cannot widen the key's scope: who asks comes from the key alone.
    const widened = await fetch(`${service.url}/settle`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TENANT_KEY}` },
      body: JSON.stringify({ x402Version: 2, caller: {}, paymentPayload: { x402Version: 2, accepted: operation(), payload: refund, caller: {} }, paymentRequirements: operation() }),
    });
    expect(await widened.json()).toMatchObject({ success: false, errorReason: "unauthorized", transaction: "" });
    const claim = { type: "claim", claims: [{ voucher: { channel: c.config, maxClaimableAmount: charged.toString() }, signature, totalClaimed: charged.toString() }] };
    const claimRefused = await call("/settle", claim, operation(), TENANT_KEY);
    expect(claimRefused.json).toMatchObject({ success: false, errorReason: "unauthorized", transaction: "" });
    expect(claimRefused.json.errorMessage).toMatch(/claims\[0\]\.voucher\.channel\.receiver/);
    expect(await moneyState(c.account.address)).toEqual(before);
    expect(await onChain(c.channelId)).toEqual(chainBefore);

    // The scoped key passes the same gate for its own receiver's channel (a claim of nothing new:
    // answered from the chain, no transaction), and this server's key for this server's channel.
    const own: ChannelConfig = { ...c.config, receiver: tenantReceiver, salt: salt() };
    const ownId = computeChannelId(own, net.chainId);
    const ownClaim = { type: "claim", claims: [{ voucher: { channel: own, maxClaimableAmount: "0" }, signature: await signVoucher(c.account, ownId, 0n), totalClaimed: "0" }] };
    expect((await call("/settle", ownClaim, { ...operation(), payTo: tenantReceiver }, TENANT_KEY)).json).toMatchObject({ success: true, transaction: "" });
    const served = await call("/settle", claim, operation());
    expect(served.json.success).toBe(true);
    expect((await onChain(c.channelId)).totalClaimed).toBe(charged);
  }, 60_000);

  it("a refund of someone else's channel through the delegated authorizer: the voucher signature decides, no gas", async () => {
    const c = await openChannel(1);
    const thief = privateKeyToAccount(`0x${"46".repeat(32)}`);
    const before = await moneyState(c.account.address);
    const chainBefore = await onChain(c.channelId);
    const forged = { type: "refund", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: c.charged().toString(), signature: await signVoucher(thief, c.channelId, c.charged()) }, amount: "1000", refundNonce: "0", claims: [] };
    const v = await call("/verify", forged, c.r);
    expect(v.json).toMatchObject({ isValid: false, invalidReason: "invalid_batch_settlement_evm_voucher_signature" });
    const s = await call("/settle", forged, operation());
    expect(s.json).toMatchObject({ success: false, errorReason: "invalid_batch_settlement_evm_voucher_signature", transaction: "" });
    expect(await moneyState(c.account.address)).toEqual(before);
    expect(await onChain(c.channelId)).toEqual(chainBefore);
  }, 60_000);

  it("malformed batch payloads: 200 invalid naming the field, never a 500, no gas", async () => {
    const c = await openChannel(2);
    const sig = await signVoucher(c.account, c.channelId, c.charged());
    const good = { voucher: { channel: c.config, maxClaimableAmount: c.charged().toString() }, signature: sig, totalClaimed: c.charged().toString() };
    const cases: Array<{ path: "/verify" | "/settle"; payload: unknown; q?: PaymentRequirements; reason: string; field: RegExp }> = [
      { path: "/settle", payload: { type: "claim", claims: "all of them" }, reason: "invalid_batch_settlement_evm_claim_payload", field: /claims: expected an array/ },
      { path: "/settle", payload: { type: "claim", claims: [] }, reason: "invalid_batch_settlement_evm_claim_payload", field: /claims: must not be empty/ },
      { path: "/settle", payload: { type: "claim", claims: [{ ...good, totalClaimed: "-1" }] }, reason: "invalid_batch_settlement_evm_claim_payload", field: /claims\[0\]\.totalClaimed/ },
      { path: "/settle", payload: { type: "claim", claims: [{ ...good, totalClaimed: (1n << 128n).toString() }] }, reason: "invalid_batch_settlement_evm_claim_payload", field: /claims\[0\]\.totalClaimed: out of range/ },
      { path: "/settle", payload: { type: "claim", claims: [{ ...good, voucher: { ...good.voucher, channel: { ...c.config, payer: "0x12" } } }] }, reason: "invalid_batch_settlement_evm_claim_payload", field: /claims\[0\]\.voucher\.channel\.payer/ },
      { path: "/settle", payload: { type: "settle", receiver: "payee", token: net.usdc.address }, reason: "invalid_batch_settlement_evm_settle_payload", field: /payload\.receiver/ },
      { path: "/settle", payload: { type: "refund", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: c.charged().toString(), signature: sig }, amount: "1e3" }, reason: "invalid_batch_settlement_evm_refund_payload", field: /payload\.amount/ },
      // The channel's hash is checked first; a requirements copy agreeing on a 10 s delay still meets the range check.
      { path: "/verify", payload: { type: "voucher", channelConfig: { ...c.config, withdrawDelay: 10 }, voucher: { channelId: c.channelId, maxClaimableAmount: "1", signature: sig } }, reason: "invalid_batch_settlement_evm_channel_id_mismatch", field: /voucher\.channelId/ },
      {
        path: "/verify",
        payload: { type: "voucher", channelConfig: { ...c.config, withdrawDelay: 10 }, voucher: { channelId: computeChannelId({ ...c.config, withdrawDelay: 10 }, net.chainId), maxClaimableAmount: "1", signature: sig } },
        q: { ...c.r, extra: { ...c.r.extra, withdrawDelay: 10 } },
        reason: "invalid_batch_settlement_evm_withdraw_delay_out_of_range",
        field: /channelConfig\.withdrawDelay: must be between 900 and 2592000/,
      },
      { path: "/verify", payload: { type: "voucher", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: "1", signature: sig } }, q: { ...c.r, extra: { ...c.r.extra, withdrawDelay: 1800 } }, reason: "invalid_batch_settlement_evm_withdraw_delay_mismatch", field: /channelConfig\.withdrawDelay: differs/ },
      { path: "/verify", payload: { type: "voucher", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: "0x10", signature: sig } }, reason: "invalid_batch_settlement_evm_voucher_payload", field: /voucher\.maxClaimableAmount/ },
      { path: "/verify", payload: { type: "voucher", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: "01000", signature: sig } }, reason: "invalid_batch_settlement_evm_voucher_payload", field: /voucher\.maxClaimableAmount/ },
      { path: "/verify", payload: { type: "deposit", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: "1", signature: sig }, deposit: { amount: "0", authorization: {} } }, reason: "invalid_batch_settlement_evm_deposit_payload", field: /deposit\.amount: must be positive/ },
      { path: "/settle", payload: { type: "deposit", channelConfig: c.config, voucher: { channelId: c.channelId, maxClaimableAmount: "1", signature: sig }, deposit: { amount: "5", authorization: { erc3009Authorization: {}, permit2Authorization: {} } } }, reason: "invalid_batch_settlement_evm_deposit_payload", field: /exactly one of/ },
      { path: "/verify", payload: { type: "steal" }, reason: "invalid_batch_settlement_evm_payload_type", field: /payload\.type/ },
      { path: "/settle", payload: [], reason: "invalid_payload", field: /^paymentPayload\.payload: .*expected record/ },
    ];
    const before = await moneyState(c.account.address);
    for (const k of cases) {
      const q = k.q ?? (k.path === "/verify" || (k.payload as { type?: string })?.type === "deposit" ? c.r : operation());
      const r = await call(k.path, k.payload, q);
      expect([200, 400], JSON.stringify(r.json).slice(0, 200)).toContain(r.status);
      expect(reasonOf(k.path, r.json), JSON.stringify(r.json).slice(0, 300)).toBe(k.reason);
      expect(r.json.invalidMessage ?? r.json.errorMessage).toMatch(k.field);
      if (k.path === "/settle") expect(r.json.transaction).toBe("");
    }
    // 201 claims: the body limit stops it first (413 naming the body), the 200-claim cap behind it.
    const many = await call("/settle", { type: "claim", claims: Array.from({ length: 201 }, () => good) }, operation());
    expect(many.status).toBe(413);
    expect(many.json).toMatchObject({ success: false, errorReason: "invalid_payload", transaction: "" });
    expect(many.json.errorMessage).toMatch(/^body: larger than/);
    expect(await moneyState(c.account.address)).toEqual(before);
  }, 60_000);

  it("a forged deposit at /settle and a sweep of nothing: refused, the relayer sends nothing", async () => {
    const victim = payerAccount(3);
    const r = await requirements();
    const cfg: ChannelConfig = { payer: victim.address, payerAuthorizer: victim.address, receiver: net.accounts.payee.address, receiverAuthorizer: authorizer.address, token: net.usdc.address, withdrawDelay: 900, salt: salt() };
    const id = computeChannelId(cfg, net.chainId);
    const validBefore = BigInt(Math.floor(Date.now() / 1000) + 600);
    const deposit = {
      type: "deposit",
      channelConfig: cfg,
      voucher: { channelId: id, maxClaimableAmount: "1000", signature: `0x${randomBytes(65).toString("hex")}` },
      deposit: { amount: "100000", authorization: { erc3009Authorization: { validAfter: "0", validBefore: validBefore.toString(), salt: "1", signature: `0x${randomBytes(65).toString("hex")}` } } },
    };
    const before = await moneyState(victim.address);
    const s = await call("/settle", deposit, r);
    expect(s.json).toMatchObject({ success: false, errorReason: "invalid_batch_settlement_evm_receive_authorization_signature", transaction: "" });
    // Expired and not-yet-valid authorizations are refused before the signature is even checked.
    const expired = { ...deposit, deposit: { ...deposit.deposit, authorization: { erc3009Authorization: { ...deposit.deposit.authorization.erc3009Authorization, validBefore: "1" } } } };
    expect((await call("/settle", expired, r)).json.errorReason).toBe("invalid_batch_settlement_evm_payload_authorization_valid_before");
    const future = { ...deposit, deposit: { ...deposit.deposit, authorization: { erc3009Authorization: { ...deposit.deposit.authorization.erc3009Authorization, validAfter: String(Math.floor(Date.now() / 1000) + 3600) } } } };
    expect((await call("/settle", future, r)).json.errorReason).toBe("invalid_batch_settlement_evm_payload_authorization_valid_after");
    const sweep = await call("/settle", { type: "settle", receiver: "0x000000000000000000000000000000000000dEaD", token: net.usdc.address }, operation());
    expect(sweep.json).toMatchObject({ success: false, errorReason: "invalid_batch_settlement_evm_nothing_to_settle", transaction: "" });
    expect(await moneyState(victim.address)).toEqual(before);
    expect(await onChain(id)).toEqual({ balance: 0n, totalClaimed: 0n });
  }, 60_000);

  it("a channel in a token outside the facilitator's allowlist: deposit, voucher, claim and sweep refused, the relayer sends nothing", async () => {
    const account = payerAccount(2);
    const wallet = createWalletClient({ account, chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
    await chain.waitForTransactionReceipt({ hash: await wallet.writeContract({ address: net.plainToken.address, abi: erc20Abi, functionName: "approve", args: [PERMIT2_ADDRESS, maxUint256] }) });
    const plainOf = (a: Address) => chain.readContract({ address: net.plainToken.address, abi: erc20Abi, functionName: "balanceOf", args: [a] });
    // A real, well-signed Permit2 deposit: only the token is not one this service lists.
    const q: PaymentRequirements = { scheme: "batch-settlement", network: net.network, amount: PRICE.toString(), asset: net.plainToken.address, payTo: net.accounts.payee.address, maxTimeoutSeconds: 300, extra: { receiverAuthorizer: authorizer.address, withdrawDelay: 900, name: net.plainToken.name, version: net.plainToken.version, assetTransferMethod: "permit2" } };
    const client = batchSettlementEvmClient({ account, depositMultiplier: 1, salt: salt() });
    const deposit = await client.createPayload(q, { x402Version: 2 } as never);
    const cfg = (deposit as { channelConfig: ChannelConfig }).channelConfig;
    const id = computeChannelId(cfg, net.chainId);
    const before = { state: await moneyState(account.address), payer: await plainOf(account.address), escrow: await plainOf(BATCH_SETTLEMENT_ADDRESS) };
    const field = /^paymentPayload\.payload\.channelConfig\.token: 0x[0-9a-fA-F]{40} is not accepted on eip155:31337/;
    const v = await call("/verify", deposit, q);
    expect(v.json).toMatchObject({ isValid: false, invalidReason: "invalid_batch_settlement_evm_asset_not_allowed" });
    expect(v.json.invalidMessage).toMatch(field);
    const s = await call("/settle", deposit, q);
    expect(s.json).toMatchObject({ success: false, errorReason: "invalid_batch_settlement_evm_asset_not_allowed", transaction: "" });
    const voucher = { type: "voucher", channelConfig: cfg, voucher: { channelId: id, maxClaimableAmount: PRICE.toString(), signature: await signVoucher(account, id, PRICE) } };
    expect((await call("/verify", voucher, q)).json.invalidReason).toBe("invalid_batch_settlement_evm_asset_not_allowed");
    const claim = await call("/settle", { type: "claim", claims: [{ voucher: { channel: cfg, maxClaimableAmount: PRICE.toString() }, signature: voucher.voucher.signature, totalClaimed: PRICE.toString() }] }, { ...operation(), asset: net.plainToken.address });
    expect(claim.json).toMatchObject({ success: false, errorReason: "invalid_batch_settlement_evm_asset_not_allowed", transaction: "" });
    expect(claim.json.errorMessage).toMatch(/claims\[0\]\.voucher\.channel\.token/);
    const sweep = await call("/settle", { type: "settle", receiver: net.accounts.payee.address, token: net.plainToken.address }, { ...operation(), asset: net.plainToken.address });
    expect(sweep.json).toMatchObject({ success: false, errorReason: "invalid_batch_settlement_evm_asset_not_allowed", transaction: "" });
    expect(await moneyState(account.address)).toEqual(before.state);
    expect(await plainOf(account.address)).toBe(before.payer);
    expect(await plainOf(BATCH_SETTLEMENT_ADDRESS)).toBe(before.escrow);
    expect(await onChain(id)).toEqual({ balance: 0n, totalClaimed: 0n });
  }, 60_000);

  it("claims that claim nothing new (repeated, or below the claimed total): answered from the chain, no transaction, no gas", async () => {
    const c = await openChannel(1);
    const max = c.charged();
    const entry = async (totalClaimed: bigint) => ({ voucher: { channel: c.config, maxClaimableAmount: max.toString() }, signature: await signVoucher(c.account, c.channelId, max), totalClaimed: totalClaimed.toString() });
    const first = await moneyState(c.account.address);
    const claimed = await call("/settle", { type: "claim", claims: [await entry(max)] }, operation());
    expect(claimed.json).toMatchObject({ success: true, extra: { channelState: { channelId: c.channelId, totalClaimed: max.toString() } } });
    expect(claimed.json.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect((await moneyState(c.account.address)).relayerNonce).toBe(first.relayerNonce + 1);
    const before = await moneyState(c.account.address);
    for (const total of [max, max, 1n, 0n]) {
      const again = await call("/settle", { type: "claim", claims: [await entry(total)] }, operation());
      expect(again.json, String(total)).toMatchObject({ success: true, transaction: "", extra: { channelState: { channelId: c.channelId, totalClaimed: max.toString() } } });
    }
    expect(await moneyState(c.account.address)).toEqual(before);
    expect(await onChain(c.channelId)).toEqual({ balance: 10n * PRICE, totalClaimed: max });
  }, 60_000);
});
