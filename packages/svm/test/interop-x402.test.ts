/**
 * Interop: the official @x402/svm client pays through the local JSON-RPC endpoint and our
 * facilitator verifies and settles its transaction; then the official client with the official
 * fetch wrapper (@x402/fetch) pays a route served by our server (@tollgate/hono) whose
 * facilitator is ours. @x402/svm only knows real cluster ids, so the local chain is labelled as
 * devnet here (with a local mint; nothing leaves the process).
 */
import { ExactSvmScheme } from "@x402/svm/exact/client";
import { decodePaymentResponseHeader, wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { createFacilitator, type FacilitatorClient, type PaymentPayload, type PaymentRequirements } from "@tollgate/core";
import { paymentMiddleware, type PaymentEnv } from "@tollgate/hono";
import { Hono } from "hono";
import { afterAll, expect, it } from "vitest";
import { exactSvmFacilitator, exactSvmServer, setupLocalSolanaNetwork, startLocalSolana, type LocalSolana } from "../src/index.ts";

let local: LocalSolana | undefined;
afterAll(async () => {
  await local?.close();
});

it("@x402/svm client -> local RPC -> tollgate facilitator", async () => {
  local = await startLocalSolana();
  const net = await setupLocalSolanaNetwork({ svm: local.svm, network: "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1" });
  const requirements: PaymentRequirements = {
    scheme: "exact",
    network: net.network,
    amount: "1000",
    asset: net.mint,
    payTo: net.payee.address,
    maxTimeoutSeconds: 60,
    extra: { feePayer: net.feePayer.address },
  };
  const client = new ExactSvmScheme(net.payer.signer as never, { rpcUrl: local.url });
  const { payload } = await client.createPaymentPayload(2, requirements as never);
  const facilitator = exactSvmFacilitator({ networks: [{ network: net.network, rpc: local.url, assets: [net.mint] }], feePayer: net.feePayer.signer, pollIntervalMs: 20 });
  const paymentPayload = { x402Version: 2 as const, accepted: requirements, payload: payload as Record<string, unknown> };

  expect(await facilitator.verify(paymentPayload, requirements)).toEqual({ isValid: true, payer: net.payer.address });
  const settled = await facilitator.settle(paymentPayload, requirements);
  expect(settled).toMatchObject({ success: true, payer: net.payer.address });
  expect(net.tokenBalance(net.payee.tokenAccount)).toBe(1000n);
});

it("@x402/fetch + @x402/svm client -> tollgate server (hono) -> tollgate facilitator -> local RPC", async () => {
  local ??= await startLocalSolana();
  const network = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1" as const;
  const net = await setupLocalSolanaNetwork({ svm: local.svm, network });

  // Our facilitator core, asked the way the HTTP service asks it (request bodies parsed and routed).
  const core = createFacilitator({ schemes: [exactSvmFacilitator({ networks: [{ network, rpc: local.url, assets: [net.mint] }], feePayer: net.feePayer.signer, pollIntervalMs: 20 })] });
  const ask = (payload: PaymentPayload, paymentRequirements: PaymentRequirements) => {
    const parsed = core.parseRequest({ x402Version: payload.x402Version, paymentPayload: payload, paymentRequirements });
    if (!parsed.ok) throw new Error(`${parsed.reason}: ${parsed.message}`);
    return parsed.request;
  };
  const facilitator: FacilitatorClient = {
    supported: async () => core.supported(),
    verify: (p, r) => core.verify(ask(p, r)),
    settle: async (p, r) => core.settle(ask(p, r)),
  };

  const app = new Hono<PaymentEnv>();
  app.use(
    paymentMiddleware({
      facilitator,
      schemes: [exactSvmServer({ assets: { [network]: { address: net.mint, decimals: 6, symbol: "USDC" } } })],
      routes: { "GET /report": { price: "$0.25", network, payTo: net.payee.address } },
    }),
  );
  app.get("/report", (c) => c.json({ ok: true, payer: c.get("payment")?.payer ?? null }));

  // Their client pays only its default-asset table unless told otherwise; the local mint is not in it.
  const client = new x402Client().register("solana:*", new ExactSvmScheme(net.payer.signer as never, { rpcUrl: local.url })).setSpendControls({ allowedAssets: true });
  const officialFetch = wrapFetchWithPayment((async (input: RequestInfo | URL, init?: RequestInit) => app.fetch(new Request(input, init))) as typeof fetch, client);
  const before = net.tokenBalance(net.payer.tokenAccount);
  const res = await officialFetch("http://server.test/report");
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ ok: true, payer: net.payer.address });
  const receipt = decodePaymentResponseHeader(res.headers.get("PAYMENT-RESPONSE")!);
  expect(receipt).toMatchObject({ success: true, network, payer: net.payer.address });
  expect((await local.chain.getSignatureStatus(receipt.transaction))?.err).toBeNull();
  expect(before - net.tokenBalance(net.payer.tokenAccount)).toBe(250_000n);
  expect(net.tokenBalance(net.payee.tokenAccount)).toBe(250_000n);
  expect(net.tokenBalance(net.feePayer.tokenAccount)).toBe(500_000_000n);
});
