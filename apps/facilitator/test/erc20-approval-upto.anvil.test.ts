/**
 * erc20ApprovalGasSponsoring for `upto`, through the facilitator service on a real anvil: a payer
 * with no ETH and no Permit2 allowance signs an upto permit for a maximum plus an approve(Permit2);
 * at /settle the facilitator funds the approve's gas from the sponsor key, broadcasts the approve,
 * then settles the CHARGE (below the maximum) through the upto proxy. The sponsor never pays for
 * nothing: a zero charge sends nothing and funds nothing, a charge above the signed maximum is
 * refused before any funding, a replayed /settle funds once, and a payer whose allowance already
 * covers the charge settles plainly. The exact path is apps/facilitator/test/erc20-approval.anvil.test.ts.
 *
 * Both devnet tokens also have EIP-2612, which our client prefers when offered; the payer's chain
 * reader here answers no `nonces` (a token without EIP-2612, as the client sees it).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import express from "express";
import { httpFacilitatorClient, type Network, type PaymentPayload, type PaymentRequirements } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import {
  ERC20_APPROVAL_GAS_SPONSORING,
  PERMIT2_ADDRESS,
  UPTO_PERMIT2_PROXY_ADDRESS,
  erc20PermitAbi,
  loadArtifact,
  memorySponsorStore,
  permit2PaymentKey,
  uptoEvmClient,
  uptoEvmFacilitator,
  uptoEvmServer,
  uptoPermit2ProxyAbi,
  withErc20ApprovalSponsoring,
  type Erc20ApprovalSponsoringInfo,
  type UptoPermit2Payload,
} from "@tollgate/evm";
import { paymentMiddleware, setCharge } from "@tollgate/express";
import { wrapFetch } from "@tollgate/fetch";
import { createPublicClient, createWalletClient, decodeFunctionData, http, maxUint256, parseEther, parseGwei, parseTransaction, type Abi, type Address, type Hex, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { startFacilitator, type RunningFacilitator } from "../src/start.ts";
import { listen } from "../../../test/support/listen.ts";

const MAX = 5000n;
const CHARGE = 2000n; // "40%" of MAX, set by the route's handler
const MAX_FUNDING = 5_000_000_000_000_000n; // the config default (0.005 ETH)
type Token = { address: Address; name: string; version: string; decimals: number; artifact: "PlainToken" | "TollgateUSD" };

let net: RunningLocalNetwork;
let chain: PublicClient;
let sponsor: PrivateKeyAccount;
let service: RunningFacilitator;
let tokens: { plain: Token; usd: Token };
let routes: { plain: string; usd: string };
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 1 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  tokens = { plain: { ...net.plainToken, artifact: "PlainToken" }, usd: { ...net.usdc, artifact: "TollgateUSD" } };
  const sponsorKey = generatePrivateKey();
  sponsor = privateKeyToAccount(sponsorKey);
  await chain.request({ method: "anvil_setBalance", params: [sponsor.address, `0x${parseEther("1").toString(16)}`] } as never);
  const assets = [net.usdc, net.plainToken].map((a) => ({ address: a.address, name: a.name, version: a.version, decimals: a.decimals }));
  service = await startFacilitator({
    port: 0,
    host: "127.0.0.1",
    logLevel: "silent",
    networks: [{ network: net.network as `eip155:${string}`, rpcUrl: net.rpcUrl, assets }],
    privateKeys: [net.accounts.facilitator.privateKey],
    gasSponsoring: { sponsorKey, perPayerPerHour: 5, receiptTimeoutMs: 10_000 },
  });
  closers.push(() => service.close());
  const network = net.network as Network;
  const app = express();
  app.use(
    paymentMiddleware({
      facilitator: httpFacilitatorClient({ url: service.url }),
      schemes: [uptoEvmServer({ assets: [{ ...net.plainToken, network, symbol: "PUSD" }, { ...net.usdc, network, symbol: "USDC" }] })],
      routes: {
        "GET /upto-plain": { scheme: "upto", price: { amount: MAX.toString(), asset: net.plainToken.address }, network, payTo: net.accounts.payee.address },
        "GET /upto-usd": { scheme: "upto", price: { amount: MAX.toString(), asset: net.usdc.address }, network, payTo: net.accounts.payee.address },
      },
    }),
  );
  const charged = (_req: express.Request, res: express.Response) => {
    setCharge(res, "40%");
    res.json({ ok: true });
  };
  app.get("/upto-plain", charged);
  app.get("/upto-usd", charged);
  const served = await listen(app);
  closers.push(() => served.close());
  routes = { plain: `${served.url}/upto-plain`, usd: `${served.url}/upto-usd` };
}, 120_000);

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await net?.stop();
});

const balanceOf = (token: Token, who: Address) => chain.readContract({ address: token.address, abi: erc20PermitAbi, functionName: "balanceOf", args: [who] });
const allowanceOf = (token: Token, who: Address) => chain.readContract({ address: token.address, abi: erc20PermitAbi, functionName: "allowance", args: [who, PERMIT2_ADDRESS] });
const eth = (who: Address) => chain.getBalance({ address: who });
const nonceOf = (who: Address) => chain.getTransactionCount({ address: who });
const block = () => chain.getBlockNumber({ cacheTime: 0 });

/** A payer holding 10_000 of `token`, no ETH, no Permit2 allowance. */
async function gaslessPayer(token: Token): Promise<PrivateKeyAccount> {
  const owner = privateKeyToAccount(generatePrivateKey());
  const deployer = createWalletClient({ account: privateKeyToAccount(net.accounts.deployer.privateKey), chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
  await chain.waitForTransactionReceipt({ hash: await deployer.writeContract({ address: token.address, abi: loadArtifact(token.artifact).abi as Abi, functionName: "mint", args: [owner.address, 10_000n] }) });
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

const clientFor = (owner: PrivateKeyAccount) => uptoEvmClient({ account: owner, chainReader: () => withoutPermit(chain) });

/** The 402 of an upto route, decoded. */
async function required(url: string): Promise<{ accepts: PaymentRequirements[]; extensions?: Record<string, unknown> }> {
  const res = await fetch(url);
  expect(res.status).toBe(402);
  return JSON.parse(Buffer.from(res.headers.get("PAYMENT-REQUIRED")!, "base64").toString());
}

/** The payment the client would send to `url` (built from its 402), not sent. */
async function paymentFor(url: string, owner: PrivateKeyAccount): Promise<PaymentPayload> {
  const { accepts, extensions } = await required(url);
  const req = accepts[0]!;
  const client = clientFor(owner);
  const context = { x402Version: 2 as const, ...(extensions ? { extensions } : {}) };
  const payload = await client.createPayload(req, context);
  const ext = await client.payloadExtensions?.(req, payload, context);
  return { x402Version: 2, accepted: req, payload, ...(ext ? { extensions: ext } : {}) };
}

type Answer = { isValid?: boolean; invalidReason?: string; success?: boolean; errorReason?: string; errorMessage?: string; transaction?: string; amount?: string; payer?: string };

/** /verify or /settle of `payment`; at /settle `charge` is the resource server's charge. */
async function post(kind: "verify" | "settle", payment: PaymentPayload, charge?: bigint): Promise<Answer> {
  const requirements = charge === undefined ? payment.accepted : { ...payment.accepted, amount: charge.toString() };
  const res = await fetch(`${service.url}/${kind}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ x402Version: 2, paymentPayload: payment, paymentRequirements: requirements }) });
  return (await res.json()) as Answer;
}

const infoOf = (p: PaymentPayload) => (p.extensions?.[ERC20_APPROVAL_GAS_SPONSORING] as { info: Erc20ApprovalSponsoringInfo } | undefined)?.info;
const keyOf = (p: PaymentPayload) => {
  const a = (p.payload as unknown as UptoPermit2Payload).permit2Authorization;
  return permit2PaymentKey(p.accepted.network, p.accepted.asset, a.from, a.nonce);
};

/** The sponsor's rows in the service's ledger for `payer` (key, status). */
async function sponsoredRows(payer: Address): Promise<Array<{ key: string; status: string; funding: string }>> {
  const { sql, schema } = service.ledger;
  return sql.query(`SELECT key, status, funding FROM ${schema}.sponsored_approvals WHERE payer = $1`, [payer.toLowerCase()]);
}

/** Sponsor ETH and nonce, payer nonce, block height: nothing of it may change when nothing is funded. */
async function untouched(payer: Address) {
  return { sponsorEth: await eth(sponsor.address), sponsorNonce: await nonceOf(sponsor.address), payerNonce: await nonceOf(payer), payerEth: await eth(payer), block: await block() };
}

describe("erc20ApprovalGasSponsoring for upto, through the service", () => {
  it("the 402 of an upto route lists the extension (the facilitator supports it)", async () => {
    const supported = (await (await fetch(`${service.url}/supported`)).json()) as { extensions: string[] };
    expect(supported.extensions).toContain(ERC20_APPROVAL_GAS_SPONSORING);
    const { accepts, extensions } = await required(routes.plain);
    expect(accepts[0]).toMatchObject({ scheme: "upto", amount: MAX.toString(), extra: { assetTransferMethod: "permit2" } });
    expect(extensions?.[ERC20_APPROVAL_GAS_SPONSORING]).toMatchObject({ info: { version: "1" } });
  });

  for (const which of ["plain", "usd"] as const) {
    it(`${which}: a payer with zero ETH and zero allowance pays a charge below the maximum: funded once, approve mined, exactly the charge moves`, async () => {
      const token = tokens[which];
      const owner = await gaslessPayer(token);
      const payee = net.accounts.payee.address;
      const [payeeBefore, sponsorBefore, sponsorNonce] = [await balanceOf(token, payee), await eth(sponsor.address), await nonceOf(sponsor.address)];
      // /verify (for the maximum) honours the signed approve and spends nothing.
      expect(await post("verify", await paymentFor(routes[which], owner))).toMatchObject({ isValid: true });
      expect(await eth(sponsor.address)).toBe(sponsorBefore);

      let payment: PaymentPayload | undefined;
      const spy = (async (input: RequestInfo | URL, init?: RequestInit) => {
        const header = new Headers(init?.headers).get("PAYMENT-SIGNATURE");
        if (header) payment = JSON.parse(Buffer.from(header, "base64").toString()) as PaymentPayload;
        return fetch(input, init);
      }) as typeof fetch;
      const res = await (wrapFetch(spy, { schemes: [clientFor(owner)] }) as typeof fetch)(routes[which]);
      expect(res.status).toBe(200);
      const header = res.headers.get("PAYMENT-RESPONSE");
      const receipt = header ? (JSON.parse(Buffer.from(header, "base64").toString()) as Answer) : undefined;
      expect(receipt).toMatchObject({ success: true, amount: CHARGE.toString() });
      const signed = infoOf(payment!)!;
      expect(signed.signedTransaction).toMatch(/^0x02/);
      // Exactly the charge moved, through the upto proxy's settle, sent by the facilitator.
      expect(await balanceOf(token, owner.address)).toBe(10_000n - CHARGE);
      expect(await balanceOf(token, payee)).toBe(payeeBefore + CHARGE);
      const tx = await chain.getTransaction({ hash: receipt!.transaction as Hex });
      expect(tx.to?.toLowerCase()).toBe(UPTO_PERMIT2_PROXY_ADDRESS.toLowerCase());
      expect(tx.from.toLowerCase()).toBe(privateKeyToAccount(net.accounts.facilitator.privateKey).address.toLowerCase());
      const call = decodeFunctionData({ abi: uptoPermit2ProxyAbi, data: tx.input });
      expect(call.functionName).toBe("settle");
      expect((call.args as readonly unknown[])[1]).toBe(CHARGE);
      // The approve was mined (the payer's own nonce 0), the sponsor funded it once.
      expect(await allowanceOf(token, owner.address)).toBe(maxUint256);
      expect(await nonceOf(owner.address)).toBe(1);
      const approve = parseTransaction(signed.signedTransaction);
      const funding = approve.gas! * approve.maxFeePerGas!;
      expect(await nonceOf(sponsor.address)).toBe(sponsorNonce + 1);
      const spent = sponsorBefore - (await eth(sponsor.address));
      expect(spent).toBeGreaterThanOrEqual(funding);
      expect(spent).toBeLessThanOrEqual(MAX_FUNDING);
      // The sponsor's row is keyed by the payment's settle-once key (the signed permit, not the charge).
      expect(await sponsoredRows(owner.address)).toEqual([{ key: keyOf(payment!), status: "approved", funding: funding.toString() }]);

      // The same payment again at /settle, same charge or another: no second funding, nothing moves.
      const again = await untouched(owner.address);
      expect(await post("settle", payment!, CHARGE)).toMatchObject({ success: false, errorReason: "duplicate_settlement" });
      expect((await post("settle", payment!, CHARGE + 1n)).success).toBe(false);
      expect(await untouched(owner.address)).toEqual(again);
      expect(await balanceOf(token, owner.address)).toBe(10_000n - CHARGE);
      expect(await sponsoredRows(owner.address)).toHaveLength(1);
    });
  }

  it("a zero charge sends nothing and funds nothing (no block mined, no approve broadcast)", async () => {
    const owner = await gaslessPayer(tokens.plain);
    const payment = await paymentFor(routes.plain, owner);
    expect(infoOf(payment)?.signedTransaction).toMatch(/^0x02/);
    const before = await untouched(owner.address);
    expect(await post("settle", payment, 0n)).toEqual({ success: true, transaction: "", network: net.network, payer: owner.address, amount: "0" });
    expect(await untouched(owner.address)).toEqual(before);
    expect(await allowanceOf(tokens.plain, owner.address)).toBe(0n);
    expect(await balanceOf(tokens.plain, owner.address)).toBe(10_000n);
    expect(await sponsoredRows(owner.address)).toEqual([]);
  });

  it("a charge above the signed maximum is refused before any funding", async () => {
    const owner = await gaslessPayer(tokens.plain);
    const payment = await paymentFor(routes.plain, owner);
    const before = await untouched(owner.address);
    expect(await post("settle", payment, MAX + 1n)).toMatchObject({ success: false, errorReason: "invalid_upto_evm_payload_settlement_exceeds_amount", transaction: "" });
    expect(await untouched(owner.address)).toEqual(before);
    expect(await allowanceOf(tokens.plain, owner.address)).toBe(0n);
    expect(await sponsoredRows(owner.address)).toEqual([]);
    // The same payment at a charge within the maximum is then sponsored (the refusal took nothing).
    expect(await post("settle", payment, 1n)).toMatchObject({ success: true, amount: "1" });
    expect(await balanceOf(tokens.plain, owner.address)).toBe(10_000n - 1n);
  });

  it("a payer whose allowance already covers the charge (not the maximum) settles plainly: the extension is ignored", async () => {
    const owner = await gaslessPayer(tokens.plain);
    const payment = await paymentFor(routes.plain, owner);
    expect(infoOf(payment)?.signedTransaction).toMatch(/^0x02/);
    // The payer approves exactly the charge itself (ETH lent for it, then taken back to zero).
    await chain.request({ method: "anvil_setBalance", params: [owner.address, `0x${parseEther("0.01").toString(16)}`] } as never);
    const wallet = createWalletClient({ account: owner, chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
    await chain.waitForTransactionReceipt({ hash: await wallet.writeContract({ address: tokens.plain.address, abi: erc20PermitAbi, functionName: "approve", args: [PERMIT2_ADDRESS, CHARGE] }) });
    await chain.request({ method: "anvil_setBalance", params: [owner.address, "0x0"] } as never);
    const [sponsorEth, sponsorNonce] = [await eth(sponsor.address), await nonceOf(sponsor.address)];
    expect(await post("settle", payment, CHARGE)).toMatchObject({ success: true, amount: CHARGE.toString() });
    expect(await balanceOf(tokens.plain, owner.address)).toBe(10_000n - CHARGE);
    expect(await eth(sponsor.address)).toBe(sponsorEth);
    expect(await nonceOf(sponsor.address)).toBe(sponsorNonce);
    expect(await sponsoredRows(owner.address)).toEqual([]);
  });
});

describe("withErc20ApprovalSponsoring around the upto scheme (library, in-memory store)", () => {
  it("two concurrent settles of one payment fund once", async () => {
    const feePayer = privateKeyToAccount(net.accounts.payers[0]!.privateKey);
    const upto = uptoEvmFacilitator({ networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [net.plainToken] }], signer: feePayer, receiptTimeoutMs: 10_000, pollingIntervalMs: 50 });
    const wrapped = withErc20ApprovalSponsoring(upto, {
      sponsor,
      networks: [{ network: net.network as Network, chainId: net.chainId, client: chain }],
      policy: { maxGas: 100_000n, maxFeePerGas: parseGwei("50") },
      limits: { perPayerMax: 5, perPayerWindowMs: 3_600_000 },
      store: memorySponsorStore(),
      receiptTimeoutMs: 10_000,
    });
    const owner = await gaslessPayer(tokens.plain);
    const built = await paymentFor(routes.plain, owner);
    // Signed for this scheme's own fee payer (only witness.facilitator may settle).
    const req = { ...built.accepted, extra: { ...built.accepted.extra, facilitatorAddress: feePayer.address } };
    const client = clientFor(owner);
    const context = { x402Version: 2 as const, extensions: { [ERC20_APPROVAL_GAS_SPONSORING]: {} } };
    const payload = await client.createPayload(req, context);
    const payment: PaymentPayload = { x402Version: 2, accepted: req, payload, extensions: (await client.payloadExtensions?.(req, payload, context))! };
    expect(infoOf(payment)?.signedTransaction).toMatch(/^0x02/);
    const sponsorNonce = await nonceOf(sponsor.address);
    const charged = { ...req, amount: CHARGE.toString() };
    const [a, b] = await Promise.all([wrapped.settle(payment, charged), wrapped.settle(payment, charged)]);
    expect(await nonceOf(sponsor.address)).toBe(sponsorNonce + 1);
    expect([a.success, b.success].filter(Boolean)).toHaveLength(1);
    expect(await balanceOf(tokens.plain, owner.address)).toBe(10_000n - CHARGE);
    // A later retry: the allowance is in place, the permit spent; nothing funded.
    expect((await wrapped.settle(payment, charged)).success).toBe(false);
    expect(await nonceOf(sponsor.address)).toBe(sponsorNonce + 1);
  });
});
