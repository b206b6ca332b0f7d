/**
 * The local x402 network of `tollgate dev` and `npm start`: anvil with our token, a local
 * Solana (litesvm behind a JSON-RPC endpoint) with a USDC-like mint, one facilitator serving
 * both, and the demo paid API accepting either — every part real, on loopback, stopped together.
 */
import { serve, type ServerType } from "@hono/node-server";
import { httpFacilitatorClient, type FacilitatorClient } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { deployErc8004, type DeployedErc8004 } from "@tollgate/erc8004";
import { exactEvmServer } from "@tollgate/evm";
import { startFacilitator } from "@tollgate/facilitator";
import { getBase58Decoder } from "@solana/kit";
import { exactSvmServer, setupLocalSolanaNetwork, startLocalSolana, type LocalSolanaNetwork } from "@tollgate/svm";
import { createDemoApi, type DemoApiOptions } from "./demo-api.ts";

/** One cent of a 6-decimal stablecoin. */
export const DEMO_PRICE_ATOMIC = "10000";

/** The local Solana of the stack: its endpoint plus the mint and funded accounts. */
export type DevSolana = LocalSolanaNetwork & { url: string };

export interface DevStack {
  chain: RunningLocalNetwork;
  /** The ERC-8004 registries, at the public deployments' addresses. */
  erc8004: DeployedErc8004;
  solana: DevSolana;
  facilitatorUrl: string;
  apiUrl: string;
  close(): Promise<void>;
}

export interface DevStackOptions {
  chainPort?: number;
  /** Port of the local Solana JSON-RPC endpoint (default: a free one). */
  solanaPort?: number;
  facilitatorPort?: number;
  apiPort?: number;
  /** Wraps the facilitator client the demo API uses (the demo narrates its calls). */
  wrapFacilitator?: (client: FacilitatorClient) => FacilitatorClient;
  onSettled?: DemoApiOptions["onSettled"];
  logLevel?: "info" | "silent" | "warn";
}

export async function startDevStack(options: DevStackOptions = {}): Promise<DevStack> {
  const cleanups: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  };
  try {
    const chain = await startLocalNetwork({ ...(options.chainPort ? { port: options.chainPort } : {}) });
    cleanups.push(() => chain.stop());
    const { usdc, network } = chain;
    const erc8004 = await deployErc8004({ rpcUrl: chain.rpcUrl });

    const solanaRpc = await startLocalSolana({ ...(options.solanaPort ? { port: options.solanaPort } : {}) });
    cleanups.push(() => solanaRpc.close());
    const sol = await setupLocalSolanaNetwork({ svm: solanaRpc.svm });
    const solana: DevSolana = Object.assign(sol, { url: solanaRpc.url });

    const facilitator = await startFacilitator({
      port: options.facilitatorPort ?? 0,
      networks: [{ network, rpcUrl: chain.rpcUrl, assets: [{ address: usdc.address, name: usdc.name, version: usdc.version, decimals: usdc.decimals }] }],
      privateKeys: [chain.accounts.facilitator.privateKey],
      solanaNetworks: [{ network: sol.network, rpcUrl: solanaRpc.url, assets: [{ address: sol.mint, decimals: sol.decimals }] }],
      solanaFeePayerKey: getBase58Decoder().decode(sol.feePayer.secretKey),
      logLevel: options.logLevel ?? "silent",
    });
    cleanups.push(() => facilitator.close());

    const client = httpFacilitatorClient({ url: facilitator.url });
    const api = createDemoApi({
      facilitator: options.wrapFacilitator ? options.wrapFacilitator(client) : client,
      schemes: [
        exactEvmServer({ assets: [{ network, address: usdc.address, decimals: usdc.decimals, name: usdc.name, version: usdc.version, symbol: usdc.symbol }] }),
        exactSvmServer({ assets: { [sol.network]: { address: sol.mint, decimals: sol.decimals, symbol: "USDC" } } }),
      ],
      // One price, two ways to pay it: the client picks the chain it holds money on.
      weather: {
        accepts: [
          { price: "$0.01", network, payTo: chain.accounts.payee.address },
          { price: "$0.01", network: sol.network, payTo: sol.payee.address },
        ],
        description: "Today's weather in Lisbon",
        mimeType: "application/json",
      },
      ...(options.onSettled ? { onSettled: options.onSettled } : {}),
    });
    const server = await listen(api.fetch, options.apiPort ?? 0);
    cleanups.push(() => new Promise<void>((resolve) => { server.close(() => resolve()); (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.(); }));
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    return { chain, erc8004, solana, facilitatorUrl: facilitator.url, apiUrl: `http://127.0.0.1:${port}`, close };
  } catch (e) {
    await close();
    throw e;
  }
}

function listen(fetch: (req: Request) => Response | Promise<Response>, port: number): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch, port, hostname: "127.0.0.1" }, () => resolve(server));
    server.once("error", reject);
  });
}
