/**
 * A local Solana for development and tests: litesvm (in-process SVM with the real SPL Token
 * program) behind a small JSON-RPC HTTP endpoint that serves the methods Tollgate's stack and
 * common kit clients use. No validator, no network, starts in milliseconds.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { AccountState, findAssociatedTokenPda, getMintEncoder, getTokenEncoder } from "@solana-program/token";
import {
  address as toAddress,
  createKeyPairSignerFromPrivateKeyBytes,
  getAddressEncoder,
  getCompiledTransactionMessageDecoder,
  lamports,
  type Address,
  type KeyPairSigner,
  type Signature,
} from "@solana/kit";
import type { Network, NetworkInfo } from "@tollgate/core";
import { LiteSVM } from "litesvm";
import type { SolanaChain } from "./chain.ts";
import { TOKEN_PROGRAM } from "./constants.ts";
import { decodeWire, isFailed, litesvmChain, litesvmErrorJson } from "./litesvm.ts";

/** CAIP-2 id used for the local chain (not a real cluster's genesis hash, on purpose). */
export const LOCAL_SOLANA_NETWORK: Network = "solana:localnet";

export interface LocalSolana {
  url: string;
  port: number;
  svm: LiteSVM;
  chain: SolanaChain;
  close(): Promise<void>;
}

/** Starts the JSON-RPC endpoint on 127.0.0.1 (`port` 0 or omitted: a free port). */
export async function startLocalSolana(options: { port?: number; host?: string; svm?: LiteSVM } = {}): Promise<LocalSolana> {
  const svm = options.svm ?? new LiteSVM();
  const host = options.host ?? "127.0.0.1";
  const server: Server = createServer((req, res) => {
    void handle(req).then(
      (body) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(body);
      },
      () => {
        res.writeHead(500);
        res.end();
      },
    );
  });

  async function handle(req: IncomingMessage): Promise<string> {
    if (req.method !== "POST") return json({ jsonrpc: "2.0", id: null, error: { code: -32600, message: "POST a JSON-RPC request" } });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > 1_000_000) return json({ jsonrpc: "2.0", id: null, error: { code: -32600, message: "request too large" } });
      chunks.push(c as Buffer);
    }
    let request: unknown;
    try {
      request = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return json({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "Parse error" } });
    }
    if (Array.isArray(request)) return json(request.map((r) => answer(svm, r)));
    return json(answer(svm, request));
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${port}`,
    port,
    svm,
    chain: litesvmChain(svm),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

function json(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? Number(x) : x));
}

class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
  }
}

function answer(svm: LiteSVM, request: unknown) {
  const r = (request ?? {}) as { id?: unknown; method?: unknown; params?: unknown };
  const id = r.id ?? null;
  try {
    const params = Array.isArray(r.params) ? r.params : [];
    return { jsonrpc: "2.0", id, result: call(svm, String(r.method), params) };
  } catch (e) {
    if (e instanceof RpcError) return { jsonrpc: "2.0", id, error: { code: e.code, message: e.message, ...(e.data !== undefined ? { data: e.data } : {}) } };
    return { jsonrpc: "2.0", id, error: { code: -32602, message: `Invalid params: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}` } };
  }
}

function txBytesParam(value: unknown, config: { encoding?: string } | undefined): string {
  if (typeof value !== "string") throw new RpcError(-32602, "Invalid params: transaction must be a string");
  if (config?.encoding === "base64") return value;
  // Solana's default encoding is base58.
  return Buffer.from(bs58decode(value)).toString("base64");
}

const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
function bs58decode(s: string): Uint8Array {
  let n = 0n;
  for (const ch of s) {
    const i = B58.indexOf(ch);
    if (i < 0) throw new RpcError(-32602, "Invalid params: bad base58");
    n = n * 58n + BigInt(i);
  }
  const bytes: number[] = [];
  while (n > 0n) {
    bytes.unshift(Number(n & 0xffn));
    n >>= 8n;
  }
  for (const ch of s) {
    if (ch !== "1") break;
    bytes.unshift(0);
  }
  return new Uint8Array(bytes);
}

function call(svm: LiteSVM, method: string, params: unknown[]): unknown {
  const slot = svm.getClock().slot;
  const context = { slot, apiVersion: "2.2.0" };
  switch (method) {
    case "getLatestBlockhash":
      return { context, value: { blockhash: svm.latestBlockhash(), lastValidBlockHeight: slot + 150n } };
    case "getSlot":
    case "getBlockHeight":
      return slot;
    case "getVersion":
      return { "solana-core": "2.2.0-litesvm", "feature-set": 0 };
    case "getHealth":
      return "ok";
    case "getMinimumBalanceForRentExemption":
      return svm.minimumBalanceForRentExemption(BigInt(Number(params[0] ?? 0)));
    case "getBalance":
      return { context, value: svm.getBalance(toAddress(String(params[0]))) ?? 0n };
    case "getAccountInfo": {
      const a = svm.getAccount(toAddress(String(params[0])));
      if (!a.exists) return { context, value: null };
      const cfg = (params[1] ?? {}) as { encoding?: string };
      const encoding = cfg.encoding === "base64+zstd" || cfg.encoding === "jsonParsed" || !cfg.encoding ? "base64" : cfg.encoding;
      if (encoding !== "base64") throw new RpcError(-32602, `Invalid params: encoding ${encoding} is not supported here (use base64)`);
      return {
        context,
        value: {
          data: [Buffer.from(a.data).toString("base64"), "base64"],
          executable: a.executable,
          lamports: a.lamports,
          owner: a.programAddress,
          rentEpoch: 18446744073709551615n,
          space: BigInt(a.data.length),
        },
      };
    }
    case "getTokenAccountBalance": {
      const a = svm.getAccount(toAddress(String(params[0])));
      if (!a.exists || a.data.length < 72) throw new RpcError(-32602, "Invalid param: could not find account");
      const data = new Uint8Array(a.data);
      const mint = svm.getAccount(toAddress(base58(data.subarray(0, 32))));
      const decimals = mint.exists ? new Uint8Array(mint.data)[44]! : 0;
      const amount = new DataView(data.buffer, data.byteOffset).getBigUint64(64, true);
      const uiAmountString = formatUnits(amount, decimals);
      return { context, value: { amount: amount.toString(), decimals, uiAmount: Number(uiAmountString), uiAmountString } };
    }
    case "getFeeForMessage": {
      const message = getCompiledTransactionMessageDecoder().decode(Buffer.from(String(params[0]), "base64"));
      return { context, value: 5000 * message.header.numSignerAccounts };
    }
    case "simulateTransaction": {
      const cfg = (params[1] ?? {}) as { encoding?: string };
      const tx = decodeWire(txBytesParam(params[0], cfg));
      const sim = svm.simulateTransaction(tx);
      if (isFailed(sim)) {
        const meta = sim.meta();
        return { context, value: { err: litesvmErrorJson(sim), logs: meta.logs(), accounts: null, unitsConsumed: meta.computeUnitsConsumed(), returnData: null } };
      }
      const meta = sim.meta();
      return { context, value: { err: null, logs: meta.logs(), accounts: null, unitsConsumed: meta.computeUnitsConsumed(), returnData: null } };
    }
    case "sendTransaction": {
      const cfg = (params[1] ?? {}) as { encoding?: string };
      const tx = decodeWire(txBytesParam(params[0], cfg));
      const r = svm.sendTransaction(tx);
      if (isFailed(r)) {
        const err = litesvmErrorJson(r);
        const meta = r.meta();
        throw new RpcError(-32002, `Transaction simulation failed: ${JSON.stringify(err)}`, {
          err,
          logs: meta.logs(),
          accounts: null,
          unitsConsumed: meta.computeUnitsConsumed(),
          returnData: null,
        });
      }
      return base58(r.signature());
    }
    case "getSignatureStatuses": {
      const sigs = Array.isArray(params[0]) ? (params[0] as unknown[]) : [];
      return {
        context,
        value: sigs.map((s) => {
          let t;
          try {
            t = svm.getTransaction(String(s) as Signature);
          } catch {
            return null;
          }
          if (!t) return null;
          const err = isFailed(t) ? litesvmErrorJson(t) : null;
          return { slot, confirmations: null, err, status: err ? { Err: err } : { Ok: null }, confirmationStatus: "finalized" };
        }),
      };
    }
    default:
      throw new RpcError(-32601, `Method not found: ${method}`);
  }
}

function base58(bytes: Uint8Array): string {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  let s = "";
  while (n > 0n) {
    s = B58[Number(n % 58n)] + s;
    n /= 58n;
  }
  for (const b of bytes) {
    if (b !== 0) break;
    s = "1" + s;
  }
  return s;
}

function formatUnits(v: bigint, decimals: number): string {
  const s = v.toString().padStart(decimals + 1, "0");
  const whole = s.slice(0, s.length - decimals);
  const frac = decimals ? s.slice(s.length - decimals).replace(/0+$/, "") : "";
  return frac ? `${whole}.${frac}` : whole;
}

// ---------------------------------------------------------------- accounts for a local network

export interface LocalAccount {
  signer: KeyPairSigner;
  address: Address;
  /** 64-byte Solana keypair (seed + public key), the format of `solana-keygen` files. */
  secretKey: Uint8Array;
  /** Its associated token account for the local mint. */
  tokenAccount: Address;
}

export interface LocalSolanaNetwork {
  svm: LiteSVM;
  chain: SolanaChain;
  network: Network;
  /** The USDC-like mint (6 decimals, SPL Token program). */
  mint: Address;
  decimals: number;
  payer: LocalAccount;
  payee: LocalAccount;
  feePayer: LocalAccount;
  /** Network table entry for `withNetworks`, so servers find this mint as the network's USDC. */
  networkInfo: NetworkInfo;
  /** Token balance (atomic units) of a token account; 0 when it does not exist. */
  tokenBalance(tokenAccount: Address): bigint;
  /** Creates (or overwrites) `owner`'s associated token account with `amount`. */
  fundTokens(owner: Address, amount: bigint): Promise<Address>;
}

export interface LocalSolanaNetworkOptions {
  svm?: LiteSVM;
  network?: Network;
  /** Payer's starting token balance, atomic units (default 1,000 tokens). */
  payerBalance?: bigint;
  /** Fee payer's own token balance (default 500 tokens): funds the verification rules protect. */
  feePayerBalance?: bigint;
}

/** Creates a USDC-like mint and funded payer, payee and fee-payer accounts with their token accounts. */
export async function setupLocalSolanaNetwork(options: LocalSolanaNetworkOptions = {}): Promise<LocalSolanaNetwork> {
  const svm = options.svm ?? new LiteSVM();
  const decimals = 6;
  const network = options.network ?? LOCAL_SOLANA_NETWORK;
  const mintKey = await newAccount();
  const mint = mintKey.address;
  const mintData = getMintEncoder().encode({ mintAuthority: mintKey.address, supply: 0n, decimals, isInitialized: true, freezeAuthority: null });
  svm.setAccount({
    address: mint,
    programAddress: toAddress(TOKEN_PROGRAM),
    lamports: lamports(svm.minimumBalanceForRentExemption(BigInt(mintData.length))),
    data: mintData,
    executable: false,
    space: BigInt(mintData.length),
  });

  const tokenBalance = (tokenAccount: Address): bigint => {
    const a = svm.getAccount(tokenAccount);
    if (!a.exists || a.data.length < 72) return 0n;
    const d = new Uint8Array(a.data);
    return new DataView(d.buffer, d.byteOffset).getBigUint64(64, true);
  };

  async function fundTokens(owner: Address, amount: bigint): Promise<Address> {
    const [ata] = await findAssociatedTokenPda({ owner, mint, tokenProgram: toAddress(TOKEN_PROGRAM) });
    const data = getTokenEncoder().encode({
      mint,
      owner,
      amount,
      delegate: null,
      state: AccountState.Initialized,
      isNative: null,
      delegatedAmount: 0n,
      closeAuthority: null,
    });
    svm.setAccount({
      address: ata,
      programAddress: toAddress(TOKEN_PROGRAM),
      lamports: lamports(svm.minimumBalanceForRentExemption(BigInt(data.length))),
      data,
      executable: false,
      space: BigInt(data.length),
    });
    return ata;
  }

  async function account(tokens: bigint, sol: bigint): Promise<LocalAccount> {
    const k = await newAccount();
    if (sol > 0n) svm.airdrop(k.address, lamports(sol));
    const tokenAccount = await fundTokens(k.address, tokens);
    return { ...k, tokenAccount };
  }

  const payer = await account(options.payerBalance ?? 1_000_000_000n, 1_000_000_000n);
  const payee = await account(0n, 0n);
  const feePayer = await account(options.feePayerBalance ?? 500_000_000n, 10_000_000_000n);
  return {
    svm,
    chain: litesvmChain(svm),
    network,
    mint,
    decimals,
    payer,
    payee,
    feePayer,
    networkInfo: { id: network, name: "Solana (local)", testnet: true, usdc: { address: mint, decimals, symbol: "USDC" } },
    tokenBalance,
    fundTokens,
  };
}

async function newAccount(): Promise<{ signer: KeyPairSigner; address: Address; secretKey: Uint8Array }> {
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const signer = await createKeyPairSignerFromPrivateKeyBytes(seed);
  const secretKey = new Uint8Array([...seed, ...getAddressEncoder().encode(signer.address)]);
  return { signer, address: signer.address, secretKey };
}
