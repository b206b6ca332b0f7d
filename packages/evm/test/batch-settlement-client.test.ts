// batch-settlement on EVM, client and server faces without a chain: what the client signs
// (deposit, vouchers), how it follows receipts and recovers from a corrective 402, and how the
// server face reads and binds payloads and checks vouchers off-chain.
import type { PaymentPayload, PaymentRequirements, SettleResponse } from "@tollgate/core";
import { getAddress, recoverTypedDataAddress, toHex, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { batchSettlementEvmClient } from "../src/batch-settlement/client.ts";
import { channelIdOf, voucherDigestBytes } from "../src/batch-settlement/client-typed-data.ts";
import { batchSettlementDomain, computeChannelId, erc3009DepositNonce, voucherDigest, voucherTypes } from "../src/batch-settlement/eip712.ts";
import { batchSettlementEvmServer, readChannelPayload } from "../src/batch-settlement/server.ts";

const payer = privateKeyToAccount(`0x${"01".repeat(32)}`);
const stranger = privateKeyToAccount(`0x${"02".repeat(32)}`);
const authorizer = getAddress(`0x${"ab".repeat(20)}`);
const token = getAddress(`0x${"cd".repeat(20)}`);
const payTo = getAddress(`0x${"ef".repeat(20)}`);

const requirements: PaymentRequirements = {
  scheme: "batch-settlement",
  network: "eip155:31337",
  amount: "1000",
  asset: token,
  payTo,
  maxTimeoutSeconds: 60,
  extra: { name: "USD Coin", version: "2", receiverAuthorizer: authorizer, withdrawDelay: 900 },
};
const ctx = { x402Version: 2 as const };
type Voucher = { channelId: Hex; maxClaimableAmount: string; signature: Hex };

function receipt(charged: string, cumulative: string, channelId: string, balance = "10000"): SettleResponse {
  return { success: true, transaction: "", network: "eip155:31337", amount: "", extra: { chargedAmount: charged, channelState: { channelId, balance, totalClaimed: "0", withdrawRequestedAt: 0, refundNonce: "0", chargedCumulativeAmount: cumulative } } } as SettleResponse;
}

describe("batch-settlement client", () => {
  it("opens with a deposit to the ERC-3009 collector, then signs cumulative vouchers", async () => {
    const client = batchSettlementEvmClient({ account: payer, depositMultiplier: 10, now: () => 1_000_000 });
    const first = (await client.createPayload(requirements, ctx)) as { type: string; voucher: Voucher; deposit: { amount: string; authorization: { erc3009Authorization: { validBefore: string; salt: Hex; signature: Hex } } } };
    expect(first.type).toBe("deposit");
    expect(first.deposit.amount).toBe("10000");
    const config = client.channelConfig(requirements);
    expect(first.voucher.channelId).toBe(computeChannelId(config, 31337).toLowerCase());
    expect(first.voucher.maxClaimableAmount).toBe("1000");
    const signer = await recoverTypedDataAddress({ ...{ domain: batchSettlementDomain(31337), types: voucherTypes, primaryType: "Voucher" as const }, message: { channelId: first.voucher.channelId, maxClaimableAmount: 1000n }, signature: first.voucher.signature });
    expect(signer).toBe(payer.address);
    const auth = first.deposit.authorization.erc3009Authorization;
    expect(auth.validBefore).toBe("1000060");
    const depositSigner = await recoverTypedDataAddress({
      domain: { name: "USD Coin", version: "2", chainId: 31337, verifyingContract: token },
      types: { ReceiveWithAuthorization: [{ name: "from", type: "address" }, { name: "to", type: "address" }, { name: "value", type: "uint256" }, { name: "validAfter", type: "uint256" }, { name: "validBefore", type: "uint256" }, { name: "nonce", type: "bytes32" }] },
      primaryType: "ReceiveWithAuthorization",
      message: { from: payer.address, to: "0x4020806089470a89826cB9fB1f4059150b550004", value: 10000n, validAfter: 0n, validBefore: 1000060n, nonce: erc3009DepositNonce(first.voucher.channelId, BigInt(auth.salt)) },
      signature: auth.signature,
    });
    expect(depositSigner).toBe(payer.address);

    await client.onPaymentResponse({ requirements, payload: first, status: 200, receipt: receipt("1000", "1000", first.voucher.channelId) });
    const second = (await client.createPayload(requirements, ctx)) as { type: string; voucher: Voucher };
    expect(second.type).toBe("voucher");
    expect(second.voucher.maxClaimableAmount).toBe("2000");
  });

  it("tops up when the next voucher would pass the balance", async () => {
    const client = batchSettlementEvmClient({ account: payer, depositMultiplier: 2 });
    const kinds: string[] = [];
    for (let i = 0; i < 5; i++) kinds.push(((await client.createPayload(requirements, ctx)) as { type: string }).type);
    expect(kinds).toEqual(["deposit", "voucher", "deposit", "voucher", "deposit"]);
    expect(client.channel(requirements)?.balance).toBe(6000n);
  });

  it("stops signing on a channel whose receipt overcharges or breaks the cumulative", async () => {
    const client = batchSettlementEvmClient({ account: payer });
    const p = (await client.createPayload(requirements, ctx)) as { voucher: Voucher };
    await client.onPaymentResponse({ requirements, payload: p, status: 200, receipt: receipt("1001", "1001", p.voucher.channelId) });
    await expect(client.createPayload(requirements, ctx)).rejects.toThrow(/halted.*above the price/);

    const other = batchSettlementEvmClient({ account: payer });
    const q = (await other.createPayload(requirements, ctx)) as { voucher: Voucher };
    await other.onPaymentResponse({ requirements, payload: q, status: 200, receipt: receipt("1000", "5000", q.voucher.channelId) });
    await expect(other.createPayload(requirements, ctx)).rejects.toThrow(/halted.*charged total/);
  });

  it("a failed request charges nothing locally: the next voucher reuses the base", async () => {
    const client = batchSettlementEvmClient({ account: payer, depositMultiplier: 10 });
    const p = (await client.createPayload(requirements, ctx)) as { voucher: Voucher };
    await client.onPaymentResponse({ requirements, payload: p, status: 503 });
    const again = (await client.createPayload(requirements, ctx)) as { type: string; voucher: Voucher };
    expect(again.type).toBe("deposit"); // the refused deposit did not land either
    expect(again.voucher.maxClaimableAmount).toBe("1000");
  });

  it("resyncs from a corrective 402 only when the voucher shown is its own", async () => {
    const client = batchSettlementEvmClient({ account: payer });
    const p = (await client.createPayload(requirements, ctx)) as { voucher: Voucher };
    const channelId = p.voucher.channelId;
    const sign = (account: typeof payer, max: bigint) => account.signTypedData({ domain: batchSettlementDomain(31337), types: voucherTypes, primaryType: "Voucher", message: { channelId, maxClaimableAmount: max } });
    const corrective = (signature: Hex) => ({
      x402Version: 2 as const,
      error: "invalid_batch_settlement_evm_cumulative_amount_mismatch",
      resource: { url: "http://x/paid" },
      accepts: [{ ...requirements, extra: { ...requirements.extra, channelState: { channelId, balance: "50000", totalClaimed: "0", withdrawRequestedAt: 0, refundNonce: "0", chargedCumulativeAmount: "7000" }, voucherState: { signedMaxClaimable: "7000", signature } } }],
    });
    expect(await client.onPaymentResponse({ requirements, payload: p, status: 402, required: corrective(await sign(stranger, 7000n)) })).toBeUndefined();
    const p2 = (await client.createPayload(requirements, ctx)) as { voucher: Voucher };
    const retry = await client.onPaymentResponse({ requirements, payload: p2, status: 402, required: corrective(await sign(payer, 7000n)) });
    expect(retry?.accepts[0]!.extra).toEqual(requirements.extra); // corrective fields removed
    const next = (await client.createPayload(requirements, ctx)) as { type: string; voucher: Voucher };
    expect(next.type).toBe("voucher");
    expect(next.voucher.maxClaimableAmount).toBe("8000");
  });

  it("refuses requirements it cannot build a channel from", async () => {
    const client = batchSettlementEvmClient({ account: payer });
    await expect(client.createPayload({ ...requirements, extra: { ...requirements.extra, receiverAuthorizer: undefined } }, ctx)).rejects.toThrow(/receiverAuthorizer/);
    await expect(client.createPayload({ ...requirements, extra: { ...requirements.extra, withdrawDelay: 10 } }, ctx)).rejects.toThrow(/withdrawDelay/);
    await expect(client.createPayload({ ...requirements, extra: { ...requirements.extra, assetTransferMethod: "erc7702" } }, ctx)).rejects.toThrow(/assetTransferMethod/);
  });

  it("a caller that reports answers gets turns: the next voucher on a channel waits for the last one's answer, and builds on it", async () => {
    const client = batchSettlementEvmClient({ account: payer, depositMultiplier: 10 });
    const turnCtx = { x402Version: 2 as const, observesAnswers: true };
    const first = (await client.createPayload(requirements, turnCtx)) as { voucher: Voucher };
    let second: { voucher: Voucher } | undefined;
    const waiting = client.createPayload(requirements, turnCtx).then((p) => (second = p as { voucher: Voucher }));
    await new Promise((r) => setTimeout(r, 30));
    expect(second).toBeUndefined(); // no answer to the first yet
    // The first was served for less than its price (a charge of 400): the second builds on that.
    await client.onPaymentResponse({ requirements, payload: first, status: 200, receipt: receipt("400", "400", first.voucher.channelId) });
    await waiting;
    expect(second!.voucher.maxClaimableAmount).toBe("1400");
    // No answer at all (status 0, the connection failed): the turn passes, nothing is assumed charged.
    let third: { voucher: Voucher } | undefined;
    const next = client.createPayload(requirements, turnCtx).then((p) => (third = p as { voucher: Voucher }));
    await client.onPaymentResponse({ requirements, payload: second!, status: 0 });
    await next;
    expect(third!.voucher.maxClaimableAmount).toBe("1400");
    // A caller that does not report answers never waits: it signs on the optimistic total.
    const a = (await client.createPayload(requirements, ctx)) as { voucher: Voucher };
    const b = (await client.createPayload(requirements, ctx)) as { voucher: Voucher };
    expect(BigInt(b.voucher.maxClaimableAmount) - BigInt(a.voucher.maxClaimableAmount)).toBe(1000n);
  });

  it("remembers a channel per requirement, never for a requirement that fails the checks", async () => {
    const client = batchSettlementEvmClient({ account: payer });
    const config = client.channelConfig(requirements);
    expect(Object.isFrozen(config)).toBe(true);
    expect(client.channelConfig({ ...requirements, payTo: payTo.toLowerCase() })).toEqual(config);
    // Remembered after the numeric delay passed: the same delay as a string is still refused.
    expect(() => client.channelConfig({ ...requirements, extra: { ...requirements.extra, withdrawDelay: "900" } })).toThrow(/withdrawDelay/);
    // Another receiver, another channel.
    const other = client.channelConfig({ ...requirements, payTo: stranger.address });
    expect(other.receiver).toBe(stranger.address);
    expect(channelIdOf(other, 31337)).not.toBe(channelIdOf(config, 31337));
    const first = (await client.createPayload({ ...requirements, payTo: stranger.address }, ctx)) as { voucher: Voucher };
    expect(first.voucher.channelId).toBe(channelIdOf(other, 31337));
  });
});

describe("batch-settlement server face", () => {
  const server = batchSettlementEvmServer();
  const offer = server.enhanceRequirements!({ ...requirements, extra: { name: "USD Coin", version: "2" } }, { x402Version: 2, scheme: "batch-settlement", network: "eip155:31337", extra: { receiverAuthorizer: authorizer } });

  it("advertises the facilitator's receiver authorizer and the withdraw delay", () => {
    expect(offer.extra).toEqual(requirements.extra);
  });

  it("voucher digests equal eip712.ts", () => {
    const id = toHex(7n, { size: 32 });
    expect(toHex(voucherDigestBytes(id, 123456789n, 31337))).toBe(voucherDigest(id, 123456789n, 31337));
  });

  it("channel ids hashed by hand equal eip712.ts (viem's EIP-712), for any case of address and any delay", () => {
    const random = (bytes: number) => toHex(crypto.getRandomValues(new Uint8Array(bytes)));
    for (let i = 0; i < 50; i++) {
      const config = {
        payer: random(20),
        payerAuthorizer: i % 3 === 0 ? "0x0000000000000000000000000000000000000000" : getAddress(random(20)),
        receiver: random(20).toUpperCase().replace("0X", "0x"),
        receiverAuthorizer: getAddress(random(20)),
        token: random(20),
        withdrawDelay: [900, 86_400, 2 ** 40 - 1][i % 3]!,
        salt: random(32),
      } as Parameters<typeof channelIdOf>[0];
      for (const chainId of [31337, 8453]) expect(channelIdOf(config, chainId)).toBe(computeChannelId(config, chainId).toLowerCase());
    }
  });

  it("binds a payload to the offer, naming the field and the spec's reason", async () => {
    const client = batchSettlementEvmClient({ account: payer });
    const inner = (await client.createPayload(offer, ctx)) as { channelConfig: Record<string, unknown>; voucher: Voucher };
    const payload = (p: Record<string, unknown>): PaymentPayload => ({ x402Version: 2, accepted: offer, payload: p });
    const ok = readChannelPayload(payload(inner), offer);
    expect(ok.ok && ok.payment.channelId).toBe(channelIdOf(client.channelConfig(offer), 31337));
    expect(ok.ok && ok.payment.depositAmount).toBe(5000n);
    const bad = (patch: Record<string, unknown>) => readChannelPayload(payload({ ...inner, channelConfig: { ...inner.channelConfig, ...patch } }), offer);
    expect(bad({ receiver: stranger.address })).toMatchObject({ ok: false, reason: "invalid_batch_settlement_evm_channel_id_mismatch" });
    expect(readChannelPayload(payload(inner), { ...offer, payTo: stranger.address })).toMatchObject({ ok: false, reason: "invalid_batch_settlement_evm_receiver_mismatch" });
    expect(readChannelPayload(payload(inner), { ...offer, asset: stranger.address })).toMatchObject({ ok: false, reason: "invalid_batch_settlement_evm_token_mismatch" });
    expect(readChannelPayload(payload(inner), { ...offer, extra: { ...offer.extra, withdrawDelay: 901 } })).toMatchObject({ ok: false, reason: "invalid_batch_settlement_evm_withdraw_delay_mismatch" });
    expect(readChannelPayload(payload(inner), { ...offer, extra: { ...offer.extra, receiverAuthorizer: stranger.address } })).toMatchObject({ ok: false, reason: "invalid_batch_settlement_evm_receiver_authorizer_mismatch" });
    expect(readChannelPayload(payload({ ...inner, voucher: { ...inner.voucher, maxClaimableAmount: "-1" } }), offer)).toMatchObject({ ok: false, field: "paymentPayload.payload.voucher.maxClaimableAmount" });
    expect(readChannelPayload(payload({ ...inner, voucher: { ...inner.voucher, maxClaimableAmount: (1n << 128n).toString() } }), offer)).toMatchObject({ ok: false });
    expect(readChannelPayload(payload({ ...inner, type: "claim" }), offer)).toMatchObject({ ok: false, reason: "invalid_batch_settlement_evm_payload_type" });
    expect(readChannelPayload(payload({ ...inner, channelConfig: { ...inner.channelConfig, salt: "0x12" } }), offer)).toMatchObject({ ok: false, field: "paymentPayload.payload.channelConfig.salt" });
  });

  it("checks a voucher off-chain against the channel's payer authorizer", async () => {
    const client = batchSettlementEvmClient({ account: payer });
    const inner = (await client.createPayload(offer, ctx)) as { voucher: Voucher };
    const read = readChannelPayload({ x402Version: 2, accepted: offer, payload: inner }, offer);
    if (!read.ok) throw new Error(read.message);
    expect(await server.channels.checkVoucher(read.payment, "eip155:31337")).toBe(true);
    expect(await server.channels.checkVoucher({ ...read.payment, maxClaimableAmount: 1001n }, "eip155:31337")).toBe(false);
    // payerAuthorizer zero: a contract wallet may sign; the facilitator decides.
    expect(await server.channels.checkVoucher({ ...read.payment, channelConfig: { ...read.payment.channelConfig, payerAuthorizer: "0x0000000000000000000000000000000000000000" } }, "eip155:31337")).toBeUndefined();
  });
});
