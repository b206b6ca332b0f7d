/**
 * The facilitator face of `batch-settlement` on EVM (spec: scheme_batch_settlement_evm.md,
 * "Facilitator Interface"):
 *
 *   /verify  deposit | voucher | refund  → isValid + `extra` = the on-chain channel snapshot
 *   /settle  deposit → deposit(config, amount, collector, data)           amount = deposited
 *            claim   → claimWithSignature(claims, sig): many channels, one transaction, no transfer
 *            settle  → settle(receiver, token): one sweep of everything claimed
 *            refund  → [claimWithSignature +] refundWithSignature, via multicall: one transaction
 *   every /settle answer carries `extra.channelState` (claim: `extra.channelStates`, one per channel).
 *
 * With a `receiverAuthorizer` key the facilitator advertises it in /supported and signs the claim
 * and refund authorizations a server delegating to it leaves out. Such a facilitator must only be
 * reachable by the servers it serves (API keys): whoever can reach /settle can ask it to refund a
 * delegated channel's unclaimed escrow to its payer. A caller whose key lists its receivers
 * (`Caller.receivers`) gets signatures for those receivers' channels only (delegationRefusal).
 */
import { evmChainId, Reason, type Caller, type Network, type PaymentPayload, type PaymentRequirements, type SchemeFacilitator, type SettleResponse, type VerifyResponse } from "@tollgate/core";
import { encodeFunctionData, getAddress, parseEventLogs, type Address, type Hex, type LocalAccount, type PublicClient } from "viem";
import { BATCH_SETTLEMENT_ADDRESS, batchSettlementAbi } from "../contracts/batch-settlement-abi.ts";
import { BATCH_SETTLEMENT_SCHEME, claimBatchTypedData, computeChannelId, normalizeChannelConfig, refundTypedData, toContractClaim, type VoucherClaim } from "./eip712.ts";
import { publicSnapshot, readSnapshot, recoverPending, sendOperation, type BatchChain, type BatchSettlementStore, type ChannelSnapshot, type SendResult } from "./facilitator-chain.ts";
import { BatchReason, fail, readBatchPayload, type BatchPayload, type ClaimPayload, type DepositPayload, type Failure, type RefundPayload, type SweepPayload, type VoucherPayload } from "./facilitator-payload.ts";
import { checkChannelBinding, checkDepositAuthorization, checkVoucherAgainstChain, checkVoucherSignature, depositCall, simulate, snapshotOf } from "./facilitator-verify.ts";

export interface BatchSettlementFacilitatorOptions {
  /** `assets`: the tokens channels may hold on that network (the service's allowlist); omitted, any token. */
  networks: ReadonlyArray<{ network: Network; client: PublicClient; assets?: readonly Address[] }>;
  /** Pays gas and relays every operation. Use a key no other sender (the exact engine) uses. */
  relayer: LocalAccount;
  /** Optional delegated receiver authorizer (advertised in /supported as `receiverAuthorizer`). */
  receiverAuthorizer?: LocalAccount;
  /** Channel mirror and write-ahead transaction log (the service's ledger). */
  store?: BatchSettlementStore;
  /** Settlement contract; default the canonical x402BatchSettlement. */
  contract?: Address;
  receiptTimeoutMs?: number;
}

export type BatchSettlementFacilitator = SchemeFacilitator & {
  /** Finishes transactions a previous run sent but did not see mined (write-ahead log). */
  recover(): Promise<number>;
  /** The chain handle of a network (tests, tools). */
  chain(network: Network): BatchChain | undefined;
};

export function batchSettlementEvmFacilitator(options: BatchSettlementFacilitatorOptions): BatchSettlementFacilitator {
  const chains = new Map<string, BatchChain>();
  const allowlists = new Map<string, ReadonlySet<string>>();
  for (const { network, client, assets } of options.networks) {
    if (assets) allowlists.set(network, new Set(assets.map((a) => a.toLowerCase())));
    const chainId = evmChainId(network);
    if (chainId === undefined) throw new Error(`batch-settlement: ${network} is not an eip155 network`);
    chains.set(network, {
      network,
      chainId,
      client,
      relayer: options.relayer,
      contract: getAddress(options.contract ?? BATCH_SETTLEMENT_ADDRESS),
      ...(options.store ? { store: options.store } : {}),
      ...(options.receiptTimeoutMs !== undefined ? { receiptTimeoutMs: options.receiptTimeoutMs } : {}),
    });
  }
  const authorizer = options.receiverAuthorizer;

  async function verify(payload: PaymentPayload, requirements: PaymentRequirements): Promise<VerifyResponse> {
    const pre = precheck(payload, requirements);
    if (!pre.ok) return invalid(pre);
    const { chain } = pre;
    const read = readBatchPayload(payload.payload);
    if (!read.ok) return invalid(read);
    const p = read.value;
    const refused = assetRefused(chain.network, p);
    if (refused) return invalid(refused);
    if (p.type === "claim" || p.type === "settle") return invalid(fail(BatchReason.payloadType, `paymentPayload.payload.type: ${p.type} is a /settle operation, not verifiable`));
    const checked = p.type === "deposit" ? await verifyDeposit(chain, p, requirements) : await verifyVoucher(chain, p, requirements);
    if (!checked.ok) return { ...invalid(checked), payer: p.channelConfig.payer };
    return { isValid: true, payer: p.channelConfig.payer, extra: { ...publicSnapshot(checked.snapshot) } };
  }

  async function settle(payload: PaymentPayload, requirements: PaymentRequirements, caller?: Caller): Promise<SettleResponse> {
    const network = requirements.network as Network;
    const pre = precheck(payload, requirements);
    if (!pre.ok) return failed(network, pre);
    const { chain } = pre;
    const read = readBatchPayload(payload.payload);
    if (!read.ok) return failed(network, read);
    const p = read.value;
    const refused = assetRefused(chain.network, p);
    if (refused) return failed(network, refused);
    switch (p.type) {
      case "deposit":
        return settleDeposit(chain, p, requirements);
      case "claim":
        return settleClaims(chain, p, caller);
      case "settle":
        return settleSweep(chain, p);
      case "refund":
        return settleRefund(chain, p, caller);
      case "voucher":
        return failed(network, fail(BatchReason.payloadType, "paymentPayload.payload.type: a voucher is checked with /verify and claimed later; it does not settle alone"));
    }
  }

  function precheck(payload: PaymentPayload, requirements: PaymentRequirements): { ok: true; chain: BatchChain } | Failure {
    if (requirements.scheme !== BATCH_SETTLEMENT_SCHEME || payload.accepted?.scheme !== BATCH_SETTLEMENT_SCHEME) return fail(BatchReason.scheme, "paymentRequirements.scheme: expected batch-settlement");
    if (payload.accepted.network !== requirements.network) return fail(BatchReason.networkMismatch, "paymentPayload.accepted.network: differs from paymentRequirements.network");
    const chain = chains.get(requirements.network);
    if (!chain) return fail(BatchReason.networkMismatch, `paymentRequirements.network: ${requirements.network} is not served`);
    return { ok: true, chain };
  }

  /** A token outside the network's allowlist: the relayer pays no gas for channels in tokens the operator did not accept. */
  function assetRefused(network: Network, p: BatchPayload): Failure | undefined {
    const allowed = allowlists.get(network);
    if (!allowed) return undefined;
    const f = "paymentPayload.payload";
    const tokens: Array<[string, Address]> =
      p.type === "claim" ? p.claims.map((c, i) => [`${f}.claims[${i}].voucher.channel.token`, c.voucher.channel.token]) : p.type === "settle" ? [[`${f}.token`, p.token]] : [[`${f}.channelConfig.token`, p.channelConfig.token]];
    const bad = tokens.find(([, token]) => !allowed.has(token.toLowerCase()));
    return bad && fail(BatchReason.assetNotAllowed, `${bad[0]}: ${bad[1]} is not accepted on ${network}`);
  }

  // ------------------------------------------------------------------ verify

  type Checked = { ok: true; snapshot: ChannelSnapshot & { raw: { balance: bigint; totalClaimed: bigint; refundNonce: bigint } } } | Failure;

  async function verifyVoucher(chain: BatchChain, p: VoucherPayload | RefundPayload, requirements: PaymentRequirements): Promise<Checked> {
    const binding = checkChannelBinding(p.channelConfig, p.voucher.channelId, requirements, chain);
    if (binding) return binding;
    const sig = await checkVoucherSignature(chain, p.channelConfig, p.voucher);
    if (sig) return sig;
    const s = await snapshotOf(chain, p.voucher.channelId);
    if (!s.ok) return s;
    const bad = checkVoucherAgainstChain(p.voucher, s.snapshot.raw, p.type === "refund" ? "refund" : "voucher");
    return bad ?? { ok: true, snapshot: s.snapshot };
  }

  async function verifyDeposit(chain: BatchChain, p: DepositPayload, requirements: PaymentRequirements): Promise<Checked> {
    const binding = checkChannelBinding(p.channelConfig, p.voucher.channelId, requirements, chain);
    if (binding) return binding;
    const auth = await checkDepositAuthorization(chain, p, requirements);
    if (auth) return auth;
    const sig = await checkVoucherSignature(chain, p.channelConfig, p.voucher);
    if (sig) return sig;
    const s = await snapshotOf(chain, p.voucher.channelId);
    if (!s.ok) return s;
    const bad = checkVoucherAgainstChain(p.voucher, s.snapshot.raw, "deposit", p.amount);
    if (bad) return bad;
    const reverted = await simulate(chain, depositCall(p, chain));
    if (reverted) return fail(BatchReason.depositSimulation, `the deposit would revert: ${reverted}`);
    return { ok: true, snapshot: s.snapshot };
  }

  // ------------------------------------------------------------------ settle

  async function settleDeposit(chain: BatchChain, p: DepositPayload, requirements: PaymentRequirements): Promise<SettleResponse> {
    const payer = p.channelConfig.payer;
    const checked = await verifyDeposit(chain, p, requirements);
    if (!checked.ok) return { ...failed(chain.network, checked), payer };
    const sent = await sendOperation(chain, "deposit", depositCall(p, chain), [p.voucher.channelId]);
    if (!sent.ok) return { ...sendFailure(chain.network, sent, BatchReason.depositSimulation, BatchReason.depositTransaction), payer };
    const state = await mirror(chain, [{ channelId: p.voucher.channelId, config: p.channelConfig }], sent.hash);
    return { success: true, transaction: sent.hash, network: chain.network, payer, amount: p.amount.toString(), extra: { channelState: state[0] } };
  }

  /**
   * Whether this facilitator's receiver authorizer may sign for these channels: it holds one,
   * every channel names it, and the caller acts for every channel's receiver (an API key scoped to
   * its receivers cannot have claims or refunds signed for another server's channels). Decided
   * here for claims and refunds alike.
   */
  function delegationRefusal(signatureField: string, channels: ReadonlyArray<{ field: string; receiverAuthorizer: string; receiver: string }>, caller: Caller | undefined): Failure | undefined {
    if (!authorizer) return fail(BatchReason.authorizerNotConfigured, `${signatureField}: missing, and this facilitator holds no receiver authorizer key`);
    const allowed = caller?.receivers && new Set(caller.receivers.map((r) => r.toLowerCase()));
    for (const c of channels) {
      if (getAddress(c.receiverAuthorizer) !== getAddress(authorizer.address)) {
        return fail(BatchReason.authorizerMismatch, `${c.field}.receiverAuthorizer: not this facilitator's receiver authorizer; sign ${signatureField} yourself`);
      }
      if (allowed && !allowed.has(c.receiver.toLowerCase())) {
        return fail(Reason.unauthorized, `${c.field}.receiver: ${getAddress(c.receiver)} is not among the receivers this API key acts for; the facilitator's receiver authorizer signs only for those`);
      }
    }
    return undefined;
  }

  /** Fills in the receiver authorizer's batch signature when the server delegated it to us. */
  async function claimSignature(chain: BatchChain, claims: VoucherClaim[], given: Hex | undefined, caller: Caller | undefined): Promise<Hex | Failure> {
    if (given) return given;
    const channels = claims.map((c, i) => ({ field: `claims[${i}].voucher.channel`, receiverAuthorizer: c.voucher.channel.receiverAuthorizer, receiver: c.voucher.channel.receiver }));
    const refused = delegationRefusal("claimAuthorizerSignature", channels, caller);
    if (refused) return refused;
    return authorizer!.signTypedData(claimBatchTypedData(claims, chain.chainId, chain.contract));
  }

  async function settleClaims(chain: BatchChain, p: ClaimPayload, caller: Caller | undefined): Promise<SettleResponse> {
    const sig = await claimSignature(chain, p.claims, p.claimAuthorizerSignature, caller);
    if (typeof sig !== "string") return failed(chain.network, sig);
    const data = encodeFunctionData({ abi: batchSettlementAbi, functionName: "claimWithSignature", args: [p.claims.map(toContractClaim), sig] });
    const ids = p.claims.map((c) => computeChannelId(c.voucher.channel, chain.chainId, chain.contract));
    const claimed = await claimedTotals(chain, ids);
    if (!(claimed instanceof Map)) return failed(chain.network, claimed);
    // No claim above its channel's claimed total: the chain already says what this batch would
    // (a repeat after a crash, or a stale store). Answered from the chain, no transaction, no gas.
    if (!p.claims.some((c, i) => c.totalClaimed > claimed.get(ids[i]!)!)) {
      const states = (await Promise.all([...claimed.keys()].map((id) => readSnapshot(chain, id).then(publicSnapshot, () => undefined)))).filter((x) => x !== undefined);
      return { success: true, transaction: "", network: chain.network, amount: "", extra: { channelStates: states, ...(states.length === 1 ? { channelState: states[0] } : {}) } };
    }
    const sent = await sendOperation(chain, "claim", data, ids);
    if (!sent.ok) return sendFailure(chain.network, sent, BatchReason.claimSimulation, BatchReason.claimTransaction);
    const states = await mirror(chain, p.claims.map((c, i) => ({ channelId: ids[i]!, config: c.voucher.channel })), sent.hash);
    return { success: true, transaction: sent.hash, network: chain.network, amount: "", extra: { channelStates: states, ...(states.length === 1 ? { channelState: states[0] } : {}) } };
  }

  /** Each channel's claimed total on chain (one read per channel). */
  async function claimedTotals(chain: BatchChain, ids: Hex[]): Promise<Map<Hex, bigint> | Failure> {
    try {
      const unique = [...new Set(ids)];
      const rows = await Promise.all(unique.map((id) => chain.client.readContract({ address: chain.contract, abi: batchSettlementAbi, functionName: "channels", args: [id] })));
      return new Map(unique.map((id, i) => [id, rows[i]![1]]));
    } catch {
      return fail(BatchReason.rpcReadFailed, "could not read the channels of the claims on chain");
    }
  }

  async function settleSweep(chain: BatchChain, p: SweepPayload): Promise<SettleResponse> {
    let pending: bigint;
    try {
      const [claimed, settled] = await chain.client.readContract({ address: chain.contract, abi: batchSettlementAbi, functionName: "receivers", args: [p.receiver, p.token] });
      pending = claimed - settled;
    } catch {
      return failed(chain.network, fail(BatchReason.rpcReadFailed, "could not read the receiver's claimed total"));
    }
    // A sweep of nothing would only spend gas.
    if (pending === 0n) return failed(chain.network, fail(BatchReason.nothingToSettle, "nothing claimed is left to settle for this receiver and token"));
    const data = encodeFunctionData({ abi: batchSettlementAbi, functionName: "settle", args: [p.receiver, p.token] });
    const sent = await sendOperation(chain, "settle", data, []);
    if (!sent.ok) return sendFailure(chain.network, sent, BatchReason.settleSimulation, BatchReason.settleTransaction);
    const logs = parseEventLogs({ abi: batchSettlementAbi, eventName: "Settled", logs: sent.receipt.logs.filter((l) => getAddress(l.address) === chain.contract) });
    const amount = logs.find((l) => getAddress(l.args.receiver) === p.receiver && getAddress(l.args.token) === p.token)?.args.amount ?? 0n;
    return { success: true, transaction: sent.hash, network: chain.network, amount: amount.toString() };
  }

  async function settleRefund(chain: BatchChain, p: RefundPayload, caller: Caller | undefined): Promise<SettleResponse> {
    const network = chain.network;
    const payer = p.channelConfig.payer;
    if (p.amount === undefined || p.refundNonce === undefined || p.claims === undefined) {
      return { ...failed(network, fail(BatchReason.refundPayload, "paymentPayload.payload: a refund to settle needs amount, refundNonce and claims (the server completes them)")), payer };
    }
    const channelId = computeChannelId(p.channelConfig, chain.chainId, chain.contract);
    if (channelId !== p.voucher.channelId) return { ...failed(network, fail(BatchReason.channelIdMismatch, "voucher.channelId: is not the hash of channelConfig")), payer };
    const before = await snapshotOf(chain, channelId);
    if (!before.ok) return { ...failed(network, before), payer };
    // What remains refundable after this transaction's own claims: refusing a refund of nothing saves the gas.
    const claimedAfter = p.claims.reduce((m, c) => (computeChannelId(c.voucher.channel, chain.chainId, chain.contract) === channelId && c.totalClaimed > m ? c.totalClaimed : m), before.snapshot.raw.totalClaimed);
    if (claimedAfter >= before.snapshot.raw.balance) return { ...failed(network, fail(BatchReason.refundNoBalance, "nothing unclaimed is left to refund")), payer };

    let refundSig = p.refundAuthorizerSignature;
    if (!refundSig) {
      const refused = delegationRefusal("refundAuthorizerSignature", [{ field: "channelConfig", receiverAuthorizer: p.channelConfig.receiverAuthorizer, receiver: p.channelConfig.receiver }], caller);
      if (refused) return { ...failed(network, refused), payer };
      // Delegated: the payer's own zero-charge voucher is the proof the refund was asked for.
      const sigFailure = await checkVoucherSignature(chain, p.channelConfig, p.voucher);
      if (sigFailure) return { ...failed(network, sigFailure), payer };
      refundSig = await authorizer!.signTypedData(refundTypedData(channelId, p.refundNonce, p.amount, chain.chainId, chain.contract));
    }
    const refundData = encodeFunctionData({ abi: batchSettlementAbi, functionName: "refundWithSignature", args: [normalizeChannelConfig(p.channelConfig), p.amount, p.refundNonce, refundSig] });
    let data = refundData;
    if (p.claims.length > 0) {
      const claimSig = await claimSignature(chain, p.claims, p.claimAuthorizerSignature, caller);
      if (typeof claimSig !== "string") return { ...failed(network, claimSig), payer };
      const claimData = encodeFunctionData({ abi: batchSettlementAbi, functionName: "claimWithSignature", args: [p.claims.map(toContractClaim), claimSig] });
      // One transaction: the claims land first, then the refund of what is left.
      data = encodeFunctionData({ abi: batchSettlementAbi, functionName: "multicall", args: [[claimData, refundData]] });
    }
    const sent = await sendOperation(chain, "refund", data, [channelId]);
    if (!sent.ok) return { ...sendFailure(network, sent, BatchReason.refundSimulation, BatchReason.refundTransaction), payer };
    const [after] = await mirror(chain, [{ channelId, config: p.channelConfig }], sent.hash);
    const refunded = after ? before.snapshot.raw.balance - BigInt(after.balance) : 0n;
    return { success: true, transaction: sent.hash, network, payer, amount: refunded.toString(), extra: { channelState: after } };
  }

  /** Reads the channels after a transaction and mirrors them in the store (best effort: the chain is the truth). */
  async function mirror(chain: BatchChain, channels: Array<{ channelId: Hex; config: DepositPayload["channelConfig"] }>, transaction: Hex): Promise<ChannelSnapshot[]> {
    const unique = [...new Map(channels.map((c) => [c.channelId, c])).values()];
    const snaps = await Promise.all(unique.map((c) => readSnapshot(chain, c.channelId).then(publicSnapshot).catch(() => undefined)));
    const rows = unique.flatMap((c, i) => (snaps[i] ? [{ snapshot: snaps[i], config: c.config, transaction }] : []));
    await chain.store?.saveChannels(chain.network, rows).catch(() => undefined);
    return rows.map((r) => r.snapshot);
  }

  return {
    scheme: BATCH_SETTLEMENT_SCHEME,
    networks: [...chains.keys()] as Network[],
    signers: () => [options.relayer.address],
    kindExtra: () => (authorizer ? { receiverAuthorizer: authorizer.address } : undefined),
    verify,
    settle,
    recover: async () => {
      let n = 0;
      for (const chain of chains.values()) n += await recoverPending(chain);
      return n;
    },
    chain: (network) => chains.get(network),
  };
}

function invalid(f: Failure): VerifyResponse {
  return { isValid: false, invalidReason: f.reason, invalidMessage: f.message };
}

function failed(network: Network, f: Failure): SettleResponse {
  return { success: false, errorReason: f.reason, errorMessage: f.message, transaction: "", network };
}

/** A transaction sent but not yet mined is `settlement_pending` with its hash, never a failure: it may land. */
function sendFailure(network: Network, r: Extract<SendResult, { ok: false }>, simulation: string, transaction: string): SettleResponse {
  const reason = r.stage === "simulation" ? simulation : r.stage === "pending" ? Reason.settlementPending : transaction;
  return { success: false, errorReason: reason, errorMessage: r.message, transaction: r.stage === "simulation" ? "" : (r.hash ?? ""), network };
}
