// Proves the official-stack harness: their client -> their express server -> their facilitator,
// settling on a real local anvil chain. Other interop tests swap one side for ours.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, erc20Abi, http, type Address, type PublicClient } from "viem";
import { startLocalNetwork } from "@tollgate/devnet";
import {
  localChain,
  officialFetch,
  readPaymentResponse,
  startOfficialFacilitator,
  startOfficialServer,
  type OfficialFacilitator,
  type OfficialServer,
} from "./support/official.ts";

const AMOUNT = "10000"; // 0.01 USDC

let net: Awaited<ReturnType<typeof startLocalNetwork>>;
let facilitator: OfficialFacilitator;
let server: OfficialServer;
let chain: PublicClient;

beforeAll(async () => {
  net = await startLocalNetwork();
  facilitator = await startOfficialFacilitator({
    rpcUrl: net.rpcUrl,
    chainId: net.chainId,
    privateKey: net.accounts.facilitator.privateKey,
  });
  server = await startOfficialServer({
    facilitatorUrl: facilitator.url,
    network: net.network,
    payTo: net.accounts.payee.address,
    asset: { address: net.usdc.address, name: net.usdc.name, version: net.usdc.version },
    amount: AMOUNT,
  });
  chain = createPublicClient({ chain: localChain(net.chainId, net.rpcUrl), transport: http(net.rpcUrl) });
});

afterAll(async () => {
  await server?.close();
  await facilitator?.close();
  await net?.stop();
});

const balanceOf = (owner: Address) =>
  chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [owner] });

describe("official x402 stack on devnet", () => {
  it("facilitator advertises exact on the local network", async () => {
    const res = await fetch(`${facilitator.url}/supported`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { kinds: { x402Version: number; scheme: string; network: string }[] };
    expect(body.kinds).toContainEqual(expect.objectContaining({ x402Version: 2, scheme: "exact", network: net.network }));
  });

  it("facilitator answers 400 when a field is missing", async () => {
    const res = await fetch(`${facilitator.url}/verify`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ paymentPayload: {} }),
    });
    expect(res.status).toBe(400);
  });

  it("server start rejects (instead of exiting the process) when the facilitator lacks the route's network", async () => {
    await expect(
      startOfficialServer({
        facilitatorUrl: facilitator.url,
        network: "eip155:1",
        payTo: net.accounts.payee.address,
        asset: { address: net.usdc.address, name: net.usdc.name, version: net.usdc.version },
        amount: AMOUNT,
      }),
    ).rejects.toThrow(/does not support scheme "exact" on network "eip155:1"/);
  });

  it("unpaid request gets 402 with a PAYMENT-REQUIRED header naming the local asset", async () => {
    const res = await fetch(server.paidUrl);
    expect(res.status).toBe(402);
    const header = res.headers.get("PAYMENT-REQUIRED");
    expect(header).toBeTruthy();
    const required = JSON.parse(Buffer.from(header!, "base64").toString("utf8")) as {
      accepts: { network: string; amount: string; asset: string; payTo: string; extra?: Record<string, unknown> }[];
    };
    expect(required.accepts[0]).toMatchObject({
      network: net.network,
      amount: AMOUNT,
      asset: net.usdc.address,
      payTo: net.accounts.payee.address,
      extra: { name: net.usdc.name, version: net.usdc.version },
    });
  });

  it("paid request settles on chain: 200, PAYMENT-RESPONSE with a real receipt, balances move by the amount", async () => {
    const payer = net.accounts.payers[0]!;
    const payerBefore = await balanceOf(payer.address);
    const payeeBefore = await balanceOf(net.accounts.payee.address);

    const res = await officialFetch({ privateKey: payer.privateKey })(server.paidUrl);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, path: "/paid" });

    const settle = readPaymentResponse(res);
    expect(settle).toMatchObject({ success: true, network: net.network });
    expect(settle!.payer?.toLowerCase()).toBe(payer.address.toLowerCase());
    expect(settle!.transaction).toMatch(/^0x[0-9a-fA-F]{64}$/);

    const receipt = await chain.getTransactionReceipt({ hash: settle!.transaction as `0x${string}` });
    expect(receipt.status).toBe("success");
    expect(receipt.from.toLowerCase()).toBe(facilitator.address.toLowerCase());

    expect(await balanceOf(payer.address)).toBe(payerBefore - BigInt(AMOUNT));
    expect(await balanceOf(net.accounts.payee.address)).toBe(payeeBefore + BigInt(AMOUNT));
  });

  it("concurrent paid requests from different payers all settle (facilitator nonces do not collide)", async () => {
    const payers = net.accounts.payers.slice(0, 3);
    expect(payers.length).toBeGreaterThanOrEqual(2);
    const payeeBefore = await balanceOf(net.accounts.payee.address);
    const responses = await Promise.all(payers.map((p) => officialFetch({ privateKey: p.privateKey })(server.paidUrl)));
    const hashes = responses.map((r) => {
      expect(r.status).toBe(200);
      const settle = readPaymentResponse(r);
      expect(settle?.success).toBe(true);
      return settle!.transaction;
    });
    expect(new Set(hashes).size).toBe(payers.length);
    expect(await balanceOf(net.accounts.payee.address)).toBe(payeeBefore + BigInt(AMOUNT) * BigInt(payers.length));
  });
});
