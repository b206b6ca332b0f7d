// The A2A client takes a mandate the way wrapFetch and the MCP client do (an `authorizer` in its
// payment client options), on a real local chain: anvil with our USD Coin (@tollgate/devnet), our
// facilitator service over HTTP, the exact EVM scheme, the SDK's JSON-RPC merchant on a real port.
// A skill inside the mandate is paid with the chain in the payload and its hash as the EIP-3009
// nonce, which is the nonce the token marks used on chain; a skill outside it is refused before
// the signer is asked for anything, the merchant is told `payment-rejected`, and nothing moves.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPublicClient, erc20Abi, http, parseAbi, parseEventLogs, type Address, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { TaskState, type SendMessageRequest, type Task } from "@a2a-js/sdk";
import type { Network, PaymentPayload } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { exactEvmClient, exactEvmServer } from "@tollgate/evm";
import { getPaymentReceipt, Meta, PaymentStatus, readReceipts, wrapA2aClient } from "@tollgate/a2a";
import { startTollgateFacilitator, type TollgateFacilitator } from "../../../test/support/tollgate.ts";
import { imageOf, startMerchant, userMessage, type Merchant } from "../../a2a/test/support/merchant.ts";
import { AP2_MANDATE, issueOpenMandate, mandateChainHash, mandateWallet, MandateRefusedError, splitChain, type OpenMandateConstraints } from "../src/index.ts";
import { testKeys } from "./helpers.ts";

const PRICE = 10_000n; // $0.01 in 6-decimal USD Coin
const STRANGER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906" as Address;
const AUTHORIZATION_USED = parseAbi(["event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)"]);

const dir = mkdtempSync(join(tmpdir(), "tollgate-mandate-a2a-"));
let net: RunningLocalNetwork;
let chain: PublicClient;
let facilitator: TollgateFacilitator;
let merchant: Merchant;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 2 });
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
  rmSync(dir, { recursive: true, force: true });
});

const balanceOf = (owner: Address) => chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [owner] });

/** Payer `i`'s exact EVM scheme, with a spy on the account's signer (the only thing that signs). */
function signerFor(i: number) {
  const account = privateKeyToAccount(net.accounts.payers[i]!.privateKey);
  const signTypedData = vi.fn(account.signTypedData);
  return { address: account.address, scheme: exactEvmClient({ account: { address: account.address, signTypedData: signTypedData as typeof account.signTypedData } }), signTypedData };
}

/** A wallet under an open mandate for USD Coin on the local chain; `over` narrows it. */
async function wallet(over: Partial<OpenMandateConstraints> = {}) {
  const { user, agent } = await testKeys();
  const constraints: OpenMandateConstraints = {
    allowedPayees: [net.accounts.payee.address],
    allowedAssets: [{ network: net.network, asset: net.usdc.address, usdDecimals: net.usdc.decimals }],
    amountRange: { currency: "USD", max: "0.05" },
    budget: { currency: "USD", max: "1" },
    ...over,
  };
  const open = await issueOpenMandate({ userKey: user.privateJwk, agentPublicJwk: agent.publicJwk, constraints, expiresAt: Math.floor(Date.now() / 1000) + 3600 });
  return mandateWallet({ open, userPublicJwk: user.publicJwk, agentKey: agent, store: join(dir, `${Math.random()}.json`) });
}

/** The merchant's A2A client, recording every message the wrapper sends. */
async function recordingClient() {
  const client = await merchant.client();
  const sent: SendMessageRequest[] = [];
  const send = client.sendMessage.bind(client);
  client.sendMessage = ((params: SendMessageRequest, options?: unknown) => (sent.push(params), send(params, options as never))) as typeof client.sendMessage;
  return { client, sent };
}

describe("A2A client with an AP2 mandate (anvil, our facilitator, exact EVM)", () => {
  it("pays a skill inside the mandate: the payload carries the chain, its hash is the nonce used on chain", async () => {
    const signer = signerFor(0);
    const payee = net.accounts.payee.address;
    const before = { payer: await balanceOf(signer.address), payee: await balanceOf(payee) };
    const mandate = await wallet();
    const agent = wrapA2aClient(await merchant.client(), { schemes: [signer.scheme], authorizer: mandate });

    const task = (await agent.sendMessage(userMessage("a cat"))) as Task;
    expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(JSON.stringify(task.artifacts)).toContain(imageOf("a cat"));
    expect(signer.signTypedData).toHaveBeenCalledTimes(1);

    const payload = getPaymentReceipt(task)!.payload as PaymentPayload;
    const info = (payload.extensions?.[AP2_MANDATE] as { info: { chain: string } }).info;
    const parts = splitChain(info.chain)!;
    expect(parts).toBeDefined();
    const nonce = mandateChainHash(parts.open, parts.closed);
    expect((payload.payload as { authorization: { nonce: string } }).authorization.nonce).toBe(nonce);

    const receipts = readReceipts(task);
    expect(receipts).toMatchObject([{ success: true, network: net.network }]);
    const tx = await chain.getTransactionReceipt({ hash: receipts[0]!.transaction as Hex });
    expect(tx.status).toBe("success");
    const used = parseEventLogs({ abi: AUTHORIZATION_USED, logs: tx.logs, eventName: "AuthorizationUsed" });
    expect(used.map((l) => [l.args.authorizer.toLowerCase(), l.args.nonce])).toEqual([[signer.address.toLowerCase(), nonce]]);
    expect(await balanceOf(signer.address)).toBe(before.payer - PRICE);
    expect(await balanceOf(payee)).toBe(before.payee + PRICE);
    // The settled payment is committed against the mandate's budget (in its store, shared across processes).
    const spent = await mandate.store.spent((await mandate.mandate()).jti, 0);
    expect(spent).toMatchObject({ reserved: 0n, occurrences: 1 });
    expect(spent.committed).toBeGreaterThan(0n);
  });

  it.each([
    ["a payee outside allowed_payees", { allowedPayees: [STRANGER] }, { constraint: "payment.allowed_payees", code: "payee_not_allowed" }],
    ["an amount over the per-payment range", { amountRange: { currency: "USD" as const, max: "0.005" } }, { constraint: "payment.amount_range" }],
  ])("refuses %s with MandateRefusedError before signing, tells the merchant payment-rejected, and nothing moves", async (_what, over, expected) => {
    const signer = signerFor(1);
    const payee = net.accounts.payee.address;
    const before = { payer: await balanceOf(signer.address), payee: await balanceOf(payee), block: await chain.getBlockNumber({ cacheTime: 0 }) };
    const { client, sent } = await recordingClient();
    const agent = wrapA2aClient(client, { schemes: [signer.scheme], authorizer: await wallet(over) });

    const error = await agent.sendMessage(userMessage("a dog")).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(MandateRefusedError);
    expect(error).toMatchObject(expected);
    expect((error as Error).message).toContain(expected.constraint);
    expect(signer.signTypedData).not.toHaveBeenCalled();

    // The task asking for payment, then the wrapper's payment-rejected on it: no payload was ever sent.
    expect(sent).toHaveLength(2);
    expect(sent[1]!.message?.metadata?.[Meta.status]).toBe(PaymentStatus.rejected);
    expect(sent.some((p) => p.message?.metadata?.[Meta.payload] !== undefined)).toBe(false);

    expect(await balanceOf(signer.address)).toBe(before.payer);
    expect(await balanceOf(payee)).toBe(before.payee);
    const logs = await chain.getLogs({ address: net.usdc.address, event: AUTHORIZATION_USED[0], args: { authorizer: signer.address }, fromBlock: 0n });
    expect(logs).toEqual([]);
  });
});
