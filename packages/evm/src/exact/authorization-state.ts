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
import type { PaymentPayload, PaymentRequirements } from "@tollgate/core";
import { createPublicClient, http, type Address, type PublicClient } from "viem";
import { eip3009Abi } from "../contracts/abi.ts";
import { PERMIT2_ADDRESS, permit2Abi } from "../contracts/permit2-abi.ts";
import { parseExactEvmPayload } from "./payload.ts";
import { isPermit2Payload, parseExactPermit2Payload } from "./permit2-payload.ts";

export type ProveUnused = (payload: PaymentPayload, requirements: PaymentRequirements) => Promise<boolean>;

/** Reads one chain per network: `rpcUrls["eip155:8453"] = "https://…"`. A network without an RPC proves nothing. */
export function exactEvmAuthorizationUnused(options: { rpcUrls: Record<string, string> } | { clients: Record<string, PublicClient> }): ProveUnused {
  const clients = new Map<string, PublicClient>();
  const clientFor = (network: string): PublicClient | undefined => {
    if ("clients" in options) return options.clients[network];
    const url = options.rpcUrls[network];
    if (!url) return undefined;
    let c = clients.get(network);
    if (!c) clients.set(network, (c = createPublicClient({ transport: http(url) }) as PublicClient));
    return c;
  };
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
