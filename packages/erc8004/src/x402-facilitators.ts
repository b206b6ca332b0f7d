/**
 * Facilitators as agents: an x402 facilitator registers in the ERC-8004 identity registry with
 * a registration file naming its endpoint (service "x402-facilitator"), the networks and schemes
 * it settles, and binds its fee-payer address as the agent's verified wallet (the wallet signs
 * its consent, EIP-712). Anyone can then list the registered facilitators from the chain, and
 * weigh them by reputation.
 */
import { parseEventLogs, type Address, type LocalAccount, type PublicClient } from "viem";
import { identityRegistryAbi } from "./abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "./addresses.ts";
import { registerAgent } from "./identity/register-agent.ts";
import { readAgent } from "./identity/read-agent.ts";
import { setAgentUri } from "./identity/set-agent-uri.ts";
import { setAgentWallet } from "./identity/set-agent-wallet.ts";
import { buildRegistrationFile, parseRegistrationFile, type RegistrationFile } from "./registration-file.ts";
import { fromJsonDataUri, toJsonDataUri } from "./result.ts";
import type { Erc8004Clients, WriteResult } from "./write.ts";

/** The service name a facilitator's registration file lists its endpoint under. */
export const FACILITATOR_SERVICE = "x402-facilitator";

export interface RegisterFacilitatorParams {
  /** The facilitator's public base URL (where /verify, /settle and /supported answer). */
  url: string;
  name: string;
  description?: string;
  /** What it settles, e.g. ["eip155:8453"], ["exact"]. */
  networks: readonly string[];
  schemes: readonly string[];
  /** Its fee payer: bound as the agent's verified wallet (it signs its consent here). */
  feePayer: LocalAccount;
  registry?: Address;
}

export interface RegisteredFacilitator {
  agentId: bigint;
  owner: Address;
  /** The verified wallet (its fee payer), when bound. */
  wallet: Address | undefined;
  name: string;
  url: string;
  networks: string[];
  schemes: string[];
  active: boolean;
}

/**
 * Registers the facilitator (sent by its operator's wallet), sets its registration file (a
 * data: URI, so nothing needs hosting) and binds its fee payer. Returns its agent id.
 */
export async function registerFacilitator(clients: Erc8004Clients, p: RegisterFacilitatorParams): Promise<WriteResult<{ agentId: bigint }>> {
  const registry = p.registry ?? ERC8004_MAINNET_ADDRESSES.identityRegistry;
  const registered = await registerAgent(clients, { registry });
  if (!registered.ok) return registered;
  const { agentId } = registered;
  const chainId = await clients.publicClient.getChainId();
  const file = buildRegistrationFile({
    name: p.name,
    description: p.description ?? `x402 facilitator: verifies and settles ${p.schemes.join(", ")} payments on ${p.networks.join(", ")}`,
    services: [{ name: FACILITATOR_SERVICE, endpoint: p.url, version: "2", networks: [...p.networks], schemes: [...p.schemes] }],
    x402Support: true,
    registrations: [{ agentId, chainId, identityRegistry: registry }],
    supportedTrust: ["reputation"],
  });
  const uri = await setAgentUri(clients, { agentId, uri: toJsonDataUri(file), registry });
  if (!uri.ok) return uri;
  const wallet = await setAgentWallet(clients, { agentId, newWallet: p.feePayer, registry });
  if (!wallet.ok) return wallet;
  return { ...wallet, agentId };
}

/**
 * Every registered agent whose registration file (a data: URI; other URIs are not fetched here)
 * lists an active x402-facilitator service, oldest first.
 */
export async function findRegisteredFacilitators(publicClient: PublicClient, params: { registry?: Address; fromBlock?: bigint } = {}): Promise<RegisteredFacilitator[]> {
  const registry = params.registry ?? ERC8004_MAINNET_ADDRESSES.identityRegistry;
  const logs = await publicClient.getLogs({ address: registry, fromBlock: params.fromBlock ?? 0n, toBlock: "latest" });
  const ids = parseEventLogs({ abi: identityRegistryAbi, eventName: "Registered", logs }).map((e) => e.args.agentId);
  const found: RegisteredFacilitator[] = [];
  for (const agentId of ids) {
    const agent = await readAgent(publicClient, { agentId, registry });
    if (!agent.found) continue;
    const file = registrationOf(agent.uri);
    const service = file?.services.find((s) => s.name === FACILITATOR_SERVICE);
    if (!file || !service || !file.active) continue;
    found.push({
      agentId,
      owner: agent.owner,
      wallet: agent.wallet,
      name: file.name,
      url: service.endpoint,
      networks: strings(service.networks),
      schemes: strings(service.schemes),
      active: file.active,
    });
  }
  return found;
}

function registrationOf(uri: string): RegistrationFile | undefined {
  const json = fromJsonDataUri(uri);
  if (json === undefined) return undefined;
  const parsed = parseRegistrationFile(json);
  return parsed.ok ? parsed.file : undefined;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}
