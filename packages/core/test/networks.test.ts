import { describe, expect, it } from "vitest";
import { defineNetworks, findToken, findUsdc, getNetwork, NETWORKS, V1_NETWORKS, withNetworks } from "../src/index.ts";

describe("network table", () => {
  it("knows USDC and its EIP-712 domain on known chains", () => {
    expect(findUsdc("eip155:8453")).toEqual({
      address: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
      decimals: 6,
      symbol: "USDC",
      eip712: { name: "USD Coin", version: "2" },
    });
    expect(findUsdc("eip155:84532")?.eip712).toEqual({ name: "USDC", version: "2" });
    expect(findUsdc("base-sepolia")?.address).toBe("0x036CbD53842c5426634e7929541eC2318f3dCF7e");
    expect(findUsdc("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp")).toEqual({ address: "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", decimals: 6, symbol: "USDC" });
    expect(findUsdc("solana-devnet")?.address).toBe("4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU");
    expect(findUsdc("eip155:999999")).toBeUndefined();
  });

  it("agrees with the v1 names and flags testnets", () => {
    for (const n of Object.values(NETWORKS)) {
      if (n.v1Name) expect(V1_NETWORKS[n.v1Name]).toBe(n.id);
      expect(n.usdc?.decimals).toBe(6);
      if (n.id.startsWith("eip155:")) expect(n.usdc?.address).toMatch(/^0x[0-9a-fA-F]{40}$/);
    }
    expect(Object.keys(NETWORKS)).toHaveLength(15);
    expect(getNetwork("eip155:1")?.testnet).toBe(false);
    expect(getNetwork("avalanche-fuji")).toMatchObject({ id: "eip155:43113", testnet: true });
  });

  it("adds a local chain as a new table without touching the built-in one", () => {
    const local = { id: "eip155:1337" as const, name: "Geth dev", testnet: true, usdc: { address: "0x5FbDB2315678afecb367f032d93F642f64180aa3", decimals: 6, symbol: "USDC", eip712: { name: "USD Coin", version: "2" } } };
    const table = withNetworks(NETWORKS, [local]);
    expect(findUsdc("eip155:1337", table)?.address).toBe(local.usdc.address);
    expect(findUsdc("eip155:1337")).toBeUndefined();
    expect(defineNetworks([local])["eip155:1337"]?.name).toBe("Geth dev");
    expect(findToken("eip155:1337", local.usdc.address.toLowerCase(), table)?.symbol).toBe("USDC");
    expect(findToken("eip155:8453", "0x0000000000000000000000000000000000000001")).toBeUndefined();
    expect(Object.isFrozen(table)).toBe(true);
    expect(() => {
      (NETWORKS as Record<string, unknown>)["x:y"] = {};
    }).toThrow();
  });
});
