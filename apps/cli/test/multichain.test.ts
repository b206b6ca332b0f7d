/**
 * An agent holding an EVM key and a Solana key pays the dev stack's dual route (same $0.01 on
 * anvil and on the local Solana) and the chooser decides the chain: preferNetworks(["solana:*"])
 * pays on Solana, a custom chooser pays on EVM. Each time, exactly the price moves on the
 * chosen chain and nothing moves on the other.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { preferNetworks, spendingPolicy, type Chooser } from "@tollgate/core";
import { eip3009Abi, exactEvmClient } from "@tollgate/evm";
import { getPaymentReceipt, wrapFetch } from "@tollgate/fetch";
import { exactSvmClient } from "@tollgate/svm";
import { createPublicClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { startDevStack, type DevStack } from "../src/stack.ts";

let stack: DevStack;
beforeAll(async () => {
  stack = await startDevStack();
}, 120_000);
afterAll(async () => {
  await stack?.close();
});

const PRICE = 10_000n;

function agent(choose: Chooser) {
  const { chain, solana } = stack;
  return wrapFetch(fetch, {
    schemes: [exactEvmClient({ account: privateKeyToAccount(chain.accounts.payers[0]!.privateKey) }), exactSvmClient({ signer: solana.payer.signer, rpc: solana.url })],
    choose,
    policy: spendingPolicy({
      maxPerRequest: "$0.02",
      usdAssets: [
        { network: chain.network, asset: chain.usdc.address, decimals: 6 },
        { network: solana.network, asset: solana.mint, decimals: 6 },
      ],
    }),
  });
}

async function balances() {
  const { chain, solana } = stack;
  const rpc = createPublicClient({ transport: http(chain.rpcUrl) });
  const evm = (a: `0x${string}`) => rpc.readContract({ address: chain.usdc.address, abi: eip3009Abi, functionName: "balanceOf", args: [a] });
  return {
    evmPayer: await evm(chain.accounts.payers[0]!.address),
    evmPayee: await evm(chain.accounts.payee.address),
    solPayer: solana.tokenBalance(solana.payer.tokenAccount),
    solPayee: solana.tokenBalance(solana.payee.tokenAccount),
  };
}

describe("a client with several keys chooses the chain by policy", () => {
  it("preferNetworks(['solana:*']) pays on Solana; nothing moves on EVM", async () => {
    const before = await balances();
    const res = await agent(preferNetworks(["solana:*"]))(`${stack.apiUrl}/weather`);
    expect(res.status).toBe(200);
    const info = getPaymentReceipt(res);
    expect(info?.receipt).toMatchObject({ success: true, network: stack.solana.network, payer: stack.solana.payer.address });
    const after = await balances();
    expect(before.solPayer - after.solPayer).toBe(PRICE);
    expect(after.solPayee - before.solPayee).toBe(PRICE);
    expect(after.evmPayer).toBe(before.evmPayer);
    expect(after.evmPayee).toBe(before.evmPayee);
  });

  it("a custom chooser (EVM only, cheapest first) pays on EVM; nothing moves on Solana", async () => {
    const evmOnly: Chooser = (options) => options.filter((o) => o.network.startsWith("eip155:")).sort((a, b) => (BigInt(a.amount) < BigInt(b.amount) ? -1 : 1));
    const before = await balances();
    const res = await agent(evmOnly)(`${stack.apiUrl}/weather`);
    expect(res.status).toBe(200);
    expect(getPaymentReceipt(res)?.receipt).toMatchObject({ success: true, network: stack.chain.network });
    const after = await balances();
    expect(before.evmPayer - after.evmPayer).toBe(PRICE);
    expect(after.evmPayee - before.evmPayee).toBe(PRICE);
    expect(after.solPayer).toBe(before.solPayer);
    expect(after.solPayee).toBe(before.solPayee);
  });
});
