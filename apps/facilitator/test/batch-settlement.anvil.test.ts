/**
 * `batch-settlement` through the facilitator service over HTTP on anvil: /supported advertises the
 * delegated receiver authorizer, /verify and /settle answer with the channel snapshot, claim and
 * sweep calls with the reference server's zero-amount requirements are served, the ledger
 * (PGlite on disk) mirrors channels and logs every transaction ahead of its broadcast, and a
 * restart keeps the channels and finishes a transaction a crashed run had only written down.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PaymentRequirements } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import {
  ERC3009_DEPOSIT_COLLECTOR_ADDRESS,
  batchSettlementAbi,
  claimBatchTypedData,
  computeChannelId,
  eip3009Abi,
  erc3009DepositNonce,
  receiveWithAuthorizationTypes,
  toContractClaim,
  voucherTypedData,
  type ChannelConfig,
} from "@tollgate/evm";
import { createPublicClient, createTestClient, encodeFunctionData, http, keccak256, toHex, type Address, type Hex, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { parseConfig } from "../src/config.ts";
import { startFacilitator, type RunningFacilitator } from "../src/start.ts";

let net: RunningLocalNetwork;
let chain: PublicClient;
let service: RunningFacilitator;
let dataDir: string;
const relayerKey = generatePrivateKey();
const authorizerKey = generatePrivateKey();
const authorizer = privateKeyToAccount(authorizerKey);
const API_KEY = "batch-settlement-test-key-0123";
let payer: PrivateKeyAccount;

function config() {
  return {
    port: 0,
    logLevel: "silent" as const,
    dataDir,
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [{ address: net.usdc.address, name: net.usdc.name, version: net.usdc.version, decimals: net.usdc.decimals }] }],
    privateKeys: [net.accounts.facilitator.privateKey],
    apiKeys: [API_KEY],
    batchSettlement: { relayerKey, receiverAuthorizerKey: authorizerKey, receiptTimeoutMs: 20_000 },
  };
}

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 1 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  payer = privateKeyToAccount(net.accounts.payers[0]!.privateKey);
  await createTestClient({ mode: "anvil", chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) }).setBalance({ address: privateKeyToAccount(relayerKey).address, value: 10n ** 20n });
  dataDir = mkdtempSync(join(tmpdir(), "tollgate-batch-"));
  service = await startFacilitator(config());
}, 120_000);

afterAll(async () => {
  await service?.close();
  await net?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const salt = (): Hex => toHex(crypto.getRandomValues(new Uint8Array(32)));

function requirements(amount = "1000", maxTimeoutSeconds = 600): PaymentRequirements {
  return {
    scheme: "batch-settlement",
    network: net.network,
    amount,
    asset: net.usdc.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds,
    extra: { receiverAuthorizer: authorizer.address, withdrawDelay: 900, name: net.usdc.name, version: net.usdc.version },
  };
}

/** What the reference server sends for claim / settle / refund: amount "0", no timeout, empty extra. */
function operationRequirements(): PaymentRequirements {
  return { scheme: "batch-settlement", network: net.network, amount: "0", asset: net.usdc.address, payTo: net.accounts.payee.address, maxTimeoutSeconds: 0, extra: {} };
}

const channel = (): ChannelConfig => ({ payer: payer.address, payerAuthorizer: payer.address, receiver: net.accounts.payee.address, receiverAuthorizer: authorizer.address, token: net.usdc.address, withdrawDelay: 900, salt: salt() });

async function voucher(cfg: ChannelConfig, max: bigint) {
  const channelId = computeChannelId(cfg, net.chainId);
  return { channelId, maxClaimableAmount: max.toString(), signature: await payer.signTypedData(voucherTypedData(channelId, max, net.chainId)) };
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
  return { type: "deposit", channelConfig: cfg, voucher: await voucher(cfg, max), deposit: { amount: amount.toString(), authorization: { erc3009Authorization: { validAfter: "0", validBefore: validBefore.toString(), salt: s.toString(), signature } } } };
}

async function call(path: "/verify" | "/settle", payload: Record<string, unknown>, q = requirements()) {
  const res = await fetch(`${service.url}${path}`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` }, body: JSON.stringify({ x402Version: 2, paymentPayload: { x402Version: 2, accepted: q, payload }, paymentRequirements: q }) });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, any>;
}

const rows = (sql: string, params: unknown[] = []) => service.ledger.sql.query<Record<string, any>>(sql, params);

describe("batch-settlement in the facilitator service", () => {
  let cfg: ChannelConfig;
  let channelId: Hex;

  it("advertises the scheme with its receiver authorizer", async () => {
    const supported = await (await fetch(`${service.url}/supported`)).json();
    expect(supported.kinds).toContainEqual({ x402Version: 2, scheme: "batch-settlement", network: net.network, extra: { receiverAuthorizer: authorizer.address } });
  });

  it("serves the delegated authorizer only behind API keys", async () => {
    const { apiKeys: _, ...open } = config();
    expect(() => parseConfig(open)).toThrow(/receiverAuthorizerKey.*requires apiKeys/);
    const q = operationRequirements();
    const res = await fetch(`${service.url}/settle`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ x402Version: 2, paymentPayload: { x402Version: 2, accepted: q, payload: { type: "settle", receiver: net.accounts.payee.address, token: net.usdc.address } }, paymentRequirements: q }) });
    expect(res.status).toBe(401);
  });

  it("verifies and settles a deposit, answering with the channel snapshot, logged in the ledger", async () => {
    cfg = channel();
    channelId = computeChannelId(cfg, net.chainId);
    const deposit = await depositPayload(cfg, 100_000n, 1_000n);
    const v = await call("/verify", deposit);
    expect(v).toMatchObject({ isValid: true, extra: { channelId, balance: "0", totalClaimed: "0", withdrawRequestedAt: 0, refundNonce: "0" } });
    const s = await call("/settle", deposit);
    expect(s).toMatchObject({ success: true, amount: "100000", extra: { channelState: { channelId, balance: "100000" } } });
    const [tx] = await rows(`SELECT kind, status, raw FROM ${service.ledger.schema}.batch_transactions WHERE hash = $1`, [s.transaction]);
    expect(tx).toMatchObject({ kind: "deposit", status: "success" });
    expect(keccak256(tx!.raw as Hex)).toBe(s.transaction);
    const [ch] = await rows(`SELECT balance, total_claimed FROM ${service.ledger.schema}.batch_channels WHERE channel_id = $1`, [channelId]);
    expect(String(ch!.balance)).toBe("100000");
  });

  it("verifies vouchers and refuses one past the deposit", async () => {
    expect(await call("/verify", { type: "voucher", channelConfig: cfg, voucher: await voucher(cfg, 5_000n) })).toMatchObject({ isValid: true, extra: { balance: "100000" } });
    expect((await call("/verify", { type: "voucher", channelConfig: cfg, voucher: await voucher(cfg, 100_001n) })).invalidReason).toBe("invalid_batch_settlement_evm_cumulative_exceeds_balance");
  });

  it("serves claim and sweep calls with zero-amount requirements (as the reference server sends them)", async () => {
    const max = 5_000n;
    const claims = [{ voucher: { channel: cfg, maxClaimableAmount: max.toString() }, signature: (await voucher(cfg, max)).signature, totalClaimed: "4200" }];
    const claim = await call("/settle", { type: "claim", claims }, operationRequirements());
    expect(claim).toMatchObject({ success: true, amount: "", extra: { channelState: { channelId, totalClaimed: "4200" } } });
    const sweep = await call("/settle", { type: "settle", receiver: net.accounts.payee.address, token: net.usdc.address }, operationRequirements());
    expect(sweep).toMatchObject({ success: true, amount: "4200" });
    const again = await call("/settle", { type: "settle", receiver: net.accounts.payee.address, token: net.usdc.address }, operationRequirements());
    expect(again.errorReason).toBe("invalid_batch_settlement_evm_nothing_to_settle");
    // a voucher stays a /verify matter
    expect((await call("/settle", { type: "voucher", channelConfig: cfg, voucher: await voucher(cfg, 6_000n) })).errorReason).toBe("invalid_batch_settlement_evm_payload_type");
  });

  it("keeps channel state across a restart and finishes a transaction a crashed run only wrote down", async () => {
    // The crash window: signed and logged, never broadcast.
    const relayer = privateKeyToAccount(relayerKey);
    const claims = [{ voucher: { channel: cfg, maxClaimableAmount: 9_000n }, signature: (await voucher(cfg, 9_000n)).signature as Hex, totalClaimed: 9_000n }];
    const data = encodeFunctionData({ abi: batchSettlementAbi, functionName: "claimWithSignature", args: [claims.map(toContractClaim), await authorizer.signTypedData(claimBatchTypedData(claims, net.chainId))] });
    const nonce = await chain.getTransactionCount({ address: relayer.address, blockTag: "pending" });
    const fees = await chain.estimateFeesPerGas();
    const to = (await import("@tollgate/evm")).BATCH_SETTLEMENT_ADDRESS as Address;
    const raw = await relayer.signTransaction({ type: "eip1559", chainId: net.chainId, to, data, nonce, gas: 300_000n, maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas });
    const hash = keccak256(raw);
    await rows(`INSERT INTO ${service.ledger.schema}.batch_transactions (hash, network, kind, from_address, nonce, raw, channel_ids, status) VALUES ($1, $2, 'claim', $3, $4, $5, $6, 'sent')`, [hash, net.network, relayer.address.toLowerCase(), nonce, raw, JSON.stringify([channelId])]);

    await service.close();
    service = await startFacilitator(config());

    const [tx] = await rows(`SELECT status FROM ${service.ledger.schema}.batch_transactions WHERE hash = $1`, [hash]);
    expect(tx!.status).toBe("success");
    const [, totalClaimed] = await chain.readContract({ address: to, abi: batchSettlementAbi, functionName: "channels", args: [channelId] });
    expect(totalClaimed).toBe(9_000n);
    const [ch] = await rows(`SELECT balance, config FROM ${service.ledger.schema}.batch_channels WHERE channel_id = $1`, [channelId]);
    expect(String(ch!.balance)).toBe("100000");
    const stored = typeof ch!.config === "string" ? JSON.parse(ch!.config) : ch!.config;
    expect(stored.salt).toBe(cfg.salt);
    // and the service still works after the restart
    expect(await call("/verify", { type: "voucher", channelConfig: cfg, voucher: await voucher(cfg, 10_000n) })).toMatchObject({ isValid: true, extra: { totalClaimed: "9000" } });
  });

  it("sends nothing it did not log: every channel transaction of the relayer is in the ledger", async () => {
    const relayer = privateKeyToAccount(relayerKey).address;
    const sent = await chain.getTransactionCount({ address: relayer });
    const [{ n }] = (await rows(`SELECT count(*) AS n FROM ${service.ledger.schema}.batch_transactions WHERE from_address = $1 AND status = 'success'`, [relayer.toLowerCase()])) as [{ n: number | string }];
    expect(Number(n)).toBe(sent);
    expect(await chain.readContract({ address: net.usdc.address, abi: eip3009Abi, functionName: "balanceOf", args: [net.accounts.payee.address] })).toBeGreaterThan(0n);
  });
});
