// Paid A2A tasks on a real local chain: anvil with our USD Coin (@tollgate/devnet), our
// facilitator service over HTTP (real ledger, real settlement), the exact EVM scheme on both
// sides, and the SDK's express JSON-RPC merchant on a real HTTP port. The money must move
// exactly once per result.
import { createPublicClient, erc20Abi, http, type Address, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState, type Task } from "@a2a-js/sdk";
import type { Network } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { exactEvmClient, exactEvmServer } from "@tollgate/evm";
import { ErrorCode, getPaymentReceipt, Meta, paymentMessage, PaymentRefusedError, PaymentStatus, readPaymentError, readPaymentRequired, readReceipts, spendingPolicy, wrapA2aClient, X402_EXTENSION_URI_V01 } from "@tollgate/a2a";
import { startTollgateFacilitator, type TollgateFacilitator } from "../../../test/support/tollgate.ts";
import { imageOf, startMerchant, userMessage, type Merchant } from "./support/merchant.ts";

const PRICE = 10_000n; // $0.01 in 6-decimal USD Coin

let net: RunningLocalNetwork;
let chain: PublicClient;
let facilitator: TollgateFacilitator;
let merchant: Merchant;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 3 });
  chain = createPublicClient({ transport: http(net.rpcUrl) });
  facilitator = await startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, privateKey: net.accounts.facilitator.privateKey });
  const usdc = net.usdc;
  merchant = await startMerchant({
    facilitator: facilitator.url,
    schemes: [exactEvmServer({ assets: [{ network: net.network as Network, address: usdc.address, decimals: usdc.decimals, name: usdc.name, version: usdc.version, symbol: "USDC" }] })],
    price: { price: "$0.01", network: net.network as Network, payTo: net.accounts.payee.address, description: "Generate an image", mimeType: "image/png" },
    paywall: { settlementTimeoutMs: 60_000, settlementPollMs: 200 },
  });
});

afterAll(async () => {
  await merchant?.close();
  await facilitator?.close();
  await net?.stop();
});

const balanceOf = (owner: Address) => chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [owner] });
const ACTIVATE = { serviceParameters: { "X-A2A-Extensions": X402_EXTENSION_URI_V01 } };

function payerFor(i: number, maxPerRequest = "$0.05") {
  const key = net.accounts.payers[i]!;
  const scheme = exactEvmClient({ account: privateKeyToAccount(key.privateKey) });
  let signed = 0;
  const counting = { ...scheme, createPayload: (...a: Parameters<typeof scheme.createPayload>) => (signed++, scheme.createPayload(...a)) };
  const policy = spendingPolicy({ maxPerRequest, budget: "$1", networks: [net.network], usdAssets: [{ network: net.network, asset: net.usdc.address, decimals: net.usdc.decimals }] });
  return { address: key.address, schemes: [counting], policy, signed: () => signed };
}

describe("paid A2A task on a local chain (anvil, our facilitator, exact EVM)", () => {
  it("settles the price on chain once, delivers the output, and a replayed payment gets no second output", async () => {
    const payer = payerFor(0);
    const payee = net.accounts.payee.address;
    const before = { payer: await balanceOf(payer.address), payee: await balanceOf(payee) };
    const agent = wrapA2aClient(await merchant.client(), payer);

    const task = (await agent.sendMessage(userMessage("a cat"))) as Task;
    expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(JSON.stringify(task.artifacts)).toContain(imageOf("a cat"));
    const receipts = readReceipts(task);
    expect(receipts).toHaveLength(1);
    expect(receipts[0]).toMatchObject({ success: true, network: net.network });
    expect(getPaymentReceipt(task)?.receipt?.transaction).toBe(receipts[0]!.transaction);
    const tx = await chain.getTransactionReceipt({ hash: receipts[0]!.transaction as Hex });
    expect(tx.status).toBe("success");
    expect(await balanceOf(payer.address)).toBe(before.payer - PRICE);
    expect(await balanceOf(payee)).toBe(before.payee + PRICE);
    expect(payer.policy.spent().usd).toBe("0.01");

    // The same signed payment on a new task: our facilitator sees the nonce used on chain at /verify.
    const client = await merchant.client();
    const second = (await client.sendMessage(userMessage("a horse"), ACTIVATE)) as Task;
    expect(readPaymentRequired(second)).toBeDefined();
    const replay = (await client.sendMessage(
      { ...userMessage(""), message: paymentMessage(second, PaymentStatus.submitted, "Here is the payment authorization.", { [Meta.payload]: getPaymentReceipt(task)!.payload }) },
      ACTIVATE,
    )) as Task;
    expect(replay.status?.state).toBe(TaskState.TASK_STATE_FAILED);
    expect(readPaymentError(replay)).toBe(ErrorCode.duplicateNonce);
    expect(JSON.stringify(replay)).not.toContain(imageOf("a horse"));
    expect(await balanceOf(payer.address)).toBe(before.payer - PRICE);
  });

  it("refuses a price over the policy before anything is signed, and nothing moves", async () => {
    const payer = payerFor(1, "$0.001");
    const before = await balanceOf(payer.address);
    await expect(wrapA2aClient(await merchant.client(), payer).sendMessage(userMessage("a cat"))).rejects.toBeInstanceOf(PaymentRefusedError);
    expect(payer.signed()).toBe(0);
    expect(await balanceOf(payer.address)).toBe(before);
  });
});
