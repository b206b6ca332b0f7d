// Our resource server with `batch-settlement` on `GET /paid` (express adapter), for the channel
// tests, the demo's shape and the bench. Test/bench only.
import express from "express";
import type { Address, LocalAccount } from "viem";
import type { FacilitatorClient, Network } from "@tollgate/core";
import { batchSettlementEvmServer, exactEvmServer } from "@tollgate/evm";
import { paymentMiddleware } from "@tollgate/express";
import type { ChannelStore } from "@tollgate/server";
import { listen, type Closable } from "./listen.ts";
import type { LocalToken } from "./tollgate.ts";

export interface ChannelServerOptions {
  facilitator: FacilitatorClient;
  network: string;
  /** The token routes are priced in (the devnet's USDC, or its plain ERC-20 with `assetTransferMethod: "permit2"`). */
  usdc: LocalToken & { assetTransferMethod?: "eip3009" | "permit2" };
  payTo: Address;
  /** Atomic units per request. */
  amount: string;
  store?: ChannelStore;
  /** Runs before the handler answers (to hold a request, or to fail it with a status). */
  handler?: (path: string) => Promise<number | void> | number | void;
  /** Also price `GET /exact` with `exact` (same amount), for comparisons. */
  exact?: boolean;
  maxSnapshotAgeMs?: number;
  /** The server's own receiver authorizer (a key it holds signs claims and refunds); default: the facilitator's. */
  receiverAuthorizer?: LocalAccount;
}

export interface ChannelServer extends Closable {
  paidUrl: string;
  freeUrl: string;
  exactUrl: string;
}

export async function startChannelServer(o: ChannelServerOptions): Promise<ChannelServer> {
  const network = o.network as Network;
  const assets = [{ network, address: o.usdc.address, decimals: o.usdc.decimals, name: o.usdc.name, version: o.usdc.version, symbol: o.usdc.symbol ?? "USDC", ...(o.usdc.assetTransferMethod ? { assetTransferMethod: o.usdc.assetTransferMethod } : {}) }];
  const price = { amount: o.amount, asset: o.usdc.address };
  const app = express();
  app.use(
    paymentMiddleware({
      facilitator: o.facilitator,
      schemes: [batchSettlementEvmServer({ assets, ...(o.receiverAuthorizer ? { receiverAuthorizer: o.receiverAuthorizer } : {}) }), exactEvmServer({ assets })],
      routes: {
        "GET /paid": { scheme: "batch-settlement", price, network, payTo: o.payTo, description: "channel-paid route", mimeType: "application/json" },
        ...(o.exact ? { "GET /exact": { price, network, payTo: o.payTo, description: "exact-paid route", mimeType: "application/json" } } : {}),
      },
      channels: { ...(o.store ? { store: o.store } : {}), ...(o.maxSnapshotAgeMs !== undefined ? { maxSnapshotAgeMs: o.maxSnapshotAgeMs } : {}) },
      checkAtStart: false,
    }),
  );
  for (const path of ["/paid", "/free", "/exact"]) {
    app.get(path, async (_req, res) => {
      const status = (await o.handler?.(path)) ?? 200;
      res.status(status).json({ ok: status < 400, path });
    });
  }
  const served = await listen(app);
  return { ...served, paidUrl: `${served.url}/paid`, freeUrl: `${served.url}/free`, exactUrl: `${served.url}/exact` };
}
