/**
 * Server face of `batch-settlement` on EVM: prices like `exact` (same assets, same EIP-712
 * token domain in `extra`), adds the channel parameters a client builds its channel from
 * (`extra.receiverAuthorizer`: the server's own or the facilitator's advertised one;
 * `extra.withdrawDelay`), and gives the paywall its channel face: read a payload and bind it to
 * the requirements, check a voucher's signature off-chain, write claim rows.
 */
import type { ChannelClaimSource, ChannelPayment, ChannelRead, ChannelServerFace, Network, PaymentPayload, PaymentRequirements, SchemeServer, SupportedKind } from "@tollgate/core";
import { evmChainId } from "@tollgate/core";
import { getAddress, isAddress, type Address, type Hex, type LocalAccount } from "viem";
import { claimBatchTypedData, refundTypedData } from "./eip712.ts";
import { exactEvmServer, type ExactEvmServerOptions } from "../exact/server.ts";
import { MAX_WITHDRAW_DELAY, MIN_WITHDRAW_DELAY, ZERO_ADDRESS, channelIdOf, voucherSigner, type ChannelConfig } from "./client-typed-data.ts";

export interface BatchSettlementServerOptions extends ExactEvmServerOptions {
  /**
   * Who authorizes claims and refunds. Default: the facilitator's advertised
   * `receiverAuthorizer` (its /supported kind), which then signs them for this server. An
   * account (a key this server holds, e.g. `privateKeyToAccount(process.env.RECEIVER_AUTHORIZER_KEY)`)
   * makes this server sign its own claim batches and refunds: a facilitator shared with other
   * servers can then neither claim nor refund this server's channels on anyone's say-so.
   * An address alone is advertised, and whoever holds its key must sign.
   */
  receiverAuthorizer?: Address | LocalAccount;
  /** Seconds a payer's timed withdrawal waits, 900 to 2 592 000. Default 900. */
  withdrawDelay?: number;
}

const REASON = {
  payload: "invalid_batch_settlement_evm_voucher_payload",
  deposit: "invalid_batch_settlement_evm_deposit_payload",
  refund: "invalid_batch_settlement_evm_refund_payload",
  type: "invalid_batch_settlement_evm_payload_type",
  channelId: "invalid_batch_settlement_evm_channel_id_mismatch",
  receiver: "invalid_batch_settlement_evm_receiver_mismatch",
  token: "invalid_batch_settlement_evm_token_mismatch",
  authorizer: "invalid_batch_settlement_evm_receiver_authorizer_mismatch",
  delay: "invalid_batch_settlement_evm_withdraw_delay_mismatch",
} as const;

export function batchSettlementEvmServer(options: BatchSettlementServerOptions = {}): SchemeServer & { channels: ChannelServerFace } {
  const exact = exactEvmServer(options);
  const withdrawDelay = options.withdrawDelay ?? MIN_WITHDRAW_DELAY;
  if (!Number.isInteger(withdrawDelay) || withdrawDelay < MIN_WITHDRAW_DELAY || withdrawDelay > MAX_WITHDRAW_DELAY) {
    throw new RangeError(`batchSettlementEvmServer: withdrawDelay must be whole seconds between ${MIN_WITHDRAW_DELAY} and ${MAX_WITHDRAW_DELAY}`);
  }

  const signer = typeof options.receiverAuthorizer === "object" ? options.receiverAuthorizer : undefined;
  const ownAuthorizer: Address | undefined = signer ? signer.address : (options.receiverAuthorizer as Address | undefined);

  function enhanceRequirements(requirements: PaymentRequirements, kind: SupportedKind | undefined): PaymentRequirements {
    const base = exact.enhanceRequirements?.(requirements, kind) ?? requirements;
    const advertised = kind?.extra?.receiverAuthorizer;
    const authorizer = ownAuthorizer ?? (typeof advertised === "string" && isAddress(advertised, { strict: false }) ? getAddress(advertised) : undefined);
    const extra: Record<string, unknown> = { ...(base.extra ?? {}), withdrawDelay };
    if (authorizer && getAddress(authorizer) !== ZERO_ADDRESS) extra.receiverAuthorizer = getAddress(authorizer);
    return { ...base, extra };
  }

  return {
    scheme: "batch-settlement",
    networks: options.networks ?? ["eip155:*"],
    parsePrice: exact.parsePrice,
    ...(exact.checkPayTo ? { checkPayTo: exact.checkPayTo } : {}),
    enhanceRequirements,
    // One request per channel at a time: the channel is the authorization.
    authorizationKey(payload, requirements) {
      const read = readChannelPayload(payload, requirements);
      return read.ok ? read.payment.channelId : undefined;
    },
    channels: {
      read: readChannelPayload,
      async checkVoucher(payment, network) {
        const config = payment.channelConfig as unknown as ChannelConfig;
        const chainId = evmChainId(network);
        // A zero payerAuthorizer means the payer itself signs, possibly a contract wallet (EIP-1271): /verify decides.
        const authorizer = String(config.payerAuthorizer).toLowerCase();
        if (chainId === undefined || authorizer === ZERO_ADDRESS) return undefined;
        return voucherSigner(payment.channelId as Hex, payment.maxClaimableAmount, payment.signature as Hex, chainId) === authorizer;
      },
      ...(signer ? receiverAuthorizerFace(signer) : {}),
      claimEntry(source: ChannelClaimSource) {
        return {
          voucher: { channel: source.channelConfig, maxClaimableAmount: source.signedMaxClaimable.toString() },
          signature: source.signature,
          totalClaimed: source.chargedCumulativeAmount.toString(),
        };
      },
    },
  };
}

/** Reads and binds a channel payload: config well-formed, id = hash of the config, config = the offer's terms. */
export function readChannelPayload(payload: PaymentPayload, requirements: PaymentRequirements): ChannelRead {
  const p = payload?.payload as Record<string, unknown> | undefined;
  const fail = (reason: string, field: string, message: string): ChannelRead => ({ ok: false, reason, field: `paymentPayload.payload.${field}`, message });
  if (!p || typeof p !== "object") return fail(REASON.payload, "", "expected an object");
  const type = p.type;
  if (type !== "deposit" && type !== "voucher" && type !== "refund") return fail(REASON.type, "type", `expected "deposit", "voucher" or "refund", got ${JSON.stringify(String(type).slice(0, 32))}`);
  const config = readConfig(p.channelConfig);
  if (typeof config === "string") return fail(REASON.payload, `channelConfig.${config}`, "missing or malformed");
  const v = p.voucher as Record<string, unknown> | undefined;
  if (!v || typeof v !== "object") return fail(REASON.payload, "voucher", "expected an object");
  if (typeof v.channelId !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(v.channelId)) return fail(REASON.payload, "voucher.channelId", "expected 0x + 64 hex digits");
  const max = uint128(v.maxClaimableAmount);
  if (max === undefined) return fail(REASON.payload, "voucher.maxClaimableAmount", "expected a decimal uint128 string");
  if (typeof v.signature !== "string" || !/^0x([0-9a-fA-F]{2})+$/.test(v.signature) || v.signature.length > 2 + 2 * 4096) return fail(REASON.payload, "voucher.signature", "expected hex bytes");
  const chainId = evmChainId(requirements.network);
  if (chainId === undefined) return fail(REASON.payload, "", `network ${requirements.network} is not an eip155 network`);
  const channel = channelOf(config, chainId);
  const channelId = channel.id;
  if (channelId !== v.channelId.toLowerCase()) return fail(REASON.channelId, "voucher.channelId", "is not the hash of channelConfig on this chain");
  const extra = requirements.extra ?? {};
  if (config.receiver !== requirements.payTo.toLowerCase()) return fail(REASON.receiver, "channelConfig.receiver", "differs from payTo");
  if (config.token !== requirements.asset.toLowerCase()) return fail(REASON.token, "channelConfig.token", "differs from the asset");
  if (typeof extra.receiverAuthorizer !== "string" || config.receiverAuthorizer !== extra.receiverAuthorizer.toLowerCase()) {
    return fail(REASON.authorizer, "channelConfig.receiverAuthorizer", "differs from extra.receiverAuthorizer");
  }
  if (config.withdrawDelay !== extra.withdrawDelay) return fail(REASON.delay, "channelConfig.withdrawDelay", "differs from extra.withdrawDelay");
  const payment: ChannelPayment = {
    type,
    channelId,
    maxClaimableAmount: max,
    signature: v.signature,
    channelConfig: { ...channel.config },
    payer: config.payer,
  };
  if (type === "deposit") {
    const d = p.deposit as Record<string, unknown> | undefined;
    const amount = uint128(d?.amount);
    if (amount === undefined || amount === 0n) return fail(REASON.deposit, "deposit.amount", "expected a positive decimal uint128 string");
    if (!d?.authorization || typeof d.authorization !== "object") return fail(REASON.deposit, "deposit.authorization", "expected an object");
    payment.depositAmount = amount;
  }
  if (type === "refund" && p.amount !== undefined) {
    const amount = uint128(p.amount);
    if (amount === undefined || amount === 0n) return fail(REASON.refund, "amount", "expected a positive decimal uint128 string");
    payment.refundAmount = amount;
  }
  return { ok: true, payment };
}

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const BYTES32 = /^0x[0-9a-fA-F]{64}$/;

function readConfig(v: unknown): ChannelConfig | string {
  if (!v || typeof v !== "object") return "(root)";
  const c = v as Record<string, unknown>;
  for (const f of ["payer", "payerAuthorizer", "receiver", "receiverAuthorizer", "token"] as const) {
    if (typeof c[f] !== "string" || !ADDRESS.test(c[f] as string)) return f;
  }
  const delay = c.withdrawDelay;
  if (typeof delay !== "number" || !Number.isInteger(delay) || delay < MIN_WITHDRAW_DELAY || delay > MAX_WITHDRAW_DELAY) return "withdrawDelay";
  if (typeof c.salt !== "string" || !BYTES32.test(c.salt)) return "salt";
  return {
    payer: (c.payer as string).toLowerCase() as Address,
    payerAuthorizer: (c.payerAuthorizer as string).toLowerCase() as Address,
    receiver: (c.receiver as string).toLowerCase() as Address,
    receiverAuthorizer: (c.receiverAuthorizer as string).toLowerCase() as Address,
    token: (c.token as string).toLowerCase() as Address,
    withdrawDelay: delay,
    salt: (c.salt as string).toLowerCase() as Hex,
  };
}

/**
 * Channel ids by (chain, config), and the config checksummed as the facilitator gets it in claims:
 * a channel's id is hashed once, not on every voucher. Bounded: cleared when full.
 */
const ids = new Map<string, { id: Hex; config: ChannelConfig }>();
const MAX_IDS = 50_000;

function channelOf(config: ChannelConfig, chainId: number): { id: Hex; config: ChannelConfig } {
  const key = `${chainId}|${config.payer}|${config.payerAuthorizer}|${config.receiver}|${config.receiverAuthorizer}|${config.token}|${config.withdrawDelay}|${config.salt}`;
  let hit = ids.get(key);
  if (!hit) {
    const checksummed: ChannelConfig = {
      payer: getAddress(config.payer),
      payerAuthorizer: getAddress(config.payerAuthorizer),
      receiver: getAddress(config.receiver),
      receiverAuthorizer: getAddress(config.receiverAuthorizer),
      token: getAddress(config.token),
      withdrawDelay: config.withdrawDelay,
      salt: config.salt,
    };
    hit = { id: channelIdOf(checksummed, chainId), config: checksummed };
    if (ids.size >= MAX_IDS) ids.clear();
    ids.set(key, hit);
  }
  return hit;
}

function uint128(v: unknown): bigint | undefined {
  // Canonical decimal only (no leading zeros), as the facilitator reads it: a form it would refuse must not be served here.
  if (typeof v !== "string" || !/^(0|[1-9]\d{0,38})$/.test(v)) return undefined;
  const n = BigInt(v);
  return n < 1n << 128n ? n : undefined;
}

export type { Network };

/** The signatures of a receiver authorizer this server holds (claims and refunds of its own channels). */
function receiverAuthorizerFace(signer: LocalAccount): Pick<ChannelServerFace, "authorizeClaims" | "authorizeRefund"> {
  const chainOf = (network: string) => {
    const chainId = evmChainId(network);
    if (chainId === undefined) throw new Error(`batch-settlement: ${network} is not an eip155 network`);
    return chainId;
  };
  return {
    async authorizeClaims(sources, network) {
      const claims = sources.map((c) => ({
        voucher: { channel: c.channelConfig as unknown as ChannelConfig, maxClaimableAmount: c.signedMaxClaimable },
        signature: c.signature as Hex,
        totalClaimed: c.chargedCumulativeAmount,
      }));
      return signer.signTypedData(claimBatchTypedData(claims, chainOf(network)));
    },
    async authorizeRefund(r, network) {
      return signer.signTypedData(refundTypedData(r.channelId as Hex, r.refundNonce, r.amount, chainOf(network)));
    },
  };
}
