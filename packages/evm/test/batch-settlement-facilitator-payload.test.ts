// The facilitator's reading of batch-settlement payloads, without a chain: every malformed field is
// refused with the spec's reason code for that payload type and a message naming the field.
import { describe, expect, it } from "vitest";
import { MAX_CLAIMS_PER_BATCH, readBatchPayload } from "../src/index.ts";

const A = "0x1111111111111111111111111111111111111111";
const B32 = `0x${"ab".repeat(32)}`;
const SIG = `0x${"11".repeat(65)}`;
const config = { payer: A, payerAuthorizer: A, receiver: A, receiverAuthorizer: A, token: A, withdrawDelay: 900, salt: B32 };
const voucher = { channelId: B32, maxClaimableAmount: "1000", signature: SIG };
const erc3009 = { validAfter: "0", validBefore: "1900000000", salt: "0x01ff", signature: SIG };

function refused(payload: unknown) {
  const r = readBatchPayload(payload);
  if (r.ok) throw new Error("expected a refusal");
  return r;
}

describe("readBatchPayload", () => {
  it("reads the five payload types", () => {
    const deposit = readBatchPayload({ type: "deposit", channelConfig: config, voucher, deposit: { amount: "5000", authorization: { erc3009Authorization: erc3009 } } });
    expect(deposit).toMatchObject({ ok: true, value: { type: "deposit", amount: 5000n, authorization: { method: "eip3009", salt: 0x01ffn } } });
    expect(readBatchPayload({ type: "voucher", channelConfig: config, voucher })).toMatchObject({ ok: true, value: { voucher: { maxClaimableAmount: 1000n } } });
    expect(readBatchPayload({ type: "refund", channelConfig: config, voucher })).toMatchObject({ ok: true, value: { type: "refund" } });
    const claim = readBatchPayload({ type: "claim", claims: [{ voucher: { channel: config, maxClaimableAmount: "10" }, signature: SIG, totalClaimed: "10" }] });
    expect(claim).toMatchObject({ ok: true, value: { claims: [{ totalClaimed: 10n }] } });
    expect(readBatchPayload({ type: "settle", receiver: A, token: A })).toMatchObject({ ok: true });
  });

  it("names the field and uses the payload type's reason", () => {
    expect(refused({ type: "voucher", channelConfig: { ...config, payer: "0x12" }, voucher })).toEqual({
      ok: false,
      reason: "invalid_batch_settlement_evm_voucher_payload",
      message: "paymentPayload.payload.channelConfig.payer: expected a 0x-prefixed 20-byte address",
    });
    expect(refused({ type: "deposit", channelConfig: config, voucher, deposit: { amount: "0", authorization: { erc3009Authorization: erc3009 } } })).toMatchObject({
      reason: "invalid_batch_settlement_evm_deposit_payload",
      message: expect.stringContaining("deposit.amount: must be positive"),
    });
    expect(refused({ type: "deposit", channelConfig: config, voucher, deposit: { amount: "1", authorization: {} } }).reason).toBe("invalid_batch_settlement_evm_deposit_payload");
    expect(refused({ type: "voucher", channelConfig: config, voucher: { ...voucher, maxClaimableAmount: (1n << 128n).toString() } }).message).toMatch(/maxClaimableAmount: out of range/);
    expect(refused({ type: "voucher", channelConfig: config, voucher: { ...voucher, maxClaimableAmount: "1.5" } }).message).toMatch(/maxClaimableAmount: expected a non-negative integer/);
    expect(refused({ type: "refund", channelConfig: config, voucher, amount: "0" }).reason).toBe("invalid_batch_settlement_evm_refund_amount_invalid");
    expect(refused({ type: "claim", claims: [] })).toMatchObject({ reason: "invalid_batch_settlement_evm_claim_payload", message: expect.stringContaining("must not be empty") });
    const row = { voucher: { channel: config, maxClaimableAmount: "1" }, signature: SIG, totalClaimed: "1" };
    expect(refused({ type: "claim", claims: Array(MAX_CLAIMS_PER_BATCH + 1).fill(row) }).message).toMatch(/at most/);
    expect(refused({ type: "settle", receiver: A }).reason).toBe("invalid_batch_settlement_evm_settle_payload");
    expect(refused({ type: "nope" }).reason).toBe("invalid_batch_settlement_evm_payload_type");
    expect(refused("x").reason).toBe("invalid_batch_settlement_evm_payload_type");
    expect(refused({ type: "voucher", channelConfig: config, voucher: { ...voucher, signature: "0xzz" } }).message).toMatch(/voucher.signature/);
  });
});
