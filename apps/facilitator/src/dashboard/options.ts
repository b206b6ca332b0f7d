/** The dashboard's options from the facilitator's config (start.ts). */
import { findToken, findUsdc } from "@tollgate/core";
import type { FacilitatorConfig } from "../config.ts";
import type { DashboardAsset, DashboardOptions, FeePayerBalance } from "./routes.ts";

export function dashboardOptionsFrom(config: FacilitatorConfig, feePayers: () => Promise<FeePayerBalance[]>): DashboardOptions {
  const assets: DashboardAsset[] = [];
  for (const n of config.networks) {
    const listed = n.assets ?? [];
    for (const a of listed) assets.push({ network: n.network, address: a.address, symbol: findToken(n.network, a.address)?.symbol ?? a.name, decimals: a.decimals });
    const usdc = findUsdc(n.network);
    if (listed.length === 0 && usdc) assets.push({ network: n.network, address: usdc.address, symbol: usdc.symbol, decimals: usdc.decimals });
  }
  for (const n of config.solanaNetworks) {
    const usdc = findUsdc(n.network);
    if (usdc) assets.push({ network: n.network, address: usdc.address, symbol: usdc.symbol, decimals: usdc.decimals });
  }
  const explorers: Record<string, string> = {};
  for (const n of config.networks) if (n.explorerTxUrl) explorers[n.network] = n.explorerTxUrl;
  return {
    assets,
    explorers,
    feePayers,
    ...(config.minSignerBalanceWei !== undefined ? { floorWei: BigInt(config.minSignerBalanceWei) } : {}),
  };
}
