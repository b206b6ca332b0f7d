/**
 * The few chain operations the `exact` scheme needs, behind one interface, so the same client
 * and facilitator run against a Solana JSON-RPC node or an in-process litesvm.
 */
import {
  address as toAddress,
  createSolanaRpc,
  isSolanaError,
  SOLANA_ERROR__JSON_RPC__SERVER_ERROR_SEND_TRANSACTION_PREFLIGHT_FAILURE,
  type Base64EncodedWireTransaction,
  type Rpc,
  type Signature,
  type SolanaRpcApi,
} from "@solana/kit";

export interface SolanaAccount {
  owner: string;
  lamports: bigint;
  data: Uint8Array;
  executable: boolean;
}

/** A transaction error: `code` is Solana's name ("BlockhashNotFound", "AlreadyProcessed", "InstructionError", ...). */
export interface ChainError {
  code: string;
  message: string;
}

export interface SimulationResult {
  err: ChainError | null;
  logs: string[];
}

export interface SignatureStatus {
  confirmationStatus: "processed" | "confirmed" | "finalized" | null;
  err: ChainError | null;
}

export interface SolanaChain {
  getLatestBlockhash(): Promise<{ blockhash: string; lastValidBlockHeight: bigint }>;
  getAccountInfo(address: string): Promise<SolanaAccount | null>;
  /** Simulates a fully signed transaction (signatures verified, blockhash not replaced). */
  simulateTransaction(wireBase64: string): Promise<SimulationResult>;
  /** Submits; a rejected submission is returned as `error`, not thrown. */
  sendTransaction(wireBase64: string): Promise<{ signature: string } | { error: ChainError }>;
  /** Status of a signature, searching history; null when the chain has never seen it. */
  getSignatureStatus(signature: string): Promise<SignatureStatus | null>;
}

/** Solana's JSON form of a TransactionError (`"BlockhashNotFound"`, `{ InstructionError: [2, { Custom: 1 }] }`). */
export function chainErrorFromJson(raw: unknown): ChainError {
  if (typeof raw === "string") return { code: raw, message: raw };
  if (raw && typeof raw === "object") {
    const code = Object.keys(raw)[0] ?? "Unknown";
    return { code, message: stringify(raw) };
  }
  return { code: "Unknown", message: stringify(raw) };
}

function stringify(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x)) ?? String(v);
}

/** A `SolanaChain` over JSON-RPC (kit's `createSolanaRpc`). Takes a URL or an existing kit RPC. */
export function rpcChain(rpcOrUrl: string | Rpc<SolanaRpcApi>, options: { commitment?: "processed" | "confirmed" | "finalized" } = {}): SolanaChain {
  const rpc = typeof rpcOrUrl === "string" ? createSolanaRpc(rpcOrUrl) : rpcOrUrl;
  const commitment = options.commitment ?? "confirmed";
  return {
    async getLatestBlockhash() {
      const { value } = await rpc.getLatestBlockhash({ commitment }).send();
      return { blockhash: value.blockhash, lastValidBlockHeight: BigInt(value.lastValidBlockHeight) };
    },
    async getAccountInfo(addr) {
      const { value } = await rpc.getAccountInfo(toAddress(addr), { encoding: "base64", commitment }).send();
      if (!value) return null;
      return {
        owner: value.owner,
        lamports: BigInt(value.lamports),
        data: new Uint8Array(Buffer.from(value.data[0], "base64")),
        executable: value.executable,
      };
    },
    async simulateTransaction(wire) {
      const { value } = await rpc
        .simulateTransaction(wire as Base64EncodedWireTransaction, { encoding: "base64", sigVerify: true, replaceRecentBlockhash: false, commitment })
        .send();
      return { err: value.err ? chainErrorFromJson(value.err) : null, logs: [...(value.logs ?? [])] };
    },
    async sendTransaction(wire) {
      try {
        const signature = await rpc.sendTransaction(wire as Base64EncodedWireTransaction, { encoding: "base64", preflightCommitment: commitment }).send();
        return { signature };
      } catch (e) {
        return { error: sendErrorFromKit(e) };
      }
    },
    async getSignatureStatus(signature) {
      const { value } = await rpc.getSignatureStatuses([signature as Signature], { searchTransactionHistory: true }).send();
      const s = value[0];
      if (!s) return null;
      return { confirmationStatus: s.confirmationStatus ?? null, err: s.err ? chainErrorFromJson(s.err) : null };
    },
  };
}

/** Preflight failures carry the transaction error as the cause; its message names it. */
function sendErrorFromKit(e: unknown): ChainError {
  if (isSolanaError(e, SOLANA_ERROR__JSON_RPC__SERVER_ERROR_SEND_TRANSACTION_PREFLIGHT_FAILURE)) {
    const cause = (e as { cause?: unknown }).cause;
    const ctx = cause && typeof cause === "object" ? (cause as { context?: Record<string, unknown> }).context : undefined;
    const code = kitTransactionErrorName(ctx?.__code);
    return { code: code ?? "PreflightFailure", message: cause instanceof Error ? cause.message.split("\n")[0]! : e.message.split("\n")[0]! };
  }
  const message = e instanceof Error ? e.message.split("\n")[0]! : String(e);
  return { code: "SendFailed", message };
}

/** kit numbers transaction errors 7050000 + index of the variant; we only need the ones we act on. */
function kitTransactionErrorName(code: unknown): string | undefined {
  switch (code) {
    case 7050001: return "AccountInUse";
    case 7050003: return "AccountNotFound";
    case 7050005: return "InsufficientFundsForFee";
    case 7050007: return "AlreadyProcessed";
    case 7050008: return "BlockhashNotFound";
    case 7050012: return "SignatureFailure";
    default: return typeof code === "number" ? `TransactionError${code}` : undefined;
  }
}
