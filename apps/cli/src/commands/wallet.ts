/**
 * `tollgate wallet new | import | address | balance`: an agent's EVM key in an encrypted v3
 * keystore (scrypt), by default `wallet.json` under the user's config directory. The password
 * comes from TOLLGATE_KEYSTORE_PASSWORD, or a hidden prompt on a terminal; a key to import from
 * TOLLGATE_PRIVATE_KEY or a hidden prompt. Keys and passwords are never printed.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { atomicToDecimal, findUsdc, type Network } from "@tollgate/core";
import { createKeystore, decryptKeystore, accountFromEnv, type CreateKeystoreOptions } from "@tollgate/fetch";
import { createPublicClient, erc20Abi, getAddress, http, isAddress, type Address } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { configDir } from "../dev-state.ts";
import { UsageError } from "../usage.ts";

export interface WalletOptions {
  action: string;
  keystore?: string;
  /** For `balance`. */
  rpcUrl?: string;
  network?: string;
  asset?: string;
  /** Overwrite an existing keystore (new, import). */
  force?: boolean;
  env?: Record<string, string | undefined>;
  out?: (line: string) => void;
  /** Asks for a secret without echoing it (a terminal); undefined when there is none. */
  prompt?: (question: string) => Promise<string | undefined>;
  /** scrypt cost for new keystores (tests use a small one). */
  kdf?: CreateKeystoreOptions;
}

export function defaultKeystorePath(env: Record<string, string | undefined> = process.env): string {
  return join(configDir(env), "wallet.json");
}

export async function wallet(options: WalletOptions): Promise<number> {
  const env = options.env ?? process.env;
  const out = options.out ?? ((l: string) => process.stdout.write(l + "\n"));
  const path = options.keystore ?? defaultKeystorePath(env);
  const prompt = options.prompt ?? hiddenPrompt;
  switch (options.action) {
    case "new":
    case "import": {
      if (existsSync(path) && !options.force) throw new UsageError(`${path} already exists: pass --force to replace it, or --keystore FILE for another one`);
      const key = options.action === "new" ? generatePrivateKey() : await importedKey(env, prompt);
      const password = await newPassword(env, prompt);
      const keystore = await createKeystore(key, password, options.kdf);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, JSON.stringify(keystore, null, 2) + "\n", { mode: 0o600 });
      out(`${options.action === "new" ? "created" : "imported"} ${privateKeyToAccount(key).address} in ${path}`);
      return 0;
    }
    case "address":
      out(addressOf(path));
      return 0;
    case "balance": {
      if (!options.rpcUrl) throw new UsageError("wallet balance: --rpc-url URL is required (the chain to ask)");
      const address = addressOf(path);
      const client = createPublicClient({ transport: http(options.rpcUrl) });
      const chainId = await client.getChainId();
      const network = (options.network ?? `eip155:${chainId}`) as Network;
      const usdc = options.asset ? undefined : findUsdc(network);
      const asset = options.asset ?? usdc?.address;
      out(`${address} on ${network}`);
      out(`  native  ${atomicToDecimal(await client.getBalance({ address }), 18)}`);
      if (!asset) {
        out("  (no USDC known on this network: pass --asset ADDRESS)");
        return 0;
      }
      if (!isAddress(asset)) throw new UsageError(`--asset: not an address: ${JSON.stringify(asset)}`);
      const token = getAddress(asset);
      const [balance, decimals, symbol] = await Promise.all([
        client.readContract({ address: token, abi: erc20Abi, functionName: "balanceOf", args: [address] }),
        client.readContract({ address: token, abi: erc20Abi, functionName: "decimals" }),
        client.readContract({ address: token, abi: erc20Abi, functionName: "symbol" }).catch(() => "tokens"),
      ]);
      out(`  ${symbol.padEnd(6)}  ${atomicToDecimal(balance, decimals)}   (${token})`);
      return 0;
    }
    default:
      throw new UsageError(`wallet: unknown action ${JSON.stringify(options.action)} (new, import, address, balance)`);
  }
}

/** The keystore's address without decrypting it (v3 files carry it); decrypting needs the password. */
function addressOf(path: string): Address {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new Error(`no keystore at ${path}: create one with \`tollgate wallet new\` or \`tollgate wallet import\``);
  }
  const address = (JSON.parse(text) as { address?: unknown }).address;
  if (typeof address !== "string" || !isAddress(`0x${address.replace(/^0x/, "")}`)) throw new Error(`${path}: the keystore has no address field`);
  return getAddress(`0x${address.replace(/^0x/, "")}`);
}

async function importedKey(env: Record<string, string | undefined>, prompt: NonNullable<WalletOptions["prompt"]>): Promise<`0x${string}`> {
  if (env.TOLLGATE_PRIVATE_KEY === undefined) {
    const typed = await prompt("private key to import (hidden): ");
    if (typed === undefined) throw new UsageError("wallet import: set TOLLGATE_PRIVATE_KEY, or run it in a terminal to type the key");
    const key = typed.trim();
    accountFromEnv("the typed key", { "the typed key": key }); // validates without echoing
    return key as `0x${string}`;
  }
  accountFromEnv("TOLLGATE_PRIVATE_KEY", env); // validates without echoing
  return env.TOLLGATE_PRIVATE_KEY as `0x${string}`;
}

async function newPassword(env: Record<string, string | undefined>, prompt: NonNullable<WalletOptions["prompt"]>): Promise<string> {
  const fromEnv = env.TOLLGATE_KEYSTORE_PASSWORD;
  if (fromEnv !== undefined) {
    if (fromEnv.length < 8) throw new UsageError("TOLLGATE_KEYSTORE_PASSWORD: use at least 8 characters");
    return fromEnv;
  }
  const first = await prompt("new keystore password (hidden): ");
  if (first === undefined) throw new UsageError("set TOLLGATE_KEYSTORE_PASSWORD, or run it in a terminal to type a password");
  if (first.length < 8) throw new UsageError("password: use at least 8 characters");
  if ((await prompt("repeat the password: ")) !== first) throw new UsageError("the passwords differ");
  return first;
}

/** Reads a line from the terminal without echoing it; undefined when stdin is not a terminal. */
export function hiddenPrompt(question: string): Promise<string | undefined> {
  const stdin = process.stdin;
  if (!stdin.isTTY) return Promise.resolve(undefined);
  process.stderr.write(question);
  return new Promise((resolve) => {
    let value = "";
    stdin.setRawMode(true);
    stdin.resume();
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n") {
          stdin.setRawMode(false);
          stdin.pause();
          stdin.off("data", onData);
          process.stderr.write("\n");
          resolve(value);
          return;
        }
        if (ch === "\u0003") process.exit(130); // Ctrl-C
        if (ch === "\u007f") value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on("data", onData);
  });
}

/** Used by `pay` when no --keystore is given but the default wallet exists. */
export async function defaultWalletKey(env: Record<string, string | undefined>): Promise<`0x${string}` | undefined> {
  const path = defaultKeystorePath(env);
  if (!existsSync(path)) return undefined;
  const password = env.TOLLGATE_KEYSTORE_PASSWORD ?? (await hiddenPrompt(`password for ${path} (hidden): `));
  if (password === undefined) throw new Error(`${path} is encrypted: set TOLLGATE_KEYSTORE_PASSWORD or run in a terminal`);
  return decryptKeystore(readFileSync(path, "utf8"), password);
}
