// The batch-settlement facilitator face on a real local chain: verify answers with the channel
// snapshot, deposits (EIP-3009 and Permit2), claims of several channels in ONE transaction with a
// delegated receiver-authorizer signature, the sweep, refunds through multicall, refusals with the
// spec's reason codes, no gas spent on what would revert, and the write-ahead log's recovery.
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import type { Network, PaymentPayload, PaymentRequirements } from "@tollgate/core";
import { createPublicClient, createWalletClient, http, maxUint256, toHex, type Address, type Hex, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BATCH_SETTLEMENT_ADDRESS,
  ERC3009_DEPOSIT_COLLECTOR_ADDRESS,
  PERMIT2_ADDRESS,
  PERMIT2_DEPOSIT_COLLECTOR_ADDRESS,
  batchSettlementEvmFacilitator,
  computeChannelId,
  depositPermit2WitnessTypes,
  erc20PermitAbi,
  erc3009DepositNonce,
  receiveWithAuthorizationTypes,
  voucherTypedData,
  type BatchSettlementFacilitator,
  type BatchSettlementStore,
  type ChannelConfig,
  type SentTransaction,
} from "../src/index.ts";

let net: RunningLocalNetwork;
let client: PublicClient;
let facilitator: BatchSettlementFacilitator;
let relayer: PrivateKeyAccount;
let authorizer: PrivateKeyAccount;
let payer: PrivateKeyAccount;
let network: Network;
const store = memoryStore();

function memoryStore() {
  const sent = new Map<Hex, SentTransaction & { final?: string }>();
  const channels = new Map<string, unknown>();
  const s: BatchSettlementStore & { sent: typeof sent; channels: typeof channels } = {
    sent,
    channels,
    recordSent: async (tx) => void sent.set(tx.hash, { ...tx }),
    recordFinal: async (hash, outcome) => void (sent.get(hash)!.final = outcome.status),
    pending: async (n) => [...sent.values()].filter((t) => t.network === n && !t.final),
    saveChannels: async (_n, rows) => {
      for (const r of rows) channels.set(r.snapshot.channelId, r.snapshot);
    },
  };
  return s;
}

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 2 });
  network = net.network;
  client = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  relayer = privateKeyToAccount(net.accounts.facilitator.privateKey);
  authorizer = privateKeyToAccount(generatePrivateKey());
  payer = privateKeyToAccount(net.accounts.payers[0]!.privateKey);
  facilitator = batchSettlementEvmFacilitator({ networks: [{ network, client }], relayer, receiverAuthorizer: authorizer, store, receiptTimeoutMs: 20_000 });
});

afterAll(async () => {
  await net?.stop();
});

const salt = (): Hex => toHex(crypto.getRandomValues(new Uint8Array(32)));

function requirements(over: Partial<PaymentRequirements> = {}, extra: Record<string, unknown> = {}): PaymentRequirements {
  return {
    scheme: "batch-settlement",
    network,
    amount: "1000",
    asset: net.usdc.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 600,
    extra: { receiverAuthorizer: authorizer.address, withdrawDelay: 900, name: net.usdc.name, version: net.usdc.version, ...extra },
    ...over,
  };
}

function channel(over: Partial<ChannelConfig> = {}): ChannelConfig {
  return { payer: payer.address, payerAuthorizer: payer.address, receiver: net.accounts.payee.address, receiverAuthorizer: authorizer.address, token: net.usdc.address, withdrawDelay: 900, salt: salt(), ...over };
}

const envelope = (payload: Record<string, unknown>, q = requirements()): PaymentPayload => ({ x402Version: 2, accepted: q, payload });

async function signedVoucher(cfg: ChannelConfig, max: bigint, signer = payer) {
  const channelId = computeChannelId(cfg, net.chainId);
  return { channelId, maxClaimableAmount: max.toString(), signature: await signer.signTypedData(voucherTypedData(channelId, max, net.chainId)) };
}

async function depositPayload(cfg: ChannelConfig, amount: bigint, max: bigint) {
  const channelId = computeChannelId(cfg, net.chainId);
  const s = BigInt(salt());
  const validBefore = BigInt(Math.floor(Date.now() / 1000) + 600);
  const signature = await payer.signTypedData({
    domain: { name: net.usdc.name, version: net.usdc.version, chainId: net.chainId, verifyingContract: net.usdc.address },
    types: receiveWithAuthorizationTypes,
    primaryType: "ReceiveWithAuthorization",
    message: { from: payer.address, to: ERC3009_DEPOSIT_COLLECTOR_ADDRESS, value: amount, validAfter: 0n, validBefore, nonce: erc3009DepositNonce(channelId, s) },
  });
  return {
    type: "deposit",
    channelConfig: cfg,
    voucher: await signedVoucher(cfg, max),
    deposit: { amount: amount.toString(), authorization: { erc3009Authorization: { validAfter: "0", validBefore: validBefore.toString(), salt: s.toString(), signature } } },
  };
}

async function opened(amount = 100_000n): Promise<ChannelConfig> {
  const cfg = channel();
  const r = await facilitator.settle(envelope(await depositPayload(cfg, amount, 1_000n)), requirements());
  expect(r.success, r.errorMessage).toBe(true);
  return cfg;
}

const claimRow = async (cfg: ChannelConfig, max: bigint, total: bigint) => ({ voucher: { channel: cfg, maxClaimableAmount: max.toString() }, signature: (await signedVoucher(cfg, max)).signature, totalClaimed: total.toString() });
const opRequirements = () => requirements({ amount: "0" }, {});
const relayerNonce = () => client.getTransactionCount({ address: relayer.address });

describe("batch-settlement facilitator: verify", () => {
  it("advertises its receiver authorizer and relayer", () => {
    expect(facilitator.kindExtra?.(network)).toEqual({ receiverAuthorizer: authorizer.address });
    expect(facilitator.signers(network)).toEqual([relayer.address]);
  });

  it("verifies a deposit with the snapshot, settles it, and verifies later vouchers against the escrow", async () => {
    const cfg = channel();
    const deposit = await depositPayload(cfg, 50_000n, 1_000n);
    const v = await facilitator.verify(envelope(deposit), requirements());
    expect(v).toMatchObject({ isValid: true, payer: payer.address, extra: { channelId: deposit.voucher.channelId, balance: "0", totalClaimed: "0", withdrawRequestedAt: 0, refundNonce: "0" } });

    const s = await facilitator.settle(envelope(deposit), requirements());
    expect(s).toMatchObject({ success: true, amount: "50000", payer: payer.address, extra: { channelState: { balance: "50000", totalClaimed: "0" } } });
    expect(store.sent.get(s.transaction as Hex)?.final).toBe("success");
    expect(store.channels.get(deposit.voucher.channelId)).toMatchObject({ balance: "50000" });
    // the same deposit authorization cannot be used twice: refused by simulation, no gas spent
    const nonce = await relayerNonce();
    const again = await facilitator.settle(envelope(deposit), requirements());
    expect(again.success).toBe(false);
    expect(await relayerNonce()).toBe(nonce);

    const ok = await facilitator.verify(envelope({ type: "voucher", channelConfig: cfg, voucher: await signedVoucher(cfg, 2_000n) }), requirements());
    expect(ok).toMatchObject({ isValid: true, extra: { balance: "50000" } });
    // nothing is served past the deposit
    const over = await facilitator.verify(envelope({ type: "voucher", channelConfig: cfg, voucher: await signedVoucher(cfg, 50_001n) }), requirements());
    expect(over.invalidReason).toBe("invalid_batch_settlement_evm_cumulative_exceeds_balance");
  });

  it("refuses wrong signers, foreign channels and malformed payloads with the spec's reasons", async () => {
    const cfg = await opened();
    const stranger = privateKeyToAccount(generatePrivateKey());
    const verify = async (payload: Record<string, unknown>, q = requirements()) => (await facilitator.verify(envelope(payload, q), q)).invalidReason;
    expect(await verify({ type: "voucher", channelConfig: cfg, voucher: await signedVoucher(cfg, 10n, stranger) })).toBe("invalid_batch_settlement_evm_voucher_signature");
    expect(await verify({ type: "voucher", channelConfig: cfg, voucher: await signedVoucher(cfg, 10n) }, requirements({ payTo: stranger.address }))).toBe("invalid_batch_settlement_evm_receiver_mismatch");
    expect(await verify({ type: "voucher", channelConfig: cfg, voucher: await signedVoucher(cfg, 10n) }, requirements({}, { receiverAuthorizer: stranger.address }))).toBe("invalid_batch_settlement_evm_receiver_authorizer_mismatch");
    expect(await verify({ type: "voucher", channelConfig: { ...cfg, salt: salt() }, voucher: await signedVoucher(cfg, 10n) })).toBe("invalid_batch_settlement_evm_channel_id_mismatch");
    const fresh = channel();
    expect(await verify({ type: "voucher", channelConfig: fresh, voucher: await signedVoucher(fresh, 10n) })).toBe("invalid_batch_settlement_evm_channel_not_found");
    expect(await verify({ type: "voucher", channelConfig: cfg, voucher: { channelId: "0x12", maxClaimableAmount: "1", signature: "0x00" } })).toBe("invalid_batch_settlement_evm_voucher_payload");
    expect(await verify({ type: "bogus" })).toBe("invalid_batch_settlement_evm_payload_type");
    const noDomain = await facilitator.verify(envelope(await depositPayload(channel(), 10n, 10n)), requirements({}, { name: undefined }));
    expect(noDomain.invalidReason).toBe("invalid_batch_settlement_evm_missing_eip712_domain");
  });

  it("deposits any ERC-20 through Permit2 when the requirements ask for it", async () => {
    const cfg = channel({ token: net.plainToken.address });
    const q = requirements({ asset: net.plainToken.address }, { assetTransferMethod: "permit2", name: net.plainToken.name, version: "1" });
    const channelId = computeChannelId(cfg, net.chainId);
    const nonce = BigInt(salt());
    const deadline = BigInt(Math.floor(Date.now() / 1000) + 600);
    const signature = await payer.signTypedData({
      domain: { name: "Permit2", chainId: net.chainId, verifyingContract: PERMIT2_ADDRESS },
      types: depositPermit2WitnessTypes,
      primaryType: "PermitWitnessTransferFrom",
      message: { permitted: { token: cfg.token, amount: 30_000n }, spender: PERMIT2_DEPOSIT_COLLECTOR_ADDRESS, nonce, deadline, witness: { channelId } },
    });
    const payload = {
      type: "deposit",
      channelConfig: cfg,
      voucher: await signedVoucher(cfg, 500n),
      deposit: { amount: "30000", authorization: { permit2Authorization: { from: payer.address, permitted: { token: cfg.token, amount: "30000" }, spender: PERMIT2_DEPOSIT_COLLECTOR_ADDRESS, nonce: nonce.toString(), deadline: deadline.toString(), witness: { channelId }, signature } } },
    };
    expect((await facilitator.verify(envelope(payload, q), q)).invalidReason).toBe("invalid_batch_settlement_evm_permit2_allowance_required");
    const wallet = createWalletClient({ account: payer, chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
    await client.waitForTransactionReceipt({ hash: await wallet.writeContract({ address: cfg.token, abi: erc20PermitAbi, functionName: "approve", args: [PERMIT2_ADDRESS, maxUint256] }) });
    const s = await facilitator.settle(envelope(payload, q), q);
    expect(s).toMatchObject({ success: true, amount: "30000", extra: { channelState: { channelId, balance: "30000" } } });
  });
});

describe("batch-settlement facilitator: claim, settle, refund", () => {
  it("claims several channels in one transaction (delegated signature) and sweeps once to the receiver", async () => {
    const a = await opened();
    const b = await opened();
    const claims = [await claimRow(a, 4_000n, 4_000n), await claimRow(b, 1_500n, 1_200n)];
    const r = await facilitator.settle(envelope({ type: "claim", claims }, opRequirements()), opRequirements());
    expect(r.success, r.errorMessage).toBe(true);
    const receipt = await client.getTransactionReceipt({ hash: r.transaction as Hex });
    expect(receipt.to?.toLowerCase()).toBe(BATCH_SETTLEMENT_ADDRESS.toLowerCase());
    const states = (r.extra as { channelStates: Array<{ totalClaimed: string }> }).channelStates;
    expect(states.map((s) => s.totalClaimed)).toEqual(["4000", "1200"]);

    const payee = net.accounts.payee.address;
    const before = await client.readContract({ address: net.usdc.address, abi: erc20PermitAbi, functionName: "balanceOf", args: [payee] });
    const sweep = await facilitator.settle(envelope({ type: "settle", receiver: payee, token: net.usdc.address }, opRequirements()), opRequirements());
    expect(sweep.success).toBe(true);
    expect(BigInt(sweep.amount!)).toBeGreaterThanOrEqual(5_200n);
    const after = await client.readContract({ address: net.usdc.address, abi: erc20PermitAbi, functionName: "balanceOf", args: [payee] });
    expect(after - before).toBe(BigInt(sweep.amount!));
    // nothing left: refused without a transaction
    const nonce = await relayerNonce();
    const empty = await facilitator.settle(envelope({ type: "settle", receiver: payee, token: net.usdc.address }, opRequirements()), opRequirements());
    expect(empty.errorReason).toBe("invalid_batch_settlement_evm_nothing_to_settle");
    expect(await relayerNonce()).toBe(nonce);
  });

  it("refuses a claim over the escrow without spending gas, and delegated signing for a foreign authorizer", async () => {
    const cfg = await opened(10_000n);
    const nonce = await relayerNonce();
    const over = await facilitator.settle(envelope({ type: "claim", claims: [await claimRow(cfg, 20_000n, 10_001n)] }, opRequirements()), opRequirements());
    expect(over.errorReason).toBe("invalid_batch_settlement_evm_claim_simulation_failed");
    expect(await relayerNonce()).toBe(nonce);
    const foreign = channel({ receiverAuthorizer: privateKeyToAccount(generatePrivateKey()).address });
    const r = await facilitator.settle(envelope({ type: "claim", claims: [await claimRow(foreign, 10n, 10n)] }, opRequirements()), opRequirements());
    expect(r.errorReason).toBe("invalid_batch_settlement_evm_authorizer_address_mismatch");
  });

  it("refunds the unclaimed rest after claiming the last voucher, in one transaction", async () => {
    const cfg = await opened(20_000n);
    const channelId = computeChannelId(cfg, net.chainId);
    const zeroCharge = await signedVoucher(cfg, 3_000n);
    const payload = { type: "refund", channelConfig: cfg, voucher: zeroCharge, amount: "1000000", refundNonce: "0", claims: [await claimRow(cfg, 3_000n, 3_000n)] };
    const v = await facilitator.verify(envelope({ type: "refund", channelConfig: cfg, voucher: zeroCharge }, opRequirements()), requirements());
    expect(v.isValid, v.invalidReason).toBe(true);
    const before = await client.readContract({ address: net.usdc.address, abi: erc20PermitAbi, functionName: "balanceOf", args: [payer.address] });
    const r = await facilitator.settle(envelope(payload, opRequirements()), opRequirements());
    expect(r).toMatchObject({ success: true, amount: "17000", payer: payer.address, extra: { channelState: { channelId, balance: "3000", totalClaimed: "3000", refundNonce: "1" } } });
    const after = await client.readContract({ address: net.usdc.address, abi: erc20PermitAbi, functionName: "balanceOf", args: [payer.address] });
    expect(after - before).toBe(17_000n);
    // nothing left to refund: refused before any transaction
    const again = await facilitator.settle(envelope({ ...payload, refundNonce: "1" }, opRequirements()), opRequirements());
    expect(again.errorReason).toBe("invalid_batch_settlement_evm_refund_no_balance");
  });
});

describe("batch-settlement facilitator: timed withdrawal", () => {
  it("reports a pending withdrawal in the snapshot, and a cooperative refund cancels it", async () => {
    const cfg = await opened(8_000n);
    const channelId = computeChannelId(cfg, net.chainId);
    const wallet = createWalletClient({ account: payer, chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
    const { batchSettlementAbi } = await import("../src/index.ts");
    await client.waitForTransactionReceipt({ hash: await wallet.writeContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "initiateWithdraw", args: [cfg, 5_000n] }) });
    const v = await facilitator.verify(envelope({ type: "voucher", channelConfig: cfg, voucher: await signedVoucher(cfg, 2_000n) }), requirements());
    expect((v.extra as { withdrawRequestedAt: number }).withdrawRequestedAt).toBeGreaterThan(0);
    // the server claims what it served and refunds the rest (6000 ≥ the 5000 asked): the withdrawal is cancelled
    const r = await facilitator.settle(envelope({ type: "refund", channelConfig: cfg, voucher: await signedVoucher(cfg, 2_000n), amount: "8000", refundNonce: "0", claims: [await claimRow(cfg, 2_000n, 2_000n)] }, opRequirements()), opRequirements());
    expect(r).toMatchObject({ success: true, amount: "6000", extra: { channelState: { channelId, balance: "2000", totalClaimed: "2000", withdrawRequestedAt: 0, refundNonce: "1" } } });
  });
});

describe("batch-settlement facilitator: write-ahead recovery", () => {
  it("rebroadcasts a transaction that was recorded but never sent (a crash between the two)", async () => {
    const cfg = await opened(5_000n);
    const chain = facilitator.chain(network)!;
    // What sendOperation writes ahead, without the broadcast: the crash window.
    const { encodeFunctionData } = await import("viem");
    const { batchSettlementAbi, claimBatchTypedData, toContractClaim } = await import("../src/index.ts");
    const claims = [{ voucher: { channel: cfg, maxClaimableAmount: 700n }, signature: (await signedVoucher(cfg, 700n)).signature, totalClaimed: 700n }];
    const data = encodeFunctionData({ abi: batchSettlementAbi, functionName: "claimWithSignature", args: [claims.map(toContractClaim), await authorizer.signTypedData(claimBatchTypedData(claims, net.chainId))] });
    const nonce = await client.getTransactionCount({ address: relayer.address, blockTag: "pending" });
    const fees = await client.estimateFeesPerGas();
    const raw = await relayer.signTransaction({ type: "eip1559", chainId: net.chainId, to: chain.contract, data, nonce, gas: 300_000n, maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas });
    const { keccak256 } = await import("viem");
    const hash = keccak256(raw);
    await store.recordSent({ hash, network, kind: "claim", from: relayer.address as Address, nonce, raw, channelIds: [computeChannelId(cfg, net.chainId)] });

    expect(await facilitator.recover()).toBe(1);
    expect(store.sent.get(hash)?.final).toBe("success");
    const [, totalClaimed] = await client.readContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "channels", args: [computeChannelId(cfg, net.chainId)] });
    expect(totalClaimed).toBe(700n);
    expect(await facilitator.recover()).toBe(0);
  });
});
