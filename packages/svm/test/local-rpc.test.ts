/**
 * The same payment through the local JSON-RPC endpoint (node:http + litesvm), with the client and
 * the facilitator talking to it over HTTP via kit's `createSolanaRpc`, as they would to a real node.
 */
import { getTransferSolInstruction } from "@solana-program/system";
import {
  address,
  appendTransactionMessageInstruction,
  createSolanaRpc,
  createTransactionMessage,
  getBase64EncodedWireTransaction,
  pipe,
  setTransactionMessageFeePayerSigner,
  setTransactionMessageLifetimeUsingBlockhash,
  signTransactionMessageWithSigners,
  type Blockhash,
} from "@solana/kit";
import { createFacilitator, Reason, type PaymentRequirements } from "@tollgate/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exactSvmClient, exactSvmFacilitator, rpcChain, setupLocalSolanaNetwork, startLocalSolana, type LocalSolana, type LocalSolanaNetwork } from "../src/index.ts";

let local: LocalSolana;
let net: LocalSolanaNetwork;

beforeAll(async () => {
  local = await startLocalSolana();
  net = await setupLocalSolanaNetwork({ svm: local.svm });
});
afterAll(async () => {
  await local?.close();
});

describe("local Solana JSON-RPC endpoint", () => {
  it("answers the read methods kit clients use", async () => {
    const rpc = createSolanaRpc(local.url);
    const { value: bh } = await rpc.getLatestBlockhash().send();
    expect(bh.blockhash).toBe(local.svm.latestBlockhash());
    expect((await rpc.getBalance(net.feePayer.address).send()).value).toBe(10_000_000_000n);
    const bal = await rpc.getTokenAccountBalance(net.payer.tokenAccount).send();
    expect(bal.value).toMatchObject({ amount: "1000000000", decimals: 6, uiAmountString: "1000" });
    const mint = await rpc.getAccountInfo(net.mint, { encoding: "base64" }).send();
    expect(mint.value?.owner).toBe(address("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"));
    expect((await rpc.getAccountInfo(address("11111111111111111111111111111112"), { encoding: "base64" }).send()).value).toBeNull();
    expect(typeof (await rpc.getSlot().send())).toBe("bigint");
    expect(await rpc.getMinimumBalanceForRentExemption(165n).send()).toBeGreaterThan(0n);
    expect((await rpc.getVersion().send())["solana-core"]).toContain("litesvm");
  });

  it("pays over HTTP: verify, settle, balances, and a replay refused", async () => {
    const requirements: PaymentRequirements = {
      scheme: "exact",
      network: net.network,
      amount: "250000",
      asset: net.mint,
      payTo: net.payee.address,
      maxTimeoutSeconds: 60,
    };
    const scheme = exactSvmFacilitator({ networks: [{ network: net.network, rpc: local.url, assets: [net.mint] }], feePayer: net.feePayer.signer, pollIntervalMs: 20 });
    const facilitator = createFacilitator({ schemes: [scheme] });
    const kind = facilitator.supported().kinds.find((k) => k.network === net.network);
    expect(kind?.extra).toEqual({ feePayer: net.feePayer.address });
    const accepted = { ...requirements, extra: kind!.extra };

    const client = exactSvmClient({ signer: net.payer.signer, rpc: { [net.network]: local.url } });
    const payload = await client.createPayload(accepted, { x402Version: 2 });
    const body = { x402Version: 2, paymentPayload: { x402Version: 2, accepted, payload }, paymentRequirements: accepted };
    const parsed = facilitator.parseRequest(JSON.parse(JSON.stringify(body)));
    if (!parsed.ok) throw new Error(parsed.message);

    expect(await facilitator.verify(parsed.request)).toEqual({ isValid: true, payer: net.payer.address });
    const settled = await facilitator.settle(parsed.request);
    expect(settled).toMatchObject({ success: true, payer: net.payer.address, network: net.network });
    expect(net.tokenBalance(net.payer.tokenAccount)).toBe(1_000_000_000n - 250_000n);
    expect(net.tokenBalance(net.payee.tokenAccount)).toBe(250_000n);

    const status = await createSolanaRpc(local.url).getSignatureStatuses([settled.transaction as never]).send();
    expect(status.value[0]?.confirmationStatus).toBe("finalized");

    const replay = await facilitator.settle(parsed.request);
    expect(replay.success).toBe(false);
    expect(replay.errorReason).toBe(Reason.duplicateSettlement);
    expect(net.tokenBalance(net.payee.tokenAccount)).toBe(250_000n);
  });

  it("maps a rejected submission to Solana's error name (duplicate -> AlreadyProcessed)", async () => {
    const chain = rpcChain(local.url);
    const { blockhash, lastValidBlockHeight } = await chain.getLatestBlockhash();
    const message = pipe(
      createTransactionMessage({ version: 0 }),
      (m) => setTransactionMessageFeePayerSigner(net.payer.signer, m),
      (m) => appendTransactionMessageInstruction(getTransferSolInstruction({ source: net.payer.signer, destination: net.payee.address, amount: 10_000_000n }), m),
      (m) => setTransactionMessageLifetimeUsingBlockhash({ blockhash: blockhash as Blockhash, lastValidBlockHeight }, m),
    );
    const wire = getBase64EncodedWireTransaction(await signTransactionMessageWithSigners(message));
    expect((await chain.simulateTransaction(wire)).err).toBeNull();
    const first = await chain.sendTransaction(wire);
    expect("signature" in first).toBe(true);
    expect(await chain.sendTransaction(wire)).toEqual({ error: expect.objectContaining({ code: "AlreadyProcessed" }) });
    expect((await chain.getSignatureStatus((first as { signature: string }).signature))?.err).toBeNull();
    expect(await chain.sendTransaction("AQID")).toEqual({ error: expect.objectContaining({ code: expect.any(String) }) });
  });
});
