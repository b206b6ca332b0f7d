// Harness that runs the OFFICIAL x402 TypeScript stack (@x402/core, @x402/evm, @x402/fetch,
// @x402/express) against a local anvil chain, so interop tests and benchmarks can pair our
// components with theirs. Test/bench only: nothing under src/ may import this.
//
// Wiring follows their examples (facilitator/basic, servers/express, clients/fetch) with the
// changes a local chain needs:
// - prices are `{ amount, asset, extra: { name, version } }`: their dollar-string table has no
//   entry for chain 31337, and the EIP-712 domain must come from `extra`;
// - their client only pays "default assets" unless told otherwise, so officialFetch widens the
//   spend controls to allow the local USDC;
// - the facilitator account carries viem's nonceManager so concurrent settles get distinct nonces;
// - their facilitator reads through Multicall3 at the canonical address (our devnet places it).
import { listen, type Closable } from "./listen.ts";
import express, { type Express } from "express";
import { createWalletClient, defineChain, http, publicActions, type Address, type Chain, type Hex } from "viem";
import { nonceManager, privateKeyToAccount } from "viem/accounts";
import { x402Facilitator } from "@x402/core/facilitator";
import { HTTPFacilitatorClient } from "@x402/core/server";
import type { Network, PaymentPayload, PaymentRequirements, SettleResponse } from "@x402/core/types";
import { toFacilitatorEvmSigner } from "@x402/evm";
import { ExactEvmScheme as ExactEvmClientScheme } from "@x402/evm/exact/client";
import { ExactEvmScheme as ExactEvmFacilitatorScheme } from "@x402/evm/exact/facilitator";
import { ExactEvmScheme as ExactEvmServerScheme } from "@x402/evm/exact/server";
import { bazaarResourceServerExtension } from "@x402/extensions/bazaar";
import { paymentMiddlewareFromHTTPServer, x402HTTPResourceServer, x402ResourceServer } from "@x402/express";
import { decodePaymentResponseHeader, wrapFetchWithPayment, x402Client, type x402ClientConfig } from "@x402/fetch";

export type OfficialNetwork = Network;
export type OfficialSettleResponse = SettleResponse;

export type { Closable };

/** A viem chain for a local anvil node (chain id usually 31337). */
export function localChain(chainId: number, rpcUrl: string): Chain {
  return defineChain({
    id: chainId,
    name: `anvil-${chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [rpcUrl] } },
  });
}

/** Serves an express app on 127.0.0.1 (ephemeral port by default). */
export function serveApp(app: Express, port = 0): Promise<Closable> {
  return listen(app, port);
}

export interface OfficialFacilitatorOptions {
  rpcUrl: string;
  chainId: number;
  /** Facilitator key: pays gas for settlement. Never logged. */
  privateKey: Hex;
  port?: number;
  /** viem polling interval for receipt waits, default 50 ms (local chain). */
  pollingIntervalMs?: number;
}

export interface OfficialFacilitator extends Closable {
  /** Address that submits settlement transactions. */
  address: Address;
  network: Network;
}

/**
 * Their x402Facilitator with their exact EVM scheme, over HTTP exactly like their
 * facilitator example: POST /verify, POST /settle (400 when either field is missing),
 * GET /supported.
 */
export async function startOfficialFacilitator(opts: OfficialFacilitatorOptions): Promise<OfficialFacilitator> {
  const network = `eip155:${opts.chainId}` as Network;
  const account = privateKeyToAccount(opts.privateKey, { nonceManager });
  const viemClient = createWalletClient({
    account,
    chain: localChain(opts.chainId, opts.rpcUrl),
    transport: http(opts.rpcUrl),
    // Receipt waits poll at this interval. With auto-mine the first check already finds the receipt;
    // with anvil --block-time viem's 4 s default would dominate settle latency.
    pollingInterval: opts.pollingIntervalMs ?? 50,
  }).extend(publicActions);

  const signer = toFacilitatorEvmSigner({
    address: account.address,
    getCode: (args) => viemClient.getCode(args),
    readContract: (args) => viemClient.readContract({ ...args, args: args.args ?? [] }),
    // Their signer type is structurally looser than viem's generic typed-data signature.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    verifyTypedData: (args) => viemClient.verifyTypedData(args as any),
    writeContract: (args) => viemClient.writeContract({ ...args, args: args.args ?? [] }),
    sendTransaction: (args) => viemClient.sendTransaction(args),
    waitForTransactionReceipt: (args) => viemClient.waitForTransactionReceipt(args),
  });

  const facilitator = new x402Facilitator().register(network, new ExactEvmFacilitatorScheme(signer));

  const app = express();
  app.use(express.json());

  app.post("/verify", async (req, res) => {
    const parts = requestParts(req.body, res);
    if (!parts) return;
    const { paymentPayload, paymentRequirements } = parts;
    try {
      res.json(await facilitator.verify(paymentPayload, paymentRequirements));
    } catch (error) {
      res.status(500).json({ error: error instanceof Error ? error.message : "Unknown error" });
    }
  });

  app.post("/settle", async (req, res) => {
    const parts = requestParts(req.body, res);
    if (!parts) return;
    const { paymentPayload, paymentRequirements } = parts;
    try {
      res.json(await facilitator.settle(paymentPayload, paymentRequirements));
    } catch (error) {
      // Their example turns a hook abort into a failed SettleResponse rather than a 500.
      if (error instanceof Error && error.message.includes("Settlement aborted:")) {
        res.json({
          success: false,
          errorReason: error.message.replace("Settlement aborted: ", ""),
          transaction: "",
          network: paymentPayload.accepted?.network ?? network,
        } satisfies SettleResponse);
        return;
      }
      res.status(500).json({ error: error instanceof Error ? error.message : "Unknown error" });
    }
  });

  app.get("/supported", (_req, res) => {
    res.json(facilitator.getSupported());
  });

  const served = await serveApp(app, opts.port);
  return { ...served, address: account.address, network };
}

export interface OfficialServerOptions {
  facilitatorUrl: string;
  /** More facilitators for their resource server (it takes a list; the first that lists a kind serves it). */
  moreFacilitatorUrls?: string[];
  /** CAIP-2, e.g. "eip155:31337". */
  network: string;
  payTo: Address;
  /** Token and its EIP-712 domain (name/version go to `extra`, where their client reads them). */
  asset: { address: Address; name: string; version: string };
  /** Atomic units, decimal string (e.g. "10000" = 0.01 USDC). */
  amount: string;
  /** Advertised as `extra.assetTransferMethod` (their client then signs Permit2). Default: none (EIP-3009). */
  assetTransferMethod?: "permit2";
  path?: string;
  port?: number;
  /** Route extensions (e.g. their `declareDiscoveryExtension(...)`); the bazaar server extension is registered when one is given. */
  extensions?: Record<string, unknown>;
  /** Extra `resource` metadata of the route (serviceName, tags). */
  resourceMeta?: Record<string, unknown>;
}

export interface OfficialServer extends Closable {
  /** Full URL of the paid route. */
  paidUrl: string;
}

/**
 * Express app with their paymentMiddleware + x402ResourceServer (their exact EVM server
 * scheme) protecting `GET <path>`, which answers JSON `{ ok: true, path }`.
 *
 * Fetches the facilitator's GET /supported before listening (start the facilitator first):
 * rejects when the facilitator is unreachable or does not list `exact` on `network`.
 */
export async function startOfficialServer(opts: OfficialServerOptions): Promise<OfficialServer> {
  const network = opts.network as Network;
  const path = opts.path ?? "/paid";
  const urls = [opts.facilitatorUrl, ...(opts.moreFacilitatorUrls ?? [])];
  const clients = urls.map((url) => new HTTPFacilitatorClient({ url }));
  const resourceServer = new x402ResourceServer(clients.length === 1 ? clients[0]! : clients).register(
    network,
    new ExactEvmServerScheme(),
  );
  if (opts.extensions?.bazaar !== undefined) resourceServer.registerExtension(bazaarResourceServerExtension);

  const httpServer = new x402HTTPResourceServer(resourceServer, {
    [`GET ${path}`]: {
      accepts: {
        scheme: "exact",
        network,
        payTo: opts.payTo,
        price: {
          amount: opts.amount,
          asset: opts.asset.address,
          extra: { name: opts.asset.name, version: opts.asset.version, ...(opts.assetTransferMethod ? { assetTransferMethod: opts.assetTransferMethod } : {}) },
        },
      },
      description: "Tollgate interop paid route",
      mimeType: "application/json",
      ...(opts.extensions ? { extensions: opts.extensions } : {}),
      ...(opts.resourceMeta ?? {}),
    },
  });
  // paymentMiddleware() would sync with the facilitator in the background and call
  // process.exit(1) on a route/facilitator mismatch (e.g. network missing from /supported),
  // killing the test worker. Initialize here instead so a mismatch rejects this promise.
  await httpServer.initialize();

  const app = express();
  app.use(paymentMiddlewareFromHTTPServer(httpServer, undefined, undefined, false));
  app.get(path, (_req, res) => {
    res.json({ ok: true, path });
  });

  const served = await serveApp(app, opts.port);
  return { ...served, paidUrl: `${served.url}${path}` };
}

export interface OfficialFetchOptions {
  /** Payer key (signs EIP-3009 authorizations; never sends transactions). Never logged. */
  privateKey: Hex;
  /**
   * Their client only pays assets in their default-asset table (capped at $1) unless told
   * otherwise; the local USDC is not in that table. Default: allow any asset.
   */
  spendControls?: x402ClientConfig["spendControls"];
}

/**
 * Their fetch wrapper: on 402 it decodes PAYMENT-REQUIRED, lets their x402Client pick the
 * first requirement whose (network, scheme) has a registered client (eip155:* → exact EVM),
 * signs, and retries once with PAYMENT-SIGNATURE.
 */
export function officialFetch(opts: OfficialFetchOptions): typeof fetch {
  const account = privateKeyToAccount(opts.privateKey);
  const client = new x402Client()
    .register("eip155:*", new ExactEvmClientScheme(account))
    .setSpendControls(opts.spendControls ?? { allowedAssets: true });
  // Their wrapper takes (RequestInfo | URL, RequestInit?) like fetch; the cast only drops fetch's overload set.
  return wrapFetchWithPayment(fetch, client) as typeof fetch;
}

/** Decodes the settlement receipt header (PAYMENT-RESPONSE, or v1's X-PAYMENT-RESPONSE) if present. */
export function readPaymentResponse(res: Response): SettleResponse | undefined {
  const header = res.headers.get("PAYMENT-RESPONSE") ?? res.headers.get("X-PAYMENT-RESPONSE");
  return header ? decodePaymentResponseHeader(header) : undefined;
}

/** Their example's body handling: both fields required, 400 otherwise. */
function requestParts(body: unknown, res: express.Response): { paymentPayload: PaymentPayload; paymentRequirements: PaymentRequirements } | undefined {
  const { paymentPayload, paymentRequirements } = (body ?? {}) as { paymentPayload?: PaymentPayload; paymentRequirements?: PaymentRequirements };
  if (paymentPayload && paymentRequirements) return { paymentPayload, paymentRequirements };
  res.status(400).json({ error: "Missing paymentPayload or paymentRequirements" });
  return undefined;
}
