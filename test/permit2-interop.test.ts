// The Permit2 method of `exact` against the OFFICIAL @x402/evm (2.27) on one local chain: at the
// payload level (their client's payload verified and settled by our facilitator scheme, ours by
// their facilitator over HTTP), and over HTTP end to end (their fetch → our server → our
// facilitator service, whose settlement engine carries the proxy call; our fetch → their server
// → their facilitator). Funds must move exactly once in every pairing.
import type { PaymentPayload, PaymentRequirements } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { EXACT_PERMIT2_PROXY_ADDRESS, PERMIT2_ADDRESS, erc20PermitAbi, exactEvmClient, exactEvmFacilitator, type ExactPermit2Payload } from "@tollgate/evm";
import { ExactEvmScheme as OfficialClientScheme } from "@x402/evm/exact/client";
import { createPublicClient, createWalletClient, http, maxUint256, type Address, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { officialFetch, readPaymentResponse, startOfficialFacilitator, startOfficialServer, type OfficialFacilitator, type OfficialServer } from "./support/official.ts";
import { startTollgateFacilitator, startTollgateServer, tollgateFetch, type TollgateFacilitator, type TollgateServer } from "./support/tollgate.ts";

let net: RunningLocalNetwork;
let chain: PublicClient;
let official: OfficialFacilitator;
let ours: TollgateFacilitator;
let ourServer: TollgateServer;
let theirServer: OfficialServer;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 4 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  // Both payers approve Permit2 once (they hold ETH on the devnet), as the spec's Option A.
  for (const p of net.accounts.payers) {
    const account = privateKeyToAccount(p.privateKey);
    const wallet = createWalletClient({ account, chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
    const hash = await wallet.writeContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "approve", args: [PERMIT2_ADDRESS, maxUint256] });
    await chain.waitForTransactionReceipt({ hash });
  }
  // Their facilitator pays gas from the deployer key (ours uses the facilitator key): no nonce sharing.
  official = await startOfficialFacilitator({ rpcUrl: net.rpcUrl, chainId: net.chainId, privateKey: net.accounts.deployer.privateKey });
  ours = await startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, assets: [net.plainToken], privateKey: net.accounts.facilitator.privateKey });
  const payTo = net.accounts.payee.address;
  ourServer = await startTollgateServer({
    facilitatorUrl: ours.url,
    network: net.network,
    usdc: net.usdc,
    assets: [{ ...net.plainToken, assetTransferMethod: "permit2" }],
    payTo,
    price: { amount: "3000", asset: net.plainToken.address },
    framework: "hono",
  });
  theirServer = await startOfficialServer({
    facilitatorUrl: official.url,
    network: net.network,
    payTo,
    asset: { address: net.plainToken.address, name: net.plainToken.name, version: net.plainToken.version },
    amount: "3000",
    assetTransferMethod: "permit2",
  });
});

afterAll(async () => {
  await ourServer?.close();
  await theirServer?.close();
  await ours?.close();
  await official?.close();
  await net?.stop();
});

const transferAbi = [
  { type: "function", name: "transfer", stateMutability: "nonpayable", inputs: [{ name: "to", type: "address" }, { name: "value", type: "uint256" }], outputs: [{ name: "", type: "bool" }] },
] as const;

const balance = (who: Address) => chain.readContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "balanceOf", args: [who] });

function requirements(): PaymentRequirements {
  return {
    scheme: "exact",
    network: net.network,
    amount: "3000",
    asset: net.plainToken.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 120,
    extra: { name: net.plainToken.name, version: "1", assetTransferMethod: "permit2" },
  };
}

async function officialPost(path: "verify" | "settle", paymentPayload: PaymentPayload, paymentRequirements: PaymentRequirements) {
  const res = await fetch(`${official.url}/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ x402Version: 2, paymentPayload, paymentRequirements }) });
  return (await res.json()) as Record<string, unknown>;
}

describe("exact Permit2 interop with @x402/evm 2.27", () => {
  it("their client's payload: our facilitator verifies it and settles it once", async () => {
    const payer = privateKeyToAccount(net.accounts.payers[0]!.privateKey);
    const req = requirements();
    const theirs = await new OfficialClientScheme(payer).createPaymentPayload(2, req as never);
    const payload: PaymentPayload = { x402Version: 2, accepted: req, payload: theirs.payload as Record<string, unknown> };
    const auth = (payload.payload as unknown as ExactPermit2Payload).permit2Authorization;
    expect(auth.spender).toBe(EXACT_PERMIT2_PROXY_ADDRESS);
    expect(auth.witness.validAfter).toBe("0");
    const ours = exactEvmFacilitator({
      networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [net.plainToken] }],
      signer: privateKeyToAccount(net.accounts.facilitator.privateKey),
      receiptTimeoutMs: 10_000,
    });
    expect(await ours.verify(payload, req)).toEqual({ isValid: true, payer: payer.address });
    const [payerBefore, payeeBefore] = [await balance(payer.address), await balance(req.payTo as Address)];
    expect(await ours.settle(payload, req)).toMatchObject({ success: true, payer: payer.address });
    expect(await ours.settle(payload, req)).toMatchObject({ success: false, errorReason: "permit2_invalid_nonce" });
    expect(await balance(payer.address)).toBe(payerBefore - 3000n);
    expect(await balance(req.payTo as Address)).toBe(payeeBefore + 3000n);
  });

  it("our client's payload: their facilitator verifies it and settles it once", async () => {
    const payer = privateKeyToAccount(net.accounts.payers[1]!.privateKey);
    const req = requirements();
    const payload: PaymentPayload = { x402Version: 2, accepted: req, payload: await exactEvmClient({ account: payer }).createPayload(req, { x402Version: 2 }) };
    expect(await officialPost("verify", payload, req)).toMatchObject({ isValid: true });
    const [payerBefore, payeeBefore] = [await balance(payer.address), await balance(req.payTo as Address)];
    const settled = await officialPost("settle", payload, req);
    expect(settled).toMatchObject({ success: true });
    expect(settled.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect((await officialPost("settle", payload, req)).success).toBe(false);
    expect(await balance(payer.address)).toBe(payerBefore - 3000n);
    expect(await balance(req.payTo as Address)).toBe(payeeBefore + 3000n);
  });

  it("both facilitators give permit2_allowance_required for a payer who never approved Permit2, and nothing moves", async () => {
    const stranger = privateKeyToAccount(generatePrivateKey());
    // Tokens from a payer (not the deployer: their facilitator's nonce manager owns that key).
    const funder = privateKeyToAccount(net.accounts.payers[0]!.privateKey);
    const wallet = createWalletClient({ account: funder, chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
    await chain.waitForTransactionReceipt({
      hash: await wallet.writeContract({ address: net.plainToken.address, abi: transferAbi, functionName: "transfer", args: [stranger.address, 10_000n] }),
    });
    const req = requirements();
    const payload: PaymentPayload = { x402Version: 2, accepted: req, payload: await exactEvmClient({ account: stranger }).createPayload(req, { x402Version: 2 }) };
    const ours = exactEvmFacilitator({ networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [net.plainToken] }], signer: privateKeyToAccount(net.accounts.facilitator.privateKey) });
    expect((await ours.verify(payload, req)).invalidReason).toBe("permit2_allowance_required");
    expect((await ours.settle(payload, req)).errorReason).toBe("permit2_allowance_required");
    expect((await officialPost("verify", payload, req)).invalidReason).toBe("permit2_allowance_required");
    expect(await balance(stranger.address)).toBe(10_000n);
  });

  it("their @x402/fetch (Permit2) → our hono server → our facilitator service: paid once, settled by our fee payer through the proxy", async () => {
    const payer = privateKeyToAccount(net.accounts.payers[2]!.privateKey);
    const payee = net.accounts.payee.address;
    const [payerBefore, payeeBefore] = [await balance(payer.address), await balance(payee)];
    const res = await officialFetch({ privateKey: net.accounts.payers[2]!.privateKey })(ourServer.paidUrl);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, path: "/paid" });
    const receipt = readPaymentResponse(res);
    expect(receipt).toMatchObject({ success: true });
    const tx = await chain.getTransaction({ hash: receipt!.transaction as `0x${string}` });
    expect(tx.from.toLowerCase()).toBe(ours.address.toLowerCase());
    expect(tx.to?.toLowerCase()).toBe(EXACT_PERMIT2_PROXY_ADDRESS.toLowerCase());
    expect(await balance(payer.address)).toBe(payerBefore - 3000n);
    expect(await balance(payee)).toBe(payeeBefore + 3000n);
  });

  it("our fetch → their @x402/express server (Permit2) → their facilitator: paid once", async () => {
    const payer = privateKeyToAccount(net.accounts.payers[3]!.privateKey);
    const payee = net.accounts.payee.address;
    const [payerBefore, payeeBefore] = [await balance(payer.address), await balance(payee)];
    const res = await tollgateFetch({ privateKey: net.accounts.payers[3]!.privateKey })(theirServer.paidUrl);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, path: "/paid" });
    const receipt = readPaymentResponse(res);
    expect(receipt).toMatchObject({ success: true });
    const tx = await chain.getTransaction({ hash: receipt!.transaction as `0x${string}` });
    expect(tx.from.toLowerCase()).toBe(official.address.toLowerCase());
    expect(await balance(payer.address)).toBe(payerBefore - 3000n);
    expect(await balance(payee)).toBe(payeeBefore + 3000n);
  });
});
