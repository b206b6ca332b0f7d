// Every pairing of our components with the official x402 TypeScript stack, on one anvil chain:
// each paid request must answer 200 with a settlement receipt, be settled on chain by the
// facilitator of that pairing, and move exactly the price from payer to payee, once.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, erc20Abi, http, parseEventLogs, type Address, type Hex, type PublicClient } from "viem";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { getPaymentReceipt } from "@tollgate/fetch";
import {
  localChain,
  officialFetch,
  readPaymentResponse,
  startOfficialFacilitator,
  startOfficialServer,
  type OfficialFacilitator,
  type OfficialServer,
} from "./support/official.ts";
import { startTollgateFacilitator, startTollgateServer, tollgateFetch, type TollgateFacilitator, type TollgateServer } from "./support/tollgate.ts";

const AMOUNT = "10000"; // 0.01 USDC

let net: RunningLocalNetwork;
let chain: PublicClient;
let ours: TollgateFacilitator;
let theirs: OfficialFacilitator;
const servers: Record<string, TollgateServer | OfficialServer> = {};

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 5 });
  chain = createPublicClient({ chain: localChain(net.chainId, net.rpcUrl), transport: http(net.rpcUrl) });
  const asset = { address: net.usdc.address, name: net.usdc.name, version: net.usdc.version };
  const payTo = net.accounts.payee.address;
  // Two fee payers, so the two facilitators never race for one account's nonce.
  [ours, theirs] = await Promise.all([
    startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, privateKey: net.accounts.facilitator.privateKey }),
    startOfficialFacilitator({ rpcUrl: net.rpcUrl, chainId: net.chainId, privateKey: net.accounts.deployer.privateKey }),
  ]);
  const ourServer = (facilitatorUrl: string, framework: "express" | "hono") =>
    startTollgateServer({ facilitatorUrl, network: net.network, usdc: net.usdc, payTo, price: AMOUNT, framework });
  const officialServer = (facilitatorUrl: string) => startOfficialServer({ facilitatorUrl, network: net.network, payTo, asset, amount: AMOUNT });
  servers.oursOnOurs = await ourServer(ours.url, "hono");
  servers.oursOnTheirs = await ourServer(theirs.url, "express");
  servers.theirsOnTheirs = await officialServer(theirs.url);
  servers.theirsOnOurs = await officialServer(ours.url);
});

afterAll(async () => {
  for (const s of Object.values(servers)) await s.close();
  await ours?.close();
  await theirs?.close();
  await net?.stop();
});

const balanceOf = (owner: Address) =>
  chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [owner] });

/** The server's reason when it refused the payment (402 error field), for the failure message. */
function refusalOf(res: Response): string {
  const header = res.headers.get("PAYMENT-REQUIRED");
  if (!header) return `HTTP ${res.status}`;
  const required = JSON.parse(Buffer.from(header, "base64").toString("utf8")) as { error?: string };
  return `HTTP ${res.status}: ${required.error ?? "no error field"}`;
}

interface Pairing {
  name: string;
  client: "ours" | "official";
  server: keyof typeof servers & string;
  settledBy: "ours" | "theirs";
}

const pairings: Pairing[] = [
  { name: "official @x402/fetch → our hono server → our facilitator", client: "official", server: "oursOnOurs", settledBy: "ours" },
  { name: "our fetch → official @x402/express server → official facilitator", client: "ours", server: "theirsOnTheirs", settledBy: "theirs" },
  { name: "official @x402/fetch → official server → our facilitator", client: "official", server: "theirsOnOurs", settledBy: "ours" },
  { name: "our fetch → official server → our facilitator", client: "ours", server: "theirsOnOurs", settledBy: "ours" },
  { name: "our fetch → our express server → official facilitator", client: "ours", server: "oursOnTheirs", settledBy: "theirs" },
];

describe("interop with the official x402 stack", () => {
  it.each(pairings.map((p, i) => ({ ...p, i })))("$name", async ({ client, server, settledBy, i }) => {
    const payer = net.accounts.payers[i]!;
    const payee = net.accounts.payee.address;
    const before = { payer: await balanceOf(payer.address), payee: await balanceOf(payee) };
    const pay = client === "ours" ? tollgateFetch({ privateKey: payer.privateKey }) : officialFetch({ privateKey: payer.privateKey });

    const res = await pay(servers[server]!.paidUrl);
    expect(res.status, refusalOf(res)).toBe(200);
    expect(await res.json()).toEqual({ ok: true, path: "/paid" });

    const receipt = readPaymentResponse(res);
    expect(receipt).toMatchObject({ success: true, network: net.network });
    expect(receipt!.payer?.toLowerCase()).toBe(payer.address.toLowerCase());
    if (client === "ours") expect(getPaymentReceipt(res)?.receipt?.transaction).toBe(receipt!.transaction);

    const tx = await chain.getTransactionReceipt({ hash: receipt!.transaction as Hex });
    expect(tx.status).toBe("success");
    expect(tx.from.toLowerCase()).toBe((settledBy === "ours" ? ours.address : theirs.address).toLowerCase());
    const transfers = parseEventLogs({ abi: erc20Abi, eventName: "Transfer", logs: tx.logs });
    expect(transfers.map((t) => t.args)).toEqual([{ from: payer.address, to: payee, value: BigInt(AMOUNT) }]);

    expect(await balanceOf(payer.address)).toBe(before.payer - BigInt(AMOUNT));
    expect(await balanceOf(payee)).toBe(before.payee + BigInt(AMOUNT));
  });
});
