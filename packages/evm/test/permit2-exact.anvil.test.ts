// The `exact` scheme with the Permit2 method end to end on anvil (our Permit2 + proxy at the
// canonical addresses): client signs, server prices and keys, facilitator verifies and settles.
// Every refusal names its reason and moves nothing; a settled payment moves exactly once.
import type { PaymentPayload, PaymentRequirements, SchemeFacilitator } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { createPublicClient, createTestClient, createWalletClient, http, maxUint256, type Abi, type Address, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  EXACT_PERMIT2_PROXY_ADDRESS,
  PERMIT2_ADDRESS,
  Permit2Reason,
  eip2612PermitTypes,
  erc20PermitAbi,
  exactEvmClient,
  exactEvmFacilitator,
  exactEvmServer,
  loadArtifact,
  signExactPermit2Authorization,
  type ExactPermit2Payload,
} from "../src/index.ts";

let net: RunningLocalNetwork;
let chain: PublicClient;
let facilitator: SchemeFacilitator;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 1 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  facilitator = exactEvmFacilitator({
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [net.plainToken, net.usdc] }],
    signer: privateKeyToAccount(net.accounts.facilitator.privateKey),
    receiptTimeoutMs: 10_000,
    pollingIntervalMs: 50,
  });
});

afterAll(async () => {
  await net?.stop();
});

const balance = (who: Address) => chain.readContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "balanceOf", args: [who] });

function requirements(over: Partial<PaymentRequirements> = {}): PaymentRequirements {
  return {
    scheme: "exact",
    network: net.network,
    amount: "2500",
    asset: net.plainToken.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 120,
    extra: { name: net.plainToken.name, version: "1", assetTransferMethod: "permit2" },
    ...over,
  };
}

async function send(account: PrivateKeyAccount, to: Address, abi: Abi, functionName: string, args: readonly unknown[]) {
  const wallet = createWalletClient({ account, chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
  await chain.waitForTransactionReceipt({ hash: await wallet.writeContract({ address: to, abi, functionName, args } as never) });
}

/** A new payer holding `amount` of the plain token; with `approve`, it approved Permit2 (and so has had ETH). */
async function freshPayer(amount: bigint, approve: boolean): Promise<PrivateKeyAccount> {
  const owner = privateKeyToAccount(generatePrivateKey());
  await send(privateKeyToAccount(net.accounts.deployer.privateKey), net.plainToken.address, loadArtifact("PlainToken").abi, "mint", [owner.address, amount]);
  if (approve) {
    await createTestClient({ mode: "anvil", transport: http(net.rpcUrl) }).setBalance({ address: owner.address, value: 10n ** 17n });
    await send(owner, net.plainToken.address, erc20PermitAbi as unknown as Abi, "approve", [PERMIT2_ADDRESS, maxUint256]);
  }
  return owner;
}

async function pay(owner: PrivateKeyAccount, req = requirements()): Promise<PaymentPayload> {
  const payload = await exactEvmClient({ account: owner }).createPayload(req, { x402Version: 2 });
  return { x402Version: 2, accepted: req, payload };
}

function tamper(p: PaymentPayload, edit: (a: ExactPermit2Payload) => void): PaymentPayload {
  const copy = structuredClone(p);
  edit(copy.payload as unknown as ExactPermit2Payload);
  return copy;
}

describe("exact with Permit2: client and server", () => {
  it("the server advertises assetTransferMethod permit2 for such an asset, and keys payments like the facilitator", async () => {
    const server = exactEvmServer({ assets: [{ ...net.plainToken, network: net.network, assetTransferMethod: "permit2" }] });
    const priced = server.parsePrice("0.0025 PUSD", net.network);
    expect(priced).toEqual({ amount: "2500", asset: net.plainToken.address, extra: { name: net.plainToken.name, version: "1", assetTransferMethod: "permit2" } });
    const owner = await freshPayer(10_000n, true);
    const payload = await pay(owner);
    const a = (payload.payload as unknown as ExactPermit2Payload).permit2Authorization;
    const key = `${net.network}|${net.plainToken.address.toLowerCase()}|${owner.address.toLowerCase()}|${a.nonce}`;
    expect(server.authorizationKey!(payload, requirements())).toBe(key);
    expect(await facilitator.authenticate!(payload, requirements())).toEqual({ ok: true, payer: owner.address.toLowerCase(), key });
  });

  it("the client signs the official wire form: spender = proxy, witness.to = payTo, decimal nonce", async () => {
    const owner = privateKeyToAccount(generatePrivateKey());
    const p = await signExactPermit2Authorization(owner, requirements(), { now: 1_000_000, nonce: "42" });
    expect(p.permit2Authorization).toEqual({
      from: owner.address,
      permitted: { token: net.plainToken.address, amount: "2500" },
      spender: EXACT_PERMIT2_PROXY_ADDRESS,
      nonce: "42",
      deadline: "1000120",
      witness: { to: net.accounts.payee.address, validAfter: "999400" },
    });
    expect(p.signature).toMatch(/^0x[0-9a-f]{130}$/);
    await expect(signExactPermit2Authorization(owner, requirements({ payTo: "nope" }))).rejects.toThrow(/requirements.payTo/);
  });
});

describe("exact with Permit2: facilitator", () => {
  it("verifies and settles once: the payee gets exactly the amount; a replay is refused and moves nothing", async () => {
    const owner = await freshPayer(10_000n, true);
    const payload = await pay(owner);
    expect(await facilitator.verify(payload, requirements())).toEqual({ isValid: true, payer: owner.address });
    const payeeBefore = await balance(net.accounts.payee.address);
    const settled = await facilitator.settle(payload, requirements());
    expect(settled).toMatchObject({ success: true, payer: owner.address, network: net.network, amount: "2500" });
    expect(settled.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect(await balance(owner.address)).toBe(7_500n);
    expect(await balance(net.accounts.payee.address)).toBe(payeeBefore + 2_500n);
    const again = await facilitator.settle(payload, requirements());
    expect(again).toMatchObject({ success: false, errorReason: Permit2Reason.invalidNonce });
    expect((await facilitator.verify(payload, requirements())).invalidReason).toBe(Permit2Reason.invalidNonce);
    expect(await balance(owner.address)).toBe(7_500n);
  });

  it("no Permit2 allowance and no sponsoring extension: permit2_allowance_required, nothing moves", async () => {
    const owner = await freshPayer(10_000n, false);
    const payload = await pay(owner);
    const v = await facilitator.verify(payload, requirements());
    expect(v).toMatchObject({ isValid: false, invalidReason: Permit2Reason.allowanceRequired });
    expect(v.invalidMessage).toMatch(/approve Permit2/);
    expect(await facilitator.settle(payload, requirements())).toMatchObject({ success: false, errorReason: Permit2Reason.allowanceRequired });
    expect(await balance(owner.address)).toBe(10_000n);
  });

  it("refuses every tampered field with its reason, naming the field, and moves nothing", async () => {
    const owner = await freshPayer(10_000n, true);
    const payload = await pay(owner);
    const other = net.accounts.payers[0]!.address;
    const now = Math.floor(Date.now() / 1000);
    const cases: [string, PaymentPayload, PaymentRequirements, string, RegExp][] = [
      ["spender", tamper(payload, (p) => (p.permit2Authorization.spender = other)), requirements(), Permit2Reason.invalidSpender, /spender/],
      ["recipient", tamper(payload, (p) => (p.permit2Authorization.witness.to = other)), requirements(), Permit2Reason.recipientMismatch, /witness\.to/],
      ["amount", tamper(payload, (p) => (p.permit2Authorization.permitted.amount = "1")), requirements(), Permit2Reason.amountMismatch, /permitted\.amount/],
      ["token", tamper(payload, (p) => (p.permit2Authorization.permitted.token = net.usdc.address)), requirements(), Permit2Reason.tokenMismatch, /permitted\.token/],
      ["deadline", tamper(payload, (p) => (p.permit2Authorization.deadline = String(now - 1))), requirements(), Permit2Reason.deadlineExpired, /deadline/],
      ["validAfter", tamper(payload, (p) => (p.permit2Authorization.witness.validAfter = String(now + 3600))), requirements(), Permit2Reason.notYetValid, /validAfter/],
      ["signature (re-signed message changed)", tamper(payload, (p) => (p.permit2Authorization.nonce = "7")), requirements(), Permit2Reason.invalidSignature, /signature/],
      ["nonce shape", tamper(payload, (p) => (p.permit2Authorization.nonce = "0x07")), requirements(), "invalid_payload", /permit2Authorization\.nonce/],
      ["from shape", tamper(payload, (p) => ((p.permit2Authorization as { from: unknown }).from = 12)), requirements(), "invalid_payload", /permit2Authorization\.from/],
      ["payTo differs", payload, requirements({ payTo: other }), Permit2Reason.recipientMismatch, /payTo/],
      ["amount differs", payload, requirements({ amount: "2501" }), Permit2Reason.amountMismatch, /2501/],
    ];
    for (const [name, p, req, reason, message] of cases) {
      const v = await facilitator.verify(p, req);
      expect(v.invalidReason, name).toBe(reason);
      expect(v.invalidMessage, name).toMatch(message);
      const s = await facilitator.settle(p, req);
      expect(s.success, name).toBe(false);
      expect(s.errorReason, name).toBe(reason);
    }
    expect(await facilitator.verify({ ...payload, payload: null as never }, requirements())).toMatchObject({ isValid: false, invalidReason: "invalid_payload" });
    expect(await balance(owner.address)).toBe(10_000n);
  });

  it("a payer without enough tokens: permit2_insufficient_balance", async () => {
    const owner = await freshPayer(100n, true);
    const payload = await pay(owner);
    expect((await facilitator.verify(payload, requirements())).invalidReason).toBe(Permit2Reason.insufficientBalance);
    expect(await balance(owner.address)).toBe(100n);
  });

  it("eip2612GasSponsoring: a payer with no ETH and no allowance pays through settleWithPermit", async () => {
    const owner = await freshPayer(10_000n, false);
    expect(await chain.getBalance({ address: owner.address })).toBe(0n);
    const payload = await pay(owner);
    const a = (payload.payload as unknown as ExactPermit2Payload).permit2Authorization;
    const permitFor = async (amount: string) => ({
      from: owner.address,
      asset: net.plainToken.address,
      spender: PERMIT2_ADDRESS,
      amount,
      nonce: "0",
      deadline: a.deadline,
      version: "1",
      signature: await owner.signTypedData({
        domain: { name: net.plainToken.name, version: "1", chainId: net.chainId, verifyingContract: net.plainToken.address },
        types: eip2612PermitTypes,
        primaryType: "Permit",
        message: { owner: owner.address, spender: PERMIT2_ADDRESS, value: BigInt(amount), nonce: 0n, deadline: BigInt(a.deadline) },
      }),
    });
    const wrong = { ...payload, extensions: { eip2612GasSponsoring: { info: await permitFor("1") } } };
    expect((await facilitator.verify(wrong, requirements())).invalidReason).toBe(Permit2Reason.eip2612AmountMismatch);
    const bad = { ...payload, extensions: { eip2612GasSponsoring: { info: { ...(await permitFor("2500")), spender: owner.address } } } };
    expect((await facilitator.verify(bad, requirements())).invalidReason).toBe(Permit2Reason.eip2612SpenderNotPermit2);
    const sponsored = { ...payload, extensions: { eip2612GasSponsoring: { info: await permitFor("2500") } } };
    expect(await facilitator.verify(sponsored, requirements())).toEqual({ isValid: true, payer: owner.address });
    const payeeBefore = await balance(net.accounts.payee.address);
    expect(await facilitator.settle(sponsored, requirements())).toMatchObject({ success: true });
    expect(await balance(owner.address)).toBe(7_500n);
    expect(await balance(net.accounts.payee.address)).toBe(payeeBefore + 2_500n);
  });

  it("permit2: false (for a service whose sender cannot carry proxy calls) refuses before any claim or send", async () => {
    const owner = await freshPayer(10_000n, true);
    const payload = await pay(owner);
    const off = exactEvmFacilitator({ networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [net.plainToken] }], signer: privateKeyToAccount(net.accounts.facilitator.privateKey), permit2: false });
    expect(await off.authenticate!(payload, requirements())).toMatchObject({ ok: false, reason: "unsupported_payload_type" });
    expect(await off.verify(payload, requirements())).toMatchObject({ isValid: false, invalidReason: "unsupported_payload_type" });
    expect(await off.settle(payload, requirements())).toMatchObject({ success: false, errorReason: "unsupported_payload_type" });
    expect(await balance(owner.address)).toBe(10_000n);
  });

  it("EIP-3009 payments with the same facilitator are unchanged", async () => {
    const payer = privateKeyToAccount(net.accounts.payers[0]!.privateKey);
    const req: PaymentRequirements = { ...requirements(), asset: net.usdc.address, amount: "1000", extra: { name: net.usdc.name, version: net.usdc.version } };
    const payload = await pay(payer, req);
    expect(payload.payload).toHaveProperty("authorization");
    expect(await facilitator.settle(payload, req)).toMatchObject({ success: true });
  });
});
