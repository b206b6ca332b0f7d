import { createHash } from "node:crypto";
/**
 * Decoding and inspection of the payment transaction a client sends (base64 wire format).
 * Works on the compiled message directly: every account an instruction touches must be a
 * static account, because accounts behind address lookup tables cannot be checked without
 * trusting a table the client chose.
 */
import {
  getBase58Decoder,
  getCompiledTransactionMessageDecoder,
  getTransactionDecoder,
  type Transaction,
} from "@solana/kit";
import { COMPUTE_BUDGET_PROGRAM, SET_COMPUTE_UNIT_LIMIT, SET_COMPUTE_UNIT_PRICE, TRANSFER_CHECKED } from "./constants.ts";

export interface DecodedInstruction {
  programAddress: string;
  accounts: string[];
  data: Uint8Array;
}

export interface DecodedTransaction {
  transaction: Transaction;
  /** Wire bytes as received. */
  wire: Uint8Array;
  version: 0 | "legacy";
  feePayer: string;
  /** Addresses whose signatures the message requires, fee payer first. */
  signers: string[];
  blockhash: string;
  instructions: DecodedInstruction[];
}

/** Solana's packet limit is 1232 bytes; anything much larger is not a transaction. */
const MAX_BASE64_LENGTH = 2048;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export class TransactionDecodeError extends Error {
  override name = "TransactionDecodeError";
}

export function decodeBase64Transaction(value: unknown): DecodedTransaction {
  if (typeof value !== "string" || value.length === 0) throw new TransactionDecodeError("payload.transaction: expected a base64 string");
  if (value.length > MAX_BASE64_LENGTH || value.length % 4 !== 0 || !BASE64.test(value)) {
    throw new TransactionDecodeError("payload.transaction: not a base64-encoded transaction");
  }
  const wire = new Uint8Array(Buffer.from(value, "base64"));
  let transaction: Transaction;
  try {
    transaction = getTransactionDecoder().decode(wire);
  } catch {
    throw new TransactionDecodeError("payload.transaction: bytes are not a Solana transaction");
  }
  let message;
  try {
    message = getCompiledTransactionMessageDecoder().decode(transaction.messageBytes);
  } catch {
    throw new TransactionDecodeError("payload.transaction: message could not be decoded");
  }
  if (message.version !== 0 && message.version !== "legacy") {
    throw new TransactionDecodeError(`payload.transaction: unsupported message version ${String(message.version)}`);
  }
  if ("addressTableLookups" in message && message.addressTableLookups && message.addressTableLookups.length > 0) {
    throw new TransactionDecodeError("payload.transaction: address lookup tables are not accepted");
  }
  const accounts = message.staticAccounts.map(String);
  const at = (i: number): string => {
    const a = accounts[i];
    if (a === undefined) throw new TransactionDecodeError("payload.transaction: account index out of range");
    return a;
  };
  const instructions = message.instructions.map((ix) => ({
    programAddress: at(ix.programAddressIndex),
    accounts: (ix.accountIndices ?? []).map(at),
    data: new Uint8Array(ix.data ?? []),
  }));
  const numSigners = message.header.numSignerAccounts;
  if (numSigners < 1 || numSigners > accounts.length) throw new TransactionDecodeError("payload.transaction: bad message header");
  return {
    transaction,
    wire,
    version: message.version,
    feePayer: at(0),
    signers: accounts.slice(0, numSigners),
    blockhash: String((message as { lifetimeToken?: string }).lifetimeToken ?? ""),
    instructions,
  };
}

const u32 = (d: Uint8Array, o: number) => new DataView(d.buffer, d.byteOffset, d.byteLength).getUint32(o, true);
const u64 = (d: Uint8Array, o: number) => new DataView(d.buffer, d.byteOffset, d.byteLength).getBigUint64(o, true);

/** SetComputeUnitLimit's units, or undefined when `ix` is not exactly that instruction. */
export function parseComputeUnitLimit(ix: DecodedInstruction): number | undefined {
  if (ix.programAddress !== COMPUTE_BUDGET_PROGRAM || ix.data.length !== 5 || ix.data[0] !== SET_COMPUTE_UNIT_LIMIT) return undefined;
  return u32(ix.data, 1);
}

/** SetComputeUnitPrice's micro-lamports, or undefined when `ix` is not exactly that instruction. */
export function parseComputeUnitPrice(ix: DecodedInstruction): bigint | undefined {
  if (ix.programAddress !== COMPUTE_BUDGET_PROGRAM || ix.data.length !== 9 || ix.data[0] !== SET_COMPUTE_UNIT_PRICE) return undefined;
  return u64(ix.data, 1);
}

export interface TransferChecked {
  source: string;
  mint: string;
  destination: string;
  authority: string;
  /** Multisig co-signers after the authority, if any. */
  extraAccounts: string[];
  amount: bigint;
  decimals: number;
}

/** The same layout in SPL Token and Token-2022: [12, amount u64 LE, decimals u8]. */
export function parseTransferChecked(ix: DecodedInstruction): TransferChecked | undefined {
  if (ix.data.length !== 10 || ix.data[0] !== TRANSFER_CHECKED || ix.accounts.length < 4) return undefined;
  const [source, mint, destination, authority, ...extraAccounts] = ix.accounts as [string, string, string, string, ...string[]];
  return { source, mint, destination, authority, extraAccounts, amount: u64(ix.data, 1), decimals: ix.data[9]! };
}

/** The transaction id: the first (fee payer's) signature, base58. */
export function transactionSignature(tx: Transaction): string | undefined {
  const first = Object.values(tx.signatures)[0];
  return first ? getBase58Decoder().decode(first) : undefined;
}

/** The one format of a Solana payment's settle-once key: the network and a hash of the signed message. */
export function svmAuthorizationKey(network: string, messageBytes: Uint8Array | ArrayLike<number>): string {
  return `${network}|svm-message|${createHash("sha256").update(new Uint8Array(messageBytes as ArrayLike<number>)).digest("hex")}`;
}
