/**
 * `upto` in the service's durable path, on a real anvil: the guarded signer names an upto proxy
 * call by the payment's settle-once key and writes it ahead; a row whose process "died" after
 * sending is settled by the reconciler from the upto proxy's Settled log and the token's Transfer
 * of the CHARGE (not the signed maximum); and through the service over HTTP: /supported names the
 * facilitator address, a charge below the maximum is settled once, a higher charge for the same
 * permit is refused as another payload, above the maximum is refused, zero sends nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { PERMIT2_ADDRESS, UPTO_PERMIT2_PROXY_ADDRESS, encodeUptoSettle, erc20PermitAbi, keccak256Hex, permit2PaymentKey, uptoEvmClient, type UptoPermit2Payload } from "@tollgate/evm";
import { createPublicClient, createWalletClient, http, maxUint256, type Address, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import type { PaymentRequirements } from "@tollgate/core";
import { createLedger, type Ledger } from "../src/ledger/ledger.ts";
import type { PaymentEntry } from "../src/ledger/types.ts";
import { createReconciler } from "../src/reconciler.ts";
import { startFacilitator } from "../src/start.ts";
import { settle } from "./settlement-helpers.ts";
import { guardedSigner, paymentsIn, type FeePayer } from "../src/schemes/evm-signer.ts";
import { allSignerLeases } from "../src/signer-leases.ts";

let net: RunningLocalNetwork;
let chain: PublicClient;
let ledger: Ledger;
const MAX = 5000n;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 2 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  ledger = await createLedger();
  for (const p of net.accounts.payers) {
    const wallet = createWalletClient({ account: privateKeyToAccount(p.privateKey), chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
    await chain.waitForTransactionReceipt({ hash: await wallet.writeContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "approve", args: [PERMIT2_ADDRESS, maxUint256] }) });
  }
}, 120_000);

afterAll(async () => {
  await ledger?.close();
  await net?.stop();
});

const balance = (who: Address) => chain.readContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "balanceOf", args: [who] });

function requirements(facilitator: Address, amount = MAX.toString()): PaymentRequirements {
  return {
    scheme: "upto",
    network: net.network,
    amount,
    asset: net.plainToken.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 300,
    extra: { name: net.plainToken.name, version: net.plainToken.version, assetTransferMethod: "permit2", facilitatorAddress: facilitator },
  };
}

async function signed(facilitator: Address, payerIndex = 0) {
  const req = requirements(facilitator);
  const payer = privateKeyToAccount(net.accounts.payers[payerIndex]!.privateKey);
  const p = (await uptoEvmClient({ account: payer }).createPayload(req, { x402Version: 2 })) as unknown as UptoPermit2Payload;
  const a = p.permit2Authorization;
  const key = permit2PaymentKey(net.network, net.plainToken.address, a.from, a.nonce);
  const body = (charge: bigint) => JSON.stringify({ x402Version: 2, paymentPayload: { x402Version: 2, accepted: req, payload: p }, paymentRequirements: { ...req, amount: charge.toString() } });
  return { p, key, payer: payer.address, body };
}

describe("upto in the durable settlement path", () => {
  it("the guarded signer names an upto proxy call by its key; the reconciler settles the row from the charge's Transfer", async () => {
    const account = privateKeyToAccount(net.accounts.facilitator.privateKey);
    const feePayer: FeePayer = { account, address: account.address.toLowerCase(), lanes: new Map() };
    const { p, key } = await signed(account.address);
    const charge = 1234n;
    const data = encodeUptoSettle(p.permit2Authorization, p.signature, charge);
    expect(paymentsIn(net.network, UPTO_PERMIT2_PROXY_ADDRESS, data)).toEqual([key]);
    expect(() => paymentsIn(net.network, UPTO_PERMIT2_PROXY_ADDRESS, data.slice(0, 200) as Hex)).toThrow(/unexpected call of the x402 upto Permit2 proxy/);

    const entry: PaymentEntry = { key, network: net.network, scheme: "upto", asset: net.plainToken.address, payer: p.permit2Authorization.from.toLowerCase(), payee: net.accounts.payee.address, amount: charge.toString(), nonce: p.permit2Authorization.nonce, requestHash: `h-${key}` };
    expect(await ledger.claim(entry, "tok", 60_000)).toEqual({ claimed: true });
    const signer = guardedSigner(feePayer, { leases: allSignerLeases([feePayer.address]), ledger, clientFor: () => chain });
    const nonce = await chain.getTransactionCount({ address: account.address, blockTag: "pending" });
    const serialized = await signer.signTransaction({ type: "eip1559", chainId: net.chainId, nonce, to: UPTO_PERMIT2_PROXY_ADDRESS, data, gas: 300_000n, ...(await chain.estimateFeesPerGas()) });
    const hash = keccak256Hex(serialized);
    const payeeBefore = await balance(net.accounts.payee.address);
    await chain.sendRawTransaction({ serializedTransaction: serialized });
    expect((await chain.waitForTransactionReceipt({ hash })).status).toBe("success");
    await ledger.releaseClaims(); // the process "died"
    expect(await ledger.get(key)).toMatchObject({ status: "pending", transaction: hash });
    expect(await createReconciler({ ledger, clientFor: () => chain, intervalMs: 60_000, dropAfterMs: 0 }).runOnce()).toBe(1);
    expect(await ledger.get(key)).toMatchObject({ status: "settled", transaction: hash });
    expect(await balance(net.accounts.payee.address)).toBe(payeeBefore + charge);
  });

  it("through the service: /supported names the fee payer; charge settled once; more for the same permit, above the maximum, refused; zero sends nothing", async () => {
    const service = await startFacilitator(
      {
        port: 0,
        logLevel: "silent",
        networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [{ address: net.plainToken.address, name: net.plainToken.name, version: net.plainToken.version, decimals: net.plainToken.decimals }] }],
        // Another key than the test above: its nonces are the engine's alone.
        privateKeys: [net.accounts.deployer.privateKey],
      },
      { ledger },
    );
    try {
      const feePayer = privateKeyToAccount(net.accounts.deployer.privateKey).address;
      const supported = (await (await fetch(`${service.url}/supported`)).json()) as { kinds: Array<{ scheme: string; network: string; extra?: Record<string, unknown> }> };
      expect(supported.kinds.find((k) => k.scheme === "upto" && k.network === net.network)?.extra).toEqual({ facilitatorAddress: feePayer });

      const one = await signed(feePayer, 1);
      const payeeBefore = await balance(net.accounts.payee.address);
      const verified = await fetch(`${service.url}/verify`, { method: "POST", headers: { "content-type": "application/json" }, body: one.body(MAX) });
      expect(await verified.json()).toEqual({ isValid: true, payer: one.payer });
      expect((await settle(service.url, one.body(MAX + 1n))).json).toMatchObject({ success: false, errorReason: "invalid_upto_evm_payload_settlement_exceeds_amount" });
      const first = (await settle(service.url, one.body(2000n))).json;
      expect(first).toMatchObject({ success: true, amount: "2000", payer: one.payer });
      expect(await ledger.get(one.key)).toMatchObject({ scheme: "upto", amount: "2000", status: "settled", transaction: first.transaction });
      // Another charge for the same permit is another payload: never a second transfer.
      expect((await settle(service.url, one.body(3000n))).json).toMatchObject({ success: false, errorReason: "invalid_payload_authorization_reused" });
      expect(await balance(net.accounts.payee.address)).toBe(payeeBefore + 2000n);

      const zero = await signed(feePayer, 1);
      const block = await chain.getBlockNumber({ cacheTime: 0 });
      expect((await settle(service.url, zero.body(0n))).json).toEqual({ success: true, transaction: "", network: net.network, payer: zero.payer, amount: "0" });
      expect(await chain.getBlockNumber({ cacheTime: 0 })).toBe(block);
      expect(await balance(net.accounts.payee.address)).toBe(payeeBefore + 2000n);
    } finally {
      await service.close();
    }
  }, 60_000);
});
