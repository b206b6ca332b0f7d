// The OFFICIAL @x402/evm 2.27 `batch-settlement` pieces on a local anvil chain, for interop tests
// and the channel bench: their facilitator face in process (as our FacilitatorClient, or over
// HTTP like their facilitator example), their resource server (express) and their paying fetch.
// Test/bench only: nothing under src/ may import this.
import express from "express";
import { createWalletClient, http, publicActions, type Address, type Hex } from "viem";
import { nonceManager, privateKeyToAccount } from "viem/accounts";
import { x402Facilitator } from "@x402/core/facilitator";
import { HTTPFacilitatorClient } from "@x402/core/server";
import type { Network as OfficialNetwork, PaymentPayload as OfficialPayload, PaymentRequirements as OfficialRequirements } from "@x402/core/types";
import { toFacilitatorEvmSigner } from "@x402/evm";
import { BatchSettlementEvmScheme as TheirFacilitatorScheme } from "@x402/evm/batch-settlement/facilitator";
import { BatchSettlementEvmScheme as TheirServerScheme } from "@x402/evm/batch-settlement/server";
import { BatchSettlementEvmScheme as TheirClientScheme } from "@x402/evm/batch-settlement/client";
import { paymentMiddlewareFromHTTPServer, x402HTTPResourceServer, x402ResourceServer } from "@x402/express";
import { wrapFetchWithPayment, x402Client } from "@x402/fetch";
import type { FacilitatorClient, SupportedResponse } from "@tollgate/core";
import { localChain, serveApp } from "./official.ts";
import type { Closable } from "./listen.ts";

export interface OfficialBatchFacilitatorOptions {
  rpcUrl: string;
  chainId: number;
  /** Pays gas. Never logged. */
  privateKey: Hex;
  /** Signs claims and refunds (advertised as `receiverAuthorizer`). Never logged. */
  authorizerKey: Hex;
}

export interface OfficialBatchFacilitator {
  /** Their facilitator, answering as our FacilitatorClient (in process, no HTTP). */
  client: FacilitatorClient;
  facilitator: x402Facilitator;
  receiverAuthorizer: Address;
  network: OfficialNetwork;
}

export function officialBatchFacilitator(opts: OfficialBatchFacilitatorOptions): OfficialBatchFacilitator {
  const network = `eip155:${opts.chainId}` as OfficialNetwork;
  const account = privateKeyToAccount(opts.privateKey, { nonceManager });
  const viemClient = createWalletClient({ account, chain: localChain(opts.chainId, opts.rpcUrl), transport: http(opts.rpcUrl), pollingInterval: 50 }).extend(publicActions);
  const signer = toFacilitatorEvmSigner({
    address: account.address,
    getCode: (args) => viemClient.getCode(args),
    readContract: (args) => viemClient.readContract({ ...args, args: args.args ?? [] }),
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    verifyTypedData: (args) => viemClient.verifyTypedData(args as any),
    writeContract: (args) => viemClient.writeContract({ ...args, args: args.args ?? [] }),
    sendTransaction: (args) => viemClient.sendTransaction(args),
    waitForTransactionReceipt: (args) => viemClient.waitForTransactionReceipt(args),
  });
  const authorizer = privateKeyToAccount(opts.authorizerKey);
  const facilitator = new x402Facilitator().register(network, new TheirFacilitatorScheme(signer, authorizer));
  const client: FacilitatorClient = {
    verify: async (payload, requirements) => (await facilitator.verify(payload as unknown as OfficialPayload, requirements as unknown as OfficialRequirements)) as never,
    settle: async (payload, requirements) => (await facilitator.settle(payload as unknown as OfficialPayload, requirements as unknown as OfficialRequirements)) as never,
    supported: async () => facilitator.getSupported() as unknown as SupportedResponse,
  };
  return { client, facilitator, receiverAuthorizer: authorizer.address, network };
}

/** Their facilitator over HTTP, as their facilitator example serves it. */
export async function serveOfficialBatchFacilitator(f: OfficialBatchFacilitator): Promise<Closable> {
  const app = express();
  app.use(express.json({ limit: "1mb" }));
  for (const op of ["verify", "settle"] as const) {
    app.post(`/${op}`, async (req, res) => {
      const { paymentPayload, paymentRequirements } = req.body ?? {};
      if (!paymentPayload || !paymentRequirements) return void res.status(400).json({ error: "Missing paymentPayload or paymentRequirements" });
      try {
        res.json(await f.facilitator[op](paymentPayload, paymentRequirements));
      } catch (e) {
        res.status(500).json({ error: e instanceof Error ? e.message : "Unknown error" });
      }
    });
  }
  app.get("/supported", (_req, res) => void res.json(f.facilitator.getSupported()));
  return serveApp(app);
}

export interface OfficialBatchServer extends Closable {
  paidUrl: string;
  scheme: TheirServerScheme;
}

/** Their resource server (express) with their batch-settlement server scheme on `GET /paid`. */
export async function startOfficialBatchServer(opts: { facilitatorUrl: string; network: string; payTo: Address; asset: { address: Address; name: string; version: string }; amount: string; apiKey?: string }): Promise<OfficialBatchServer> {
  const network = opts.network as OfficialNetwork;
  const scheme = new TheirServerScheme(opts.payTo);
  const auth = opts.apiKey ? { Authorization: `Bearer ${opts.apiKey}` } : undefined;
  const facilitator = new HTTPFacilitatorClient({ url: opts.facilitatorUrl, ...(auth ? { createAuthHeaders: async () => ({ verify: auth, settle: auth, supported: auth }) } : {}) });
  const resourceServer = new x402ResourceServer(facilitator).register(network, scheme);
  const httpServer = new x402HTTPResourceServer(resourceServer, {
    "GET /paid": {
      accepts: { scheme: "batch-settlement", network, payTo: opts.payTo, price: { amount: opts.amount, asset: opts.asset.address, extra: { name: opts.asset.name, version: opts.asset.version } } },
      description: "official batch-settlement route",
      mimeType: "application/json",
    },
  });
  await httpServer.initialize();
  const app = express();
  app.use(paymentMiddlewareFromHTTPServer(httpServer, undefined, undefined, false));
  app.get("/paid", (_req, res) => void res.json({ ok: true }));
  const served = await serveApp(app);
  return { ...served, paidUrl: `${served.url}/paid`, scheme };
}

/** Their paying fetch with their batch-settlement client (reads the chain for recovery). */
export function officialBatchFetch(opts: { privateKey: Hex; rpcUrl: string; chainId: number }): typeof fetch {
  return officialBatchClient(opts).fetch;
}

/** Their batch-settlement client scheme (for `refund(url)`) and the paying fetch around it. */
export function officialBatchClient(opts: { privateKey: Hex; rpcUrl: string; chainId: number }): { fetch: typeof fetch; scheme: TheirClientScheme } {
  const account = privateKeyToAccount(opts.privateKey);
  const reader = createWalletClient({ account, chain: localChain(opts.chainId, opts.rpcUrl), transport: http(opts.rpcUrl) }).extend(publicActions);
  const signer = {
    address: account.address,
    signTypedData: (args: Parameters<typeof account.signTypedData>[0]) => account.signTypedData(args),
    readContract: (args: { address: Address; abi: readonly unknown[]; functionName: string; args?: readonly unknown[] }) =>
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      reader.readContract({ ...(args as any), args: args.args ?? [] }),
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const scheme = new TheirClientScheme(signer as any);
  const client = new x402Client().register("eip155:*", scheme).setSpendControls({ allowedAssets: true });
  return { fetch: wrapFetchWithPayment(fetch, client) as typeof fetch, scheme };
}
