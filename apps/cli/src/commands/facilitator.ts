/**
 * `tollgate facilitator`: the facilitator service against any RPC. Settings come from a JSON
 * config file (--config), then the environment, then flags; the fee-payer key only from the
 * environment (FACILITATOR_PRIVATE_KEY) or the config file, never from a flag (shell history).
 */
import { loadConfig, startFacilitator, type FacilitatorConfigInput } from "@tollgate/facilitator";

export interface FacilitatorCommandOptions {
  config?: string;
  port?: string;
  host?: string;
  network?: string;
  rpcUrl?: string;
  asset?: string[];
  /** One Solana network to serve (key: SOLANA_FEE_PAYER_KEY or the config file). */
  solanaNetwork?: string;
  solanaRpcUrl?: string;
  databaseUrl?: string;
  dataDir?: string;
  env?: Record<string, string | undefined>;
}

export async function facilitator(options: FacilitatorCommandOptions, out: (l: string) => void = (l) => process.stdout.write(l + "\n")) {
  const overrides: Partial<FacilitatorConfigInput> = {};
  if (options.port !== undefined) {
    const port = Number(options.port);
    if (!Number.isInteger(port)) throw new Error(`--port: expected a whole number, got ${JSON.stringify(options.port)}`);
    overrides.port = port;
  }
  if (options.host) overrides.host = options.host;
  if (options.databaseUrl) overrides.databaseUrl = options.databaseUrl;
  if (options.dataDir) overrides.dataDir = options.dataDir;
  if (options.network || options.rpcUrl) {
    if (!options.network || !options.rpcUrl) throw new Error("--network and --rpc-url go together");
    overrides.networks = [{ network: options.network, rpcUrl: options.rpcUrl, ...(options.asset?.length ? { assets: options.asset.map(parseAsset) } : {}) }];
  }
  if (options.solanaNetwork || options.solanaRpcUrl) {
    if (!options.solanaNetwork || !options.solanaRpcUrl) throw new Error("--solana-network and --solana-rpc-url go together");
    overrides.solanaNetworks = [{ network: options.solanaNetwork, rpcUrl: options.solanaRpcUrl }];
  }
  const config = loadConfig({ ...(options.config ? { file: options.config } : {}), env: options.env ?? process.env, overrides });
  const running = await startFacilitator(config);
  out(`facilitator listening on ${running.url} (${[...config.networks, ...config.solanaNetworks].map((n) => n.network).join(", ") || "no networks configured"})`);
  return running.close;
}

/** "0xaddress:name:version:decimals", e.g. 0x8335…:USD Coin:2:6 */
function parseAsset(spec: string) {
  const parts = spec.split(":");
  if (parts.length !== 4) throw new Error(`--asset: expected address:name:version:decimals, got ${JSON.stringify(spec)}`);
  const [address, name, version, decimals] = parts as [string, string, string, string];
  return { address, name, version, decimals: Number(decimals) };
}
