// Our facilitator service as the channel tests and bench/channel.ts run it: the devnet's tokens,
// a fee payer, its own batch-settlement relayer (dev account 7) and delegated receiver authorizer
// (dev account 8), behind API keys; with a client that calls it with the first key. Test/bench only.
import { httpFacilitatorClient, type FacilitatorClient } from "@tollgate/core";
import { devAccount, type RunningLocalNetwork } from "@tollgate/devnet";
import { startFacilitator, type FacilitatorConfigInput, type RunningFacilitator } from "@tollgate/facilitator";
import type { Hex } from "viem";
import type { LocalToken } from "./tollgate.ts";

export interface ChannelFacilitatorOptions {
  /** The first is the one `client` presents (a bare key or `{ key, receivers }`). */
  apiKeys: NonNullable<FacilitatorConfigInput["apiKeys"]>;
  /** The allowlisted tokens; default the devnet's USDC. */
  tokens?: LocalToken[];
  /** The exact engine's fee payer; default dev account 6. */
  feePayerKey?: Hex;
}

export async function startChannelFacilitator(net: RunningLocalNetwork, o: ChannelFacilitatorOptions): Promise<{ service: RunningFacilitator; client: FacilitatorClient }> {
  const service = await startFacilitator({
    port: 0,
    host: "127.0.0.1",
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: (o.tokens ?? [net.usdc]).map((t) => ({ address: t.address, name: t.name, version: t.version, decimals: t.decimals })) }],
    privateKeys: [o.feePayerKey ?? devAccount(6).privateKey],
    apiKeys: o.apiKeys,
    batchSettlement: { relayerKey: devAccount(7).privateKey, receiverAuthorizerKey: devAccount(8).privateKey },
    logLevel: "silent",
  });
  const first = o.apiKeys[0];
  const key = typeof first === "string" ? first : first?.key;
  const headers: Record<string, string> = key ? { Authorization: `Bearer ${key}` } : {};
  const client = httpFacilitatorClient({ url: service.url, headers: () => headers });
  return { service, client };
}
