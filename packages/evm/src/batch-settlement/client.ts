/**
 * Client face of `batch-settlement` on EVM: one deposit opens a channel, then every request
 * carries a cumulative voucher `Voucher(channelId, maxClaimableAmount)` with
 * `maxClaimableAmount = chargedCumulativeAmount + amount`. The client keeps, per channel, what
 * the server has charged so far and what is deposited; it tops up with a new deposit when the
 * next voucher would pass the balance, and resynchronizes from the server's corrective 402
 * (`channelState` + `voucherState`) after checking that the voucher it is shown is its own.
 */
import { evmChainId, isAtomic, type Network, type PaymentRequired, type PaymentRequirements, type PaymentResponseContext, type SchemeClient, type SettleResponse } from "@tollgate/core";
import { getAddress, isAddress, type Address, type Hex, type LocalAccount } from "viem";
import { signDeposit } from "./client-deposit.ts";
import { refundChannel } from "./client-refund.ts";
import {
  MIN_WITHDRAW_DELAY,
  ZERO_ADDRESS,
  ZERO_SALT,
  channelIdOf,
  voucherDigestBytes,
  voucherSigner,
  voucherTypes,
  batchSettlementDomain,
  type ChannelConfig,
} from "./client-typed-data.ts";

export type BatchSettlementSigner = Pick<LocalAccount, "address" | "signTypedData"> & {
  /** Optional fast path: signs a voucher's 32-byte EIP-712 digest (see `fastVoucherSigner`). */
  signDigest?(digest: Uint8Array): Hex | Promise<Hex>;
};

/** What the client remembers of one channel. */
export interface ClientChannel {
  channelId: Hex;
  network: Network;
  /** What the server has charged in total (the base of the next voucher). */
  charged: bigint;
  /** Deposited and not refunded, as far as the client knows. */
  balance: bigint;
  /** Set when a server answer failed the client's checks: no further voucher is signed on this channel. */
  halted?: string;
}

export interface ChannelReader {
  /** The channel as on chain: `channels(channelId)` of the settlement contract. */
  readChannel(channelId: Hex): Promise<{ balance: bigint; totalClaimed: bigint }>;
}

export interface BatchSettlementClientOptions {
  /** The payer: signs deposits (ERC-3009) and, unless `voucherSigner` is set, vouchers. */
  account: BatchSettlementSigner;
  /** An EOA that signs vouchers (the channel's `payerAuthorizer`); default `account`. */
  voucherSigner?: BatchSettlementSigner;
  /** Distinguishes channels with otherwise equal parameters. Default zero. */
  salt?: Hex;
  /** A first deposit or a top-up covers this many requests at least. Default 5; at least 1. */
  depositMultiplier?: number;
  /** Chain reads for a cold start (no local record): the on-chain totals become the baseline. */
  reader?: (network: Network) => ChannelReader | undefined;
  /** Unix seconds; for tests. */
  now?: () => number;
}

export interface BatchSettlementClient extends SchemeClient {
  /** The channel the client keeps for `requirements` (undefined before its first payment). */
  channel(requirements: PaymentRequirements): ClientChannel | undefined;
  /** The config this client's channel for `requirements` has. */
  channelConfig(requirements: PaymentRequirements): ChannelConfig;
  /**
   * Reads the server's answer: a receipt moves the channel's charged total (checked against what
   * was signed); a corrective 402 resynchronizes it. Returns the requirements to pay again with
   * when the client recovered from a corrective 402 (corrective fields removed), else undefined.
   */
  onPaymentResponse(context: PaymentResponseContext): Promise<PaymentRequired | undefined>;
  /**
   * Asks the server of `url` for a cooperative refund of this client's channel there: the unclaimed
   * balance, or `amount` of it. Signs a zero-charge voucher (the charged total), follows one
   * corrective 402, and resolves with the refund's receipt; throws with the server's reason.
   */
  refund(url: string, options?: { amount?: bigint; fetch?: typeof fetch }): Promise<SettleResponse>;
}

export const CUMULATIVE_MISMATCH = "invalid_batch_settlement_evm_cumulative_amount_mismatch";

/** A payment whose caller does not report answers: it waits for nothing, and nothing waits for it. */
const NO_TURN = { ready: Promise.resolve(), answered: () => {} };

/** Distinct channels a client remembers the config and id of (a client pays few servers). */
const MAX_KNOWN_CHANNELS = 1_024;

export function batchSettlementEvmClient(options: BatchSettlementClientOptions): BatchSettlementClient {
  const { account } = options;
  const signer = options.voucherSigner ?? account;
  const salt = options.salt ?? ZERO_SALT;
  const multiplier = BigInt(options.depositMultiplier ?? 5);
  if (multiplier < 1n) throw new RangeError("batchSettlementEvmClient: depositMultiplier must be at least 1");
  const now = options.now ?? (() => Math.floor(Date.now() / 1000));
  const channels = new Map<string, ClientChannel>();
  /** The charged total each signed voucher was based on, to check the receipt against. */
  const signedOn = new Map<string, { base: bigint; deposit: bigint; answered: () => void }>();
  /**
   * The latest payment in flight per channel, settled when its answer has been observed. A channel
   * serves one request at a time and each voucher builds on the last charged total, so the next
   * payment on a channel waits for that answer (concurrent calls take turns instead of being
   * answered channel_busy), or for the previous payment's time limit when no answer ever comes.
   * Only for callers that report answers (PayloadContext.observesAnswers: every transport
   * through payAndRetry, i.e. fetch, axios, MCP, A2A).
   */
  const turns = new Map<string, Promise<void>>();

  function takeTurn(channelId: string, r: PaymentRequirements): { ready: Promise<void>; answered: () => void } {
    const previous = turns.get(channelId);
    let answered!: () => void;
    const mine = new Promise<void>((resolve) => (answered = resolve));
    turns.set(channelId, mine);
    void mine.then(() => {
      if (turns.get(channelId) === mine) turns.delete(channelId);
    });
    if (!previous) return { ready: Promise.resolve(), answered };
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.min(Math.max(r.maxTimeoutSeconds, 1), 600) * 1000);
      timer.unref?.();
    });
    return { ready: Promise.race([previous, limit]).finally(() => clearTimeout(timer)), answered };
  }

  function buildConfig(r: PaymentRequirements): ChannelConfig {
    const extra = r.extra ?? {};
    const authorizer = extra.receiverAuthorizer;
    if (typeof authorizer !== "string" || !isAddress(authorizer, { strict: false }) || getAddress(authorizer) === ZERO_ADDRESS) {
      throw new Error("requirements.extra.receiverAuthorizer: a non-zero address is required for batch-settlement");
    }
    if (!isAddress(r.payTo, { strict: false })) throw new Error(`requirements.payTo: not an address: ${JSON.stringify(r.payTo)}`);
    if (!isAddress(r.asset, { strict: false })) throw new Error(`requirements.asset: not an address: ${JSON.stringify(r.asset)}`);
    const delay = extra.withdrawDelay ?? MIN_WITHDRAW_DELAY;
    if (typeof delay !== "number" || !Number.isInteger(delay) || delay < MIN_WITHDRAW_DELAY || delay > 2_592_000) {
      throw new Error("requirements.extra.withdrawDelay: must be whole seconds between 900 and 2592000");
    }
    return {
      payer: getAddress(account.address),
      payerAuthorizer: getAddress(signer.address),
      receiver: getAddress(r.payTo),
      receiverAuthorizer: getAddress(authorizer),
      token: getAddress(r.asset),
      withdrawDelay: delay,
      salt,
    };
  }

  /**
   * The channel a requirement pays into: its config and id, built and checked once per distinct
   * (network, payTo, asset, authorizer, delay) and remembered (bounded), because every paid
   * request and every receipt needs them (five checksummed addresses and an EIP-712 hash).
   * The key carries each field's type, so a value that would fail the checks never shares an
   * entry with one that passed. Configs are frozen: callers share them.
   */
  function channelOf(r: PaymentRequirements): { chainId: number; config: ChannelConfig; channelId: Hex } {
    const chainId = chainOf(r);
    const extra = r.extra ?? {};
    const key = `${chainId}|${typeof r.payTo}:${r.payTo}|${typeof r.asset}:${r.asset}|${typeof extra.receiverAuthorizer}:${extra.receiverAuthorizer}|${typeof extra.withdrawDelay}:${extra.withdrawDelay}`;
    let hit = knownChannels.get(key);
    if (!hit) {
      const config = Object.freeze(buildConfig(r));
      hit = { chainId, config, channelId: channelIdOf(config, chainId) };
      if (knownChannels.size >= MAX_KNOWN_CHANNELS) knownChannels.delete(knownChannels.keys().next().value!);
      knownChannels.set(key, hit);
    }
    return hit;
  }
  const knownChannels = new Map<string, { chainId: number; config: ChannelConfig; channelId: Hex }>();
  const configFor = (r: PaymentRequirements): ChannelConfig => channelOf(r).config;

  function chainOf(r: PaymentRequirements): number {
    if (r.scheme !== "batch-settlement") throw new Error(`requirements.scheme: expected "batch-settlement", got ${JSON.stringify(r.scheme)}`);
    const chainId = evmChainId(r.network);
    if (chainId === undefined) throw new Error(`requirements.network: ${JSON.stringify(r.network)} is not an eip155 network`);
    if (!isAtomic(r.amount)) throw new Error(`requirements.amount: not an atomic amount: ${JSON.stringify(r.amount)}`);
    return chainId;
  }

  async function load(r: PaymentRequirements, channelId: Hex): Promise<ClientChannel> {
    const known = channels.get(channelId);
    if (known) return known;
    // Cold start: the chain's totals are the only trusted baseline (spec: "Client cold start").
    const reader = options.reader?.(r.network);
    const onChain = reader ? await reader.readChannel(channelId) : { balance: 0n, totalClaimed: 0n };
    const fresh: ClientChannel = { channelId, network: r.network, charged: onChain.totalClaimed, balance: onChain.balance };
    channels.set(channelId, fresh);
    return fresh;
  }

  async function signVoucher(channelId: Hex, max: bigint, chainId: number): Promise<Hex> {
    if (typeof signer.signDigest === "function") return signer.signDigest(voucherDigestBytes(channelId, max, chainId));
    return signer.signTypedData({ domain: batchSettlementDomain(chainId), types: voucherTypes, primaryType: "Voucher", message: { channelId, maxClaimableAmount: max } });
  }

  /** How much to deposit: what the next voucher needs, at least `multiplier` requests, or the server's announced minimum. */
  function depositFor(r: PaymentRequirements, needed: bigint): bigint {
    const amount = BigInt(r.amount);
    const announced = r.extra?.minDeposit;
    const floor = typeof announced === "string" && /^\d+$/.test(announced) && BigInt(announced) >= amount ? BigInt(announced) : amount * multiplier;
    return needed > floor ? needed : floor;
  }

  /** Adopts the server's charged total from a corrective 402 when the voucher it shows is ours. */
  function resync(r: PaymentRequirements, chainId: number, channel: ClientChannel): boolean {
    const state = r.extra?.channelState as Record<string, unknown> | undefined;
    const proof = r.extra?.voucherState as Record<string, unknown> | undefined;
    if (!state || typeof state !== "object") return false;
    const charged = uint(state.chargedCumulativeAmount);
    const balance = uint(state.balance);
    const claimed = uint(state.totalClaimed);
    if (charged === undefined || balance === undefined || claimed === undefined) return false;
    if (String(state.channelId ?? "").toLowerCase() !== channel.channelId) return false;
    if (charged < claimed) return false;
    if (charged > claimed) {
      // Anything above what is claimed on chain must be backed by a voucher we signed.
      const signed = uint(proof?.signedMaxClaimable);
      const signature = proof?.signature;
      if (signed === undefined || typeof signature !== "string" || charged > signed) return false;
      if (voucherSigner(channel.channelId, signed, signature as Hex, chainId) !== signer.address.toLowerCase()) return false;
    }
    channel.charged = charged;
    channel.balance = balance;
    delete channel.halted;
    return true;
  }

  return {
    scheme: "batch-settlement",
    networks: ["eip155:*"],
    // A voucher a server refuses is answered with the corrective 402, which onPaymentResponse recovers from.
    payUpFront: true,
    payer: (_network: Network) => account.address,
    channel(r) {
      return channels.get(channelOf(r).channelId);
    },
    channelConfig: configFor,

    async createPayload(r, context) {
      const { chainId, config, channelId } = channelOf(r);
      // Only a caller that reports every answer gets turns; others sign on the optimistic total.
      const turn = context?.observesAnswers ? takeTurn(channelId, r) : NO_TURN;
      try {
        await turn.ready;
        const channel = await load(r, channelId);
        if (channel.halted) throw new Error(`batch-settlement channel ${channelId} is halted: ${channel.halted}`);
        // Requirements from a corrective 402 carry the server's total: adopted when the voucher shown is ours.
        if (r.extra?.channelState !== undefined) resync(r, chainId, channel);
        const base = channel.charged;
        const max = base + BigInt(r.amount);
        const voucher = { channelId, maxClaimableAmount: max.toString(), signature: await signVoucher(channelId, max, chainId) };
        const channelConfig = { ...config };
        if (max <= channel.balance) {
          // Assume the request is served and charged in full; the receipt or a corrective 402 corrects it.
          channel.charged = max;
          signedOn.set(voucher.signature, { base, deposit: 0n, answered: turn.answered });
          return { type: "voucher", channelConfig, voucher };
        }
        const amount = depositFor(r, max - channel.balance);
        const deposit = await signDeposit(account, r, { chainId, channelId, amount, now: now() });
        channel.charged = max;
        channel.balance += amount;
        signedOn.set(voucher.signature, { base, deposit: amount, answered: turn.answered });
        return { type: "deposit", channelConfig, voucher, deposit };
      } catch (e) {
        turn.answered(); // nothing signed or handed over: the next payment need not wait
        throw e;
      }
    },

    refund: (url, opts = {}) => refundChannel({ channelOf, load, resync, signVoucher }, url, opts),

    async onPaymentResponse(ctx) {
      const { chainId, channelId } = channelOf(ctx.requirements);
      const channel = channels.get(channelId);
      const voucher = ctx.payload.voucher as { signature?: string } | undefined;
      const signed = voucher?.signature ? signedOn.get(voucher.signature) : undefined;
      if (voucher?.signature) signedOn.delete(voucher.signature);
      // The channel's next payment may go once this answer is taken in (below, synchronously).
      queueMicrotask(() => signed?.answered());
      if (!channel || !signed) return undefined;
      if (ctx.status < 400 && ctx.receipt?.success) {
        checkReceipt(channel, signed.base, ctx.requirements, ctx.receipt);
        return undefined;
      }
      // Not served: nothing was charged for it. Its deposit is undone too, unless the receipt
      // shows the deposit's transaction (it landed before the handler failed).
      channel.charged = signed.base;
      const depositLanded = signed.deposit > 0n && ctx.receipt?.success === true && typeof ctx.receipt.transaction === "string" && ctx.receipt.transaction !== "";
      if (!depositLanded) channel.balance -= signed.deposit;
      const required = ctx.required;
      if (ctx.status !== 402 || !required || required.error?.split(":")[0] !== CUMULATIVE_MISMATCH) return undefined;
      const accept = required.accepts.find((a) => a.scheme === "batch-settlement" && a.network === ctx.requirements.network);
      if (!accept || !resync(accept, chainId, channel)) return undefined;
      // Pay again against the plain requirements: the corrective fields are not part of the offer.
      const accepts = required.accepts.map((a) => (a === accept ? withoutCorrective(a) : a));
      return { ...required, accepts };
    },
  };
}

/** Spec "Client verification rules": charged within the price, cumulative consistent, same channel. */
function checkReceipt(channel: ClientChannel, base: bigint, r: PaymentRequirements, receipt: SettleResponse): void {
  const extra = (receipt as { extra?: Record<string, unknown> }).extra ?? {};
  const chargedAmount = uint(extra.chargedAmount);
  const state = extra.channelState as Record<string, unknown> | undefined;
  const cumulative = uint(state?.chargedCumulativeAmount);
  if (chargedAmount === undefined || cumulative === undefined) return; // a server that reports nothing: keep the optimistic total
  if (chargedAmount > BigInt(r.amount)) channel.halted = `the server charged ${chargedAmount}, above the price ${r.amount}`;
  else if (cumulative !== base + chargedAmount) channel.halted = `the server's charged total ${cumulative} is not ${base} + ${chargedAmount}`;
  else if (String(state?.channelId ?? "").toLowerCase() !== channel.channelId) channel.halted = "the receipt names another channel";
  if (channel.halted) return;
  channel.charged = cumulative;
  const balance = uint(state?.balance);
  if (balance !== undefined) channel.balance = balance;
}

export function withoutCorrective(r: PaymentRequirements): PaymentRequirements {
  const extra = { ...(r.extra ?? {}) };
  delete extra.channelState;
  delete extra.voucherState;
  return { ...r, extra };
}

export function uint(v: unknown): bigint | undefined {
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === "string" && /^\d{1,78}$/.test(v)) return BigInt(v);
  return undefined;
}

export type { Address };
