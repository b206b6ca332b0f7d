/**
 * Facilitator configuration: a JSON file, then environment variables on top, validated as a
 * whole. Errors name the field (and the variable it came from) and never echo a value, so a
 * mistyped private key is not printed to a terminal or a log collector.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { evmChainId, isAtomic, isCaip2 } from "@tollgate/core";
import { redactRpcUrl } from "@tollgate/evm";
import { solanaNetworkSchema, solanaSecretKeySchema } from "./schemes/svm.ts";

const hexAddress = z.string().regex(/^0x[0-9a-fA-F]{40}$/, "expected a 0x-prefixed 20-byte hex address");
const apiKeySecret = z.string().min(16, "API keys must be at least 16 characters");
const privateKey = z.string().regex(/^0x[0-9a-fA-F]{64}$/, "expected a 0x-prefixed 32-byte hex private key");
const limit = z.strictObject({
  perSecond: z.number().positive("must be positive"),
  burst: z.number().int("must be a whole number").min(1, "must be at least 1"),
});

const assetSchema = z.strictObject({
  address: hexAddress,
  name: z.string().min(1, "must not be empty"),
  version: z.string().min(1, "must not be empty"),
  decimals: z.number().int().min(0).max(36),
});

const networkSchema = z.strictObject({
  network: z
    .string()
    .refine((n) => isCaip2(n) && evmChainId(n) !== undefined, "expected an EVM CAIP-2 network id such as eip155:84532"),
  rpcUrl: z.url({ protocol: /^(https?|wss?)$/, error: "expected an http(s) or ws(s) URL" }),
  /**
   * Allowlist of assets; omitted means the network's USDC from the built-in table and nothing else
   * (a local chain's token must be listed). A "token" outside it is refused before any chain call.
   */
  assets: z.array(assetSchema).optional(),
  /** BatchSettler contract: concurrent settlements go out as one transaction. Without it, batching is off on this network. */
  batchSettler: hexAddress.optional(),
  /**
   * Accept contract-wallet (ERC-1271) signatures on this network: judged on chain with real fee
   * fields and sent alone. Off by default: only plain ECDSA signatures, judged off-chain.
   */
  contractWallets: z.boolean().optional(),
  /** The dashboard's transaction links: a URL with `{hash}` (well-known networks have one built in). */
  explorerTxUrl: z
    .string()
    .regex(/^https?:\/\/\S+$/, "expected an http(s) URL")
    .refine((u) => u.includes("{hash}"), "expected a URL with {hash} where the transaction hash goes")
    .optional(),
});

const wei = z.string().refine(isAtomic, "expected a non-negative integer string (wei)");

/** The EVM settlement engine (see evm-settlement.ts). */
const settlementSchema = z.strictObject({
  /** Coalesce concurrent settlements into one BatchSettler call (networks with `batchSettler`). */
  batching: z.boolean().default(true),
  maxBatchSize: z.number().int().min(1).max(500).default(50),
  /** Upper bound on how long a queued settlement waits for its signer to free up (not a delay: an idle signer sends at once). */
  maxWaitMs: z.number().int().min(0).max(10_000).default(100),
  /** Receipt polling period; omitted means the engine picks from the chain (fast on a local dev chain, a quarter block otherwise). */
  pollingIntervalMs: z.number().int().min(1).max(60_000).optional(),
  /** Never pay more than this per gas. */
  maxFeePerGasWei: wei.optional(),
  /** Refuse a settlement estimated above this gas (per item of a batch). */
  maxGasPerSettlement: z.number().int().min(21_000).optional(),
  /** How long /settle waits for the receipt before answering pending (the reconciler finishes it). */
  receiptTimeoutMs: z.number().int().min(100).default(30_000),
  /** Fee-bump a transaction not mined after this long (off when omitted). */
  bumpAfterMs: z.number().int().min(1000).optional(),
  /** How often pending settlements are checked against the chain. */
  reconcileIntervalMs: z.number().int().min(50).default(2_000),
  /**
   * A transaction without a receipt whose nonce the signer has used for another transaction counts
   * as dropped once seen so on passes at least this far apart (a lagging RPC node is not enough).
   */
  dropAfterMs: z.number().int().min(1000).default(120_000),
  /** A payer whose settlement reverted on chain is refused (invalid_payer_suspended) for this long. */
  payerBackoffMs: z.number().int().min(0).default(600_000),
  /** How often signer balances are read for `minSignerBalanceWei`. */
  balanceCheckMs: z.number().int().min(100).default(15_000),
});

export const configSchema = z.strictObject({
  port: z.number().int("must be a whole number").min(0).max(65535).default(4020),
  host: z.string().min(1).default("127.0.0.1"),
  networks: z.array(networkSchema).default([]),
  /** Fee payers. The exact scheme uses the first; a settlement engine may use all. */
  privateKeys: z.array(privateKey).default([]),
  /** Solana networks served with the `exact` scheme (see schemes/svm.ts). */
  solanaNetworks: z.array(solanaNetworkSchema).default([]),
  /** Solana fee payer: base58 64-byte keypair or a JSON byte array (solana-keygen file content). */
  solanaFeePayerKey: solanaSecretKeySchema.optional(),
  /** PostgreSQL, shared by several facilitator processes. */
  databaseUrl: z.string().regex(/^postgres(ql)?:\/\//, "expected a postgres:// connection URL").optional(),
  /** PGlite data directory (used when no databaseUrl; neither means in memory). */
  dataDir: z.string().min(1).optional(),
  databaseSchema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, "expected a lowercase SQL identifier").default("public"),
  /**
   * Keys for /verify and /settle. A bare key acts for any receiver (your own servers). A key of
   * another party's server takes `{ key, receivers: [payTo, ...] }`: the delegated receiver
   * authorizer then signs claims and refunds for those receivers' channels only, and the key
   * does not open the dashboard. (API_KEYS sets bare keys; scoped ones come from the config file.)
   */
  apiKeys: z.array(z.union([apiKeySecret, z.strictObject({ key: apiKeySecret, receivers: z.array(hexAddress).min(1, "list at least one receiver").max(1000) })])).default([]),
  logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** Smallest accepted amount in atomic units. */
  minAmount: z.string().refine(isAtomic, "expected a non-negative integer string of atomic units").optional(),
  bodyLimitBytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(64 * 1024),
  rateLimit: z.strictObject({ perIp: limit.optional(), perPayer: limit.optional() }).default({}),
  trustProxy: z.boolean().default(false),
  settle: z
    .strictObject({
      leaseMs: z.number().int().min(1000).optional(),
      waitMs: z.number().int().min(0).optional(),
      pollMs: z.number().int().min(1).optional(),
    })
    .default({}),
  settlement: settlementSchema.default(settlementSchema.parse({})),
  /** A fee payer below this native balance is not used; none left on a network → facilitator_not_ready, /ready names them. */
  minSignerBalanceWei: wei.optional(),
  /**
   * PostgreSQL only: how long a process holds a signer lease (renewed every quarter of it): the
   * exact engine's keys, and the batch-settlement relayer and gas sponsor keys (one holder each;
   * a dead holder's key moves to another process after this long).
   */
  signerLeaseMs: z.number().int().min(1000).default(30_000),
  /**
   * The operator dashboard at /dashboard: behind `apiKeys` when set; with none, served only to a
   * browser on this machine (it shows every payer, payee and amount).
   */
  dashboard: z.boolean().default(true),
  /** How long close() waits for in-flight requests. */
  shutdownTimeoutMs: z.number().int().min(0).default(15_000),
  /**
   * The `batch-settlement` scheme (channels) on every EVM network above: its relayer key pays the
   * gas of deposits, claims, sweeps and refunds (a key of its own: the exact engine manages the
   * nonces of `privateKeys`). `receiverAuthorizerKey` is the delegated receiver authorizer
   * advertised in /supported; set it only with `apiKeys` (who reaches /settle may ask it to sign
   * refunds). Omitted: the scheme is not served.
   */
  batchSettlement: z
    .strictObject({
      relayerKey: privateKey,
      receiverAuthorizerKey: privateKey.optional(),
      receiptTimeoutMs: z.number().int().min(100).default(30_000),
    })
    .optional(),
  /**
   * erc20ApprovalGasSponsoring: `sponsorKey` (a key of its own) funds a payer's signed
   * approve(Permit2) at /settle, exactly gas × maxFeePerGas less what the payer holds, at most
   * `maxFundingWei`, at most `perPayerPerHour` times per payer (one outstanding at a time).
   * Omitted: the extension is not listed in /supported.
   */
  gasSponsoring: z
    .strictObject({
      sponsorKey: privateKey,
      maxFeePerGasWei: z.string().regex(/^[1-9][0-9]{0,30}$/, "expected a positive decimal integer (wei)").default("50000000000"),
      maxFundingWei: z.string().regex(/^[1-9][0-9]{0,30}$/, "expected a positive decimal integer (wei)").default("5000000000000000"),
      maxGas: z.number().int().min(21_000).max(1_000_000).default(100_000),
      perPayerPerHour: z.number().int().min(1).max(1000).default(3),
      receiptTimeoutMs: z.number().int().min(100).default(30_000),
    })
    .optional(),
  /**
   * AP2 mandates (docs/extensions/ap2-mandate.md, "Facilitator verification"): a payment carrying
   * a mandate chain is always verified; `require` says which must carry one ("all", "none", or
   * payee addresses). `false` turns the check off (and `ap2-mandate` leaves /supported).
   * `trustedIssuers` are public keys only (strict: a JWK with `d` is refused).
   */
  mandates: z
    .union([
      z.literal(false),
      z.strictObject({
        require: z
          .union([
            z.string().refine((v): v is "all" | "none" => v === "all" || v === "none", 'expected "all", "none" or a list of payee addresses'),
            z.array(z.string().min(1)).min(1, 'list at least one payee, or use "none"'),
          ])
          .default("none"),
        trustedIssuers: z.array(z.strictObject({ kty: z.literal("EC"), crv: z.literal("P-256"), x: z.string().regex(/^[A-Za-z0-9_-]{43}$/, "expected a 32-byte base64url coordinate"), y: z.string().regex(/^[A-Za-z0-9_-]{43}$/, "expected a 32-byte base64url coordinate"), kid: z.string().optional(), alg: z.literal("ES256").optional() })).min(1, "list at least one key, or leave it out").optional(),
        statusListUrl: z.string().regex(/^https?:\/\/\S+$/, "expected an http(s) URL").optional(),
      }),
    ])
    .default({ require: "none" }),
});

export type FacilitatorConfig = z.output<typeof configSchema>;
export type FacilitatorConfigInput = z.input<typeof configSchema>;

export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(
    message: string,
    readonly issues: string[] = [message],
  ) {
    super(message);
  }
}

/** Environment variable → config field. */
const ENV_FIELDS: Record<string, string> = {
  PORT: "port",
  HOST: "host",
  NETWORKS: "networks",
  RPC_URL: "networks",
  NETWORK: "networks",
  FACILITATOR_PRIVATE_KEY: "privateKeys",
  FACILITATOR_PRIVATE_KEYS: "privateKeys",
  SOLANA_NETWORKS: "solanaNetworks",
  SOLANA_RPC_URL: "solanaNetworks",
  SOLANA_NETWORK: "solanaNetworks",
  SOLANA_FEE_PAYER_KEY: "solanaFeePayerKey",
  DATABASE_URL: "databaseUrl",
  DATA_DIR: "dataDir",
  DATABASE_SCHEMA: "databaseSchema",
  API_KEYS: "apiKeys",
  LOG_LEVEL: "logLevel",
  MIN_AMOUNT: "minAmount",
  MIN_SIGNER_BALANCE_WEI: "minSignerBalanceWei",
  BODY_LIMIT_BYTES: "bodyLimitBytes",
  TRUST_PROXY: "trustProxy",
  RATE_LIMIT_IP_PER_SECOND: "rateLimit",
  RATE_LIMIT_IP_BURST: "rateLimit",
  RATE_LIMIT_PAYER_PER_SECOND: "rateLimit",
  RATE_LIMIT_PAYER_BURST: "rateLimit",
  BATCH_SETTLEMENT_RELAYER_KEY: "batchSettlement",
  BATCH_SETTLEMENT_AUTHORIZER_KEY: "batchSettlement",
  GAS_SPONSOR_KEY: "gasSponsoring",
};

export interface LoadConfigOptions {
  /** Path of a JSON config file. */
  file?: string;
  /** Environment (default process.env). */
  env?: Record<string, string | undefined>;
  /** Values under both file and env (e.g. CLI flags go on top: pass them as `overrides`). */
  overrides?: Partial<FacilitatorConfigInput>;
}

export function loadConfig(options: LoadConfigOptions = {}): FacilitatorConfig {
  let fromFile: Record<string, unknown> = {};
  if (options.file) {
    let text: string;
    try {
      text = readFileSync(options.file, "utf8");
    } catch (e) {
      throw new ConfigError(`config file ${options.file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? "error"})`);
    }
    try {
      fromFile = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new ConfigError(`config file ${options.file}: not valid JSON`);
    }
    if (typeof fromFile !== "object" || fromFile === null || Array.isArray(fromFile)) throw new ConfigError(`config file ${options.file}: expected a JSON object`);
  }
  const { values, sources } = fromEnv(options.env ?? process.env);
  const merged: Record<string, unknown> = { ...fromFile, ...values, ...options.overrides };
  if (values.rateLimit && fromFile.rateLimit && typeof fromFile.rateLimit === "object") {
    merged.rateLimit = { ...(fromFile.rateLimit as object), ...(values.rateLimit as object) };
  }
  if (values.batchSettlement && fromFile.batchSettlement && typeof fromFile.batchSettlement === "object") {
    merged.batchSettlement = { ...(fromFile.batchSettlement as object), ...(values.batchSettlement as object) };
  }
  if (values.gasSponsoring && fromFile.gasSponsoring && typeof fromFile.gasSponsoring === "object") {
    merged.gasSponsoring = { ...(fromFile.gasSponsoring as object), ...(values.gasSponsoring as object) };
  }
  return parseConfig(merged, sources);
}

/** Validates a config object (as `loadConfig` and `startFacilitator` do). */
export function parseConfig(input: unknown, sources: Record<string, string> = {}): FacilitatorConfig {
  const r = configSchema.safeParse(input);
  if (r.success) {
    if (r.data.networks.length > 0 && r.data.privateKeys.length === 0) {
      throw new ConfigError("privateKeys (FACILITATOR_PRIVATE_KEY): at least one fee-payer key is required to serve networks");
    }
    if (r.data.batchSettlement?.receiverAuthorizerKey && r.data.apiKeys.length === 0) {
      // A delegated receiver authorizer signs refunds for whoever reaches /settle: a payer could
      // refund what a server served but has not claimed yet. Only the servers may reach it.
      throw new ConfigError("batchSettlement.receiverAuthorizerKey (BATCH_SETTLEMENT_AUTHORIZER_KEY): requires apiKeys (API_KEYS), so only your servers can ask for claim and refund signatures");
    }
    if (r.data.batchSettlement && r.data.networks.length === 0) {
      throw new ConfigError("batchSettlement: serves the EVM networks in `networks`, and none is configured");
    }
    const sponsorKey = r.data.gasSponsoring?.sponsorKey.toLowerCase();
    if (sponsorKey && (r.data.privateKeys.some((k) => k.toLowerCase() === sponsorKey) || r.data.batchSettlement?.relayerKey.toLowerCase() === sponsorKey)) {
      // Two nonce managers on one key would collide: the engine's lanes (or the relayer) and the sponsor's sends.
      throw new ConfigError("gasSponsoring.sponsorKey (GAS_SPONSOR_KEY): must be a key of its own, not one of privateKeys nor batchSettlement.relayerKey");
    }
    if (r.data.solanaNetworks.length > 0 && !r.data.solanaFeePayerKey) {
      throw new ConfigError("solanaFeePayerKey (SOLANA_FEE_PAYER_KEY): a fee-payer key is required to serve Solana networks");
    }
    return r.data;
  }
  const issues = r.error.issues.slice(0, 10).map((issue) => {
    const path = issue.path.map(String).join(".") || "(root)";
    const top = String(issue.path[0] ?? "");
    const env = sources[top];
    let reason = issue.message;
    if (issue.code === "invalid_type" && /received undefined/.test(reason)) reason = "is required";
    if (issue.code === "unrecognized_keys") reason = `unknown field(s) ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`;
    return `${path}${env ? ` (${env})` : ""}: ${reason}`;
  });
  throw new ConfigError(`invalid facilitator config: ${issues.join("; ")}`, issues);
}

function fromEnv(env: Record<string, string | undefined>): { values: Record<string, unknown>; sources: Record<string, string> } {
  const values: Record<string, unknown> = {};
  const sources: Record<string, string> = {};
  const get = (name: string) => {
    const v = env[name]?.trim();
    if (v) sources[ENV_FIELDS[name]!] = name;
    return v || undefined;
  };
  const num = (name: string) => {
    const v = get(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!/^-?[0-9.]+$/.test(v) || !Number.isFinite(n)) throw new ConfigError(`${ENV_FIELDS[name]} (${name}): expected a number`);
    return n;
  };
  const list = (name: string) =>
    get(name)
      ?.split(",")
      .map((s) => s.trim())
      .filter(Boolean);

  const port = num("PORT");
  if (port !== undefined) values.port = port;
  const host = get("HOST");
  if (host) values.host = host;

  const networks = get("NETWORKS");
  const rpcUrl = get("RPC_URL");
  if (networks) {
    try {
      values.networks = JSON.parse(networks);
    } catch {
      throw new ConfigError("networks (NETWORKS): not valid JSON (expected an array of {network, rpcUrl, assets?})");
    }
  } else if (rpcUrl) {
    const network = get("NETWORK");
    if (!network) throw new ConfigError("networks (NETWORK): required with RPC_URL, e.g. NETWORK=eip155:84532");
    values.networks = [{ network, rpcUrl }];
  }

  const solanaNetworks = get("SOLANA_NETWORKS");
  const solanaRpcUrl = get("SOLANA_RPC_URL");
  if (solanaNetworks) {
    try {
      values.solanaNetworks = JSON.parse(solanaNetworks);
    } catch {
      throw new ConfigError("solanaNetworks (SOLANA_NETWORKS): not valid JSON (expected an array of {network, rpcUrl, assets?})");
    }
  } else if (solanaRpcUrl) {
    const network = get("SOLANA_NETWORK");
    if (!network) throw new ConfigError("solanaNetworks (SOLANA_NETWORK): required with SOLANA_RPC_URL, e.g. SOLANA_NETWORK=solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1");
    values.solanaNetworks = [{ network, rpcUrl: solanaRpcUrl }];
  }
  const solanaKey = get("SOLANA_FEE_PAYER_KEY");
  if (solanaKey) values.solanaFeePayerKey = solanaKey;

  const keys = [...(list("FACILITATOR_PRIVATE_KEYS") ?? []), ...(list("FACILITATOR_PRIVATE_KEY") ?? [])];
  if (keys.length > 0) values.privateKeys = [...new Set(keys)];
  for (const [name, field] of [
    ["DATABASE_URL", "databaseUrl"],
    ["DATA_DIR", "dataDir"],
    ["DATABASE_SCHEMA", "databaseSchema"],
    ["LOG_LEVEL", "logLevel"],
    ["MIN_AMOUNT", "minAmount"],
    ["MIN_SIGNER_BALANCE_WEI", "minSignerBalanceWei"],
  ] as const) {
    const v = get(name);
    if (v !== undefined) values[field] = v;
  }
  const batchRelayer = get("BATCH_SETTLEMENT_RELAYER_KEY");
  const batchAuthorizer = get("BATCH_SETTLEMENT_AUTHORIZER_KEY");
  if (batchRelayer || batchAuthorizer) values.batchSettlement = { ...(batchRelayer ? { relayerKey: batchRelayer } : {}), ...(batchAuthorizer ? { receiverAuthorizerKey: batchAuthorizer } : {}) };
  const sponsorKey = get("GAS_SPONSOR_KEY");
  if (sponsorKey) values.gasSponsoring = { sponsorKey };
  const apiKeys = list("API_KEYS");
  if (apiKeys) values.apiKeys = apiKeys;
  const bodyLimit = num("BODY_LIMIT_BYTES");
  if (bodyLimit !== undefined) values.bodyLimitBytes = bodyLimit;
  const trust = get("TRUST_PROXY");
  if (trust !== undefined) {
    if (!/^(true|false|1|0)$/i.test(trust)) throw new ConfigError("trustProxy (TRUST_PROXY): expected true or false");
    values.trustProxy = /^(true|1)$/i.test(trust);
  }
  const rateLimit: Record<string, unknown> = {};
  for (const [who, prefix] of [
    ["perIp", "RATE_LIMIT_IP"],
    ["perPayer", "RATE_LIMIT_PAYER"],
  ] as const) {
    const perSecond = num(`${prefix}_PER_SECOND`);
    if (perSecond === undefined) continue;
    rateLimit[who] = { perSecond, burst: num(`${prefix}_BURST`) ?? Math.max(1, Math.ceil(perSecond * 2)) };
  }
  if (Object.keys(rateLimit).length > 0) values.rateLimit = rateLimit;
  return { values, sources };
}

/** The config with secrets replaced, for a startup log line. */
export function redactConfig(config: FacilitatorConfig): Record<string, unknown> {
  return {
    ...config,
    privateKeys: config.privateKeys.map(() => "[redacted]"),
    ...(config.solanaFeePayerKey ? { solanaFeePayerKey: "[redacted]" } : {}),
    solanaNetworks: config.solanaNetworks.map((n) => ({ ...n, rpcUrl: redactRpcUrl(n.rpcUrl) })),
    apiKeys: config.apiKeys.map((k) => (typeof k === "string" ? "[redacted]" : { key: "[redacted]", receivers: k.receivers })),
    databaseUrl: config.databaseUrl?.replace(/\/\/[^@/]*@/, "//[redacted]@"),
    networks: config.networks.map((n) => ({ ...n, rpcUrl: redactRpcUrl(n.rpcUrl) })),
    ...(config.gasSponsoring ? { gasSponsoring: { ...config.gasSponsoring, sponsorKey: "[redacted]" } } : {}),
    ...(config.batchSettlement ? { batchSettlement: { ...config.batchSettlement, relayerKey: "[redacted]", ...(config.batchSettlement.receiverAuthorizerKey ? { receiverAuthorizerKey: "[redacted]" } : {}) } } : {}),
  };
}
