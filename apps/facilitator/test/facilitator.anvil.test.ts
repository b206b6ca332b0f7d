/**
 * The facilitator service end to end on a real anvil chain: config → EVM exact scheme →
 * HTTP verify and settle with balances checked, and one payload settled 50 times at once
 * moving money exactly once and answered with a success exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PaymentPayload, PaymentRequirements } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { exactEvmClient, eip3009Abi } from "@tollgate/evm";
import { createPublicClient, http, type Address, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { startFacilitator, type RunningFacilitator } from "../src/start.ts";

let net: RunningLocalNetwork;
let chain: PublicClient;
let service: RunningFacilitator;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 2 });
  chain = createPublicClient({ transport: http(net.rpcUrl) });
  service = await startFacilitator({
    port: 0,
    logLevel: "silent",
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [{ address: net.usdc.address, name: net.usdc.name, version: net.usdc.version, decimals: net.usdc.decimals }] }],
    privateKeys: [net.accounts.facilitator.privateKey],
    settle: { pollMs: 25 },
  });
}, 120_000);

afterAll(async () => {
  await service?.close();
  await net?.stop();
});

function requirements(amount: string): PaymentRequirements {
  return {
    scheme: "exact",
    network: net.network,
    amount,
    asset: net.usdc.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 120,
    extra: { name: net.usdc.name, version: net.usdc.version },
  };
}

async function signedBody(payerIndex: number, amount: string) {
  const q = requirements(amount);
  const client = exactEvmClient({ account: privateKeyToAccount(net.accounts.payers[payerIndex]!.privateKey) });
  const paymentPayload: PaymentPayload = { x402Version: 2, accepted: q, payload: await client.createPayload(q, { x402Version: 2 }) };
  return JSON.stringify({ x402Version: 2, paymentPayload, paymentRequirements: q });
}

const post = (path: string, body: string) => fetch(`${service.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body });
const balance = (a: Address) => chain.readContract({ address: net.usdc.address, abi: eip3009Abi, functionName: "balanceOf", args: [a] }) as Promise<bigint>;

describe("facilitator service on anvil", () => {
  it("advertises the chain and is ready", async () => {
    const supported = await (await fetch(`${service.url}/supported`)).json();
    expect(supported.kinds).toContainEqual({ x402Version: 2, scheme: "exact", network: net.network });
    expect(supported.signers["eip155:*"]).toEqual([net.accounts.facilitator.address]);
    expect(supported.extensions).toContain("payment-identifier");
    const ready = await fetch(`${service.url}/ready`);
    expect(await ready.json()).toEqual({ ready: true, checks: { store: "ok", [`chain:${net.network}`]: "ok", [`signers:${net.network}`]: "ok" } });
  });

  it("verify + settle over HTTP moves exactly the amount", async () => {
    const payer = net.accounts.payers[0]!.address;
    const payee = net.accounts.payee.address;
    const [payerBefore, payeeBefore] = [await balance(payer), await balance(payee)];
    const body = await signedBody(0, "12345");
    const v = await post("/verify", body);
    expect(v.status).toBe(200);
    expect(await v.json()).toEqual({ isValid: true, payer });
    const s = await post("/settle", body);
    expect(s.status).toBe(200);
    const settled = await s.json();
    expect(settled).toMatchObject({ success: true, network: net.network, payer });
    const receipt = await chain.getTransactionReceipt({ hash: settled.transaction });
    expect(receipt.status).toBe("success");
    expect(await balance(payer)).toBe(payerBefore - 12345n);
    expect(await balance(payee)).toBe(payeeBefore + 12345n);
  });

  it("one payload settled 50 times concurrently: one transfer, one success, 49 duplicate_settlement", async () => {
    const payee = net.accounts.payee.address;
    const signerAddress = net.accounts.facilitator.address;
    const [payeeBefore, txCountBefore] = [await balance(payee), await chain.getTransactionCount({ address: signerAddress })];
    const body = await signedBody(1, "777");
    const responses = await Promise.all(Array.from({ length: 50 }, () => post("/settle", body)));
    const answers = await Promise.all(responses.map((r) => r.json()));
    expect(responses.map((r) => r.status)).toEqual(Array(50).fill(200));
    const [settled, ...others] = [...answers.filter((a) => a.success), ...answers.filter((a) => !a.success)];
    expect(answers.filter((a) => a.success)).toHaveLength(1);
    for (const o of others) expect(o).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: "", extensions: { "tollgate-settlement": { status: "settled", transaction: settled.transaction } } });
    expect(await balance(payee)).toBe(payeeBefore + 777n);
    expect(await chain.getTransactionCount({ address: signerAddress })).toBe(txCountBefore + 1);

    // And once more later: refused, no new transaction.
    expect(await (await post("/settle", body)).json()).toMatchObject({ success: false, errorReason: "duplicate_settlement" });
    expect(await balance(payee)).toBe(payeeBefore + 777n);

    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`tollgate_signer_balance\\{network="${net.network}",address="${signerAddress}"\\} [1-9][0-9]*`));
    expect(metrics).toMatch(/tollgate_settle_total\{result="failure",reason="duplicate_settlement"\} 50/);
  });
});
