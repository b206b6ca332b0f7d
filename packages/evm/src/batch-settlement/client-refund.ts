/**
 * A cooperative refund, asked of a server by the payer (spec "Refund Payload"): a zero-charge
 * voucher (`maxClaimableAmount` = the charged total) with `type: "refund"` and an optional amount,
 * sent to the paid URL; the server completes it and has the facilitator return the unclaimed escrow.
 */
import { decodeBase64Json, encodeBase64Json, Headers, type PaymentRequired, type PaymentRequirements, type SettleResponse } from "@tollgate/core";
import type { Hex } from "viem";
import type { ChannelConfig } from "./client-typed-data.ts";
import { CUMULATIVE_MISMATCH, uint, withoutCorrective, type ClientChannel } from "./client.ts";

/** What the refund needs of the client's channel bookkeeping. */
export interface ChannelAccess {
  /** The channel a requirement pays into (checked). */
  channelOf(r: PaymentRequirements): { chainId: number; config: ChannelConfig; channelId: Hex };
  load(r: PaymentRequirements, channelId: Hex): Promise<ClientChannel>;
  resync(r: PaymentRequirements, chainId: number, channel: ClientChannel): boolean;
  signVoucher(channelId: Hex, max: bigint, chainId: number): Promise<Hex>;
}

export async function refundChannel(c: ChannelAccess, url: string, opts: { amount?: bigint; fetch?: typeof fetch }): Promise<SettleResponse> {
  const doFetch = opts.fetch ?? fetch;
  let required = await readRequired(await doFetch(url));
  for (let attempt = 0; ; attempt++) {
    const r = required.accepts.find((a) => a.scheme === "batch-settlement");
    if (!r) throw new Error(`${url}: no batch-settlement option in the 402`);
    const { chainId, config, channelId } = c.channelOf(r);
    const channel = await c.load(r, channelId);
    if (attempt > 0 && !c.resync(r, chainId, channel)) throw new Error(`refund refused: ${required.error ?? "unknown"}`);
    const voucher = { channelId, maxClaimableAmount: channel.charged.toString(), signature: await c.signVoucher(channelId, channel.charged, chainId) };
    const inner = { type: "refund", channelConfig: { ...config }, voucher, ...(opts.amount !== undefined ? { amount: opts.amount.toString() } : {}) };
    const header = encodeBase64Json({ x402Version: 2, ...(required.resource ? { resource: required.resource } : {}), accepted: withoutCorrective(r), payload: inner });
    const res = await doFetch(url, { headers: { [Headers.v2.payment]: header } });
    const receiptHeader = res.headers.get(Headers.v2.response);
    if (res.status === 402) {
      required = await readRequired(res);
      // One corrective 402: adopt the server's total (checked) and sign again.
      if (attempt === 0 && required.error?.split(":")[0] === CUMULATIVE_MISMATCH) continue;
      throw new Error(`refund refused: ${required.error ?? "unknown"}`);
    }
    await res.arrayBuffer().catch(() => undefined);
    if (!res.ok || !receiptHeader) throw new Error(`refund failed: HTTP ${res.status}`);
    const decoded = decodeBase64Json(receiptHeader, Headers.v2.response);
    const receipt = decoded.ok ? (decoded.value as SettleResponse & { extra?: Record<string, unknown> }) : undefined;
    if (!receipt?.success) throw new Error(`refund failed: ${receipt?.errorReason ?? "no readable receipt"}`);
    const state = receipt.extra?.channelState as Record<string, unknown> | undefined;
    channel.balance = uint(state?.balance) ?? channel.balance - (uint(receipt.amount) ?? 0n);
    return receipt;
  }
}

/** The PaymentRequired of a 402 (its PAYMENT-REQUIRED header). */
async function readRequired(res: Response): Promise<PaymentRequired> {
  const header = res.headers.get(Headers.v2.required);
  await res.arrayBuffer().catch(() => undefined);
  if (res.status !== 402 || !header) throw new Error(`expected a 402 with ${Headers.v2.required}, got HTTP ${res.status}`);
  const decoded = decodeBase64Json(header, Headers.v2.required);
  if (!decoded.ok) throw new Error(decoded.message);
  return decoded.value as PaymentRequired;
}

