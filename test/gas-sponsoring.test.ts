// eip2612GasSponsoring end to end over HTTP on a local chain: our facilitator service lists the
// extension in /supported; our paywall advertises it in the 402 of a route paid through Permit2;
// our client, for a payer who never approved Permit2 and holds no ETH, adds a signed EIP-2612
// permit; the facilitator submits it with the settlement (settleWithPermit through the engine),
// paying all the gas. For `upto` (charged less than signed) and for `exact` with Permit2.
import { httpFacilitatorClient, type Network } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { PERMIT2_ADDRESS, erc20PermitAbi, exactEvmClient, exactEvmServer, loadArtifact, uptoEvmClient, uptoEvmServer } from "@tollgate/evm";
import { paymentMiddleware, setCharge } from "@tollgate/express";
import { wrapFetch } from "@tollgate/fetch";
import express from "express";
import { createPublicClient, createWalletClient, decodeFunctionData, http, type Abi, type Hex, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readPaymentResponse } from "./support/official.ts";
import { officialUptoFetch } from "./support/official-upto.ts";
import { listen, startTollgateFacilitator, type TollgateFacilitator } from "./support/tollgate.ts";

let net: RunningLocalNetwork;
let chain: PublicClient;
let ours: TollgateFacilitator;
let paidUrl: { upto: string; exact: string };
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 1 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  ours = await startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, assets: [net.plainToken], privateKey: net.accounts.facilitator.privateKey });
  closers.push(() => ours.close());
  const token = { ...net.plainToken, network: net.network as Network, symbol: "PUSD" };
  const app = express();
  app.use(
    paymentMiddleware({
      facilitator: httpFacilitatorClient({ url: ours.url }),
      schemes: [uptoEvmServer({ assets: [token] }), exactEvmServer({ assets: [{ ...token, assetTransferMethod: "permit2" }] })],
      routes: {
        "GET /upto": { scheme: "upto", price: { amount: "5000", asset: net.plainToken.address }, network: net.network as Network, payTo: net.accounts.payee.address },
        "GET /exact": { price: { amount: "3000", asset: net.plainToken.address }, network: net.network as Network, payTo: net.accounts.payee.address },
      },
    }),
  );
  app.get("/upto", (_req, res) => {
    setCharge(res, "40%");
    res.json({ ok: true });
  });
  app.get("/exact", (_req, res) => {
    res.json({ ok: true });
  });
  const served = await listen(app);
  closers.push(() => served.close());
  paidUrl = { upto: `${served.url}/upto`, exact: `${served.url}/exact` };
});

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await net?.stop();
});

const balance = (who: Hex) => chain.readContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "balanceOf", args: [who] });

/** A payer holding tokens and no ETH, who never approved Permit2. */
async function gaslessPayer(key: Hex = generatePrivateKey()) {
  const owner = privateKeyToAccount(key);
  const deployer = createWalletClient({ account: privateKeyToAccount(net.accounts.deployer.privateKey), chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
  await chain.waitForTransactionReceipt({ hash: await deployer.writeContract({ address: net.plainToken.address, abi: loadArtifact("PlainToken").abi as Abi, functionName: "mint", args: [owner.address, 10_000n] }) });
  expect(await chain.getBalance({ address: owner.address })).toBe(0n);
  expect(await chain.readContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "allowance", args: [owner.address, PERMIT2_ADDRESS] })).toBe(0n);
  return owner;
}

describe("eip2612GasSponsoring", () => {
  it("the facilitator lists it; the paywall advertises it in the 402 of Permit2 routes", async () => {
    const supported = (await (await fetch(`${ours.url}/supported`)).json()) as { extensions: string[] };
    expect(supported.extensions).toContain("eip2612GasSponsoring");
    for (const url of [paidUrl.upto, paidUrl.exact]) {
      const res = await fetch(url);
      expect(res.status).toBe(402);
      const required = JSON.parse(Buffer.from(res.headers.get("PAYMENT-REQUIRED")!, "base64").toString()) as { extensions: Record<string, { info: { version: string } }> };
      expect(required.extensions.eip2612GasSponsoring?.info.version).toBe("1");
    }
  });

  it("their @x402/evm upto client (with an RPC) → our server → our facilitator: the same gasless payment", async () => {
    const key = generatePrivateKey();
    const owner = await gaslessPayer(key);
    const res = await officialUptoFetch(key, { rpcUrl: net.rpcUrl })(paidUrl.upto);
    expect(res.status).toBe(200);
    const receipt = readPaymentResponse(res);
    expect(receipt).toMatchObject({ success: true, amount: "2000" });
    const tx = await chain.getTransaction({ hash: receipt!.transaction as Hex });
    const { uptoPermit2ProxyAbi } = await import("@tollgate/evm");
    expect(decodeFunctionData({ abi: uptoPermit2ProxyAbi, data: tx.input }).functionName).toBe("settleWithPermit");
    expect(await balance(owner.address)).toBe(8000n);
    expect(await chain.getBalance({ address: owner.address })).toBe(0n);
  });

  for (const kind of ["upto", "exact"] as const) {
    it(`${kind}: a payer with no ETH and no Permit2 approval pays; the facilitator sends settleWithPermit and pays the gas`, async () => {
      const owner = await gaslessPayer();
      const scheme = kind === "upto" ? uptoEvmClient({ account: owner, chainReader: () => chain }) : exactEvmClient({ account: owner, chainReader: () => chain });
      const pay = wrapFetch(fetch, { schemes: [scheme] }) as typeof fetch;
      const res = await pay(paidUrl[kind]);
      expect(res.status).toBe(200);
      const receipt = readPaymentResponse(res);
      const charged = kind === "upto" ? 2000n : 3000n;
      expect(receipt).toMatchObject({ success: true, amount: charged.toString() });
      const tx = await chain.getTransaction({ hash: receipt!.transaction as Hex });
      expect(tx.from.toLowerCase()).toBe(ours.address.toLowerCase());
      const abi = (await import("@tollgate/evm"))[kind === "upto" ? "uptoPermit2ProxyAbi" : "exactPermit2ProxyAbi"] as Abi;
      expect(decodeFunctionData({ abi, data: tx.input }).functionName).toBe("settleWithPermit");
      expect(await balance(owner.address)).toBe(10_000n - charged);
      expect(await chain.getBalance({ address: owner.address })).toBe(0n);
    });
  }
});
