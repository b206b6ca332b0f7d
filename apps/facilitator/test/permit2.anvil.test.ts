/**
 * Permit2 settlements in the service's durable path, on a real anvil, without the engine's poller
 * in the way: each transaction is signed through the guarded signer (which names the payment from
 * the proxy calldata and writes it ahead), then the "process dies" and the reconciler alone must
 * decide the row from the chain:
 * - sent and mined (the proxy's Settled log and the token's Transfer): settled, with that hash;
 * - sent and mined but reverted (the Permit2 nonce was already used): failed, nothing moved;
 * - written ahead, never broadcast, its signer nonce later used by another transaction, and the
 *   payment's Permit2 nonce used by someone else's transaction: failed (permit2_invalid_nonce);
 * - written ahead, never broadcast, signer nonce used elsewhere, Permit2 nonce unused: dropped
 *   (nothing moved; claimable again).
 * And the guarded signer refuses any proxy call it cannot name; and through the service, a Permit2
 * settlement whose receipt comes late answers pending, is finished in the background, and its
 * success is handed out once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import {
  EXACT_PERMIT2_PROXY_ADDRESS,
  PERMIT2_ADDRESS,
  encodePermit2Settle,
  erc20PermitAbi,
  exactEvmClient,
  keccak256Hex,
  permit2PaymentKey,
  type ExactPermit2Payload,
} from "@tollgate/evm";
import { createPublicClient, createWalletClient, http, toFunctionSelector, maxUint256, type Address, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import type { PaymentRequirements } from "@tollgate/core";
import { createLedger, type Ledger } from "../src/ledger/ledger.ts";
import type { PaymentEntry } from "../src/ledger/types.ts";
import { createReconciler } from "../src/reconciler.ts";
import { startFacilitator } from "../src/start.ts";
import { extensionTransaction, settle, settleUntilFinal } from "./settlement-helpers.ts";
import { guardedSigner, paymentsIn, type FeePayer } from "../src/schemes/evm-signer.ts";
import { allSignerLeases } from "../src/signer-leases.ts";

let net: RunningLocalNetwork;
let chain: PublicClient;
let ledger: Ledger;
let feePayer: FeePayer;
const AMOUNT = 4000n;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 2 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  ledger = await createLedger();
  for (const p of net.accounts.payers) {
    const wallet = createWalletClient({ account: privateKeyToAccount(p.privateKey), chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
    const hash = await wallet.writeContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "approve", args: [PERMIT2_ADDRESS, maxUint256] });
    await chain.waitForTransactionReceipt({ hash });
  }
  const account = privateKeyToAccount(net.accounts.facilitator.privateKey);
  feePayer = { account, address: account.address.toLowerCase(), lanes: new Map() };
}, 120_000);

afterAll(async () => {
  await ledger?.close();
  await net?.stop();
});

const balance = (who: Address) => chain.readContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "balanceOf", args: [who] });

interface Payment {
  key: string;
  data: Hex;
  entry: PaymentEntry;
  payer: Address;
}

async function payment(payerIndex = 0): Promise<Payment & { body: string }> {
  const req: PaymentRequirements = {
    scheme: "exact",
    network: net.network,
    amount: AMOUNT.toString(),
    asset: net.plainToken.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 300,
    extra: { name: net.plainToken.name, version: net.plainToken.version, assetTransferMethod: "permit2" },
  };
  const payer = privateKeyToAccount(net.accounts.payers[payerIndex]!.privateKey);
  const p = (await exactEvmClient({ account: payer }).createPayload(req, { x402Version: 2 })) as unknown as ExactPermit2Payload;
  const a = p.permit2Authorization;
  const key = permit2PaymentKey(net.network, net.plainToken.address, a.from, a.nonce);
  const entry: PaymentEntry = {
    key,
    network: net.network,
    scheme: "exact",
    asset: net.plainToken.address,
    payer: a.from.toLowerCase(),
    payee: req.payTo,
    amount: req.amount,
    nonce: a.nonce,
    requestHash: `h-${key}`,
  };
  const body = JSON.stringify({ x402Version: 2, paymentPayload: { x402Version: 2, accepted: req, payload: p }, paymentRequirements: req });
  return { key, data: encodePermit2Settle(a, p.signature), entry, payer: payer.address, body };
}

const clientFor = () => chain;
const signer = () => guardedSigner(feePayer, { leases: allSignerLeases([feePayer.address]), ledger, clientFor });

/** Claims the row, signs the proxy call through the guarded signer (written ahead), optionally broadcasts it, then "dies" (claim released). */
async function writeAhead(p: Payment, opts: { broadcast: boolean; gas?: bigint; data?: Hex }): Promise<{ hash: Hex; nonce: number }> {
  expect(await ledger.claim(p.entry, `tok-${p.key}`, 60_000)).toEqual({ claimed: true });
  const nonce = await chain.getTransactionCount({ address: feePayer.account.address, blockTag: "pending" });
  const fees = await chain.estimateFeesPerGas();
  const serialized = await signer().signTransaction({ type: "eip1559", chainId: net.chainId, nonce, to: EXACT_PERMIT2_PROXY_ADDRESS, data: opts.data ?? p.data, gas: opts.gas ?? 300_000n, ...fees });
  const hash = keccak256Hex(serialized);
  if (opts.broadcast) await chain.sendRawTransaction({ serializedTransaction: serialized });
  await ledger.releaseClaims();
  return { hash, nonce };
}

function reconciler(dropAfterMs = 0) {
  return createReconciler({ ledger, clientFor, intervalMs: 60_000, dropAfterMs });
}

describe("Permit2 in the durable settlement path", () => {
  it("the guarded signer names a proxy call's payment by its settle-once key, and refuses a proxy call it cannot name", async () => {
    const p = await payment();
    expect(paymentsIn(net.network, EXACT_PERMIT2_PROXY_ADDRESS, p.data)).toEqual([p.key]);
    expect(paymentsIn(net.network, EXACT_PERMIT2_PROXY_ADDRESS.toLowerCase(), p.data)).toEqual([p.key]);
    // Another function of the proxy (its PERMIT2() getter), and a settle call cut short.
    const other = toFunctionSelector("PERMIT2()");
    expect(() => paymentsIn(net.network, EXACT_PERMIT2_PROXY_ADDRESS, p.data.slice(0, 200) as Hex)).toThrow(/unexpected call of the x402 exact Permit2 proxy/);
    expect(() => paymentsIn(net.network, EXACT_PERMIT2_PROXY_ADDRESS, other)).toThrow(/unexpected call of the x402 exact Permit2 proxy/);
    expect(() => paymentsIn(net.network, EXACT_PERMIT2_PROXY_ADDRESS, "0xdeadbeef")).toThrow(/unexpected call/);
    // A proxy call sent anywhere but the proxy is read as EIP-3009 and refused.
    expect(() => paymentsIn(net.network, net.plainToken.address, p.data)).toThrow();
    // The signer refuses before anything is signed or recorded.
    const fees = await chain.estimateFeesPerGas();
    await expect(signer().signTransaction({ type: "eip1559", chainId: net.chainId, nonce: 0, to: EXACT_PERMIT2_PROXY_ADDRESS, data: other, gas: 100_000n, ...fees })).rejects.toThrow(/unexpected call/);
  });

  it("sent, then the process died: the reconciler finds the proxy's Settled and the token's Transfer and settles the row", async () => {
    const p = await payment();
    const payeeBefore = await balance(net.accounts.payee.address);
    const { hash } = await writeAhead(p, { broadcast: true });
    expect((await chain.waitForTransactionReceipt({ hash })).status).toBe("success");
    expect(await ledger.get(p.key)).toMatchObject({ status: "pending", transaction: hash });
    expect(await reconciler().runOnce()).toBe(1);
    expect(await ledger.get(p.key)).toMatchObject({ status: "settled", transaction: hash, response: { success: true, transaction: hash } });
    expect(await balance(net.accounts.payee.address)).toBe(payeeBefore + AMOUNT);
  });

  it("sent and mined but reverted (its Permit2 nonce was used first): failed, and nothing moved for it", async () => {
    const p = await payment();
    // Someone else (the payer's own key here: anyone may call the proxy) settles the same signature first.
    const wallet = createWalletClient({ account: privateKeyToAccount(net.accounts.payers[0]!.privateKey), chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
    await chain.waitForTransactionReceipt({ hash: await wallet.sendTransaction({ to: EXACT_PERMIT2_PROXY_ADDRESS, data: p.data }) });
    const payerBefore = await balance(p.payer);
    // Explicit gas: sent without simulation, so it is mined and reverts.
    const { hash } = await writeAhead(p, { broadcast: true, gas: 200_000n });
    expect((await chain.waitForTransactionReceipt({ hash })).status).toBe("reverted");
    expect(await reconciler().runOnce()).toBe(1);
    const row = await ledger.get(p.key);
    expect(row).toMatchObject({ status: "failed", response: { success: false, errorReason: "invalid_transaction_state" } });
    expect(await balance(p.payer)).toBe(payerBefore);
  });

  it("written ahead, never sent, its nonce used elsewhere, the Permit2 nonce used by someone else: failed with permit2_invalid_nonce", async () => {
    const p = await payment(1);
    const { nonce } = await writeAhead(p, { broadcast: false });
    const payerWallet = createWalletClient({ account: privateKeyToAccount(net.accounts.payers[1]!.privateKey), chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
    await chain.waitForTransactionReceipt({ hash: await payerWallet.sendTransaction({ to: EXACT_PERMIT2_PROXY_ADDRESS, data: p.data }) });
    await useNonce(nonce);
    const r = reconciler(0);
    // First look records "consumed, no receipt"; the second (dropAfterMs later) decides.
    expect(await r.runOnce()).toBe(0);
    expect(await r.runOnce()).toBe(1);
    expect(await ledger.get(p.key)).toMatchObject({ status: "failed", response: { success: false, errorReason: "permit2_invalid_nonce" } });
  });

  it("written ahead, never sent, its nonce used elsewhere, the Permit2 nonce unused: dropped, nothing moved, claimable again", async () => {
    const p = await payment(1);
    const payerBefore = await balance(p.payer);
    const { nonce } = await writeAhead(p, { broadcast: false });
    await useNonce(nonce);
    const r = reconciler(0);
    expect(await r.runOnce()).toBe(0);
    expect(await r.runOnce()).toBe(1);
    const row = await ledger.get(p.key);
    expect(row?.status).toBe("failed");
    expect(row?.response?.errorMessage).toMatch(/dropped/);
    expect(await balance(p.payer)).toBe(payerBefore);
    expect(await ledger.claim({ ...p.entry }, "again", 60_000)).toEqual({ claimed: true });
  });

  it("through the service: a receipt that comes late answers pending, the background finishes it, the success is handed out once", async () => {
    const service = await startFacilitator(
      {
        port: 0,
        logLevel: "silent",
        networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [{ address: net.plainToken.address, name: net.plainToken.name, version: net.plainToken.version, decimals: net.plainToken.decimals }] }],
        // Another key than the tests above use directly: its nonces are the engine's alone.
        privateKeys: [net.accounts.deployer.privateKey],
        settle: { pollMs: 20, waitMs: 300 },
        settlement: { receiptTimeoutMs: 300, reconcileIntervalMs: 100 },
      },
      { ledger },
    );
    try {
      const p = await payment(1);
      const payeeBefore = await balance(net.accounts.payee.address);
      await chain.request({ method: "evm_setAutomine" as never, params: [false] as never });
      let hash: string | undefined;
      try {
        const first = await settle(service.url, p.body);
        expect(first.json).toMatchObject({ success: false, errorReason: "settlement_pending", transaction: "" });
        hash = extensionTransaction(first.json);
        expect(hash).toMatch(/^0x[0-9a-f]{64}$/);
        expect(await ledger.get(p.key)).toMatchObject({ status: "pending", transaction: hash });
        await chain.request({ method: "evm_mine" as never, params: [] as never });
      } finally {
        await chain.request({ method: "evm_setAutomine" as never, params: [true] as never });
      }
      const final = await settleUntilFinal(service.url, p.body, 10_000);
      expect(final).toMatchObject({ success: true, transaction: hash, amount: AMOUNT.toString() });
      expect(await balance(net.accounts.payee.address)).toBe(payeeBefore + AMOUNT);
      const again = (await settle(service.url, p.body)).json;
      expect(again).toMatchObject({ success: false, errorReason: "duplicate_settlement" });
      expect(await balance(net.accounts.payee.address)).toBe(payeeBefore + AMOUNT);
    } finally {
      await service.close();
    }
  }, 60_000);
});

/** The fee payer's `nonce` taken by a 0-ETH self-transfer (what the engine's nonce filler sends). */
async function useNonce(nonce: number): Promise<void> {
  const wallet = createWalletClient({ account: feePayer.account, chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
  const hash = await wallet.sendTransaction({ to: feePayer.account.address, value: 0n, nonce });
  await chain.waitForTransactionReceipt({ hash });
}
