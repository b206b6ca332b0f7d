// Our x402BatchSettlement and deposit collectors, installed by the devnet at the canonical addresses:
// the ABI matches the canonical surface, our EIP-712 digests equal the contract's (and the official
// package's channel ids), deposits through both collectors, batched claims with one authorizer
// signature, the settle sweep, refunds with a nonce, and the timed withdrawal only after the delay.
// Nothing can be claimed past what was deposited.
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import {
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  createTestClient,
  createWalletClient,
  encodeFunctionData,
  http,
  maxUint256,
  toHex,
  type Abi,
  type Address,
  type Hex,
  type PublicClient,
} from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { formatAbiItem } from "viem/utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BATCH_SETTLEMENT_ADDRESS,
  ERC3009_DEPOSIT_COLLECTOR_ADDRESS,
  PERMIT2_ADDRESS,
  PERMIT2_DEPOSIT_COLLECTOR_ADDRESS,
  batchSettlementAbi,
  claimBatchDigest,
  claimBatchTypedData,
  computeChannelId,
  depositPermit2WitnessTypes,
  encodeErc3009CollectorData,
  encodePermit2CollectorData,
  erc20PermitAbi,
  erc3009DepositNonce,
  loadArtifact,
  receiveWithAuthorizationTypes,
  refundDigest,
  refundTypedData,
  toContractClaim,
  voucherDigest,
  voucherTypedData,
  type ChannelConfig,
  type VoucherClaim,
} from "../src/index.ts";

let net: RunningLocalNetwork;
let client: PublicClient;
let relayer: PrivateKeyAccount; // the facilitator: relays, holds no role in the channels
let authorizer: PrivateKeyAccount; // receiver authorizer
let payer: PrivateKeyAccount;
let receiver: Address;

const abi = batchSettlementAbi as unknown as Abi;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 2 });
  client = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  relayer = privateKeyToAccount(net.accounts.facilitator.privateKey);
  authorizer = privateKeyToAccount(generatePrivateKey());
  payer = privateKeyToAccount(net.accounts.payers[0]!.privateKey);
  receiver = net.accounts.payee.address;
});

afterAll(async () => {
  await net?.stop();
});

const wallet = (account: PrivateKeyAccount) =>
  createWalletClient({ account, chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl), pollingInterval: 20 });

async function send(account: PrivateKeyAccount, functionName: string, args: readonly unknown[], to: Address = BATCH_SETTLEMENT_ADDRESS) {
  const receipt = await client.waitForTransactionReceipt({ hash: await wallet(account).writeContract({ address: to, abi, functionName, args } as never) });
  expect(receipt.status).toBe("success");
  return receipt;
}

async function callError(functionName: string, args: readonly unknown[], from: Address = relayer.address, to: Address = BATCH_SETTLEMENT_ADDRESS, withAbi: Abi = abi): Promise<string> {
  try {
    await client.simulateContract({ address: to, abi: withAbi, functionName, args, account: from } as never);
    return "ok";
  } catch (e) {
    const revert = e instanceof BaseError ? e.walk((x) => x instanceof ContractFunctionRevertedError) : undefined;
    return revert instanceof ContractFunctionRevertedError ? (revert.data?.errorName ?? revert.reason ?? "revert") : String(e);
  }
}

const tokenBalance = (token: Address, who: Address) => client.readContract({ address: token, abi: erc20PermitAbi, functionName: "balanceOf", args: [who] });
const channelState = async (id: Hex) => {
  const [balance, totalClaimed] = await client.readContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "channels", args: [id] });
  return { balance, totalClaimed };
};
const randomSalt = (): Hex => toHex(crypto.getRandomValues(new Uint8Array(32)));

function config(over: Partial<ChannelConfig> = {}): ChannelConfig {
  return {
    payer: payer.address,
    payerAuthorizer: payer.address,
    receiver,
    receiverAuthorizer: authorizer.address,
    token: net.usdc.address,
    withdrawDelay: 900,
    salt: randomSalt(),
    ...over,
  };
}

async function erc3009Deposit(cfg: ChannelConfig, amount: bigint, from: PrivateKeyAccount = payer) {
  const channelId = computeChannelId(cfg, net.chainId);
  const salt = BigInt(randomSalt());
  const validBefore = BigInt(Math.floor(Date.now() / 1000) + 600);
  const signature = await from.signTypedData({
    domain: { name: net.usdc.name, version: net.usdc.version, chainId: net.chainId, verifyingContract: net.usdc.address },
    types: receiveWithAuthorizationTypes,
    primaryType: "ReceiveWithAuthorization",
    message: { from: from.address, to: ERC3009_DEPOSIT_COLLECTOR_ADDRESS, value: amount, validAfter: 0n, validBefore, nonce: erc3009DepositNonce(channelId, salt) },
  });
  const data = encodeErc3009CollectorData({ validAfter: 0n, validBefore, salt, signature });
  return { channelId, args: [cfg, amount, ERC3009_DEPOSIT_COLLECTOR_ADDRESS, data] as const };
}

async function voucher(cfg: ChannelConfig, maxClaimableAmount: bigint, totalClaimed: bigint, signer: PrivateKeyAccount = payer): Promise<VoucherClaim> {
  const channelId = computeChannelId(cfg, net.chainId);
  const signature = await signer.signTypedData(voucherTypedData(channelId, maxClaimableAmount, net.chainId));
  return { voucher: { channel: cfg, maxClaimableAmount }, signature, totalClaimed };
}

describe("BatchSettlement: interface and encodings", () => {
  it("the compiled contract has every function, event and error of the canonical ABI", () => {
    const compiled = new Set((loadArtifact("BatchSettlement").abi as Abi).map((i) => formatAbiItem(i as never)));
    for (const item of abi) expect(compiled.has(formatAbiItem(item as never)), formatAbiItem(item as never)).toBe(true);
  });

  it("the devnet installed the three contracts at the canonical addresses", async () => {
    expect(net.batchSettlement).toEqual({ address: BATCH_SETTLEMENT_ADDRESS, erc3009Collector: ERC3009_DEPOSIT_COLLECTOR_ADDRESS, permit2Collector: PERMIT2_DEPOSIT_COLLECTOR_ADDRESS });
    for (const a of [BATCH_SETTLEMENT_ADDRESS, ERC3009_DEPOSIT_COLLECTOR_ADDRESS, PERMIT2_DEPOSIT_COLLECTOR_ADDRESS]) {
      expect((await client.getCode({ address: a }))?.length ?? 0).toBeGreaterThan(100);
    }
  });

  it("channel id, voucher, refund and claim-batch digests equal the contract's and the official package's", async () => {
    const { computeChannelId: officialChannelId } = await import("../../../node_modules/@x402/evm/dist/esm/chunk-5XX3PMSD.mjs" as string);
    const cfg = config({ payerAuthorizer: "0x0000000000000000000000000000000000000000" });
    const id = computeChannelId(cfg, net.chainId);
    expect(await client.readContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "getChannelId", args: [cfg] })).toBe(id);
    expect((officialChannelId as (c: ChannelConfig, n: number) => Hex)(cfg, net.chainId)).toBe(id);
    expect(await client.readContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "getVoucherDigest", args: [id, 1234n] })).toBe(voucherDigest(id, 1234n, net.chainId));
    expect(await client.readContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "getRefundDigest", args: [id, 7n, 99n] })).toBe(refundDigest(id, 7n, 99n, net.chainId));
    const claims = [await voucher(cfg, 10n, 5n), await voucher(config(), 20n, 20n)];
    expect(await client.readContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "getClaimBatchDigest", args: [claims.map(toContractClaim)] })).toBe(claimBatchDigest(claims, net.chainId));
    // a different chain gives a different id: channels are chain-bound
    expect(computeChannelId(cfg, net.chainId + 1)).not.toBe(id);
  });

  it("a config with dirty upper bits in any field reverts instead of hashing to another channel id", async () => {
    const cfg = config();
    const clean = encodeFunctionData({ abi: batchSettlementAbi, functionName: "getChannelId", args: [cfg] });
    const call = (data: Hex) => client.call({ to: BATCH_SETTLEMENT_ADDRESS, data });
    expect((await call(clean)).data).toBe(computeChannelId(cfg, net.chainId));
    // Fields 0-4 are addresses (160 bits), 5 is the uint40 delay; 6 (salt) is a full word.
    for (let field = 0; field < 6; field++) {
      const at = 2 + 8 + field * 64; // "0x", selector, then one 32-byte word per field
      const dirty = `${clean.slice(0, at)}ff${clean.slice(at + 2)}` as Hex;
      await expect(call(dirty), `field ${field}`).rejects.toThrow();
    }
  });
});

describe("BatchSettlement: deposit, claim, settle", () => {
  it("deposits through the ERC-3009 collector, claims two channels in one transaction, sweeps to the receiver", async () => {
    const a = config();
    const b = config();
    const da = await erc3009Deposit(a, 1_000_000n);
    const db = await erc3009Deposit(b, 500_000n);
    const before = await tokenBalance(net.usdc.address, payer.address);
    await send(relayer, "deposit", da.args);
    await send(relayer, "deposit", db.args);
    expect(await tokenBalance(net.usdc.address, payer.address)).toBe(before - 1_500_000n);
    expect(await channelState(da.channelId)).toEqual({ balance: 1_000_000n, totalClaimed: 0n });

    // the same authorization cannot fund the channel twice (EIP-3009 nonce used)
    expect(await callError("deposit", da.args)).not.toBe("ok");

    const claims = [await voucher(a, 3_000n, 2_500n), await voucher(b, 700n, 700n)];
    const sig = await authorizer.signTypedData(claimBatchTypedData(claims, net.chainId));
    await send(relayer, "claimWithSignature", [claims.map(toContractClaim), sig]);
    expect(await channelState(da.channelId)).toEqual({ balance: 1_000_000n, totalClaimed: 2_500n });
    expect(await channelState(db.channelId)).toEqual({ balance: 500_000n, totalClaimed: 700n });
    // replaying the same batch is a no-op, not a double claim
    await send(relayer, "claimWithSignature", [claims.map(toContractClaim), sig]);
    expect((await channelState(da.channelId)).totalClaimed).toBe(2_500n);

    const receiverBefore = await tokenBalance(net.usdc.address, receiver);
    await send(relayer, "settle", [receiver, net.usdc.address]);
    expect(await tokenBalance(net.usdc.address, receiver)).toBe(receiverBefore + 3_200n);
    // nothing left: a second sweep moves nothing
    await send(relayer, "settle", [receiver, net.usdc.address]);
    expect(await tokenBalance(net.usdc.address, receiver)).toBe(receiverBefore + 3_200n);
  });

  it("deposits any ERC-20 through Permit2 with the channel-bound witness", async () => {
    const cfg = config({ token: net.plainToken.address });
    const channelId = computeChannelId(cfg, net.chainId);
    const approval = await wallet(payer).writeContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "approve", args: [PERMIT2_ADDRESS, maxUint256] } as never);
    await client.waitForTransactionReceipt({ hash: approval });
    const nonce = BigInt(randomSalt());
    const deadline = BigInt(Math.floor(Date.now() / 1000) + 600);
    const signature = await payer.signTypedData({
      domain: { name: "Permit2", chainId: net.chainId, verifyingContract: PERMIT2_ADDRESS },
      types: depositPermit2WitnessTypes,
      primaryType: "PermitWitnessTransferFrom",
      message: { permitted: { token: cfg.token, amount: 40_000n }, spender: PERMIT2_DEPOSIT_COLLECTOR_ADDRESS, nonce, deadline, witness: { channelId } },
    });
    const data = encodePermit2CollectorData({ nonce, deadline, signature });
    // bound to the channel: the same signature cannot fund another channel
    expect(await callError("deposit", [config({ token: net.plainToken.address }), 40_000n, PERMIT2_DEPOSIT_COLLECTOR_ADDRESS, data])).not.toBe("ok");
    await send(relayer, "deposit", [cfg, 40_000n, PERMIT2_DEPOSIT_COLLECTOR_ADDRESS, data]);
    expect(await channelState(channelId)).toEqual({ balance: 40_000n, totalClaimed: 0n });
  });

  it("never claims past the deposit, past the signed ceiling, or with a wrong signature", async () => {
    const cfg = config();
    const d = await erc3009Deposit(cfg, 10_000n);
    await send(relayer, "deposit", d.args);
    const sign = async (claims: VoucherClaim[]) => [claims.map(toContractClaim), await authorizer.signTypedData(claimBatchTypedData(claims, net.chainId))] as const;

    expect(await callError("claimWithSignature", await sign([await voucher(cfg, 20_000n, 10_001n)]))).toBe("ClaimExceedsBalance");
    expect(await callError("claimWithSignature", await sign([await voucher(cfg, 5_000n, 5_001n)]))).toBe("ClaimExceedsCeiling");
    expect(await callError("claimWithSignature", await sign([await voucher(cfg, 5_000n, 5_000n, privateKeyToAccount(generatePrivateKey()))]))).toBe("InvalidSignature");
    // a batch signed by someone other than the receiver authorizer
    const claims = [await voucher(cfg, 5_000n, 5_000n)];
    expect(await callError("claimWithSignature", [claims.map(toContractClaim), await relayer.signTypedData(claimBatchTypedData(claims, net.chainId))])).toBe("InvalidSignature");
    // direct claim only by the receiver side
    expect(await callError("claim", [claims.map(toContractClaim)])).toBe("NotAuthorizedToClaim");
    expect(await callError("claim", [claims.map(toContractClaim)], authorizer.address)).toBe("ok");
    // the collectors take calls from the settlement contract only
    const collectorAbi = loadArtifact("ERC3009DepositCollector").abi as Abi;
    expect(await callError("collect", [payer.address, net.usdc.address, 1n, d.channelId, "0x"], relayer.address, ERC3009_DEPOSIT_COLLECTOR_ADDRESS, collectorAbi)).toBe("OnlyBatchSettlement");
    expect(await callError("deposit", [config({ withdrawDelay: 60 }), 1n, ERC3009_DEPOSIT_COLLECTOR_ADDRESS, "0x"])).toBe("WithdrawDelayOutOfRange");
  });
});

describe("BatchSettlement: refunds and the timed withdrawal", () => {
  it("refunds unclaimed escrow with the authorizer's signature once per nonce", async () => {
    const cfg = config();
    const d = await erc3009Deposit(cfg, 10_000n);
    await send(relayer, "deposit", d.args);
    const claims = [await voucher(cfg, 4_000n, 4_000n)];
    await send(relayer, "claimWithSignature", [claims.map(toContractClaim), await authorizer.signTypedData(claimBatchTypedData(claims, net.chainId))]);

    const before = await tokenBalance(net.usdc.address, payer.address);
    const sig = await authorizer.signTypedData(refundTypedData(d.channelId, 0n, 2_000n, net.chainId));
    await send(relayer, "refundWithSignature", [cfg, 2_000n, 0n, sig]);
    expect(await tokenBalance(net.usdc.address, payer.address)).toBe(before + 2_000n);
    expect(await channelState(d.channelId)).toEqual({ balance: 8_000n, totalClaimed: 4_000n });
    expect(await client.readContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "refundNonce", args: [d.channelId] })).toBe(1n);
    expect(await callError("refundWithSignature", [cfg, 2_000n, 0n, sig])).toBe("InvalidRefundNonce");

    // a full refund is capped at the unclaimed part: claimed money stays the receiver's
    const all = await authorizer.signTypedData(refundTypedData(d.channelId, 1n, 1_000_000n, net.chainId));
    await send(relayer, "refundWithSignature", [cfg, 1_000_000n, 1n, all]);
    expect(await channelState(d.channelId)).toEqual({ balance: 4_000n, totalClaimed: 4_000n });
    expect(await tokenBalance(net.usdc.address, payer.address)).toBe(before + 6_000n);
  });

  it("pays a timed withdrawal only after the delay, minus what the receiver claimed meanwhile", async () => {
    const cfg = config();
    const d = await erc3009Deposit(cfg, 10_000n);
    await send(relayer, "deposit", d.args);
    expect(await callError("initiateWithdraw", [cfg, 10_001n], payer.address)).toBe("WithdrawAmountExceedsAvailable");
    expect(await callError("initiateWithdraw", [cfg, 10_000n], relayer.address)).toBe("InvalidChannel");
    await send(payer, "initiateWithdraw", [cfg, 10_000n]);
    const [, initiatedAt] = await client.readContract({ address: BATCH_SETTLEMENT_ADDRESS, abi: batchSettlementAbi, functionName: "pendingWithdrawals", args: [d.channelId] });
    expect(initiatedAt).toBeGreaterThan(0);
    expect(await callError("finalizeWithdraw", [cfg], payer.address)).toBe("WithdrawDelayNotElapsed");

    // during the delay the receiver still claims the voucher it holds
    const claims = [await voucher(cfg, 3_000n, 3_000n)];
    await send(relayer, "claimWithSignature", [claims.map(toContractClaim), await authorizer.signTypedData(claimBatchTypedData(claims, net.chainId))]);

    const test = createTestClient({ mode: "anvil", chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
    await test.increaseTime({ seconds: 899 });
    await test.mine({ blocks: 1 });
    expect(await callError("finalizeWithdraw", [cfg], payer.address)).toBe("WithdrawDelayNotElapsed");
    await test.increaseTime({ seconds: 2 });
    await test.mine({ blocks: 1 });
    expect(await callError("finalizeWithdraw", [cfg], relayer.address)).toBe("NotAuthorizedToFinalizeWithdraw");
    const before = await tokenBalance(net.usdc.address, payer.address);
    await send(payer, "finalizeWithdraw", [cfg]);
    expect(await tokenBalance(net.usdc.address, payer.address)).toBe(before + 7_000n);
    expect(await channelState(d.channelId)).toEqual({ balance: 3_000n, totalClaimed: 3_000n });
    // the escrow is drained: a later, higher voucher cannot be claimed
    const late = [await voucher(cfg, 5_000n, 5_000n)];
    expect(await callError("claimWithSignature", [late.map(toContractClaim), await authorizer.signTypedData(claimBatchTypedData(late, net.chainId))])).toBe("ClaimExceedsBalance");
  });
});
