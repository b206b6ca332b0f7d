/**
 * Proof from the chain that an `exact` payment's authorization was never used: EIP-3009
 * `authorizationState(from, nonce)` is false, or, for Permit2, the owner's nonce bit is clear.
 * A resource server over several facilitators needs this before it moves a settlement away from
 * a facilitator that stopped answering (that one may be settling it right now): only an unused
 * authorization may be handed to another (`facilitatorPool({ proveUnused })` in @tollgate/server).
 *
 * "Unused now" is all the chain can say: the first facilitator may still land it later, and then
 * the second one's transaction fails on the nonce. The payer pays once either way.
 */
import type { PaymentPayload, PaymentRequirements, SettleResponse } from "@tollgate/core";
import { createPublicClient, getAddress, http, parseEventLogs, type Address, type PublicClient } from "viem";
import { eip3009Abi } from "../contracts/abi.ts";
import { PERMIT2_ADDRESS, permit2Abi } from "../contracts/permit2-abi.ts";
import { parseExactEvmPayload } from "./payload.ts";
import { isPermit2Payload, parseExactPermit2Payload } from "./permit2-payload.ts";

export type ProveUnused = (payload: PaymentPayload, requirements: PaymentRequirements) => Promise<boolean>;

export type ChainAccess = { rpcUrls: Record<string, string> } | { clients: Record<string, PublicClient> };

/** One client per network: `rpcUrls["eip155:8453"] = "https://…"`. A network without an RPC proves nothing. */
function clientsOf(options: ChainAccess): (network: string) => PublicClient | undefined {
  const clients = new Map<string, PublicClient>();
  return (network) => {
    if ("clients" in options) return options.clients[network];
    const url = options.rpcUrls[network];
    if (!url) return undefined;
    let c = clients.get(network);
    if (!c) clients.set(network, (c = createPublicClient({ transport: http(url) }) as PublicClient));
    return c;
  };
}

export function exactEvmAuthorizationUnused(options: ChainAccess): ProveUnused {
  const clientFor = clientsOf(options);
  return async (payload, requirements) => {
    if (requirements.scheme !== "exact") return false;
    const client = clientFor(requirements.network);
    if (!client) return false;
    if (isPermit2Payload(payload.payload)) {
      const p = parseExactPermit2Payload(payload.payload);
      if (!p.ok) return false;
      const nonce = BigInt(p.value.permit2Authorization.nonce);
      const word = await client.readContract({ address: PERMIT2_ADDRESS, abi: permit2Abi, functionName: "nonceBitmap", args: [p.value.permit2Authorization.from, nonce >> 8n] });
      return ((word as bigint) & (1n << (nonce & 255n))) === 0n;
    }
    const p = parseExactEvmPayload(payload.payload);
    if (!p.ok) return false;
    const used = await client.readContract({
      address: requirements.asset as Address,
      abi: eip3009Abi,
      functionName: "authorizationState",
      args: [p.value.authorization.from as Address, p.value.authorization.nonce as `0x${string}`],
    });
    return used === false;
  };
}

export type ProveSettled = (payload: PaymentPayload, requirements: PaymentRequirements) => Promise<SettleResponse | undefined>;

/**
 * The other half: a settlement whose facilitator went silent may have landed. For an EIP-3009
 * payment this finds the `AuthorizationUsed(from, nonce)` log and accepts it only when the same
 * transaction moved exactly the required amount of the asset from the payer to `payTo` (a nonce
 * can also be burnt by another authorization or a cancel, which pays nobody). Returns the success
 * the facilitator would have answered, or undefined. Looks back `lookbackBlocks` (default 50 000).
 */
export function exactEvmSettlementOnChain(options: ChainAccess & { lookbackBlocks?: bigint }): ProveSettled {
  const clientFor = clientsOf(options);
  const lookback = options.lookbackBlocks ?? 50_000n;
  return async (payload, requirements) => {
    const client = requirements.scheme === "exact" ? clientFor(requirements.network) : undefined;
    if (!client || isPermit2Payload(payload.payload)) return undefined;
    const p = parseExactEvmPayload(payload.payload);
    if (!p.ok) return undefined;
    const { from, nonce } = p.value.authorization;
    const asset = getAddress(requirements.asset);
    const latest = await client.getBlockNumber();
    const logs = await client.getLogs({
      address: asset,
      event: eip3009Abi.find((x) => x.type === "event" && x.name === "AuthorizationUsed") as Extract<(typeof eip3009Abi)[number], { type: "event"; name: "AuthorizationUsed" }>,
      args: { authorizer: from as Address, nonce: nonce as `0x${string}` },
      fromBlock: latest > lookback ? latest - lookback : 0n,
      toBlock: latest,
    });
    const used = logs[0];
    if (!used?.transactionHash) return undefined;
    const receipt = await client.getTransactionReceipt({ hash: used.transactionHash });
    if (receipt.status !== "success") return undefined;
    const transfers = parseEventLogs({ abi: eip3009Abi, eventName: "Transfer", logs: receipt.logs.filter((l) => getAddress(l.address) === asset) });
    const paid = transfers.some((t) => getAddress(t.args.from) === getAddress(from) && getAddress(t.args.to) === getAddress(requirements.payTo) && t.args.value === BigInt(requirements.amount));
    if (!paid) return undefined;
    return { success: true, transaction: used.transactionHash, network: requirements.network, payer: getAddress(from) };
  };
}
