// The `upto` scheme against the OFFICIAL @x402/evm 2.27 upto client, server and facilitator on one
// local chain, in every pairing, over HTTP:
//   their client → our server (express, setCharge) → our facilitator service (engine, ledger);
//   our client → their server (setSettlementOverrides) → their facilitator;
//   our client → our server → their facilitator;
//   their client → their server → our facilitator service.
// Each request is charged less than the maximum its payer signed; the chain must show exactly the
// charge moved, once, sent by the facilitator the payer named.
import { httpFacilitatorClient, type Network } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { PERMIT2_ADDRESS, UPTO_PERMIT2_PROXY_ADDRESS, decodePermit2SettleKey, erc20PermitAbi, uptoEvmClient, uptoEvmServer } from "@tollgate/evm";
import { paymentMiddleware, setCharge } from "@tollgate/express";
import { wrapFetch } from "@tollgate/fetch";
import express from "express";
import { createPublicClient, createWalletClient, http, maxUint256, type Address, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readPaymentResponse, type OfficialFacilitator } from "./support/official.ts";
import { officialUptoFetch, startOfficialUptoFacilitator, startOfficialUptoServer } from "./support/official-upto.ts";
import { listen, startTollgateFacilitator, type TollgateFacilitator } from "./support/tollgate.ts";

let net: RunningLocalNetwork;
let chain: PublicClient;
let official: OfficialFacilitator;
let ours: TollgateFacilitator;
const closers: Array<() => Promise<void>> = [];

const MAX = "5000";

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 5 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  for (const p of net.accounts.payers) {
    const wallet = createWalletClient({ account: privateKeyToAccount(p.privateKey), chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
    await chain.waitForTransactionReceipt({ hash: await wallet.writeContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "approve", args: [PERMIT2_ADDRESS, maxUint256] }) });
  }
  official = await startOfficialUptoFacilitator({ rpcUrl: net.rpcUrl, chainId: net.chainId, privateKey: net.accounts.deployer.privateKey });
  ours = await startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, assets: [net.plainToken], privateKey: net.accounts.facilitator.privateKey });
  closers.push(() => official.close(), () => ours.close());
});

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await net?.stop();
});

const balance = (who: Address) => chain.readContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "balanceOf", args: [who] });

/** Our express server: GET /paid priced upto MAX of the plain token; the handler charges `charge`. */
async function ourServer(facilitatorUrl: string, charge: string | undefined): Promise<string> {
  const app = express();
  app.use(
    paymentMiddleware({
      facilitator: httpFacilitatorClient({ url: facilitatorUrl }),
      schemes: [uptoEvmServer({ assets: [{ ...net.plainToken, network: net.network as Network, symbol: "PUSD" }] })],
      routes: { "GET /paid": { scheme: "upto", price: { amount: MAX, asset: net.plainToken.address }, network: net.network as Network, payTo: net.accounts.payee.address } },
    }),
  );
  app.get("/paid", (_req, res) => {
    if (charge !== undefined) setCharge(res, charge);
    res.json({ ok: true, path: "/paid" });
  });
  const served = await listen(app);
  closers.push(() => served.close());
  return `${served.url}/paid`;
}

function ourFetch(privateKey: Hex): typeof fetch {
  return wrapFetch(fetch, { schemes: [uptoEvmClient({ account: privateKeyToAccount(privateKey) })] }) as typeof fetch;
}

/** Pays once through `pay`; checks the response, the receipt and the chain. */
async function paidOnce(pay: typeof fetch, url: string, payerKey: Hex, facilitator: Address, charged: bigint) {
  const payer = privateKeyToAccount(payerKey).address;
  const payee = net.accounts.payee.address;
  const [payerBefore, payeeBefore] = [await balance(payer), await balance(payee)];
  const res = await pay(url);
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ ok: true, path: "/paid" });
  const receipt = readPaymentResponse(res);
  expect(receipt).toMatchObject({ success: true, amount: charged.toString() });
  const tx = await chain.getTransaction({ hash: receipt!.transaction as Hex });
  expect(tx.from.toLowerCase()).toBe(facilitator.toLowerCase());
  expect(tx.to?.toLowerCase()).toBe(UPTO_PERMIT2_PROXY_ADDRESS.toLowerCase());
  expect(await balance(payer)).toBe(payerBefore - charged);
  expect(await balance(payee)).toBe(payeeBefore + charged);
  return { receipt: receipt!, tx };
}

describe("upto interop with @x402/evm 2.27", () => {
  it("/supported of both facilitators names their address in kinds[].extra.facilitatorAddress", async () => {
    for (const f of [official, ours]) {
      const supported = (await (await fetch(`${f.url}/supported`)).json()) as { kinds: Array<{ scheme: string; network: string; extra?: { facilitatorAddress?: string } }> };
      const kind = supported.kinds.find((k) => k.scheme === "upto" && k.network === net.network);
      expect(kind?.extra?.facilitatorAddress?.toLowerCase()).toBe(f.address.toLowerCase());
    }
  });

  it("their client → our server (setCharge 1234) → our facilitator service", async () => {
    const url = await ourServer(ours.url, "1234");
    const { receipt, tx } = await paidOnce(officialUptoFetch(net.accounts.payers[0]!.privateKey), url, net.accounts.payers[0]!.privateKey, ours.address, 1234n);
    // The ledger row of the payment the proxy call names: the charge, settled by that transaction.
    const named = decodePermit2SettleKey(net.network, tx.input);
    expect(named).toBeDefined();
    expect(await ours.ledger.get(named!.key)).toMatchObject({ scheme: "upto", amount: "1234", status: "settled", transaction: receipt.transaction });
  });

  it('our client → their server (setSettlementOverrides "50%") → their facilitator', async () => {
    const server = await startOfficialUptoServer({ facilitatorUrl: official.url, network: net.network, payTo: net.accounts.payee.address, asset: net.plainToken, maxAmount: MAX, charge: "50%" });
    closers.push(() => server.close());
    await paidOnce(ourFetch(net.accounts.payers[1]!.privateKey), server.paidUrl, net.accounts.payers[1]!.privateKey, official.address, 2500n);
  });

  it("our client → our server (setCharge 777) → their facilitator", async () => {
    const url = await ourServer(official.url, "777");
    await paidOnce(ourFetch(net.accounts.payers[2]!.privateKey), url, net.accounts.payers[2]!.privateKey, official.address, 777n);
  });

  it("their client → their server (setSettlementOverrides 4000) → our facilitator service", async () => {
    const server = await startOfficialUptoServer({ facilitatorUrl: ours.url, network: net.network, payTo: net.accounts.payee.address, asset: net.plainToken, maxAmount: MAX, charge: "4000" });
    closers.push(() => server.close());
    await paidOnce(officialUptoFetch(net.accounts.payers[3]!.privateKey), server.paidUrl, net.accounts.payers[3]!.privateKey, ours.address, 4000n);
  });

  it("zero charge through our stack: served, no transaction, nothing moves", async () => {
    const url = await ourServer(ours.url, "0");
    const key = net.accounts.payers[4]!.privateKey;
    const payer = privateKeyToAccount(key).address;
    const [before, block] = [await balance(payer), await chain.getBlockNumber({ cacheTime: 0 })];
    const res = await ourFetch(key)(url);
    expect(res.status).toBe(200);
    expect(readPaymentResponse(res)).toMatchObject({ success: true, transaction: "", amount: "0" });
    expect(await balance(payer)).toBe(before);
    expect(await chain.getBlockNumber({ cacheTime: 0 })).toBe(block);
  });
});
