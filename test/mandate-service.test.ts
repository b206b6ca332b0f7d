// AP2 mandates end to end on one anvil chain: our agent (wrapFetch + mandateWallet) pays a route
// that requires a mandate through our hono server and facilitator service; the on-chain
// AuthorizationUsed nonce is keccak256 of the mandate chain the payment carried. A route requiring
// mandates refuses a payment without one before anything settles; the official @x402/fetch client
// (no mandates) still pays a route that does not require them.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, erc20Abi, http, keccak256, parseEventLogs, toBytes, type Address, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { PaymentPayload } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { eip3009Abi, exactEvmClient } from "@tollgate/evm";
import { getPaymentReceipt, PaymentFailedError, wrapFetch } from "@tollgate/fetch";
import { generateMandateKey, issueOpenMandate, mandateWallet, MandateRefusedError, type MandateKeyPair } from "@tollgate/mandates";
import { officialFetch, readPaymentResponse } from "./support/official.ts";
import { startTollgateFacilitator, startTollgateServer, type TollgateFacilitator, type TollgateServer } from "./support/tollgate.ts";

const PRICE = "20000"; // $0.02

let net: RunningLocalNetwork;
let chain: PublicClient;
let facilitator: TollgateFacilitator;
let mandated: TollgateServer;
let plain: TollgateServer;
let user: MandateKeyPair;
let agent: MandateKeyPair;
const dir = mkdtempSync(join(tmpdir(), "tollgate-mandate-service-"));

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 3 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  [user, agent] = await Promise.all([generateMandateKey(), generateMandateKey()]);
  facilitator = await startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, privateKey: net.accounts.facilitator.privateKey });
  const payTo = net.accounts.payee.address;
  mandated = await startTollgateServer({
    facilitatorUrl: facilitator.url, network: net.network, usdc: net.usdc, payTo, price: PRICE, framework: "hono", path: "/mandated",
    route: { mandate: { required: true, trustedIssuers: [user.publicJwk] } },
  });
  plain = await startTollgateServer({ facilitatorUrl: facilitator.url, network: net.network, usdc: net.usdc, payTo, price: PRICE, framework: "hono", path: "/plain" });
}, 120_000);

afterAll(async () => {
  await mandated?.close();
  await plain?.close();
  await facilitator?.close();
  await net?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const usdcBalance = (who: Address) => chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [who] });
const errorOf = (res: Response) => {
  const h = res.headers.get("PAYMENT-REQUIRED");
  return h ? ((JSON.parse(Buffer.from(h, "base64").toString("utf8")) as { error?: string }).error ?? "") : "";
};

async function agentFetch(payer: number, allowedPayees: string[] = [net.accounts.payee.address]) {
  const open = await issueOpenMandate({
    userKey: user.privateJwk,
    agentPublicJwk: agent.publicJwk,
    constraints: {
      allowedPayees,
      allowedAssets: [{ network: net.network, asset: net.usdc.address, usdDecimals: net.usdc.decimals }],
      amountRange: { currency: "USD", max: "0.05" },
      budget: { currency: "USD", max: "0.20", periodSeconds: 86_400 },
    },
    expiresAt: Math.floor(Date.now() / 1000) + 3600,
  });
  const wallet = mandateWallet({ open, userPublicJwk: user.publicJwk, agentKey: agent, store: join(dir, `budget-${payer}.json`) });
  return wrapFetch(fetch, { schemes: [exactEvmClient({ account: privateKeyToAccount(net.accounts.payers[payer]!.privateKey) })], authorizer: wallet });
}

describe("AP2 mandates over x402 (anvil)", () => {
  it("advertises ap2-mandate in the 402 of a route that requires it, and not on others", async () => {
    const a = JSON.parse(Buffer.from((await fetch(mandated.paidUrl)).headers.get("PAYMENT-REQUIRED")!, "base64").toString()) as { extensions: Record<string, unknown> };
    expect(a.extensions["ap2-mandate"]).toMatchObject({ info: { required: true } });
    const b = JSON.parse(Buffer.from((await fetch(plain.paidUrl)).headers.get("PAYMENT-REQUIRED")!, "base64").toString()) as { extensions: Record<string, unknown> };
    expect(b.extensions["ap2-mandate"]).toBeUndefined();
  });

  it("pays a mandate-required route; the on-chain AuthorizationUsed nonce is keccak256 of the mandate chain", async () => {
    const paidFetch = await agentFetch(0);
    const before = await usdcBalance(net.accounts.payee.address);
    const res = await paidFetch(mandated.paidUrl);
    expect(res.status).toBe(200);
    const info = getPaymentReceipt(res)!;
    const chainText = ((info.payload as PaymentPayload).extensions!["ap2-mandate"] as { info: { chain: string } }).info.chain;
    const tx = info.receipt!.transaction as Hex;
    const receipt = await chain.getTransactionReceipt({ hash: tx });
    const used = parseEventLogs({ abi: eip3009Abi, logs: receipt.logs, eventName: "AuthorizationUsed" });
    expect(used).toHaveLength(1);
    expect((used[0]!.args as { nonce: Hex }).nonce).toBe(keccak256(toBytes(chainText)));
    expect((used[0]!.args as { authorizer: Address }).authorizer.toLowerCase()).toBe(net.accounts.payers[0]!.address.toLowerCase());
    expect(await usdcBalance(net.accounts.payee.address)).toBe(before + BigInt(PRICE));
  });

  it("a payee outside the mandate is refused at the wallet: nothing signed, nothing sent", async () => {
    const paidFetch = await agentFetch(0, ["0x90F79bf6EB2c4f870365E785982E1f101E93b906"]);
    await expect(paidFetch(mandated.paidUrl)).rejects.toBeInstanceOf(MandateRefusedError);
  });

  it("refuses a payment without a mandate before anything settles", async () => {
    const before = await usdcBalance(net.accounts.payers[1]!.address);
    const bare = wrapFetch(fetch, { schemes: [exactEvmClient({ account: privateKeyToAccount(net.accounts.payers[1]!.privateKey) })] });
    const err = (await bare(mandated.paidUrl).catch((e: unknown) => e)) as PaymentFailedError;
    expect(err).toBeInstanceOf(PaymentFailedError);
    expect(err.reason).toMatch(/^mandate_required/);
    expect(err.charged).toBe(false);
    // the official client (no mandates) is refused the same way
    const official = await officialFetch({ privateKey: net.accounts.payers[1]!.privateKey })(mandated.paidUrl);
    expect(official.status).toBe(402);
    expect(errorOf(official)).toMatch(/mandate_required/);
    expect(await usdcBalance(net.accounts.payers[1]!.address)).toBe(before);
  });

  it("an official @x402/fetch client without mandates still pays a route that does not require them", async () => {
    const before = await usdcBalance(net.accounts.payee.address);
    const res = await officialFetch({ privateKey: net.accounts.payers[2]!.privateKey })(plain.paidUrl);
    expect(res.status).toBe(200);
    expect(readPaymentResponse(res)?.success).toBe(true);
    expect(await usdcBalance(net.accounts.payee.address)).toBe(before + BigInt(PRICE));
  });
});
