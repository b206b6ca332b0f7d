// Harness that runs OUR stack (@tollgate/facilitator, @tollgate/express, @tollgate/hono,
// @tollgate/fastify or @tollgate/next route handlers, @tollgate/fetch) over real HTTP on loopback, shaped like ./official.ts so tests and benchmarks
// can swap either side. Test/bench only: nothing under src/ may import this.
//
// - The facilitator is the real service (startFacilitator: hono app, in-memory PGlite ledger,
//   settle-once coordinator), with its scheme built here only when a test needs to tune it.
// - The resource server protects `GET <path>` (default /paid) answering JSON `{ ok: true, path }`,
//   like the official harness's server, so a client sees the same resource from either stack.
import type { RequestListener } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { Hono } from "hono";
import { getRequestListener } from "@hono/node-server";
import Fastify from "fastify";
import type { Address, Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { httpFacilitatorClient, type FacilitatorClient, type Network, type Price, type SpendingPolicy } from "@tollgate/core";
import { exactEvmClient, exactEvmFacilitator, exactEvmServer } from "@tollgate/evm";
import { startFacilitator, type Ledger } from "@tollgate/facilitator";
import { paymentMiddleware as expressPaymentMiddleware } from "@tollgate/express";
import { paymentMiddleware as honoPaymentMiddleware } from "@tollgate/hono";
import { paymentMiddleware as fastifyPaymentMiddleware } from "@tollgate/fastify";
import { createPaywall as createNextPaywall, withPayment } from "@tollgate/next";
import { wrapFetch } from "@tollgate/fetch";
import type { PaywallPageOptions, RouteDiscovery, RouteMandate, RouteResource } from "@tollgate/server";
import { listen, type Closable } from "./listen.ts";
import { serveLikeNext } from "../../packages/next/test/next-like.ts";

export { listen };

/** The local token as devnet describes it. */
export interface LocalToken {
  address: Address;
  name: string;
  version: string;
  decimals: number;
  symbol?: string;
}

/** Node's default (16 KiB) would answer an oversized payment header with 431 before our code sees it. */

export interface TollgateFacilitatorOptions {
  rpcUrl: string;
  /** CAIP-2, e.g. "eip155:31337". */
  network: string;
  /** Accepted asset (the facilitator's allowlist). */
  usdc: LocalToken;
  /** More accepted assets (e.g. the devnet's plain ERC-20, paid with Permit2). Default none. */
  assets?: readonly LocalToken[];
  /** Fee payer key. Never logged. */
  privateKey: Hex;
  /**
   * Receipt polling interval of the exact scheme's RPC client. Undefined: the service's own
   * default scheme wiring (what `tollgate facilitator` runs), untouched.
   */
  pollingIntervalMs?: number;
  /** A ledger to use (not closed by close()); default a fresh in-memory PGlite one. */
  ledger?: Ledger;
  port?: number;
}

export interface TollgateFacilitator extends Closable {
  /** Address that submits settlement transactions. */
  address: Address;
  ledger: Ledger;
}

/** Our facilitator service over HTTP (POST /verify, POST /settle, GET /supported, …). */
export async function startTollgateFacilitator(opts: TollgateFacilitatorOptions): Promise<TollgateFacilitator> {
  const network = opts.network as Network & `eip155:${string}`;
  const asset = { address: opts.usdc.address, name: opts.usdc.name, version: opts.usdc.version, decimals: opts.usdc.decimals };
  const assets = [asset, ...(opts.assets ?? []).map((a) => ({ address: a.address, name: a.name, version: a.version, decimals: a.decimals }))];
  const signer = privateKeyToAccount(opts.privateKey);
  const running = await startFacilitator(
    {
      port: opts.port ?? 0,
      host: "127.0.0.1",
      networks: [{ network, rpcUrl: opts.rpcUrl, assets }],
      privateKeys: [opts.privateKey],
      logLevel: "silent",
    },
    {
      ...(opts.ledger ? { ledger: opts.ledger } : {}),
      ...(opts.pollingIntervalMs === undefined
        ? {}
        : { schemes: [exactEvmFacilitator({ networks: [{ network, rpcUrl: opts.rpcUrl, assets }], signer, pollingIntervalMs: opts.pollingIntervalMs })] }),
    },
  );
  return { url: running.url, address: signer.address, ledger: running.ledger, close: running.close };
}

export type Framework = "express" | "hono" | "fastify" | "next";

export interface TollgateServerOptions {
  /** Base URL of the facilitator (HTTP client with default settings). */
  facilitatorUrl: string;
  network: string;
  usdc: LocalToken;
  payTo: Address;
  /** "$0.01", or atomic units as a decimal string ("10000"), or an exact `{ amount, asset }`. */
  price: Price;
  framework: Framework;
  path?: string;
  /** Wraps the facilitator client (e.g. to record verify/settle calls). */
  wrapFacilitator?: (client: FacilitatorClient) => FacilitatorClient;
  port?: number;
  /** More route fields (discovery, serviceName, tags, …). */
  route?: Partial<RouteResource & RouteDiscovery & RouteMandate>;
  /** The paywall's warnings (default: console.warn). */
  onWarning?: (message: string) => void;
  /** More tokens the server knows (e.g. one priced with `assetTransferMethod: "permit2"`). Default none. */
  assets?: ReadonlyArray<LocalToken & { assetTransferMethod?: "eip3009" | "permit2" }>;
  /** Settlement timing of the paywall. */
  paywall?: { settlementPollMs?: number; settlementTimeoutMs?: number; paywallPage?: PaywallPageOptions };
}

export interface TollgateServer extends Closable {
  /** Full URL of the paid route. */
  paidUrl: string;
}

/**
 * Our resource server (express, hono or fastify adapter, or a Next route handler served the way
 * `next start` serves it) with the exact EVM scheme protecting `GET <path>`.
 */
export async function startTollgateServer(opts: TollgateServerOptions): Promise<TollgateServer> {
  const network = opts.network as Network;
  const path = opts.path ?? "/paid";
  const usdc = opts.usdc;
  const client = httpFacilitatorClient({ url: opts.facilitatorUrl });
  const price: Price = typeof opts.price === "string" && /^\d+$/.test(opts.price) ? { amount: opts.price, asset: usdc.address } : opts.price;
  const config = {
    facilitator: opts.wrapFacilitator ? opts.wrapFacilitator(client) : client,
    schemes: [
      exactEvmServer({
        assets: [
          { network, address: usdc.address, decimals: usdc.decimals, name: usdc.name, version: usdc.version, symbol: usdc.symbol ?? "USDC" },
          ...(opts.assets ?? []).map((a) => ({
            network,
            address: a.address,
            decimals: a.decimals,
            name: a.name,
            version: a.version,
            symbol: a.symbol ?? "TOKEN",
            ...(a.assetTransferMethod ? { assetTransferMethod: a.assetTransferMethod } : {}),
          })),
        ],
      }),
    ],
    routes: { [`GET ${path}`]: { price, network, payTo: opts.payTo, description: "Tollgate paid route", mimeType: "application/json", ...opts.route } },
    ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
    ...opts.paywall,
  };

  let served: Closable;
  if (opts.framework === "fastify") {
    const app = Fastify({ logger: false, forceCloseConnections: true });
    await app.register(fastifyPaymentMiddleware(config));
    app.get(path, async () => ({ ok: true, path }));
    await app.listen({ port: opts.port ?? 0, host: "127.0.0.1" });
    served = { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
  } else if (opts.framework === "next") {
    // app/<path>/route.ts: `export const GET = withPayment(handler, route, paywall)`, the paywall
    // shared by the app's routes (lib/paywall.ts), which prices through withPayment, not a table.
    const { routes, ...shared } = config;
    const paywall = createNextPaywall(shared);
    const GET = withPayment(() => Response.json({ ok: true, path }), routes[`GET ${path}`]!, paywall, `GET ${path}`);
    const running = await serveLikeNext({ routes: { [path]: { GET } } }, opts.port);
    served = { url: running.url, close: running.close };
  } else {
    let listener: RequestListener;
    if (opts.framework === "express") {
      const app = express();
      app.use(expressPaymentMiddleware(config));
      app.get(path, (_req, res) => {
        res.json({ ok: true, path });
      });
      listener = app;
    } else {
      const app = new Hono();
      app.use(honoPaymentMiddleware(config));
      app.get(path, (c) => c.json({ ok: true, path }));
      listener = getRequestListener(app.fetch);
    }
    served = await listen(listener, opts.port);
  }
  return { ...served, paidUrl: `${served.url}${path}` };
}

export interface TollgateFetchOptions {
  /** Payer key (signs EIP-3009 authorizations). Never logged. */
  privateKey: Hex;
  policy?: SpendingPolicy;
}

/** Our paying fetch (exact EVM on any eip155 network). Typed as fetch so it swaps with officialFetch. */
export function tollgateFetch(opts: TollgateFetchOptions): typeof fetch {
  const account = privateKeyToAccount(opts.privateKey);
  return wrapFetch(fetch, { schemes: [exactEvmClient({ account })], ...(opts.policy ? { policy: opts.policy } : {}) }) as typeof fetch;
}
