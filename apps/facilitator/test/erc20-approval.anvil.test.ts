/**
 * erc20ApprovalGasSponsoring through the facilitator service on a real anvil: with a sponsor key
 * (`gasSponsoring`) the service lists the extension, our paywall advertises it, and a payer with
 * no ETH and no Permit2 allowance pays: at /settle the facilitator funds exactly the approve's gas
 * from the sponsor key, broadcasts the payer's signed approve, waits for it, then settles through
 * the engine. A retried /settle funds nothing twice; a bad signed approve is refused before any
 * funding; the per-payer bounds refuse a second outstanding funding; without a sponsor key the
 * extension is not listed and the payer is told to approve (HTTP 412 at the paywall).
 *
 * The devnet's plain token also has EIP-2612, which our client prefers when the server offers
 * both; the payer's chain reader here answers no `nonces` (a token without EIP-2612, as the
 * client sees it) so the approval path is the one taken.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import express from "express";
import { httpFacilitatorClient, type Network, type PaymentPayload } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { ERC20_APPROVAL_GAS_SPONSORING, Erc20ApprovalReason, PERMIT2_ADDRESS, SponsorReason, erc20PermitAbi, exactEvmClient, exactEvmServer, loadArtifact, type Erc20ApprovalSponsoringInfo } from "@tollgate/evm";
import { paymentMiddleware } from "@tollgate/express";
import { wrapFetch } from "@tollgate/fetch";
import { createPublicClient, createWalletClient, http, maxUint256, parseEther, parseTransaction, type Abi, type Address, type Hex, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { loadConfig, redactConfig } from "../src/config.ts";
import { startFacilitator, type RunningFacilitator } from "../src/start.ts";
import { ledgerSponsorStore } from "../src/schemes/erc20-approval-sponsor.ts";
import { listen } from "../../../test/support/listen.ts";

const PRICE = 3000n;
const MAX_FUNDING = 5_000_000_000_000_000n; // the config default (0.005 ETH)
let net: RunningLocalNetwork;
let chain: PublicClient;
let sponsor: PrivateKeyAccount;
let withSponsor: RunningFacilitator;
let without: RunningFacilitator;
const paid: { sponsored: string; plain: string } = { sponsored: "", plain: "" };
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 2 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  const sponsorKey = generatePrivateKey();
  sponsor = privateKeyToAccount(sponsorKey);
  await chain.request({ method: "anvil_setBalance", params: [sponsor.address, `0x${parseEther("1").toString(16)}`] } as never);
  const assets = [net.usdc, net.plainToken].map((a) => ({ address: a.address, name: a.name, version: a.version, decimals: a.decimals }));
  const base = { port: 0, host: "127.0.0.1", logLevel: "silent" as const, networks: [{ network: net.network as `eip155:${string}`, rpcUrl: net.rpcUrl, assets }] };
  withSponsor = await startFacilitator({ ...base, privateKeys: [net.accounts.facilitator.privateKey], gasSponsoring: { sponsorKey, perPayerPerHour: 2, receiptTimeoutMs: 10_000 } });
  closers.push(() => withSponsor.close());
  without = await startFacilitator({ ...base, privateKeys: [net.accounts.payers[1]!.privateKey] });
  closers.push(() => without.close());
  const token = { ...net.plainToken, network: net.network as Network, symbol: "PUSD", assetTransferMethod: "permit2" as const };
  for (const [name, facilitator] of [["sponsored", withSponsor], ["plain", without]] as const) {
    const app = express();
    app.use(
      paymentMiddleware({
        facilitator: httpFacilitatorClient({ url: facilitator.url }),
        schemes: [exactEvmServer({ assets: [token] })],
        routes: { "GET /exact": { price: { amount: PRICE.toString(), asset: net.plainToken.address }, network: net.network as Network, payTo: net.accounts.payee.address } },
      }),
    );
    app.get("/exact", (_req, res) => void res.json({ ok: true }));
    const served = await listen(app);
    closers.push(() => served.close());
    paid[name] = `${served.url}/exact`;
  }
}, 120_000);

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await net?.stop();
});

const tokens = (who: Address) => chain.readContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "balanceOf", args: [who] });
const eth = (who: Address) => chain.getBalance({ address: who });
const nonceOf = (who: Address) => chain.getTransactionCount({ address: who });

/** A payer holding 10_000 of the plain token, no ETH, no Permit2 allowance. */
async function gaslessPayer(): Promise<PrivateKeyAccount> {
  const owner = privateKeyToAccount(generatePrivateKey());
  const deployer = createWalletClient({ account: privateKeyToAccount(net.accounts.deployer.privateKey), chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
  await chain.waitForTransactionReceipt({ hash: await deployer.writeContract({ address: net.plainToken.address, abi: loadArtifact("PlainToken").abi as Abi, functionName: "mint", args: [owner.address, 10_000n] }) });
  return owner;
}

/** The chain as the payer's wallet reads it, without EIP-2612 (`nonces` does not answer). */
function withoutPermit(c: PublicClient): PublicClient {
  return new Proxy(c, {
    get(target, prop, receiver) {
      if (prop === "readContract") {
        return (args: { functionName: string }) => (args.functionName === "nonces" ? Promise.reject(new Error("no EIP-2612")) : target.readContract(args as never));
      }
      return Reflect.get(target, prop, receiver);
    },
  });
}

/** Pays `url`, returning the response and the payment the client sent. */
async function pay(url: string, owner: PrivateKeyAccount): Promise<{ res?: Response; error?: { status?: number; reason?: string }; payment?: PaymentPayload }> {
  let payment: PaymentPayload | undefined;
  const spy = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const header = new Headers(init?.headers).get("PAYMENT-SIGNATURE");
    if (header) payment = JSON.parse(Buffer.from(header, "base64").toString()) as PaymentPayload;
    return fetch(input, init);
  }) as typeof fetch;
  const paidFetch = wrapFetch(spy, { schemes: [exactEvmClient({ account: owner, chainReader: () => withoutPermit(chain) })] }) as typeof fetch;
  try {
    const res = await paidFetch(url);
    return { res, ...(payment ? { payment } : {}) };
  } catch (e) {
    return { error: e as { status?: number; reason?: string }, ...(payment ? { payment } : {}) };
  }
}

/** The payment the client would send to the sponsored route (built from its 402), not sent. */
async function paymentFor(owner: PrivateKeyAccount): Promise<PaymentPayload> {
  const required = JSON.parse(Buffer.from((await fetch(paid.sponsored)).headers.get("PAYMENT-REQUIRED")!, "base64").toString()) as { accepts: PaymentPayload["accepted"][]; extensions: Record<string, unknown> };
  const req = required.accepts[0]!;
  const client = exactEvmClient({ account: owner, chainReader: () => withoutPermit(chain) });
  const context = { x402Version: 2 as const, extensions: required.extensions };
  const payload = await client.createPayload(req, context);
  const extensions = await client.payloadExtensions?.(req, payload, context);
  return { x402Version: 2, accepted: req, payload, ...(extensions ? { extensions } : {}) };
}

async function post(f: RunningFacilitator, kind: "verify" | "settle", payment: PaymentPayload) {
  const res = await fetch(`${f.url}/${kind}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ x402Version: 2, paymentPayload: payment, paymentRequirements: payment.accepted }) });
  return (await res.json()) as { isValid?: boolean; invalidReason?: string; success?: boolean; errorReason?: string; errorMessage?: string; transaction?: string };
}

const infoOf = (p: PaymentPayload) => (p.extensions?.[ERC20_APPROVAL_GAS_SPONSORING] as { info: Erc20ApprovalSponsoringInfo }).info;

describe("with a sponsor key", () => {
  it("lists the extension; the paywall advertises it", async () => {
    const supported = (await (await fetch(`${withSponsor.url}/supported`)).json()) as { extensions: string[] };
    expect(supported.extensions).toContain(ERC20_APPROVAL_GAS_SPONSORING);
    const required = JSON.parse(Buffer.from((await fetch(paid.sponsored)).headers.get("PAYMENT-REQUIRED")!, "base64").toString()) as { extensions: Record<string, unknown> };
    expect(required.extensions[ERC20_APPROVAL_GAS_SPONSORING]).toBeDefined();
  });

  it("a payer with zero ETH and zero allowance pays end to end: funded, approve broadcast, settled once; a retried /settle funds nothing", async () => {
    const owner = await gaslessPayer();
    const payee = net.accounts.payee.address;
    const [payeeBefore, sponsorBefore, sponsorNonce] = [await tokens(payee), await eth(sponsor.address), await nonceOf(sponsor.address)];
    // /verify judges (and honours the signed approve) without spending anything.
    const unsent = await paymentFor(owner);
    expect(await post(withSponsor, "verify", unsent)).toMatchObject({ isValid: true });
    expect(await eth(sponsor.address)).toBe(sponsorBefore);

    const { res, payment, error } = await pay(paid.sponsored, owner);
    expect(res?.status, String(error)).toBe(200);
    expect(infoOf(payment!).signedTransaction).toMatch(/^0x02/);
    expect(await tokens(owner.address)).toBe(10_000n - PRICE);
    expect(await tokens(payee)).toBe(payeeBefore + PRICE);
    expect(await chain.readContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "allowance", args: [owner.address, PERMIT2_ADDRESS] })).toBe(maxUint256);
    // The sponsor sent one transfer of exactly gas × maxFeePerGas of the approve (the payer held nothing).
    const approve = parseTransaction(infoOf(payment!).signedTransaction);
    const funding = approve.gas! * approve.maxFeePerGas!;
    expect(await nonceOf(sponsor.address)).toBe(sponsorNonce + 1);
    const spent = sponsorBefore - (await eth(sponsor.address));
    expect(spent).toBeGreaterThanOrEqual(funding);
    expect(spent).toBeLessThanOrEqual(MAX_FUNDING);
    expect(await eth(owner.address)).toBeLessThan(funding); // the approve's gas came out of it

    // The same payment again at /settle: no second funding, nothing moves.
    const [sponsorAfter, nonceAfter] = [await eth(sponsor.address), await nonceOf(sponsor.address)];
    // (the service's settle-once claim answers it; the sponsor's own row would resume, never refund: see
    // test/erc20-approval-sponsoring.test.ts for the scheme-level retry and resume)
    expect(await post(withSponsor, "settle", payment!)).toMatchObject({ success: false, errorReason: "duplicate_settlement" });
    expect(await eth(sponsor.address)).toBe(sponsorAfter);
    expect(await nonceOf(sponsor.address)).toBe(nonceAfter);
    expect(await tokens(owner.address)).toBe(10_000n - PRICE);
    // Another payment of the same payer carrying a (now stale) signed approve: the allowance is in
    // place, so it settles as a plain Permit2 payment, with no funding.
    expect(await post(withSponsor, "settle", unsent)).toMatchObject({ success: true });
    expect(await tokens(owner.address)).toBe(10_000n - 2n * PRICE);
    expect(await eth(sponsor.address)).toBe(sponsorAfter);
    expect(await nonceOf(sponsor.address)).toBe(nonceAfter);
  });

  it("a bad signed approve is refused before any funding (sponsor balance and nonce unchanged)", async () => {
    const owner = await gaslessPayer();
    const good = await paymentFor(owner);
    const { r: _r, s: _s, v: _v, yParity: _y, ...tx } = parseTransaction(infoOf(good).signedTransaction);
    const stranger = privateKeyToAccount(generatePrivateKey());
    const bad = async (signed: Hex): Promise<PaymentPayload> => ({ ...good, extensions: { [ERC20_APPROVAL_GAS_SPONSORING]: { info: { ...infoOf(good), signedTransaction: signed } } } });
    const [before, nonce] = [await eth(sponsor.address), await nonceOf(sponsor.address)];
    const cases: Array<[string, PaymentPayload]> = [
      [Erc20ApprovalReason.gasOverPolicy, await bad(await owner.signTransaction({ ...tx, gas: 900_000n } as never))],
      [Erc20ApprovalReason.signerMismatch, await bad(await stranger.signTransaction(tx as never))],
      [Erc20ApprovalReason.nonceMismatch, await bad(await owner.signTransaction({ ...tx, nonce: 5 } as never))],
      [Erc20ApprovalReason.parseFailed, await bad("0xdeadbeef")],
    ];
    for (const [reason, payment] of cases) {
      expect(await post(withSponsor, "verify", payment), reason).toMatchObject({ isValid: false, invalidReason: reason });
      expect(await post(withSponsor, "settle", payment), reason).toMatchObject({ success: false, errorReason: reason });
    }
    expect(await eth(sponsor.address)).toBe(before);
    expect(await nonceOf(sponsor.address)).toBe(nonce);
    expect(await eth(owner.address)).toBe(0n);
    expect(await tokens(owner.address)).toBe(10_000n);
  });

  it("the per-payer bounds: no second funding while one is outstanding, at most perPayerPerHour", async () => {
    const owner = await gaslessPayer();
    const store = ledgerSponsorStore(withSponsor.ledger);
    const limits = { perPayerMax: 2, perPayerWindowMs: 3_600_000 };
    const row = (key: string) => ({ key, network: net.network as Network, payer: owner.address, funding: 1n, approveHash: "0x01" as Hex, approveRaw: "0x02" as Hex, approveNonce: 0, status: "intent" as const });
    // An earlier funding of this payer, still outstanding (funded, approve not mined).
    expect(await store.begin(row("earlier"), limits)).toEqual({ ok: true });
    await store.update("earlier", { status: "funded" });
    const [before, nonce] = [await eth(sponsor.address), await nonceOf(sponsor.address)];
    const payment = await paymentFor(owner);
    expect(await post(withSponsor, "settle", payment)).toMatchObject({ success: false, errorReason: SponsorReason.payerOutstanding });
    expect(await eth(sponsor.address)).toBe(before);
    expect(await nonceOf(sponsor.address)).toBe(nonce);
    // Once it closed: a second is allowed, a third within the hour is not.
    await store.update("earlier", { status: "approved" });
    expect(await store.begin(row("second"), limits)).toEqual({ ok: true });
    await store.update("second", { status: "approved" });
    expect(await store.begin(row("third"), limits)).toEqual({ ok: false, refused: "limit" });
    // The same key again is the same payment: its row comes back, never a second intent.
    expect(await store.begin(row("second"), limits)).toMatchObject({ ok: false, existing: { key: "second", status: "approved" } });
    expect(await post(withSponsor, "settle", payment)).toMatchObject({ success: false, errorReason: SponsorReason.payerLimit });
    expect(await eth(sponsor.address)).toBe(before);
    expect(await tokens(owner.address)).toBe(10_000n);
  });
});

describe("without a sponsor key", () => {
  it("the extension is not listed, not advertised, and the payer gets permit2_allowance_required (412)", async () => {
    const supported = (await (await fetch(`${without.url}/supported`)).json()) as { extensions: string[] };
    expect(supported.extensions).not.toContain(ERC20_APPROVAL_GAS_SPONSORING);
    const owner = await gaslessPayer();
    const { error, payment } = await pay(paid.plain, owner);
    expect(error?.status).toBe(412);
    expect(error?.reason).toMatch(/^permit2_allowance_required/);
    expect(payment?.extensions?.[ERC20_APPROVAL_GAS_SPONSORING]).toBeUndefined();
    expect(await tokens(owner.address)).toBe(10_000n);
  });
});

describe("configuration", () => {
  it("GAS_SPONSOR_KEY sets the sponsor key (redacted in logs); it must be a key of its own", async () => {
    const key = generatePrivateKey();
    const config = loadConfig({ env: { GAS_SPONSOR_KEY: key } });
    expect(config.gasSponsoring).toMatchObject({ sponsorKey: key, maxFundingWei: MAX_FUNDING.toString(), perPayerPerHour: 3 });
    expect(JSON.stringify(redactConfig(config))).not.toContain(key.slice(2));
    const assets = [{ address: net.plainToken.address, name: net.plainToken.name, version: net.plainToken.version, decimals: net.plainToken.decimals }];
    const feeKey = net.accounts.payers[0]!.privateKey;
    await expect(
      startFacilitator({ port: 0, host: "127.0.0.1", logLevel: "silent", networks: [{ network: net.network as `eip155:${string}`, rpcUrl: net.rpcUrl, assets }], privateKeys: [feeKey], gasSponsoring: { sponsorKey: feeKey } }),
    ).rejects.toThrow(/gasSponsoring\.sponsorKey \(GAS_SPONSOR_KEY\): must be a key of its own/);
  });
});
