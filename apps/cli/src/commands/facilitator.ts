/**
 * `tollgate facilitator`: the facilitator service against any RPC. Settings come from a JSON
 * config file (--config), then the environment, then flags; the fee-payer key only from the
 * environment (FACILITATOR_PRIVATE_KEY) or the config file, never from a flag (shell history).
 */
import { registerFacilitator } from "@tollgate/erc8004";
import { loadConfig, startFacilitator, type FacilitatorConfig, type FacilitatorConfigInput } from "@tollgate/facilitator";
import { createPublicClient, createWalletClient, http, isAddress, type Address, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";

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
  /** Register this node in the ERC-8004 identity registry of the first EVM network once it listens. */
  register?: boolean;
  /** The URL others reach it at (registered; default: the address it listens on). */
  publicUrl?: string;
  /** Identity registry address (default: the public deployment's). */
  registry?: string;
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
  const env = options.env ?? process.env;
  const config = loadConfig({ ...(options.config ? { file: options.config } : {}), env, overrides });
  if (options.register && config.networks.length === 0) throw new Error("--register: needs an EVM network (the identity registry lives on one)");
  if (options.registry !== undefined && !isAddress(options.registry)) throw new Error(`--registry: expected a 0x address, got ${JSON.stringify(options.registry)}`);
  const running = await startFacilitator(config);
  out(`facilitator listening on ${running.url} (${[...config.networks, ...config.solanaNetworks].map((n) => n.network).join(", ") || "no networks configured"})`);
  if (options.register) {
    try {
      await register(config, options.publicUrl ?? running.url, env, options.registry as Address | undefined, out);
    } catch (e) {
      await running.close();
      throw e;
    }
  }
  return running.close;
}

/**
 * Registers the node as an ERC-8004 agent: the operator (FACILITATOR_OPERATOR_KEY, or the fee
 * payer when unset) owns the identity; the fee payer is bound as its verified wallet.
 */
async function register(config: FacilitatorConfig, url: string, env: Record<string, string | undefined>, registry: Address | undefined, out: (l: string) => void): Promise<void> {
  const network = config.networks[0]!;
  const feePayer = privateKeyToAccount(config.privateKeys[0] as Hex);
  const operatorKey = env.FACILITATOR_OPERATOR_KEY;
  if (operatorKey !== undefined && !/^0x[0-9a-fA-F]{64}$/.test(operatorKey)) throw new Error("FACILITATOR_OPERATOR_KEY: expected a 0x-prefixed 32-byte hex private key");
  const operator = operatorKey ? privateKeyToAccount(operatorKey as Hex) : feePayer;
  const transport = http(network.rpcUrl);
  const publicClient = createPublicClient({ transport }) as PublicClient;
  const chainId = await publicClient.getChainId();
  const chain = { id: chainId, name: network.network, nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [network.rpcUrl] } } };
  const walletClient = createWalletClient({ account: operator, transport, chain });
  const r = await registerFacilitator(
    { publicClient, walletClient },
    { url, name: `tollgate facilitator ${feePayer.address.slice(0, 10)}`, networks: [...config.networks, ...config.solanaNetworks].map((n) => n.network), schemes: ["exact"], feePayer, ...(registry ? { registry } : {}) },
  );
  if (!r.ok) throw new Error(`--register: ${r.reason}${r.detail ? ` (${r.detail})` : ""}`);
  out(`registered as ERC-8004 agent #${r.agentId} on ${network.network} (owner ${operator.address}, verified wallet ${feePayer.address}, endpoint ${url})`);
}

/** "0xaddress:name:version:decimals", e.g. 0x8335…:USD Coin:2:6 */
function parseAsset(spec: string) {
  const parts = spec.split(":");
  if (parts.length !== 4) throw new Error(`--asset: expected address:name:version:decimals, got ${JSON.stringify(spec)}`);
  const [address, name, version, decimals] = parts as [string, string, string, string];
  return { address, name, version, decimals: Number(decimals) };
}
