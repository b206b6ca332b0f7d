// The fee payer under attack, on a real anvil: every way a payload could make the facilitator pay
// gas for nothing, or count a payment that did not happen. Each case checks on chain that no money
// moved and no gas was spent: the fee payer's ETH balance and nonce, and the payee's tokens.
import { readFileSync } from "node:fs";
import { Reason, type PaymentPayload, type PaymentRequirements } from "@tollgate/core";
import { mintTo, startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import {
  createPublicClient,
  createTestClient,
  createWalletClient,
  getAddress,
  http,
  toHex,
  type Abi,
  type Address,
  type Hex,
  type PublicClient,
} from "viem";
import { privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileSolidity, type Artifact } from "../src/contracts/compile.ts";
import { eip3009Abi } from "../src/contracts/abi.ts";
import { exactEvmClient, exactEvmFacilitator, type ExactEvmFacilitatorConfig, type ExactEvmPayload } from "../src/exact/index.ts";
import { createSettlementEngine, outcomeFromReceipt, readSettlementOutcome, type SettlementCall } from "../src/settlement/index.ts";

let net: RunningLocalNetwork;
let chain: PublicClient;
let contracts: Record<string, Artifact>;
let feePayer: PrivateKeyAccount;
let deployer: ReturnType<typeof createWalletClient>;
const test = () => createTestClient({ mode: "anvil", transport: http(net.rpcUrl) });

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 3 });
  chain = createPublicClient({ transport: http(net.rpcUrl) }) as PublicClient;
  feePayer = privateKeyToAccount(net.accounts.facilitator.privateKey);
  deployer = createWalletClient({ account: privateKeyToAccount(net.accounts.deployer.privateKey), transport: http(net.rpcUrl) });
  contracts = compileSolidity({ "Hostile.sol": readFileSync(new URL("./contracts/Hostile.sol", import.meta.url), "utf8") });
}, 120_000);

afterAll(async () => {
  await net?.stop();
});

async function deploy(name: string, args: unknown[] = []): Promise<Address> {
  const a = contracts[name]!;
  const hash = await deployer.deployContract({ abi: a.abi, bytecode: a.bytecode, args, chain: null, account: deployer.account! });
  const receipt = await chain.waitForTransactionReceipt({ hash });
  return getAddress(receipt.contractAddress!);
}

async function send(to: Address, abi: Abi, functionName: string, args: unknown[], fees: { maxPriorityFeePerGas?: bigint } = {}): Promise<Hex> {
  return deployer.writeContract({ address: to, abi, functionName, args, chain: null, account: deployer.account!, ...fees } as never);
}

function requirements(over: Partial<PaymentRequirements> = {}): PaymentRequirements {
  return {
    scheme: "exact",
    network: net.network,
    amount: "1000",
    asset: net.usdc.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 120,
    extra: { name: net.usdc.name, version: net.usdc.version },
    ...over,
  };
}

async function sign(req: PaymentRequirements, payer = 0): Promise<PaymentPayload> {
  const client = exactEvmClient({ account: privateKeyToAccount(net.accounts.payers[payer]!.privateKey) });
  return { x402Version: 2, accepted: req, payload: await client.createPayload(req, { x402Version: 2 }) };
}

const tokenBalance = (token: Address, who: Address) => chain.readContract({ address: token, abi: eip3009Abi, functionName: "balanceOf", args: [who] }) as Promise<bigint>;

/** The fee payer's ETH and nonce, and the payee's tokens: what "no money moved, no gas spent" compares. */
async function ledgerState(token: Address = net.usdc.address) {
  return {
    feePayerEth: await chain.getBalance({ address: feePayer.address }),
    feePayerNonce: await chain.getTransactionCount({ address: feePayer.address }),
    payeeTokens: await tokenBalance(token, net.accounts.payee.address),
  };
}

/** A public client that records every JSON-RPC method it is asked for. */
function countingClient(): { client: PublicClient; methods: string[] } {
  const methods: string[] = [];
  const transport = http(net.rpcUrl);
  const client = createPublicClient({
    transport: (opts) => {
      const t = transport(opts);
      return { ...t, request: (async (args: { method: string }) => (methods.push(args.method), t.request(args as never))) as typeof t.request };
    },
  }) as PublicClient;
  return { client, methods };
}

function facilitator(over: Partial<ExactEvmFacilitatorConfig> & { client?: PublicClient; assets?: ExactEvmFacilitatorConfig["networks"][number]["assets"] | null; contractWallets?: boolean } = {}) {
  const { client, assets, contractWallets, ...rest } = over;
  return exactEvmFacilitator({
    networks: [
      {
        network: net.network,
        ...(client ? { publicClient: client } : { rpcUrl: net.rpcUrl }),
        ...(assets === null ? {} : { assets: assets ?? [net.usdc] }),
        ...(contractWallets !== undefined ? { contractWallets } : {}),
      },
    ],
    signer: feePayer,
    receiptTimeoutMs: 10_000,
    pollingIntervalMs: 20,
    ...rest,
  });
}

describe("the fee payer never pays gas for nothing", () => {
  it("zero amount: refused at verify and settle with invalid_amount_zero, before any RPC call", async () => {
    const before = await ledgerState();
    const zero = requirements({ amount: "0" });
    const p = await sign(zero);
    const { client, methods } = countingClient();
    const f = facilitator({ client });
    expect(await f.verify(p, zero)).toMatchObject({ isValid: false, invalidReason: Reason.amountZero });
    expect(await f.settle(p, zero)).toMatchObject({ success: false, errorReason: Reason.amountZero, transaction: "" });
    expect(methods).toEqual([]);
    expect(await ledgerState()).toEqual(before);
  });

  it("hostile token: a contract that answers like a token is refused without an allowlist entry (default: the network table's USDC only)", async () => {
    const hostile = await deploy("HostileToken", [net.usdc.name, net.usdc.version]);
    const req = requirements({ asset: hostile });
    const p = await sign(req);
    const before = await ledgerState();
    const hostileBefore = await tokenBalance(hostile, net.accounts.payee.address);
    // No `assets`: eip155:31337 has no USDC in the table, so nothing at all is accepted; with the
    // local token listed, the hostile one still is not.
    for (const assets of [null, [net.usdc]] as const) {
      const { client, methods } = countingClient();
      const f = facilitator({ client, assets });
      const v = await f.verify(p, req);
      expect(v).toMatchObject({ isValid: false, invalidReason: Reason.evmAssetNotAllowed });
      expect(await f.settle(p, req)).toMatchObject({ success: false, errorReason: Reason.evmAssetNotAllowed, transaction: "" });
      expect(await f.authenticate!(p, req)).toMatchObject({ ok: false, reason: Reason.evmAssetNotAllowed });
      expect(methods).toEqual([]);
    }
    expect(await ledgerState()).toEqual(before);
    expect(await tokenBalance(hostile, net.accounts.payee.address)).toBe(hostileBefore);
    // Without an allowlist entry even the real local token is refused: local tokens are listed explicitly.
    const f = facilitator({ assets: null });
    expect(await f.verify(await sign(requirements()), requirements())).toMatchObject({ isValid: false, invalidReason: Reason.evmAssetNotAllowed });
  });

  it("v = 0/1 signatures: verified, and settled inside a BatchSettler batch (one encoder for every path)", async () => {
    const sizes: number[] = [];
    const engine = createSettlementEngine({
      networks: [{ network: net.network, rpcUrl: net.rpcUrl, batchSettler: net.batchSettler.address }],
      signers: [net.accounts.facilitator.privateKey],
      pollingIntervalMs: 20,
      maxWaitMs: 5_000,
      onSubmitted: (e) => void sizes.push(e.items.length),
    });
    const f = facilitator({ submit: (call) => engine.submit(call), settleDryRun: false });
    const toYParity = (p: PaymentPayload): PaymentPayload => {
      const inner = p.payload as unknown as ExactEvmPayload;
      const v = parseInt(inner.signature.slice(130), 16);
      return { ...p, payload: { ...inner, signature: `${inner.signature.slice(0, 130)}${v === 27 ? "00" : "01"}` } as never };
    };
    // Signatures are random (random nonces): sign until both recovery ids occur (1 in 32 runs had only one).
    const vOf = (p: PaymentPayload) => parseInt((p.payload as unknown as ExactEvmPayload).signature.slice(130), 16);
    let payloads = await Promise.all([0, 1, 2, 0, 1].map((i) => sign(requirements({ amount: "777" }), i)));
    for (let tries = 0; tries < 40 && new Set(payloads.map(vOf)).size < 2; tries++) {
      payloads = [...payloads.slice(1), await sign(requirements({ amount: "777" }), tries % 3)];
    }
    const yParity = payloads.map(toYParity);
    expect(yParity.map((p) => (p.payload as unknown as ExactEvmPayload).signature.slice(130))).toEqual(expect.arrayContaining(["00"]));
    for (const p of yParity) expect(await f.verify(p, requirements({ amount: "777" }))).toMatchObject({ isValid: true });
    const payeeBefore = await tokenBalance(net.usdc.address, net.accounts.payee.address);
    // Settled together with one plain signature: the only lane takes what arrives in one turn as a batch.
    const plain = await sign(requirements({ amount: "777" }));
    const results = await Promise.all([plain, ...yParity].map((p) => f.settle(p, requirements({ amount: "777" }))));
    await engine.close();
    expect(results.map((r) => r.success)).toEqual([true, true, true, true, true, true]);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(6);
    // The v = 0/1 ones went through BatchSettler (its `bytes` path), several per transaction.
    const batched = [];
    for (const r of results.slice(1)) {
      const receipt = await chain.getTransactionReceipt({ hash: r.transaction as Hex });
      if (receipt.to?.toLowerCase() === net.batchSettler.address.toLowerCase()) batched.push(r.transaction);
    }
    expect(batched.length).toBeGreaterThanOrEqual(4);
    expect(new Set(batched).size).toBeLessThan(batched.length);
    expect(await tokenBalance(net.usdc.address, net.accounts.payee.address)).toBe(payeeBefore + 6n * 777n);
  });

  describe("ERC-1271 contract wallets", () => {
    let wallet: Address;
    const walletAbi = () => contracts.GriefingWallet!.abi;
    /** A payment "signed" by the wallet: its own bytes, judged by its isValidSignature. */
    const walletPayment = (req: PaymentRequirements, signature: Hex = `0x${"11".repeat(70)}`): PaymentPayload => {
      const now = Math.floor(Date.now() / 1000);
      const authorization = { from: wallet, to: req.payTo as Address, value: req.amount, validAfter: "0", validBefore: String(now + 100), nonce: toHex(BigInt(Date.now()) * 1000n + BigInt(Math.floor(Math.random() * 1000)), { size: 32 }) };
      return { x402Version: 2, accepted: req, payload: { signature, authorization } };
    };

    beforeAll(async () => {
      wallet = await deploy("GriefingWallet");
      await mintTo(net.rpcUrl, net.usdc.address, wallet, 1_000_000n);
    });

    it("refused by default (invalid_exact_evm_payload_contract_wallet_not_allowed), at authenticate, verify and settle", async () => {
      const before = await ledgerState();
      const f = facilitator();
      const p = walletPayment(requirements());
      expect(await f.authenticate!(p, requirements())).toMatchObject({ ok: false, reason: Reason.evmContractWalletNotAllowed });
      expect(await f.verify(p, requirements())).toMatchObject({ isValid: false, invalidReason: Reason.evmContractWalletNotAllowed });
      expect(await f.settle(p, requirements())).toMatchObject({ success: false, errorReason: Reason.evmContractWalletNotAllowed, transaction: "" });
      // A 65-byte signature that does not recover to `from` is a plain bad signature then.
      expect(await f.verify(walletPayment(requirements(), `0x${"22".repeat(64)}1b`), requirements())).toMatchObject({ isValid: false, invalidReason: Reason.evmSignature });
      expect(await ledgerState()).toEqual(before);
    });

    it("griefing: valid in a fee-less eth_call, burns gas when mined; opted in, it is judged with real fee fields and refused; nothing spent", async () => {
      await chain.waitForTransactionReceipt({ hash: await send(wallet, walletAbi(), "setMode", [0n]) });
      const p = walletPayment(requirements());
      // The trap: a plain eth_call (gas price 0) says "valid".
      const plain = await chain.readContract({ address: wallet, abi: walletAbi(), functionName: "isValidSignature", args: [`0x${"00".repeat(32)}`, "0x"] });
      expect(plain).toBe("0x1626ba7e");
      const before = await ledgerState();
      const f = facilitator({ contractWallets: true });
      // Not even authenticated: the service keys nothing on a payer whose wallet refuses when it pays.
      expect(await f.authenticate!(p, requirements())).toMatchObject({ ok: false, reason: Reason.evmSignature });
      const v = await f.verify(p, requirements());
      expect(v.isValid).toBe(false);
      expect([Reason.evmSignature, Reason.evmSimulationFailed]).toContain(v.invalidReason);
      const s = await f.settle(p, requirements());
      expect(s).toMatchObject({ success: false, transaction: "" });
      expect(await ledgerState()).toEqual(before);
    });

    it("an honest wallet, opted in: verified on chain and settled alone (bytes overload)", async () => {
      await chain.waitForTransactionReceipt({ hash: await send(wallet, walletAbi(), "setMode", [1n]) });
      const f = facilitator({ contractWallets: true });
      const p = walletPayment(requirements({ amount: "4321" }));
      expect(await f.authenticate!(p, requirements({ amount: "4321" }))).toMatchObject({ ok: true, payer: wallet.toLowerCase() });
      expect(await f.verify(p, requirements({ amount: "4321" }))).toEqual({ isValid: true, payer: wallet });
      const payeeBefore = await tokenBalance(net.usdc.address, net.accounts.payee.address);
      const s = await f.settle(p, requirements({ amount: "4321" }));
      expect(s).toMatchObject({ success: true });
      const tx = await chain.getTransaction({ hash: s.transaction as Hex });
      expect(tx.to?.toLowerCase()).toBe(net.usdc.address.toLowerCase());
      expect(await tokenBalance(net.usdc.address, net.accounts.payee.address)).toBe(payeeBefore + 4321n);
    });

    it("a wallet that turns invalid between the check and the block: one mined revert, then the payer is backed off (invalid_payer_suspended)", async () => {
      await chain.waitForTransactionReceipt({ hash: await send(wallet, walletAbi(), "setMode", [1n]) });
      const f = facilitator({ contractWallets: true, receiptTimeoutMs: 20_000 });
      const p = walletPayment(requirements({ amount: "55" }));
      const nonceBefore = await chain.getTransactionCount({ address: feePayer.address, blockTag: "pending" });
      await test().setAutomine(false);
      let settled;
      try {
        const settling = f.settle(p, requirements({ amount: "55" }));
        // The settlement is in the mempool: the wallet's owner front-runs it with a higher tip.
        const deadline = Date.now() + 10_000;
        while ((await chain.getTransactionCount({ address: feePayer.address, blockTag: "pending" })) === nonceBefore) {
          if (Date.now() > deadline) throw new Error("the settlement was never sent");
          await new Promise((r) => setTimeout(r, 20));
        }
        await send(wallet, walletAbi(), "setMode", [2n], { maxPriorityFeePerGas: 50_000_000_000n });
        await test().mine({ blocks: 1 });
        settled = await settling;
      } finally {
        await test().setAutomine(true);
      }
      expect(settled).toMatchObject({ success: false, transaction: "", extensions: { "tollgate-settlement": { status: "failed" } } });
      // It cost gas once. Now the payer is refused before anything is sent, even with an honest wallet again.
      await chain.waitForTransactionReceipt({ hash: await send(wallet, walletAbi(), "setMode", [1n]) });
      const before = await ledgerState();
      const again = walletPayment(requirements({ amount: "55" }));
      expect(await f.verify(again, requirements({ amount: "55" }))).toMatchObject({ isValid: false, invalidReason: Reason.payerSuspended });
      expect(await f.settle(again, requirements({ amount: "55" }))).toMatchObject({ success: false, errorReason: Reason.payerSuspended, transaction: "" });
      expect(await ledgerState()).toEqual(before);
    }, 60_000);
  });

  it("receipts: an AuthorizationUsed logged by another contract never counts as a settlement", async () => {
    const forger = await deploy("LogForger");
    const payer = net.accounts.payers[0]!.address;
    const nonce = toHex(123456789n, { size: 32 });
    const hash = await send(forger, contracts.LogForger!.abi, "forge", [payer, nonce]);
    const receipt = await chain.waitForTransactionReceipt({ hash });
    expect(receipt.status).toBe("success");
    // Read as the settlement of a payment in the real token: not settled.
    const outcome = await readSettlementOutcome(chain, [hash], { token: net.usdc.address, item: { from: payer, nonce } });
    expect(outcome.status).toBe("reverted");
    expect(outcomeFromReceipt(receipt, net.usdc.address).items).toEqual([]);
    // The same log does count when it comes from the token named (here the forger itself): the filter is what protects.
    expect(outcomeFromReceipt(receipt, forger).items).toEqual([{ from: payer, nonce, status: "success" }]);
    const engine = createSettlementEngine({ networks: [{ network: net.network, rpcUrl: net.rpcUrl }], signers: [net.accounts.facilitator.privateKey] });
    expect(await engine.waitFor(hash, { token: net.usdc.address, item: { from: payer, nonce } })).toMatchObject({ status: "reverted" });
    await engine.close();
  });

  it("the built-in sender is capped like the engine: gas per payment and fee per gas", async () => {
    const before = await ledgerState();
    const req = requirements({ amount: "99" });
    const capped = facilitator({ maxGasPerSettlement: 30_000n });
    const p = await sign(req, 1);
    expect(await capped.verify(p, req)).toMatchObject({ isValid: true });
    const refused = await capped.settle(p, req);
    expect(refused).toMatchObject({ success: false, transaction: "" });
    expect(refused.errorMessage).toMatch(/exceeds the cap/);
    expect(await ledgerState()).toEqual(before);
    // A fee cap below the chain's asks: the transaction is sent at the cap (never above).
    const cap = (await chain.estimateFeesPerGas()).maxFeePerGas;
    const feeCapped = facilitator({ maxFeePerGasCap: cap });
    const s = await feeCapped.settle(p, req);
    expect(s).toMatchObject({ success: true });
    const tx = await chain.getTransaction({ hash: s.transaction as Hex });
    expect(tx.maxFeePerGas! <= cap).toBe(true);
  });
});

describe("settlement calls", () => {
  it("the engine refuses nothing it cannot judge: a SettlementCall with v = 0 settles directly too", async () => {
    const engine = createSettlementEngine({ networks: [{ network: net.network, rpcUrl: net.rpcUrl }], signers: [net.accounts.facilitator.privateKey], batching: false });
    const p = await sign(requirements({ amount: "5" }), 2);
    const inner = p.payload as unknown as ExactEvmPayload;
    const v = parseInt(inner.signature.slice(130), 16);
    const call: SettlementCall = { network: net.network, asset: net.usdc.address, authorization: inner.authorization, signature: `${inner.signature.slice(0, 130)}${v === 27 ? "00" : "01"}` as Hex };
    expect(await engine.submit(call)).toMatchObject({ status: "settled" });
    await engine.close();
  });
});
