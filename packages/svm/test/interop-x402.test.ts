/**
 * Interop: the official @x402/svm client pays through the local JSON-RPC endpoint and our
 * facilitator verifies and settles its transaction. @x402/svm only knows real cluster ids, so
 * the local chain is labelled as devnet here (with a local mint; nothing leaves the process).
 */
import { ExactSvmScheme } from "@x402/svm/exact/client";
import type { PaymentRequirements } from "@tollgate/core";
import { afterAll, expect, it } from "vitest";
import { exactSvmFacilitator, setupLocalSolanaNetwork, startLocalSolana, type LocalSolana } from "../src/index.ts";

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
  const facilitator = exactSvmFacilitator({ networks: [{ network: net.network, rpc: local.url }], feePayer: net.feePayer.signer, pollIntervalMs: 20 });
  const paymentPayload = { x402Version: 2 as const, accepted: requirements, payload: payload as Record<string, unknown> };

  expect(await facilitator.verify(paymentPayload, requirements)).toEqual({ isValid: true, payer: net.payer.address });
  const settled = await facilitator.settle(paymentPayload, requirements);
  expect(settled).toMatchObject({ success: true, payer: net.payer.address });
  expect(net.tokenBalance(net.payee.tokenAccount)).toBe(1000n);
});
