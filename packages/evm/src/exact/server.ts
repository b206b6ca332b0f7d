/**
 * Server face of `exact` on EVM: turns "$0.01" or "0.01 USDC" into an atomic amount of a
 * known token on a network, with the EIP-712 domain (`extra.name`, `extra.version`) the
 * client needs to sign.
 */
import {
  MoneyError,
  NETWORKS,
  decimalToAtomic,
  evmChainId,
  parseAtomic,
  parseMoney,
  type AssetAmount,
  type Network,
  type NetworkTable,
  type PaymentPayload,
  type PaymentRequirements,
  type Price,
  type SchemeServer,
  type SupportedKind,
} from "@tollgate/core";
import { getAddress, isAddress, type Address } from "viem";
import { authorizationKey } from "./authenticate.ts";
import { parseExactEvmPayload } from "./payload.ts";
import { isPermit2Payload, parseExactPermit2Payload, permit2PaymentKey } from "./permit2-payload.ts";

/** A token the server can price in, on one network. */
export interface EvmAssetInfo {
  network: Network;
  address: Address;
  decimals: number;
  /** EIP-712 domain name, e.g. "USD Coin". */
  name: string;
  /** EIP-712 domain version, e.g. "2". */
  version: string;
  /** Ticker, e.g. "USDC". Money strings name it ("0.01 USDC"); "$0.01" picks a USD stablecoin. */
  symbol: string;
  /**
   * How clients pay with this token: "permit2" for a token without EIP-3009 (any ERC-20; the payer
   * approves Permit2 once, or the facilitator sponsors it). Advertised as
   * `extra.assetTransferMethod`, as the official server does. Default: EIP-3009 (nothing advertised).
   */
  assetTransferMethod?: "eip3009" | "permit2";
}

export interface ExactEvmServerOptions {
  /** Known tokens; the first USD stablecoin of a network prices "$" amounts. */
  assets?: readonly EvmAssetInfo[];
  /** Networks (or patterns) served; default `eip155:*`. */
  networks?: readonly string[];
}

/** The USDC of every EVM network in a network table (core's NETWORKS by default), as server assets. */
export function evmAssetsFromNetworks(table: NetworkTable = NETWORKS): EvmAssetInfo[] {
  return Object.values(table).flatMap((n) =>
    n.usdc?.eip712 && evmChainId(n.id) !== undefined
      ? [{ network: n.id, address: getAddress(n.usdc.address), decimals: n.usdc.decimals, name: n.usdc.eip712.name, version: n.usdc.eip712.version, symbol: n.usdc.symbol }]
      : [],
  );
}

/** Default table of known assets: USDC on every EVM network of core's network table. */
export const defaultEvmAssets: readonly EvmAssetInfo[] = evmAssetsFromNetworks();

const USD_SYMBOLS = ["USDC", "USDT", "DAI", "PYUSD", "USDS"];

/**
 * An EVM payee is a 20-byte hex address. Mixed case must carry a valid EIP-55 checksum (a typo in
 * a checksummed address is caught here, not by a payer's lost funds); the zero address burns.
 */
function checkPayTo(payTo: string, _network: Network): string | undefined {
  if (!/^0x[0-9a-fA-F]{40}$/.test(payTo)) return `expected a 0x-prefixed 20-byte hex address, got ${JSON.stringify(payTo.slice(0, 64))}`;
  if (!isAddress(payTo, { strict: true })) return `${payTo} has an invalid EIP-55 checksum (mixed case that does not match): check for a typo, or write it in lower case`;
  if (/^0x0{40}$/.test(payTo)) return "the zero address cannot receive payments (tokens sent there are burned)";
  return undefined;
}

/** What a client needs to know about a token: its EIP-712 domain, and the transfer method when not EIP-3009. */
function domainExtra(info: EvmAssetInfo): Record<string, unknown> {
  return { name: info.name, version: info.version, ...(info.assetTransferMethod === "permit2" ? { assetTransferMethod: "permit2" } : {}) };
}

export function exactEvmServer(options: ExactEvmServerOptions = {}): SchemeServer {
  const assets = options.assets ?? defaultEvmAssets;

  function known(network: string, asset: string): EvmAssetInfo | undefined {
    return assets.find((a) => a.network === network && a.address.toLowerCase() === asset.toLowerCase());
  }

  function parsePrice(price: Price, network: Network): AssetAmount {
    if (evmChainId(network) === undefined) throw new Error(`network: ${JSON.stringify(network)} is not an eip155 network`);
    if (typeof price === "object" && price !== null) {
      const amount = parseAtomic(price.amount, "price.amount").toString();
      if (typeof price.asset !== "string" || !isAddress(price.asset, { strict: false })) {
        throw new Error(`price.asset: not an address: ${JSON.stringify(price.asset)}`);
      }
      const info = known(network, price.asset);
      const extra = { ...(info ? domainExtra(info) : {}), ...price.extra };
      return { amount, asset: getAddress(price.asset), ...(Object.keys(extra).length ? { extra } : {}) };
    }
    const money = parseMoney(price);
    const onNetwork = assets.filter((a) => a.network === network);
    let asset: EvmAssetInfo | undefined;
    if (money.kind === "usd") {
      asset = onNetwork.find((a) => a.symbol.toUpperCase() === "USDC") ?? onNetwork.find((a) => USD_SYMBOLS.includes(a.symbol.toUpperCase()));
      if (!asset) {
        throw new Error(`no USD stablecoin is configured for ${network}: add one to \`assets\` or give the price as { amount, asset }`);
      }
    } else {
      asset = onNetwork.find((a) => a.symbol.toUpperCase() === money.symbol);
      if (!asset) throw new Error(`no asset with symbol ${money.symbol} is configured for ${network}`);
    }
    let atomic: bigint;
    try {
      atomic = decimalToAtomic(money.decimal, asset.decimals);
    } catch (e) {
      throw new MoneyError(`price ${JSON.stringify(price)}: ${(e as Error).message}`);
    }
    return { amount: atomic.toString(), asset: getAddress(asset.address), extra: domainExtra(asset) };
  }

  /** Fills the EIP-712 domain from the table when requirements name a known token without it. */
  function enhanceRequirements(requirements: PaymentRequirements, _kind: SupportedKind | undefined): PaymentRequirements {
    const extra = requirements.extra ?? {};
    if (typeof extra.name === "string" && typeof extra.version === "string") return requirements;
    const info = known(requirements.network, requirements.asset);
    if (!info) return requirements;
    return { ...requirements, extra: { ...domainExtra(info), ...extra } };
  }

  function paymentKey(payload: PaymentPayload, requirements: PaymentRequirements): string | undefined {
    if (isPermit2Payload(payload?.payload)) {
      const p = parseExactPermit2Payload(payload.payload);
      if (!p.ok) return undefined;
      const a = p.value.permit2Authorization;
      return permit2PaymentKey(requirements.network, requirements.asset, a.from, a.nonce);
    }
    const parsed = parseExactEvmPayload(payload?.payload);
    if (!parsed.ok) return undefined;
    const a = parsed.value.authorization;
    return authorizationKey(requirements.network, requirements.asset, a.from, a.nonce);
  }

  return { scheme: "exact", networks: options.networks ?? ["eip155:*"], parsePrice, checkPayTo, enhanceRequirements, authorizationKey: paymentKey };
}
