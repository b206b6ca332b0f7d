// @tollgate/axios on a real local chain (anvil): paying the official @x402/express server settled
// by the official facilitator, the official server settled by ours, and our express server
// settled by ours. Each paid request must answer 200 with a receipt, be settled on chain by that
// pairing's facilitator, and move exactly the price from payer to payee, once.
import axios from "axios";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, erc20Abi, http, parseEventLogs, type Address, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { exactEvmClient } from "@tollgate/evm";
import { getPaymentReceipt, spendingPolicy, wrapAxios } from "@tollgate/axios";
import { localChain, startOfficialFacilitator, startOfficialServer, type OfficialFacilitator, type OfficialServer } from "../../../test/support/official.ts";
import { startTollgateFacilitator, startTollgateServer, type TollgateFacilitator, type TollgateServer } from "../../../test/support/tollgate.ts";

const AMOUNT = "10000"; // 0.01 USDC

let net: RunningLocalNetwork;
let chain: PublicClient;
let ours: TollgateFacilitator;
let theirs: OfficialFacilitator;
const servers: Record<string, TollgateServer | OfficialServer> = {};

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 3 });
  chain = createPublicClient({ chain: localChain(net.chainId, net.rpcUrl), transport: http(net.rpcUrl) });
  const asset = { address: net.usdc.address, name: net.usdc.name, version: net.usdc.version };
  const payTo = net.accounts.payee.address;
  // Two fee payers, so the two facilitators never race for one account's nonce.
  [ours, theirs] = await Promise.all([
    startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, privateKey: net.accounts.facilitator.privateKey }),
    startOfficialFacilitator({ rpcUrl: net.rpcUrl, chainId: net.chainId, privateKey: net.accounts.deployer.privateKey }),
  ]);
  servers.theirsOnTheirs = await startOfficialServer({ facilitatorUrl: theirs.url, network: net.network, payTo, asset, amount: AMOUNT });
  servers.theirsOnOurs = await startOfficialServer({ facilitatorUrl: ours.url, network: net.network, payTo, asset, amount: AMOUNT });
  servers.oursOnOurs = await startTollgateServer({ facilitatorUrl: ours.url, network: net.network, usdc: net.usdc, payTo, price: AMOUNT, framework: "express" });
});

afterAll(async () => {
  for (const s of Object.values(servers)) await s.close();
  await ours?.close();
  await theirs?.close();
  await net?.stop();
});

const balanceOf = (owner: Address) => chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [owner] });

const pairings = [
  { name: "our axios → official @x402/express server → official facilitator", server: "theirsOnTheirs", settledBy: "theirs" },
  { name: "our axios → official server → our facilitator", server: "theirsOnOurs", settledBy: "ours" },
  { name: "our axios → our express server → our facilitator", server: "oursOnOurs", settledBy: "ours" },
] as const;

describe("@tollgate/axios against real servers and facilitators on a local chain", () => {
  it.each(pairings.map((p, i) => ({ ...p, i })))("$name", async ({ server, settledBy, i }) => {
    const payer = net.accounts.payers[i]!;
    const payee = net.accounts.payee.address;
    const before = { payer: await balanceOf(payer.address), payee: await balanceOf(payee) };
    const policy = spendingPolicy({ maxPerRequest: "$0.05", budget: "$1", usdAssets: [{ network: net.network, asset: net.usdc.address, decimals: net.usdc.decimals }] });
    const api = wrapAxios(axios.create(), { schemes: [exactEvmClient({ account: privateKeyToAccount(payer.privateKey as Hex) })], policy });

    const res = await api.get(servers[server]!.paidUrl);
    expect(res.status).toBe(200);
    expect(res.data).toEqual({ ok: true, path: "/paid" });
    const receipt = getPaymentReceipt(res)?.receipt;
    expect(receipt).toMatchObject({ success: true, network: net.network });
    expect(receipt!.payer?.toLowerCase()).toBe(payer.address.toLowerCase());
    expect(policy.spent().usd).toBe("0.01");
    expect(policy.outstanding()).toEqual([]);

    const tx = await chain.getTransactionReceipt({ hash: receipt!.transaction as Hex });
    expect(tx.status).toBe("success");
    expect(tx.from.toLowerCase()).toBe((settledBy === "ours" ? ours.address : theirs.address).toLowerCase());
    const transfers = parseEventLogs({ abi: erc20Abi, eventName: "Transfer", logs: tx.logs });
    expect(transfers.map((t) => t.args)).toEqual([{ from: payer.address, to: payee, value: BigInt(AMOUNT) }]);
    expect(await balanceOf(payer.address)).toBe(before.payer - BigInt(AMOUNT));
    expect(await balanceOf(payee)).toBe(before.payee + BigInt(AMOUNT));
  });
});
