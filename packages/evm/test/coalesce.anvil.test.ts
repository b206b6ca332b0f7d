// Concurrent verifications on a real anvil share aggregate3 eth_calls, and each still gets its
// own correct verdict: valid, insufficient funds, used nonce, duplicates, bad signatures; an
// eth_call failing as a whole answers unexpected_verify_error to every verify in it.
import { Reason, type PaymentPayload, type PaymentRequirements } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { createPublicClient, http, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exactEvmClient, exactEvmFacilitator, type ExactEvmPayload } from "../src/index.ts";

let net: RunningLocalNetwork;
beforeAll(async () => {
  net = await startLocalNetwork({ payers: 4 });
});
afterAll(async () => {
  await net?.stop();
});

function requirements(): PaymentRequirements {
  return {
    scheme: "exact",
    network: net.network,
    amount: "10000",
    asset: net.usdc.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 60,
    extra: { name: net.usdc.name, version: net.usdc.version },
  };
}

async function sign(privateKey = generatePrivateKey()): Promise<PaymentPayload> {
  const payload = await exactEvmClient({ account: privateKeyToAccount(privateKey) }).createPayload(requirements(), { x402Version: 2 });
  return { x402Version: 2, accepted: requirements(), payload };
}

/** A public client that counts eth_calls and can be told to fail them. */
function countingClient() {
  const state = { ethCalls: 0, failEthCall: false };
  const transport = http(net.rpcUrl);
  const client = createPublicClient({
    transport: (opts) => {
      const t = transport({ ...opts, retryCount: 0 });
      return {
        ...t,
        request: (async (args: { method: string }) => {
          if (args.method === "eth_call") {
            state.ethCalls++;
            if (state.failEthCall) throw new Error("node unavailable");
          }
          return t.request(args as never);
        }) as typeof t.request,
      };
    },
  });
  return { client: client as PublicClient, state };
}

describe("coalesced verification", () => {
  it("100 concurrent verifies take far fewer eth_calls, each with its own verdict", async () => {
    const { client, state } = countingClient();
    const signer = privateKeyToAccount(net.accounts.facilitator.privateKey);
    const f = exactEvmFacilitator({ networks: [{ network: net.network, publicClient: client, assets: [net.usdc] }], signer });
    const payers = net.accounts.payers.map((p) => p.privateKey);

    const spent = await sign(payers[0]);
    expect(await f.settle(spent, requirements())).toMatchObject({ success: true });
    const duplicate = await sign(payers[1]);
    const valid = await Promise.all(Array.from({ length: 60 }, (_, i) => sign(payers[i % payers.length])));
    const poor = await Promise.all(Array.from({ length: 15 }, () => sign()));
    const forged = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const p = await sign();
        const inner = p.payload as unknown as ExactEvmPayload;
        return { ...p, payload: { ...inner, authorization: { ...inner.authorization, from: net.accounts.payers[2]!.address } } } as unknown as PaymentPayload;
      }),
    );
    const cases: [PaymentPayload, string | true][] = [
      ...valid.map((p): [PaymentPayload, true] => [p, true]),
      ...poor.map((p): [PaymentPayload, string] => [p, Reason.insufficientFunds]),
      ...Array.from({ length: 10 }, (): [PaymentPayload, string] => [spent, Reason.evmNonceUsed]),
      ...Array.from({ length: 10 }, (): [PaymentPayload, true] => [duplicate, true]),
      ...forged.map((p): [PaymentPayload, string] => [p, Reason.evmSignature]),
    ];
    // Interleave so every batch mixes kinds.
    cases.sort((a, b) => ((a[0].payload as unknown as ExactEvmPayload).signature < (b[0].payload as unknown as ExactEvmPayload).signature ? -1 : 1));
    expect(cases).toHaveLength(100);

    state.ethCalls = 0;
    const results = await Promise.all(cases.map(([p]) => f.verify(p, requirements())));
    results.forEach((r, i) => {
      const [p, expected] = cases[i]!;
      const from = (p.payload as unknown as ExactEvmPayload).authorization.from;
      if (expected === true) expect(r, r.invalidMessage).toEqual({ isValid: true, payer: from });
      else expect(r, r.invalidMessage).toMatchObject({ isValid: false, invalidReason: expected, payer: from });
    });
    expect(state.ethCalls).toBeGreaterThan(0);
    expect(state.ethCalls).toBeLessThanOrEqual(10);

    // The same payloads one by one agree with the batched verdicts.
    for (const i of [0, 1, 2, 50, 99]) expect(await f.verify(cases[i]![0], requirements())).toEqual(results[i]);
  });

  it("a payer's second authorization is judged as if alone when the first exhausts the balance", async () => {
    const { client, state } = countingClient();
    const f = exactEvmFacilitator({ networks: [{ network: net.network, publicClient: client, assets: [net.usdc] }], signer: privateKeyToAccount(net.accounts.facilitator.privateKey) });
    // A payer holding exactly one payment: two different authorizations are each valid alone.
    const key = generatePrivateKey();
    const a = await sign(key);
    const fund = exactEvmFacilitator({ networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [net.usdc] }], signer: privateKeyToAccount(net.accounts.facilitator.privateKey) });
    const giftReq = { ...requirements(), payTo: privateKeyToAccount(key).address };
    const giftPayload = await exactEvmClient({ account: privateKeyToAccount(net.accounts.payers[3]!.privateKey) }).createPayload(giftReq, { x402Version: 2 });
    expect(await fund.settle({ x402Version: 2, accepted: giftReq, payload: giftPayload }, giftReq)).toMatchObject({ success: true });
    const b = await sign(key);
    state.ethCalls = 0;
    const [ra, rb] = await Promise.all([f.verify(a, requirements()), f.verify(b, requirements())]);
    expect(ra).toMatchObject({ isValid: true });
    expect(rb).toMatchObject({ isValid: true });
    expect(state.ethCalls).toBe(2); // shared batch, then the contended one again alone
  });

  it("maps a failed eth_call to unexpected_verify_error for every waiting verify", async () => {
    const { client, state } = countingClient();
    const f = exactEvmFacilitator({ networks: [{ network: net.network, publicClient: client, assets: [net.usdc] }], signer: privateKeyToAccount(net.accounts.facilitator.privateKey) });
    const payloads = await Promise.all(net.accounts.payers.map((p) => sign(p.privateKey)));
    expect(await f.verify(payloads[0]!, requirements())).toMatchObject({ isValid: true }); // warm: chain id, Multicall3 probe
    state.failEthCall = true;
    state.ethCalls = 0;
    const results = await Promise.all(payloads.map((p) => f.verify(p, requirements())));
    expect(state.ethCalls).toBe(1);
    for (const r of results) expect(r).toMatchObject({ isValid: false, invalidReason: Reason.unexpectedVerifyError, invalidMessage: expect.stringContaining("node unavailable") });
    state.failEthCall = false;
    expect(await f.verify(payloads[1]!, requirements())).toMatchObject({ isValid: true });
  });
});
