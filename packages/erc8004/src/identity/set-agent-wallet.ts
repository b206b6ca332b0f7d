import type { Address, Hex, LocalAccount, PublicClient } from "viem";
import { identityRegistryAbi } from "../abi.ts";
import { ERC8004_MAINNET_ADDRESSES } from "../addresses.ts";
import { sendContractWrite, type Erc8004Clients, type WriteResult } from "../write.ts";

/** How long a wallet proof stays valid by default; the registry refuses more than 300 s. */
export const DEFAULT_WALLET_PROOF_TTL_SECONDS = 240n;

export type AgentWalletProofFields = {
  chainId: number;
  registry: Address;
  agentId: bigint;
  newWallet: Address;
  /** The agent's owner at the time of the call (the proof is bound to it). */
  owner: Address;
  /** Unix seconds, at most 300 s after the block the call lands in. */
  deadline: bigint;
};

/** The EIP-712 message a new agent wallet signs to consent to being the agent's wallet. */
export function agentWalletTypedData(f: AgentWalletProofFields) {
  return {
    domain: { name: "ERC8004IdentityRegistry", version: "1", chainId: f.chainId, verifyingContract: f.registry },
    types: {
      AgentWalletSet: [
        { name: "agentId", type: "uint256" },
        { name: "newWallet", type: "address" },
        { name: "owner", type: "address" },
        { name: "deadline", type: "uint256" },
      ],
    },
    primaryType: "AgentWalletSet",
    message: { agentId: f.agentId, newWallet: f.newWallet, owner: f.owner, deadline: f.deadline },
  } as const;
}

/** A proof made elsewhere (e.g. a contract wallet's ERC-1271 signature), passed through as is. */
export type PresignedWalletProof = { address: Address; signature: Hex; deadline: bigint };

export type SetAgentWalletParams = {
  agentId: bigint;
  /** The new wallet's own account (it signs the proof here), or a ready-made proof. */
  newWallet: LocalAccount | PresignedWalletProof;
  /** Default: the latest block's timestamp + 240 s. Ignored for a presigned proof. */
  deadline?: bigint;
  registry?: Address;
};

/** Makes `newWallet` the agent's verified wallet; sent by the agent's owner (or operator). */
export async function setAgentWallet(clients: Erc8004Clients, params: SetAgentWalletParams): Promise<WriteResult<{ wallet: Address }>> {
  const registry = params.registry ?? ERC8004_MAINNET_ADDRESSES.identityRegistry;
  const proof = "signature" in params.newWallet ? params.newWallet : await signWalletProof(clients.publicClient, params.newWallet, params.agentId, registry, params.deadline);
  const sent = await sendContractWrite(clients, {
    address: registry,
    abi: identityRegistryAbi,
    functionName: "setAgentWallet",
    args: [params.agentId, proof.address, proof.deadline, proof.signature],
  });
  return sent.ok ? { ...sent, wallet: proof.address } : sent;
}

/** Signs the AgentWalletSet proof with the new wallet's key, bound to the agent's current owner. */
export async function signWalletProof(
  publicClient: PublicClient,
  wallet: LocalAccount,
  agentId: bigint,
  registry: Address = ERC8004_MAINNET_ADDRESSES.identityRegistry,
  deadline?: bigint,
): Promise<PresignedWalletProof> {
  const [chainId, owner, block] = await Promise.all([
    publicClient.getChainId(),
    publicClient.readContract({ address: registry, abi: identityRegistryAbi, functionName: "ownerOf", args: [agentId] }),
    deadline === undefined ? publicClient.getBlock({ blockTag: "latest" }) : Promise.resolve(undefined),
  ]);
  const until = deadline ?? block!.timestamp + DEFAULT_WALLET_PROOF_TTL_SECONDS;
  const signature = await wallet.signTypedData(agentWalletTypedData({ chainId, registry, agentId, newWallet: wallet.address, owner, deadline: until }));
  return { address: wallet.address, signature, deadline: until };
}
