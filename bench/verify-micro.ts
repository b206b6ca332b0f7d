// Micro-benchmark of the EVM `exact` facilitator's verify, in-process against one anvil:
// verifies/second at 1, 32 and 256 concurrent callers, and signature recoveries/second
// (native libsecp256k1 vs pure JS).
//
//   npx tsx bench/verify-micro.ts [payloads=2000] [verifiesPerLevel=2000] [payers=8]
import type { PaymentPayload, PaymentRequirements } from "@tollgate/core";
import { startLocalNetwork } from "@tollgate/devnet";
import { exactEvmClient, exactEvmFacilitator } from "@tollgate/evm";
import { privateKeyToAccount } from "viem/accounts";

const PAYLOADS = Number(process.argv[2] ?? 2000);
const PER_LEVEL = Number(process.argv[3] ?? 2000);
const PAYERS = Number(process.argv[4] ?? 8);

const net = await startLocalNetwork({ payers: PAYERS });
try {
  const requirements: PaymentRequirements = {
    scheme: "exact",
    network: net.network,
    amount: "10000",
    asset: net.usdc.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 300,
    extra: { name: net.usdc.name, version: net.usdc.version },
  };
  const clients = net.accounts.payers.map((p) => exactEvmClient({ account: privateKeyToAccount(p.privateKey) }));
  let t0 = performance.now();
  const payloads: PaymentPayload[] = [];
  for (let i = 0; i < PAYLOADS; i++) {
    const payload = await clients[i % clients.length]!.createPayload(requirements, { x402Version: 2 });
    payloads.push({ x402Version: 2, accepted: requirements, payload });
  }
  console.log(`signed ${PAYLOADS} authorizations from ${PAYERS} payers in ${(performance.now() - t0).toFixed(0)} ms`);

  const facilitator = exactEvmFacilitator({
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [net.usdc] }],
    signer: privateKeyToAccount(net.accounts.facilitator.privateKey),
  });
  const warm = await facilitator.verify(payloads[0]!, requirements);
  if (!warm.isValid) throw new Error(`warm-up verify failed: ${warm.invalidReason} ${warm.invalidMessage}`);

  for (const concurrency of [1, 32, 256]) {
    // Warm-up round at this level, then the measured one.
    await run(Math.min(200, PER_LEVEL), concurrency);
    t0 = performance.now();
    const invalid = await run(PER_LEVEL, concurrency);
    const ms = performance.now() - t0;
    console.log(`verify  c=${String(concurrency).padStart(3)}  ${((PER_LEVEL / ms) * 1000).toFixed(0).padStart(6)} verifies/s  (${PER_LEVEL} in ${ms.toFixed(0)} ms, ${invalid} invalid)`);
  }

  async function run(count: number, concurrency: number): Promise<number> {
    let next = 0;
    let invalid = 0;
    const worker = async () => {
      while (next < count) {
        const i = next++;
        const v = await facilitator.verify(payloads[i % payloads.length]!, requirements);
        if (!v.isValid) invalid++;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return invalid;
  }

  await recoveryBench();
} finally {
  await net.stop();
}

/** Recoveries/second per backend, when the package exposes them. */
async function recoveryBench() {
  const evm = (await import("@tollgate/evm")) as Record<string, unknown>;
  const recoverers = evm["ecdsaRecoverers"] as Record<string, ((digest: Uint8Array, signature: Uint8Array) => string | undefined) | undefined> | undefined;
  if (!recoverers) return;
  const { generatePrivateKey, sign } = await import("viem/accounts");
  const { hexToBytes, keccak256, serializeSignature } = await import("viem");
  const samples: { digest: Uint8Array; signature: Uint8Array }[] = [];
  for (let i = 0; i < 200; i++) {
    const hash = keccak256(new Uint8Array([i, i >> 8, 7]));
    const sig = await sign({ hash, privateKey: generatePrivateKey() });
    samples.push({ digest: hexToBytes(hash), signature: hexToBytes(serializeSignature(sig)) });
  }
  for (const [name, recover] of Object.entries(recoverers)) {
    if (!recover) {
      console.log(`recover ${name.padEnd(6)} unavailable`);
      continue;
    }
    for (const s of samples) recover(s.digest, s.signature);
    const n = 4000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const s = samples[i % samples.length]!;
      recover(s.digest, s.signature);
    }
    const ms = performance.now() - t0;
    console.log(`recover ${name.padEnd(6)} ${((n / ms) * 1000).toFixed(0).padStart(6)} recoveries/s (signature -> address)`);
  }
}
