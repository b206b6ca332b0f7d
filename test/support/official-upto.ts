// Harness running the OFFICIAL @x402/evm 2.27 `upto` modules (client, server, facilitator) on a
// local anvil chain, shaped like ./official.ts, so the upto interop tests can pair every side of
// theirs with ours. Test only: nothing under src/ may import this.
//
// - Their facilitator: x402Facilitator with their upto scheme (it publishes its signer in
//   /supported kinds[].extra.facilitatorAddress, which their server copies into requirements).
// - Their server: @x402/express with their upto server scheme; the handler charges with their
//   `setSettlementOverrides(res, { amount })` (atomic units, "50%" or "$0.05").
// - Their client: @x402/fetch with their upto client scheme.
import express from "express";
import { createWalletClient, http, publicActions, type Address, type Hex } from "viem";
import { nonceManager, privateKeyToAccount } from "viem/accounts";
import { x402Facilitator } from "@x402/core/facilitator";
import { HTTPFacilitatorClient } from "@x402/core/server";
import type { Network, PaymentPayload, PaymentRequirements } from "@x402/core/types";
import { toFacilitatorEvmSigner } from "@x402/evm";
import { UptoEvmScheme as UptoClientScheme } from "@x402/evm/upto/client";
import { UptoEvmScheme as UptoFacilitatorScheme } from "@x402/evm/upto/facilitator";
import { UptoEvmScheme as UptoServerScheme } from "@x402/evm/upto/server";
import { paymentMiddlewareFromHTTPServer, setSettlementOverrides, x402HTTPResourceServer, x402ResourceServer } from "@x402/express";
import { wrapFetchWithPayment, x402Client } from "@x402/fetch";
import { localChain, serveApp, type Closable, type OfficialFacilitator, type OfficialServer } from "./official.ts";

/** Their facilitator with their upto scheme, over HTTP (POST /verify, POST /settle, GET /supported). */
export async function startOfficialUptoFacilitator(opts: { rpcUrl: string; chainId: number; privateKey: Hex }): Promise<OfficialFacilitator> {
  const network = `eip155:${opts.chainId}` as Network;
  const account = privateKeyToAccount(opts.privateKey, { nonceManager });
  const client = createWalletClient({ account, chain: localChain(opts.chainId, opts.rpcUrl), transport: http(opts.rpcUrl), pollingInterval: 50 }).extend(publicActions);
  const signer = toFacilitatorEvmSigner({
    address: account.address,
    getCode: (args) => client.getCode(args),
    readContract: (args) => client.readContract({ ...args, args: args.args ?? [] }),
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    verifyTypedData: (args) => client.verifyTypedData(args as any),
    writeContract: (args) => client.writeContract({ ...args, args: args.args ?? [] }),
    sendTransaction: (args) => client.sendTransaction(args),
    waitForTransactionReceipt: (args) => client.waitForTransactionReceipt(args),
  });
  const facilitator = new x402Facilitator().register(network, new UptoFacilitatorScheme(signer));
  const app = express();
  app.use(express.json());
  const parts = (body: unknown) => body as { paymentPayload: PaymentPayload; paymentRequirements: PaymentRequirements };
  app.post("/verify", async (req, res) => {
    const { paymentPayload, paymentRequirements } = parts(req.body);
    res.json(await facilitator.verify(paymentPayload, paymentRequirements));
  });
  app.post("/settle", async (req, res) => {
    const { paymentPayload, paymentRequirements } = parts(req.body);
    res.json(await facilitator.settle(paymentPayload, paymentRequirements));
  });
  app.get("/supported", (_req, res) => {
    res.json(facilitator.getSupported());
  });
  const served = await serveApp(app);
  return { ...served, address: account.address, network };
}

export interface OfficialUptoServerOptions {
  facilitatorUrl: string;
  network: string;
  payTo: Address;
  asset: { address: Address; name: string; version: string };
  /** The maximum, atomic units. */
  maxAmount: string;
  /** What the handler charges via setSettlementOverrides; undefined: nothing set. */
  charge?: string;
  path?: string;
}

/** Their express server: `GET /paid` priced `upto` maxAmount, charging `charge` after the handler. */
export async function startOfficialUptoServer(opts: OfficialUptoServerOptions): Promise<OfficialServer> {
  const network = opts.network as Network;
  const path = opts.path ?? "/paid";
  const resourceServer = new x402ResourceServer(new HTTPFacilitatorClient({ url: opts.facilitatorUrl })).register(network, new UptoServerScheme());
  const httpServer = new x402HTTPResourceServer(resourceServer, {
    [`GET ${path}`]: {
      accepts: {
        scheme: "upto",
        network,
        payTo: opts.payTo,
        price: { amount: opts.maxAmount, asset: opts.asset.address, extra: { name: opts.asset.name, version: opts.asset.version, assetTransferMethod: "permit2" } },
      },
      description: "Tollgate upto interop route",
      mimeType: "application/json",
    },
  });
  await httpServer.initialize();
  const app = express();
  app.use(paymentMiddlewareFromHTTPServer(httpServer, undefined, undefined, false));
  app.get(path, (_req, res) => {
    if (opts.charge !== undefined) setSettlementOverrides(res, { amount: opts.charge });
    res.json({ ok: true, path });
  });
  const served = await serveApp(app);
  return { ...served, paidUrl: `${served.url}${path}` };
}

/**
 * Their fetch wrapper paying `upto` (signs the maximum for the facilitator the server names).
 * With `rpcUrl`, their client reads the chain and adds an EIP-2612 permit (eip2612GasSponsoring)
 * when the server advertises it and the payer's Permit2 allowance is short.
 */
export function officialUptoFetch(privateKey: Hex, opts: { rpcUrl?: string } = {}): typeof fetch {
  const scheme = new UptoClientScheme(privateKeyToAccount(privateKey), opts.rpcUrl ? { rpcUrl: opts.rpcUrl } : undefined);
  const client = new x402Client().register("eip155:*", scheme).setSpendControls({ allowedAssets: true });
  return wrapFetchWithPayment(fetch, client) as typeof fetch;
}

export type { Closable };
