import { isAddressEqual, parseEventLogs, toHex, type Hex } from "viem";
import { identityRegistryAbi } from "../abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "../addresses.ts";
import { sendContractWrite, type Erc8004Clients, type WriteResult } from "../write.ts";

/** On-chain metadata: a string is stored as its UTF-8 bytes, a Hex as-is. */
export type AgentMetadataInput = Record<string, string | { hex: Hex }>;

export type RegisterAgentParams = {
  /** The registration file's URI (https://, ipfs://, data:). Omit to register without one. */
  uri?: string;
  /** Extra metadata set in the same transaction ("agentWallet" is reserved and refused). */
  metadata?: AgentMetadataInput;
  registry?: `0x${string}`;
};

export function metadataBytes(value: string | { hex: Hex }): Hex {
  return typeof value === "string" ? toHex(value) : value.hex;
}

/** Mints a new agent identity owned by the wallet's account; returns its agentId. */
export async function registerAgent(clients: Erc8004Clients, params: RegisterAgentParams = {}): Promise<WriteResult<{ agentId: bigint }>> {
  const address = params.registry ?? ERC8004_MAINNET_ADDRESSES.identityRegistry;
  const entries = Object.entries(params.metadata ?? {}).map(([metadataKey, v]) => ({ metadataKey, metadataValue: metadataBytes(v) }));
  const sent =
    entries.length > 0
      ? await sendContractWrite(clients, { address, abi: identityRegistryAbi, functionName: "register", args: [params.uri ?? "", entries] })
      : params.uri !== undefined
        ? await sendContractWrite(clients, { address, abi: identityRegistryAbi, functionName: "register", args: [params.uri] })
        : await sendContractWrite(clients, { address, abi: identityRegistryAbi, functionName: "register", args: [] });
  if (!sent.ok) return sent;
  const [event] = parseEventLogs({ abi: identityRegistryAbi, eventName: "Registered", logs: sent.receipt.logs }).filter((e) => isAddressEqual(e.address, address));
  if (event) return { ...sent, agentId: event.args.agentId };
  return { ok: false, reason: "no Registered event", detail: `transaction ${sent.txHash} emitted no Registered event` };
}
