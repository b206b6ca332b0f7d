// The `upto` scheme end to end on anvil (our Permit2 + upto proxy at their canonical addresses):
// the client signs a maximum, the facilitator settles a charge up to it. Refusals name their
// reason and move nothing; a zero charge sends no transaction; a permit settles at most once.
import type { PaymentPayload, PaymentRequirements, SchemeFacilitator } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { createPublicClient, createTestClient, createWalletClient, http, maxUint256, type Abi, type Address, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  PERMIT2_ADDRESS,
  Permit2Reason,
  UPTO_PERMIT2_PROXY_ADDRESS,
  UptoReason,
  encodeUptoSettle,
  erc20PermitAbi,
  loadArtifact,
  signUptoPermit2Authorization,
  uptoEvmClient,
  uptoEvmFacilitator,
  uptoEvmServer,
  uptoPermit2ProxyAbi,
  type UptoPermit2Payload,
  permit2RevertReason,
} from "../src/index.ts";
import { revertDataOf } from "../src/errors.ts";

/** The reason code of the revert an eth_call ends with (the proxy's own errors decoded). */
async function revertReason(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (e) {
    return permit2RevertReason(revertDataOf(e)).reason;
  }
  return "no revert";
}

let net: RunningLocalNetwork;
let chain: PublicClient;
let facilitator: SchemeFacilitator;
let facilitatorAddress: Address;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 1 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  const signer = privateKeyToAccount(net.accounts.facilitator.privateKey);
  facilitatorAddress = signer.address;
  facilitator = uptoEvmFacilitator({
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [net.plainToken] }],
    signer,
    receiptTimeoutMs: 10_000,
    pollingIntervalMs: 50,
  });
});

afterAll(async () => {
  await net?.stop();
});

const balance = (who: Address) => chain.readContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "balanceOf", args: [who] });
const sentBy = (who: Address) => chain.getTransactionCount({ address: who });

function requirements(over: Partial<PaymentRequirements> = {}): PaymentRequirements {
  return {
    scheme: "upto",
    network: net.network,
    amount: "5000",
    asset: net.plainToken.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 120,
    extra: { name: net.plainToken.name, version: "1", assetTransferMethod: "permit2", facilitatorAddress },
    ...over,
  };
}

async function send(account: PrivateKeyAccount, to: Address, abi: Abi, functionName: string, args: readonly unknown[]) {
  const wallet = createWalletClient({ account, chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
  await chain.waitForTransactionReceipt({ hash: await wallet.writeContract({ address: to, abi, functionName, args } as never) });
}

async function freshPayer(amount: bigint, approve = true): Promise<PrivateKeyAccount> {
  const owner = privateKeyToAccount(generatePrivateKey());
  await send(privateKeyToAccount(net.accounts.deployer.privateKey), net.plainToken.address, loadArtifact("PlainToken").abi, "mint", [owner.address, amount]);
  if (approve) {
    await createTestClient({ mode: "anvil", transport: http(net.rpcUrl) }).setBalance({ address: owner.address, value: 10n ** 17n });
    await send(owner, net.plainToken.address, erc20PermitAbi as unknown as Abi, "approve", [PERMIT2_ADDRESS, maxUint256]);
  }
  return owner;
}

async function pay(owner: PrivateKeyAccount, req = requirements(), opts: { now?: number } = {}): Promise<PaymentPayload> {
  const payload = await uptoEvmClient({ account: owner, ...(opts.now ? { now: () => opts.now! } : {}) }).createPayload(req, { x402Version: 2 });
  return { x402Version: 2, accepted: req, payload };
}

const charged = (amount: string) => requirements({ amount });

describe("upto: client, server, /supported", () => {
  it("the facilitator publishes its address in /supported extra; the server copies it and forces Permit2", () => {
    expect(facilitator.scheme).toBe("upto");
    expect(facilitator.kindExtra!(net.network)).toEqual({ facilitatorAddress });
    const server = uptoEvmServer({ assets: [{ ...net.plainToken, network: net.network, symbol: "PUSD" }] });
    const priced = server.parsePrice("0.005 PUSD", net.network);
    expect(priced).toEqual({ amount: "5000", asset: net.plainToken.address, extra: { name: net.plainToken.name, version: "1", assetTransferMethod: "permit2" } });
    const base = { ...requirements(), extra: priced.extra };
    const enhanced = server.enhanceRequirements!(base, { x402Version: 2, scheme: "upto", network: net.network, extra: { facilitatorAddress: facilitatorAddress.toLowerCase() } });
    expect(enhanced.extra).toEqual({ name: net.plainToken.name, version: "1", assetTransferMethod: "permit2", facilitatorAddress });
  });

  it("the client signs the spec's wire form; without facilitatorAddress it refuses to sign", async () => {
    const owner = privateKeyToAccount(generatePrivateKey());
    const p = await signUptoPermit2Authorization(owner, requirements(), { now: 1_000_000, nonce: "7" });
    expect(p.permit2Authorization).toEqual({
      from: owner.address,
      permitted: { token: net.plainToken.address, amount: "5000" },
      spender: UPTO_PERMIT2_PROXY_ADDRESS,
      nonce: "7",
      deadline: "1000120",
      witness: { to: net.accounts.payee.address, facilitator: facilitatorAddress, validAfter: "999400" },
    });
    await expect(signUptoPermit2Authorization(owner, requirements({ extra: { name: "x", version: "1" } }))).rejects.toThrow(/extra.facilitatorAddress/);
    await expect(signUptoPermit2Authorization(owner, requirements({ scheme: "exact" }))).rejects.toThrow(/requirements.scheme/);
  });
});

describe("upto: verify", () => {
  it("accepts a payment for the maximum and keys it like the server", async () => {
    const owner = await freshPayer(10_000n);
    const p = await pay(owner);
    expect(await facilitator.verify(p, requirements())).toEqual({ isValid: true, payer: owner.address });
    const a = (p.payload as unknown as UptoPermit2Payload).permit2Authorization;
    const key = `${net.network}|${net.plainToken.address.toLowerCase()}|${owner.address.toLowerCase()}|${a.nonce}`;
    expect(uptoEvmServer().authorizationKey!(p, requirements())).toBe(key);
    // At settle time the requirements carry the charge: the key is the same.
    expect(await facilitator.authenticate!(p, charged("1"))).toEqual({ ok: true, payer: owner.address.toLowerCase(), key });
  });

  it("refuses another facilitator, a wrong maximum, no Permit2 allowance (412 path), a forged signature", async () => {
    const owner = await freshPayer(10_000n);
    const other = privateKeyToAccount(generatePrivateKey()).address;
    const foreign = await pay(owner, requirements({ extra: { ...requirements().extra, facilitatorAddress: other } }));
    expect((await facilitator.verify(foreign, requirements())).invalidReason).toBe(UptoReason.facilitatorMismatch);
    const p = await pay(owner);
    expect((await facilitator.verify(p, requirements({ amount: "4999" }))).invalidReason).toBe(Permit2Reason.amountMismatch);
    const unapproved = await freshPayer(10_000n, false);
    expect((await facilitator.verify(await pay(unapproved), requirements())).invalidReason).toBe(Permit2Reason.allowanceRequired);
    // The maximum raised after signing: the signature is over the smaller amount.
    const raised = structuredClone(p);
    (raised.payload as unknown as UptoPermit2Payload).permit2Authorization.permitted.amount = "9000";
    expect((await facilitator.verify(raised, requirements({ amount: "9000" }))).invalidReason).toBe(Permit2Reason.invalidSignature);
  });
});

describe("upto: settle on chain", () => {
  it("settles a charge below the maximum: exactly the charge moves, and SettleResponse.amount says so", async () => {
    const owner = await freshPayer(10_000n);
    const p = await pay(owner);
    expect((await facilitator.verify(p, requirements())).isValid).toBe(true);
    const [payerBefore, payeeBefore] = [await balance(owner.address), await balance(net.accounts.payee.address)];
    const r = await facilitator.settle(p, charged("1234"));
    expect(r).toMatchObject({ success: true, network: net.network, payer: owner.address, amount: "1234" });
    expect(r.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect(await balance(owner.address)).toBe(payerBefore - 1234n);
    expect(await balance(net.accounts.payee.address)).toBe(payeeBefore + 1234n);
    const receipt = await chain.getTransactionReceipt({ hash: r.transaction as `0x${string}` });
    expect(receipt.to?.toLowerCase()).toBe(UPTO_PERMIT2_PROXY_ADDRESS.toLowerCase());
    expect(receipt.from.toLowerCase()).toBe(facilitatorAddress.toLowerCase());
  });

  it("refuses a charge above the maximum with invalid_upto_evm_payload_settlement_exceeds_amount, sending nothing", async () => {
    const owner = await freshPayer(10_000n);
    const p = await pay(owner);
    const [before, sent] = [await balance(owner.address), await sentBy(facilitatorAddress)];
    const r = await facilitator.settle(p, charged("5001"));
    expect(r).toMatchObject({ success: false, errorReason: UptoReason.settlementExceedsAmount, transaction: "" });
    expect(await balance(owner.address)).toBe(before);
    expect(await sentBy(facilitatorAddress)).toBe(sent);
    // The proxy refuses it too, even from the named facilitator.
    const a = (p.payload as unknown as UptoPermit2Payload);
    expect(await revertReason(chain.call({ account: facilitatorAddress, to: UPTO_PERMIT2_PROXY_ADDRESS, data: encodeUptoSettle(a.permit2Authorization, a.signature, 5001n) }))).toBe(
      UptoReason.amountExceedsPermitted,
    );
  });

  it("a zero charge sends no transaction and moves nothing; the permit stays unused", async () => {
    const owner = await freshPayer(10_000n);
    const p = await pay(owner);
    const [before, sent, block] = [await balance(owner.address), await sentBy(facilitatorAddress), await chain.getBlockNumber({ cacheTime: 0 })];
    const r = await facilitator.settle(p, charged("0"));
    expect(r).toEqual({ success: true, transaction: "", network: net.network, payer: owner.address, amount: "0" });
    expect(await balance(owner.address)).toBe(before);
    expect(await sentBy(facilitatorAddress)).toBe(sent);
    expect(await chain.getBlockNumber({ cacheTime: 0 })).toBe(block);
  });

  it("refuses a replayed permit (nonce used in Permit2) and moves nothing more", async () => {
    const owner = await freshPayer(10_000n);
    const p = await pay(owner);
    expect((await facilitator.settle(p, charged("100"))).success).toBe(true);
    const before = await balance(owner.address);
    const again = await facilitator.settle(p, charged("100"));
    expect(again).toMatchObject({ success: false, errorReason: Permit2Reason.invalidNonce, transaction: "" });
    expect((await facilitator.verify(p, requirements())).invalidReason).toBe(Permit2Reason.invalidNonce);
    expect(await balance(owner.address)).toBe(before);
  });

  it("refuses an expired deadline and a validAfter in the future", async () => {
    const owner = await freshPayer(10_000n);
    const now = Math.floor(Date.now() / 1000);
    const expired = await pay(owner, requirements(), { now: now - 3600 });
    expect((await facilitator.settle(expired, charged("1"))).errorReason).toBe(Permit2Reason.deadlineExpired);
    const a = await signUptoPermit2Authorization(owner, requirements(), { now: now + 3600, skew: 0 });
    const early: PaymentPayload = { x402Version: 2, accepted: requirements(), payload: a as unknown as Record<string, unknown> };
    expect((await facilitator.verify(early, requirements())).invalidReason).toMatch(/permit2_not_yet_valid|evm_validity_too_long|permit2_deadline/);
    const tooEarly = await signUptoPermit2Authorization(owner, requirements(), { now: now + 60, skew: 0 });
    const r = await facilitator.settle({ x402Version: 2, accepted: requirements(), payload: tooEarly as unknown as Record<string, unknown> }, charged("1"));
    expect(r.errorReason).toBe(Permit2Reason.notYetValid);
  });

  it("checks the signature against the signed maximum at settle: a tampered maximum is refused whatever the charge", async () => {
    const owner = await freshPayer(10_000n);
    const p = await pay(owner);
    const tampered = structuredClone(p);
    (tampered.payload as unknown as UptoPermit2Payload).permit2Authorization.permitted.amount = "10000";
    const before = await balance(owner.address);
    expect((await facilitator.settle(tampered, charged("6000"))).errorReason).toBe(Permit2Reason.invalidSignature);
    expect((await facilitator.settle(tampered, charged("0"))).errorReason).toBe(Permit2Reason.invalidSignature);
    expect(await balance(owner.address)).toBe(before);
  });

  it("only the named facilitator can settle on chain (the proxy's UnauthorizedFacilitator)", async () => {
    const owner = await freshPayer(10_000n);
    const a = (await pay(owner)).payload as unknown as UptoPermit2Payload;
    const intruder = privateKeyToAccount(generatePrivateKey()).address;
    const data = encodeUptoSettle(a.permit2Authorization, a.signature, 10n);
    expect(await revertReason(chain.call({ account: intruder, to: UPTO_PERMIT2_PROXY_ADDRESS, data }))).toBe(UptoReason.unauthorizedFacilitator);
    // The same call from the facilitator would go through.
    await chain.call({ account: facilitatorAddress, to: UPTO_PERMIT2_PROXY_ADDRESS, data });
    expect(await chain.readContract({ address: UPTO_PERMIT2_PROXY_ADDRESS, abi: uptoPermit2ProxyAbi, functionName: "PERMIT2" })).toBe(PERMIT2_ADDRESS);
  });
});
