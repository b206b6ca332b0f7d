// The settlement engine carrying Permit2 proxy calls on anvil: the same lanes, simulation, hooks
// and receipt following as EIP-3009, one payment per transaction. A call is sent only as the
// payment it describes; a would-be revert is refused with Permit2's reason and costs no gas; a
// receipt counts as settled only with the proxy's Settled log AND the token's own Transfer.
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import type { PaymentRequirements } from "@tollgate/core";
import { createPublicClient, createWalletClient, http, maxUint256, toEventSelector, type Address, type Hex, type Log, type PublicClient, type TransactionReceipt } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  EXACT_PERMIT2_PROXY_ADDRESS,
  PERMIT2_ADDRESS,
  createSettlementEngine,
  encodePermit2Settle,
  engineCallPayment,
  erc20PermitAbi,
  permit2PaymentKey,
  permit2ReceiptSettled,
  signExactPermit2Authorization,
  type ExactPermit2SettlementCall,
  type FinalEvent,
  type SettlementEngine,
} from "../src/index.ts";

let net: RunningLocalNetwork;
let chain: PublicClient;
let engine: SettlementEngine;
const finals: FinalEvent[] = [];

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 1 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  const payer = privateKeyToAccount(net.accounts.payers[0]!.privateKey);
  const wallet = createWalletClient({ account: payer, chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
  await chain.waitForTransactionReceipt({ hash: await wallet.writeContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "approve", args: [PERMIT2_ADDRESS, maxUint256] }) });
  engine = createSettlementEngine({
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, batchSettler: net.batchSettler.address }],
    signers: [net.accounts.facilitator.privateKey],
    receiptTimeoutMs: 10_000,
    onFinal: (e) => void finals.push(e),
  });
});

afterAll(async () => {
  await engine?.close({ timeoutMs: 5_000 });
  await net?.stop();
});

const balance = (who: Address) => chain.readContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "balanceOf", args: [who] });
const sentCount = () => chain.getTransactionCount({ address: net.accounts.facilitator.address });

async function call(amount = 1500n): Promise<ExactPermit2SettlementCall> {
  const req: PaymentRequirements = {
    scheme: "exact",
    network: net.network,
    amount: amount.toString(),
    asset: net.plainToken.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 120,
    extra: { assetTransferMethod: "permit2" },
  };
  const p = await signExactPermit2Authorization(privateKeyToAccount(net.accounts.payers[0]!.privateKey), req);
  const a = p.permit2Authorization;
  return {
    network: net.network,
    asset: net.plainToken.address,
    to: EXACT_PERMIT2_PROXY_ADDRESS,
    data: encodePermit2Settle(a, p.signature),
    key: permit2PaymentKey(net.network, net.plainToken.address, a.from, a.nonce),
    authorization: a,
    signature: p.signature,
  };
}

describe("settlement engine: Permit2 proxy calls", () => {
  it("settles one payment in one proxy call; onFinal names it by its settle-once key", async () => {
    const c = await call();
    const payeeBefore = await balance(net.accounts.payee.address);
    const result = await engine.submitPermit2(c);
    expect(result).toMatchObject({ status: "settled", transaction: expect.stringMatching(/^0x[0-9a-f]{64}$/) });
    expect(await balance(net.accounts.payee.address)).toBe(payeeBefore + 1500n);
    const tx = await chain.getTransaction({ hash: (result as { transaction: Hex }).transaction });
    expect(tx.to?.toLowerCase()).toBe(EXACT_PERMIT2_PROXY_ADDRESS.toLowerCase());
    const final = finals.find((f) => f.transaction === (result as { transaction: Hex }).transaction)!;
    expect(final.items).toHaveLength(1);
    expect(final.items[0]!.status).toBe("success");
    expect(engineCallPayment(net.network, final.items[0]!.call)).toEqual({ key: c.key, payer: c.authorization.from, amount: "1500", permit2: true });
  });

  it("the same call again: refused by the simulation with Permit2's reason, nothing sent", async () => {
    const c = await call();
    expect((await engine.submitPermit2(c)).status).toBe("settled");
    const before = await sentCount();
    expect(await engine.submitPermit2(c)).toMatchObject({ status: "failed", reason: "permit2_invalid_nonce" });
    expect(await engine.submitPermit2(c)).not.toHaveProperty("transaction");
    expect(await sentCount()).toBe(before);
  });

  it("a call that is not the payment it describes is refused, naming the field, and nothing is sent", async () => {
    const c = await call();
    const other = await call(999n);
    const before = await sentCount();
    const payerBefore = await balance(c.authorization.from);
    const cases: Array<[ExactPermit2SettlementCall, RegExp]> = [
      [{ ...c, data: other.data }, /^data: does not settle the payment/],
      [{ ...c, to: net.plainToken.address }, /^to: not the x402 exact Permit2 proxy/],
      [{ ...c, key: other.key }, /^key: /],
      [{ ...c, asset: net.usdc.address }, /^authorization\.permitted\.token: /],
      [{ ...c, data: "0xdeadbeef" }, /^data: not a call of the x402 exact Permit2 proxy/],
      [{ ...c, authorization: { ...c.authorization, permitted: { ...c.authorization.permitted, amount: "-1" } } }, /^authorization\.permitted\.amount: /],
      [{ ...c, authorization: { ...c.authorization, witness: { ...c.authorization.witness, to: "0x1234" as Address } } }, /^authorization\.witness\.to: not an address/],
    ];
    for (const [bad, message] of cases) {
      const r = await engine.submitPermit2(bad);
      expect(r).toMatchObject({ status: "failed", reason: "invalid_payload" });
      expect((r as { message: string }).message).toMatch(message);
    }
    expect(await sentCount()).toBe(before);
    expect(await balance(c.authorization.from)).toBe(payerBefore);
    // The untouched call still settles afterwards.
    expect((await engine.submitPermit2(c)).status).toBe("settled");
  });

  it("a receipt proves the payment only with the proxy's Settled log AND the token's own Transfer", () => {
    const payer = net.accounts.payers[0]!.address;
    const payee = net.accounts.payee.address;
    const pad = (a: string) => `0x${a.slice(2).toLowerCase().padStart(64, "0")}` as Hex;
    const transfer = (emitter: Address, value: bigint) =>
      ({ address: emitter, topics: [toEventSelector("Transfer(address,address,uint256)"), pad(payer), pad(payee)], data: `0x${value.toString(16).padStart(64, "0")}` }) as unknown as Log;
    const settled = (emitter: Address) => ({ address: emitter, topics: [toEventSelector("Settled()")], data: "0x" }) as unknown as Log;
    const receipt = (logs: Log[], status: "success" | "reverted" = "success") => ({ status, logs }) as unknown as TransactionReceipt;
    const payment = { token: net.plainToken.address, from: payer, to: payee, amount: "1500" };
    expect(permit2ReceiptSettled(receipt([settled(EXACT_PERMIT2_PROXY_ADDRESS), transfer(net.plainToken.address, 1500n)]), payment)).toBe(true);
    expect(permit2ReceiptSettled(receipt([settled(EXACT_PERMIT2_PROXY_ADDRESS), transfer(net.plainToken.address, 1500n)], "reverted"), payment)).toBe(false);
    expect(permit2ReceiptSettled(receipt([transfer(net.plainToken.address, 1500n)]), payment)).toBe(false);
    expect(permit2ReceiptSettled(receipt([settled(EXACT_PERMIT2_PROXY_ADDRESS)]), payment)).toBe(false);
    // Forged by another contract, or another amount.
    expect(permit2ReceiptSettled(receipt([settled(net.usdc.address), transfer(net.plainToken.address, 1500n)]), payment)).toBe(false);
    expect(permit2ReceiptSettled(receipt([settled(EXACT_PERMIT2_PROXY_ADDRESS), transfer(net.usdc.address, 1500n)]), payment)).toBe(false);
    expect(permit2ReceiptSettled(receipt([settled(EXACT_PERMIT2_PROXY_ADDRESS), transfer(net.plainToken.address, 1499n)]), payment)).toBe(false);
  });
});
