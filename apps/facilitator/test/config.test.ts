import { describe, expect, it } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadConfig, redactConfig } from "../src/config.ts";

const KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

function withFile(content: string, fn: (file: string) => void) {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-config-"));
  try {
    const file = join(dir, "facilitator.json");
    writeFileSync(file, content);
    fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("loadConfig", () => {
  it("defaults with an empty environment", () => {
    const c = loadConfig({ env: {} });
    expect(c).toMatchObject({ port: 4020, host: "127.0.0.1", networks: [], privateKeys: [], apiKeys: [], logLevel: "info", bodyLimitBytes: 65536, databaseSchema: "public" });
  });

  it("reads the file, then environment overrides it", () => {
    const file = { port: 5000, logLevel: "warn", networks: [{ network: "eip155:84532", rpcUrl: "https://sepolia.base.org" }], privateKeys: [KEY], rateLimit: { perIp: { perSecond: 5, burst: 10 } } };
    withFile(JSON.stringify(file), (path) => {
      const c = loadConfig({
        file: path,
        env: { PORT: "6000", API_KEYS: "aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb", DATABASE_URL: "postgres://u:pw@db/x", RATE_LIMIT_PAYER_PER_SECOND: "2", TRUST_PROXY: "true" },
      });
      expect(c.port).toBe(6000);
      expect(c.logLevel).toBe("warn");
      expect(c.networks).toEqual(file.networks);
      expect(c.apiKeys).toEqual(["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"]);
      expect(c.rateLimit).toEqual({ perIp: { perSecond: 5, burst: 10 }, perPayer: { perSecond: 2, burst: 4 } });
      expect(c.trustProxy).toBe(true);
      const shown = JSON.stringify(redactConfig(c));
      expect(shown).not.toContain(KEY.slice(2));
      expect(shown).not.toContain("pw@");
      expect(shown).not.toContain("aaaaaaaaaaaaaaaa");
    });
  });

  it("API keys scoped to receivers: read from the file, checked, their receivers shown and their keys redacted", () => {
    const receiver = `0x${"ab".repeat(20)}`;
    withFile(JSON.stringify({ apiKeys: ["cccccccccccccccc", { key: "dddddddddddddddd", receivers: [receiver] }] }), (path) => {
      const c = loadConfig({ file: path, env: {} });
      expect(c.apiKeys).toEqual(["cccccccccccccccc", { key: "dddddddddddddddd", receivers: [receiver] }]);
      const shown = JSON.stringify(redactConfig(c));
      expect(shown).not.toContain("dddddddddddddddd");
      expect(shown).toContain(receiver);
    });
    const bad = (apiKeys: unknown) => () => withFile(JSON.stringify({ apiKeys }), (path) => loadConfig({ file: path, env: {} }));
    expect(bad([{ key: "dddddddddddddddd", receivers: [] }])).toThrow(ConfigError);
    expect(bad([{ key: "dddddddddddddddd", receivers: ["payee"] }])).toThrow(/apiKeys/);
    expect(bad([{ key: "short", receivers: [receiver] }])).toThrow(/apiKeys/);
    expect(bad([{ key: "dddddddddddddddd", receivers: [receiver], admin: true }])).toThrow(/apiKeys/);
  });

  it("RPC_URL + NETWORK + FACILITATOR_PRIVATE_KEY configure one network", () => {
    const c = loadConfig({ env: { RPC_URL: "http://127.0.0.1:8545", NETWORK: "eip155:31337", FACILITATOR_PRIVATE_KEY: KEY } });
    expect(c.networks).toEqual([{ network: "eip155:31337", rpcUrl: "http://127.0.0.1:8545" }]);
    expect(c.privateKeys).toEqual([KEY]);
  });

  it("errors name the field and its variable, never the secret value", () => {
    const badKey = KEY.slice(0, -2) + "zz";
    const e = errorOf(() => loadConfig({ env: { FACILITATOR_PRIVATE_KEY: badKey, PORT: "70000" } }));
    expect(e.message).toContain("privateKeys.0 (FACILITATOR_PRIVATE_KEY): expected a 0x-prefixed 32-byte hex private key");
    expect(e.message).toMatch(/port \(PORT\): /);
    expect(e.message).not.toContain(badKey.slice(2, 40));
  });

  it("refuses unknown fields, bad JSON, RPC_URL without NETWORK, networks without a key", () => {
    withFile(JSON.stringify({ prot: 1 }), (path) => expect(errorOf(() => loadConfig({ file: path, env: {} })).message).toContain(`(root): unknown field(s) "prot"`));
    withFile("{", (path) => expect(errorOf(() => loadConfig({ file: path, env: {} })).message).toMatch(/not valid JSON/));
    expect(errorOf(() => loadConfig({ env: { NETWORKS: "[{" } })).message).toMatch(/^networks \(NETWORKS\): not valid JSON/);
    expect(errorOf(() => loadConfig({ env: { RPC_URL: "http://x" } })).message).toMatch(/^networks \(NETWORK\): required with RPC_URL/);
    expect(errorOf(() => loadConfig({ env: { RPC_URL: "http://x:1", NETWORK: "eip155:1" } })).message).toMatch(/privateKeys \(FACILITATOR_PRIVATE_KEY\): at least one/);
    expect(errorOf(() => loadConfig({ env: { NETWORKS: '[{"network":"solana:abc","rpcUrl":"http://x"}]' } })).message).toContain("networks.0.network (NETWORKS): expected an EVM CAIP-2");
    expect(errorOf(() => loadConfig({ env: { MIN_AMOUNT: "0.5" } })).message).toContain("minAmount (MIN_AMOUNT): expected a non-negative integer");
  });

  it("fee-payer safety settings: contract wallets per network (off unless set), payer back-off, Solana compute caps", () => {
    const c = loadConfig({
      env: {},
      overrides: {
        networks: [{ network: "eip155:8453", rpcUrl: "https://base-mainnet.g.alchemy.com/v2/abcDEF123456ghiJKL789", contractWallets: true }],
        privateKeys: [KEY],
        solanaNetworks: [{ network: "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", rpcUrl: "https://rpc.example.com/?api-key=secret", maxComputeUnitLimit: 200_000, maxPriorityFeeLamports: 5_000 }],
        solanaFeePayerKey: JSON.stringify(Array.from({ length: 64 }, () => 1)),
      },
    });
    expect(c.networks[0]!.contractWallets).toBe(true);
    expect(c.settlement.payerBackoffMs).toBe(600_000);
    expect(c.solanaNetworks[0]).toMatchObject({ maxComputeUnitLimit: 200_000, maxPriorityFeeLamports: 5_000 });
    // RPC URLs keep their host; keys in the path or query are hidden.
    const shown = JSON.stringify(redactConfig(c));
    expect(shown).toContain("https://base-mainnet.g.alchemy.com/v2/[redacted]");
    expect(shown).not.toContain("abcDEF123456ghiJKL789");
    expect(shown).not.toContain("secret");
  });
});
