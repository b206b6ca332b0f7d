/**
 * Solana in the facilitator service: the config fields (`solanaNetworks`, `solanaFeePayerKey`),
 * the fee-payer key in the formats Solana tools write, the `exact` scheme built from them, and
 * readiness probes. One process serves these next to the EVM networks; `/supported` lists both.
 *
 * The fee-payer key is a secret: parse errors never contain it, and nothing here logs.
 */
import { isAddress, type KeyPairSigner } from "@solana/kit";
import { isCaip2, type Network, type SchemeFacilitator } from "@tollgate/core";
import { decodeSolanaSecretKey, exactSvmFacilitator, solanaSignerFromSecret } from "@tollgate/svm";
import { z } from "zod";
import type { ReadinessProbe } from "../readiness.ts";

export const solanaAssetSchema = z.strictObject({
  address: z.string().refine((a) => isAddress(a), "expected a base58 Solana mint address"),
  decimals: z.number().int().min(0).max(255).optional(),
  symbol: z.string().min(1).optional(),
});

export const solanaNetworkSchema = z.strictObject({
  network: z
    .string()
    .refine((n) => isCaip2(n) && n.startsWith("solana:"), "expected a Solana CAIP-2 network id such as solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"),
  rpcUrl: z.url({ protocol: /^https?$/, error: "expected an http(s) URL" }),
  /**
   * Allowlist of mints; omitted means the network's USDC from the built-in table and nothing else
   * (a local validator's mint must be listed). A mint outside it is refused before any RPC call.
   */
  assets: z.array(solanaAssetSchema).optional(),
  /** Largest SetComputeUnitLimit accepted (default 400 000). */
  maxComputeUnitLimit: z.number().int().min(0).max(1_400_000).optional(),
  /** Largest priority fee (limit × price) the fee payer pays per settlement, in lamports (default 10 000). */
  maxPriorityFeeLamports: z.number().int().min(0).optional(),
});

export const solanaSecretKeySchema = z
  .string()
  .refine((s) => decodeSolanaSecretKey(s) !== undefined, "expected a Solana keypair: base58 of 64 bytes, or a JSON array of 64 numbers (a solana-keygen file's content)");

export { decodeSolanaSecretKey };

export type SolanaNetworkConfig = z.output<typeof solanaNetworkSchema>;

/** The part of the facilitator config this module reads. */
export interface SolanaConfig {
  solanaNetworks: readonly SolanaNetworkConfig[];
  solanaFeePayerKey?: string | undefined;
}

/** The fee payer's signer; rejects a keypair whose public half does not match its seed. */
export function solanaSignerFromKey(text: string): Promise<KeyPairSigner> {
  return solanaSignerFromSecret(text, "solanaFeePayerKey (SOLANA_FEE_PAYER_KEY)");
}

/** The `exact` scheme for every configured Solana network, sharing one fee payer. */
export async function buildSvmSchemes(config: SolanaConfig): Promise<SchemeFacilitator[]> {
  if (config.solanaNetworks.length === 0) return [];
  if (!config.solanaFeePayerKey) throw new Error("solanaFeePayerKey (SOLANA_FEE_PAYER_KEY): a fee-payer key is required to serve Solana networks");
  const feePayer = await solanaSignerFromKey(config.solanaFeePayerKey);
  // One scheme for every Solana network; caps are per scheme, so the strictest configured one applies.
  const limits = config.solanaNetworks.map((n) => n.maxComputeUnitLimit).filter((x): x is number => x !== undefined);
  const fees = config.solanaNetworks.map((n) => n.maxPriorityFeeLamports).filter((x): x is number => x !== undefined);
  const scheme = exactSvmFacilitator({
    networks: config.solanaNetworks.map((n) => ({ network: n.network as Network, rpc: n.rpcUrl, ...(n.assets ? { assets: n.assets.map((a) => a.address) } : {}) })),
    feePayer,
    ...(limits.length > 0 ? { maxComputeUnitLimit: Math.min(...limits) } : {}),
    ...(fees.length > 0 ? { maxPriorityFeeLamports: BigInt(Math.min(...fees)) } : {}),
  });
  return [scheme];
}

/** `/ready` checks each Solana RPC answers `getHealth`. */
export function solanaReadinessProbes(config: SolanaConfig): ReadinessProbe[] {
  return config.solanaNetworks.map((n) => ({ name: `chain:${n.network}`, check: () => checkSolanaRpc(n.rpcUrl) }));
}

async function checkSolanaRpc(url: string): Promise<void> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "getHealth" }),
    signal: AbortSignal.timeout(3000),
  });
  if (!res.ok) throw new Error(`getHealth: HTTP ${res.status}`);
  const body = (await res.json()) as { result?: unknown; error?: { message?: string } };
  if (body.error) throw new Error(`getHealth: ${String(body.error.message ?? "error").slice(0, 200)}`);
  if (body.result !== "ok") throw new Error("getHealth: node is not healthy");
}

/** Each Solana fee payer's SOL balance (lamports) for `/metrics`; an RPC that fails is left out. */
export async function solanaSignerBalances(config: SolanaConfig, schemes: readonly SchemeFacilitator[]): Promise<Array<{ network: string; address: string; balance: bigint }>> {
  const out: Array<{ network: string; address: string; balance: bigint }> = [];
  await Promise.all(
    config.solanaNetworks.flatMap((n) => {
      const addresses = new Set(schemes.filter((s) => s.networks.includes(n.network as Network)).flatMap((s) => s.signers(n.network as Network)));
      return [...addresses].map(async (address) => {
        try {
          const res = await fetch(n.rpcUrl, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "getBalance", params: [address] }),
            signal: AbortSignal.timeout(3000),
          });
          const body = (await res.json()) as { result?: { value?: unknown } };
          const v = body.result?.value;
          if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) out.push({ network: n.network, address, balance: BigInt(v) });
        } catch {
          // Left out of this scrape; /ready reports the RPC.
        }
      });
    }),
  );
  return out;
}
