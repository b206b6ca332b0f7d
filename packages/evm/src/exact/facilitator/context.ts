/**
 * The exact EVM facilitator's state: per-network clients and caches, resolved options. Its
 * actions (requirements, signature, chain reads, contract wallets, settle) are functions of it.
 */
import { evmChainId, findUsdc, getNetwork, type Network } from "@tollgate/core";
import { createPublicClient, getAddress, hexToBytes, type Address, type Hex, type LocalAccount, type PublicClient } from "viem";
import { recoverAddress } from "../../crypto/recover.ts";
import { rpcTransportForUrl } from "../../rpc/transport.ts";
import type { CallBatcher } from "../batch.ts";
import { transferAuthorizationDigest } from "../digest.ts";
import type { TransferAuthorization } from "../payload.ts";
import type { Request } from "./requirements.ts";
import { createPayerBackoff, type PayerBackoff } from "./payer-backoff.ts";
import type { ExactEvmAssetConfig, ExactEvmFacilitatorConfig, ExactEvmNetworkConfig } from "./types.ts";

export interface NetworkState {
  config: ExactEvmNetworkConfig;
  network: Network;
  chainId: number;
  client: PublicClient;
  /** Lower-case address → the asset; the allowlist (see ExactEvmNetworkConfig.assets). */
  assets: ReadonlyMap<string, { address: Address; name?: string; version?: string }>;
  contractWallets: boolean;
  chainCheck?: Promise<string | undefined>;
  multicall?: Promise<Address | undefined>;
  batcher?: CallBatcher;
  /** Permit2 proxies (exact, upto) found deployed together with Permit2 (cached once found). */
  permit2Proxies?: Set<string>;
  /** Fee fields for contract-wallet dry runs, read at most once a second. */
  fees?: { at: number; value: Promise<{ maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }> };
}

/** What the token says about its EIP-712 domain (read once per network + asset). */
export interface TokenDomain {
  separator?: Hex;
  name?: string;
  version?: string;
}

export interface FacilitatorContext {
  signer: LocalAccount;
  nets: Map<string, NetworkState>;
  /** Unix seconds. */
  now(): number;
  minValidity: bigint;
  tolerance: number | null;
  settleDryRun: boolean;
  maxGasPerSettlement: bigint;
  backoff: PayerBackoff;
  domains: Map<string, TokenDomain>;
  recoveries: Map<string, Address | "">;
  /**
   * Requests whose requirements held and whose ECDSA signature recovered to the payer, keyed by
   * the payload object `authenticate` judged: the service's verify or settle of the same request
   * (same objects) goes on from there instead of parsing and checking it all again.
   */
  authenticated: WeakMap<object, { requirements: object; req: Request }>;
}

export function createContext(config: ExactEvmFacilitatorConfig): FacilitatorContext {
  return {
    signer: config.signer,
    nets: networkStates(config),
    now: config.now ?? (() => Math.floor(Date.now() / 1000)),
    minValidity: BigInt(config.minValiditySeconds ?? 6),
    tolerance: config.validityToleranceSeconds === undefined ? 900 : config.validityToleranceSeconds,
    settleDryRun: config.settleDryRun ?? true,
    maxGasPerSettlement: config.maxGasPerSettlement ?? 250_000n,
    backoff: config.payerBackoff ?? createPayerBackoff(),
    domains: new Map(),
    recoveries: new Map(),
    authenticated: new WeakMap(),
  };
}

function networkStates(config: ExactEvmFacilitatorConfig): Map<string, NetworkState> {
  const nets = new Map<string, NetworkState>();
  for (const c of config.networks) {
    const chainId = evmChainId(c.network);
    if (chainId === undefined) throw new Error(`networks: ${JSON.stringify(c.network)} is not an eip155 network`);
    if (nets.has(c.network)) throw new Error(`networks: ${c.network} is listed twice`);
    let client = c.publicClient;
    if (!client) {
      if (!c.rpcUrl) throw new Error(`networks[${c.network}]: give rpcUrl or publicClient`);
      // node:http keep-alive transport: viem's http() (undici fetch) costs several times the CPU per call.
      client = createPublicClient({ transport: rpcTransportForUrl(c.rpcUrl), pollingInterval: config.pollingIntervalMs ?? 1000 });
    }
    nets.set(c.network, {
      config: c,
      network: c.network,
      chainId,
      client,
      assets: allowedAssets(c),
      contractWallets: c.contractWallets ?? config.contractWallets ?? false,
    });
  }
  return nets;
}

/** The configured assets, or the network table's USDC for the network, or nothing. */
export function allowedAssets(c: Pick<ExactEvmNetworkConfig, "network" | "assets">): Map<string, { address: Address; name?: string; version?: string }> {
  const listed: readonly Pick<ExactEvmAssetConfig, "address" | "name" | "version">[] = c.assets ?? defaultAssets(c.network);
  return new Map(listed.map((a) => [a.address.toLowerCase(), { address: getAddress(a.address), name: a.name, version: a.version }]));
}

function defaultAssets(network: Network): Pick<ExactEvmAssetConfig, "address" | "name" | "version">[] {
  // A development chain's token is never accepted by default: local tokens are listed explicitly.
  if (getNetwork(network)?.local) return [];
  const usdc = findUsdc(network);
  if (!usdc || !usdc.eip712) return [];
  return [{ address: usdc.address as Address, name: usdc.eip712.name, version: usdc.eip712.version }];
}

/**
 * Signer of a (domain, message, signature), remembered: settle re-verifies what verify just
 * checked, and clients retry. Recovery is a pure function of the key, so a hit is exact.
 */
export function recoverCached(ctx: FacilitatorContext, separator: { bytes: Uint8Array; hex: Hex }, auth: TransferAuthorization, signature: Hex): Address | undefined {
  const key = `${separator.hex}${auth.from}${auth.to}${auth.value}|${auth.validAfter}|${auth.validBefore}${auth.nonce}${signature}`;
  let hit = ctx.recoveries.get(key);
  if (hit === undefined) {
    hit = recoverAddress(transferAuthorizationDigest(separator.bytes, auth), hexToBytes(signature)) ?? "";
    if (ctx.recoveries.size >= 10_000) ctx.recoveries.delete(ctx.recoveries.keys().next().value!);
    ctx.recoveries.set(key, hit);
  }
  return hit || undefined;
}
