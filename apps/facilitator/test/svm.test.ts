/**
 * One facilitator process serving anvil's EVM chain and a local Solana (litesvm behind a real
 * JSON-RPC endpoint): /supported lists both, a Solana payment verifies and settles over HTTP
 * with balances checked, an EVM payment settles from the same process, and the same Solana
 * transaction settled again (at once and later) moves money once with identical answers.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getBase58Decoder } from "@solana/kit";
import type { PaymentPayload, PaymentRequirements } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { exactEvmClient, eip3009Abi } from "@tollgate/evm";
import { exactSvmClient, setupLocalSolanaNetwork, startLocalSolana, type LocalSolana, type LocalSolanaNetwork } from "@tollgate/svm";
import { createPublicClient, http, type Address } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { loadConfig, parseConfig, redactConfig } from "../src/config.ts";
import { decodeSolanaSecretKey } from "../src/schemes/svm.ts";
import { startFacilitator, type RunningFacilitator } from "../src/start.ts";

let evm: RunningLocalNetwork;
let rpc: LocalSolana;
let sol: LocalSolanaNetwork;
let service: RunningFacilitator;
let feePayerKey: string;

beforeAll(async () => {
  evm = await startLocalNetwork({ payers: 1 });
  rpc = await startLocalSolana();
  sol = await setupLocalSolanaNetwork({ svm: rpc.svm });
  feePayerKey = getBase58Decoder().decode(sol.feePayer.secretKey);
  service = await startFacilitator({
    port: 0,
    logLevel: "silent",
    networks: [{ network: evm.network, rpcUrl: evm.rpcUrl, assets: [{ address: evm.usdc.address, name: evm.usdc.name, version: evm.usdc.version, decimals: evm.usdc.decimals }] }],
    privateKeys: [evm.accounts.facilitator.privateKey],
    solanaNetworks: [{ network: sol.network, rpcUrl: rpc.url, assets: [{ address: sol.mint, decimals: 6 }] }],
    solanaFeePayerKey: feePayerKey,
    settle: { pollMs: 25 },
  });
}, 120_000);

afterAll(async () => {
  await service?.close();
  await rpc?.close();
  await evm?.stop();
});

const post = (path: string, body: string) => fetch(`${service.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body });

function svmRequirements(amount: string): PaymentRequirements {
  return {
    scheme: "exact",
    network: sol.network,
    amount,
    asset: sol.mint,
    payTo: sol.payee.address,
    maxTimeoutSeconds: 60,
    extra: { feePayer: sol.feePayer.address },
  };
}

async function svmBody(amount: string, requirements = svmRequirements(amount)): Promise<string> {
  const client = exactSvmClient({ signer: sol.payer.signer, rpc: rpc.url });
  const paymentPayload: PaymentPayload = { x402Version: 2, accepted: requirements, payload: await client.createPayload(requirements, { x402Version: 2 }) };
  return JSON.stringify({ x402Version: 2, paymentPayload, paymentRequirements: requirements });
}

const svmBalances = () => ({ payer: sol.tokenBalance(sol.payer.tokenAccount), payee: sol.tokenBalance(sol.payee.tokenAccount), feePayer: sol.tokenBalance(sol.feePayer.tokenAccount) });

describe("one facilitator for EVM and Solana", () => {
  it("/supported lists both families, with the Solana fee payer, and /ready checks both RPCs", async () => {
    const supported = (await (await fetch(`${service.url}/supported`)).json()) as { kinds: Array<Record<string, unknown>>; signers: Record<string, string[]> };
    expect(supported.kinds).toContainEqual({ x402Version: 2, scheme: "exact", network: evm.network });
    expect(supported.kinds).toContainEqual({ x402Version: 2, scheme: "exact", network: sol.network, extra: { feePayer: sol.feePayer.address } });
    expect(supported.signers["solana:*"]).toEqual([sol.feePayer.address]);
    expect(supported.signers["eip155:*"]).toContain(evm.accounts.facilitator.address);
    const ready = await fetch(`${service.url}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toContain(`chain:${sol.network}`);
    // The fee payer's SOL balance is scraped like the EVM signers' ETH.
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    const line = metrics.split("\n").find((l) => l.startsWith("tollgate_signer_balance{") && l.includes(sol.feePayer.address));
    expect(line).toContain(`network="${sol.network}"`);
    expect(Number(line!.split(" ").pop())).toBeGreaterThan(0);
  });

  it("verifies and settles a Solana payment over HTTP; exactly the amount moves, the fee payer's tokens do not", async () => {
    const body = await svmBody("12345");
    const before = svmBalances();
    const verified = await (await post("/verify", body)).json();
    expect(verified).toEqual({ isValid: true, payer: sol.payer.address });
    const res = await post("/settle", body);
    const settled = (await res.json()) as Record<string, unknown>;
    expect(res.status).toBe(200);
    expect(settled).toMatchObject({ success: true, network: sol.network, payer: sol.payer.address });
    expect(settled.transaction).toMatch(/^[1-9A-HJ-NP-Za-km-z]{64,88}$/);
    expect((await rpc.chain.getSignatureStatus(String(settled.transaction)))?.err).toBeNull();
    const after = svmBalances();
    expect(before.payer - after.payer).toBe(12345n);
    expect(after.payee - before.payee).toBe(12345n);
    expect(after.feePayer).toBe(before.feePayer);
  });

  it("settles an EVM payment from the same process", async () => {
    const q: PaymentRequirements = {
      scheme: "exact",
      network: evm.network,
      amount: "5000",
      asset: evm.usdc.address,
      payTo: evm.accounts.payee.address,
      maxTimeoutSeconds: 120,
      extra: { name: evm.usdc.name, version: evm.usdc.version },
    };
    const client = exactEvmClient({ account: privateKeyToAccount(evm.accounts.payers[0]!.privateKey) });
    const paymentPayload: PaymentPayload = { x402Version: 2, accepted: q, payload: await client.createPayload(q, { x402Version: 2 }) };
    const chain = createPublicClient({ transport: http(evm.rpcUrl) });
    const balance = (a: Address) => chain.readContract({ address: evm.usdc.address, abi: eip3009Abi, functionName: "balanceOf", args: [a] }) as Promise<bigint>;
    const before = await balance(evm.accounts.payee.address);
    const settled = await (await post("/settle", JSON.stringify({ x402Version: 2, paymentPayload, paymentRequirements: q }))).json();
    expect(settled).toMatchObject({ success: true, network: evm.network });
    expect((await balance(evm.accounts.payee.address)) - before).toBe(5000n);
  });

  it("the same Solana transaction settled three times (two at once, one later) moves money once; one success, the others duplicates naming it", async () => {
    const body = await svmBody("777");
    const before = svmBalances();
    const answers = [...(await Promise.all([post("/settle", body), post("/settle", body)])), await post("/settle", body)];
    const json = await Promise.all(answers.map((r) => r.json()));
    const won = json.filter((j) => j.success);
    expect(won).toHaveLength(1);
    for (const j of json.filter((x) => !x.success)) {
      expect(j).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: "", extensions: { "tollgate-settlement": { transaction: won[0].transaction } } });
    }
    const after = svmBalances();
    expect(before.payer - after.payer).toBe(777n);
    expect(after.payee - before.payee).toBe(777n);
  });

  it("refuses a mint outside the allowlist before touching the chain", async () => {
    const other = await setupLocalSolanaNetwork({ svm: rpc.svm });
    const q = { ...svmRequirements("100"), asset: other.mint };
    // The payer has no account for the other mint: the allowlist must answer first.
    const body = JSON.stringify({ x402Version: 2, paymentPayload: { x402Version: 2, accepted: q, payload: { transaction: "AAAA" } }, paymentRequirements: q });
    expect(await (await post("/verify", body)).json()).toMatchObject({ isValid: false, invalidReason: "invalid_exact_svm_asset_not_allowed" });
  });
});

describe("Solana fee-payer key in the config", () => {
  it("reads SOLANA_FEE_PAYER_KEY as base58 or as a JSON byte array (solana-keygen file)", () => {
    const asJson = JSON.stringify([...sol.feePayer.secretKey]);
    for (const key of [feePayerKey, asJson]) {
      const config = loadConfig({ env: { SOLANA_RPC_URL: rpc.url, SOLANA_NETWORK: sol.network, SOLANA_FEE_PAYER_KEY: key } });
      expect(config.solanaNetworks).toEqual([{ network: sol.network, rpcUrl: rpc.url }]);
      expect(decodeSolanaSecretKey(config.solanaFeePayerKey!)).toEqual(sol.feePayer.secretKey);
      expect(JSON.stringify(redactConfig(config))).not.toContain(key);
    }
  });

  it("refuses a malformed or missing key by field, without echoing it", async () => {
    const bad = feePayerKey.slice(0, -6) + "0OIl00"; // not base58
    let err = (() => {
      try {
        loadConfig({ env: { SOLANA_RPC_URL: rpc.url, SOLANA_NETWORK: sol.network, SOLANA_FEE_PAYER_KEY: bad } });
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err?.message).toMatch(/solanaFeePayerKey \(SOLANA_FEE_PAYER_KEY\)/);
    expect(err?.message).not.toContain(bad.slice(0, 20));
    expect(() => parseConfig({ solanaNetworks: [{ network: sol.network, rpcUrl: rpc.url }] })).toThrow(/solanaFeePayerKey/);
    expect(() => parseConfig({ solanaNetworks: [{ network: "eip155:1", rpcUrl: rpc.url }], solanaFeePayerKey: feePayerKey })).toThrow(/solanaNetworks\.0\.network/);
    // 64 bytes whose public half is not the seed's: caught at start, not echoed.
    const mismatched = getBase58Decoder().decode(new Uint8Array([...sol.feePayer.secretKey.subarray(0, 32), ...sol.payer.secretKey.subarray(32)]));
    err = await startFacilitator({ port: 0, logLevel: "silent", solanaNetworks: [{ network: sol.network, rpcUrl: rpc.url }], solanaFeePayerKey: mismatched }).then(
      async (r) => {
        await r.close();
        return undefined;
      },
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/does not match/);
    expect(err?.message).not.toContain(mismatched.slice(0, 20));
  });
});
