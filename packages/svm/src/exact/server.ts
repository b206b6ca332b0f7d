/**
 * Resource-server face of `exact` on Solana: resolves prices to a mint and atomic amount, and
 * adds the facilitator's fee payer (from its `/supported` kind) to the requirements.
 */
import { isAddress } from "@solana/kit";
import { decodeBase64Transaction, svmAuthorizationKey } from "../transaction.ts";
import {
  decimalToAtomic,
  findUsdc,
  isAtomic,
  MoneyError,
  NETWORKS,
  parseMoney,
  type AssetAmount,
  type Network,
  type NetworkTable,
  type PaymentPayload,
  type PaymentRequirements,
  type Price,
  type SchemeServer,
  type SupportedKind,
  type TokenInfo,
} from "@tollgate/core";

export interface ExactSvmServerOptions {
  /** Assets per CAIP-2 network, overriding/adding to the network table's USDC (e.g. a local mint). */
  assets?: Readonly<Record<string, Pick<TokenInfo, "address" | "decimals" | "symbol">>>;
  /** Network table to find USDC in (default: the built-in one). */
  networks?: NetworkTable;
}

/** A Solana payee is a base58 32-byte account address (the owner; its token account is derived). */
function checkPayTo(payTo: string, _network: Network): string | undefined {
  return isAddress(payTo) ? undefined : `expected a base58 Solana address (32 bytes), got ${JSON.stringify(payTo.slice(0, 64))}`;
}

export function exactSvmServer(options: ExactSvmServerOptions = {}): SchemeServer {
  const table = options.networks ?? NETWORKS;

  function assetFor(network: Network) {
    const a = options.assets && Object.hasOwn(options.assets, network) ? options.assets[network] : findUsdc(network, table);
    if (!a) throw new MoneyError(`no default asset (USDC) known for ${network}; configure one in exactSvmServer({ assets })`);
    return a;
  }

  function parsePrice(price: Price, network: Network): AssetAmount {
    if (!network.startsWith("solana:")) throw new MoneyError(`${network} is not a Solana network`);
    if (typeof price === "object" && price !== null) {
      if (!isAtomic(price.amount)) throw new MoneyError("price.amount: expected a non-negative integer string of atomic units");
      if (BigInt(price.amount) >= 1n << 64n) throw new MoneyError("price.amount: exceeds u64");
      if (!isAddress(price.asset)) throw new MoneyError("price.asset: expected a Solana mint address");
      return { amount: price.amount, asset: price.asset, ...(price.extra ? { extra: price.extra } : {}) };
    }
    const money = parseMoney(price);
    const asset = assetFor(network);
    // USD prices are paid in the network's USD stablecoin at par; a token price must name that token.
    if (money.kind === "token" && money.symbol !== asset.symbol.toUpperCase()) {
      throw new MoneyError(`price ${JSON.stringify(price)}: ${money.symbol} is not the configured asset (${asset.symbol}) on ${network}`);
    }
    const amount = decimalToAtomic(money.decimal, asset.decimals);
    if (amount >= 1n << 64n) throw new MoneyError(`price ${JSON.stringify(price)}: exceeds u64`);
    return { amount: amount.toString(), asset: asset.address };
  }

  function enhanceRequirements(requirements: PaymentRequirements, kind: SupportedKind | undefined): PaymentRequirements {
    const feePayer = kind?.extra?.feePayer;
    if (typeof feePayer !== "string" || !isAddress(feePayer)) return requirements;
    return { ...requirements, extra: { ...requirements.extra, feePayer } };
  }

  function authorizationKey(payload: PaymentPayload, requirements: PaymentRequirements): string | undefined {
    try {
      return svmAuthorizationKey(requirements.network, decodeBase64Transaction(payload?.payload?.transaction).transaction.messageBytes);
    } catch {
      return undefined;
    }
  }

  return { scheme: "exact", networks: ["solana:*"], parsePrice, checkPayTo, enhanceRequirements, authorizationKey };
}
