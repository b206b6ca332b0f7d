// The `exact` Solana payment the page asks a wallet to sign (`solana:signTransaction`): the same
// versioned transaction @tollgate/svm's Node client builds (packages/svm/src/exact/client.ts, after
// the x402 spec scheme_exact_svm.md): SetComputeUnitLimit, SetComputeUnitPrice, TransferChecked
// from the payer's associated token account to the payee's, a Memo (the seller's `extra.memo`, or
// a random 16-byte hex nonce), fee payer = the facilitator's `extra.feePayer`, signed by the payer
// only. Written here by hand instead of bundling @solana/kit: the page needs a few hundred lines of
// it, and kit's address derivation needs crypto.subtle, which pages outside a secure context lack.
// packages/server/test/paywall-browser-payload.test.ts checks the bytes equal the Node client's.
//
// The page cannot reach a Solana RPC (it talks only to its own origin and the wallet), so what the
// transaction needs from the chain (a recent blockhash, the mint's decimals and token program)
// comes from the server, in the page's data (PaywallOfferView.solana, see paywall-page.ts).
import type { PaymentRequirements } from "@tollgate/core";
import { sha256 } from "@noble/hashes/sha2";
import type { PaywallSolanaView } from "../paywall-data.ts";

export const TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";
export const TOKEN_2022_PROGRAM = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb";
export const COMPUTE_BUDGET_PROGRAM = "ComputeBudget111111111111111111111111111111";
export const MEMO_PROGRAM = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr";
export const ASSOCIATED_TOKEN_PROGRAM = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL";
/** The Node client's defaults (svm DEFAULT_COMPUTE_UNIT_LIMIT / _PRICE_MICROLAMPORTS). */
export const COMPUTE_UNIT_LIMIT = 20_000;
export const COMPUTE_UNIT_PRICE_MICROLAMPORTS = 1n;
export const MAX_MEMO_BYTES = 256;

/** Wallet-standard chain names of the public clusters, by CAIP-2 genesis-hash reference. */
const WALLET_CHAINS: Record<string, string> = {
  "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp": "solana:mainnet",
  "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1": "solana:devnet",
  "solana:4uhcVJyU9pJkvQyS88uRDiswHXSRkGKs": "solana:testnet",
};

/** The wallet-standard chain for a CAIP-2 Solana network; the network itself when none is known. */
export function walletChain(network: string): string {
  return WALLET_CHAINS[network] ?? network;
}

// ------------------------------------------------------------------ base58

const ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

export function base58Decode(text: string): Uint8Array {
  let n = 0n;
  for (const c of text) {
    const v = ALPHABET.indexOf(c);
    if (v < 0) throw new Error(`not base58: ${JSON.stringify(text.slice(0, 64))}`);
    n = n * 58n + BigInt(v);
  }
  const bytes: number[] = [];
  while (n > 0n) {
    bytes.unshift(Number(n & 0xffn));
    n >>= 8n;
  }
  // Each leading "1" is a leading zero byte.
  for (let i = 0; i < text.length && text[i] === "1"; i++) bytes.unshift(0);
  return Uint8Array.from(bytes);
}

export function base58Encode(bytes: Uint8Array): string {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  let out = "";
  while (n > 0n) {
    out = ALPHABET[Number(n % 58n)]! + out;
    n /= 58n;
  }
  for (let i = 0; i < bytes.length && bytes[i] === 0; i++) out = "1" + out;
  return out;
}

/** A 32-byte Solana address's bytes, or an error naming `field`. */
export function addressBytes(address: unknown, field: string): Uint8Array {
  let bytes: Uint8Array | undefined;
  try {
    if (typeof address === "string" && address.length >= 32 && address.length <= 44) bytes = base58Decode(address);
  } catch {
    bytes = undefined;
  }
  if (!bytes || bytes.length !== 32) throw new Error(`${field}: expected a base58 Solana address (32 bytes)`);
  return bytes;
}

// ------------------------------------------------------------------ program-derived addresses

const P = 2n ** 255n - 19n;
const D = (P - ((121665n * modPow(121666n, P - 2n)) % P)) % P;

function modPow(base: bigint, exp: bigint): bigint {
  let result = 1n;
  let b = ((base % P) + P) % P;
  for (let e = exp; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % P;
    b = (b * b) % P;
  }
  return result;
}

/** Whether 32 bytes decode to a point of ed25519 (a PDA must not: no private key can exist for it). */
export function isOnCurve(bytes: Uint8Array): boolean {
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? bytes[i]! & 0x7f : bytes[i]!);
  const y2 = (y * y) % P;
  const u = (y2 - 1n + P) % P;
  const v = (D * y2 + 1n) % P;
  // x² = u/v has a root iff u/v is zero or a quadratic residue (Euler's criterion).
  const x2 = (u * modPow(v, P - 2n)) % P;
  if (x2 === 0n) return (bytes[31]! & 0x80) === 0; // x = 0 has no negative form
  return modPow(x2, (P - 1n) / 2n) === 1n;
}

const PDA_MARKER = new TextEncoder().encode("ProgramDerivedAddress");

/** findProgramAddress: the first bump from 255 down whose hash is off the curve. */
export function findProgramAddress(seeds: Uint8Array[], program: Uint8Array): Uint8Array {
  for (let bump = 255; bump >= 0; bump--) {
    const hash = sha256(concat(...seeds, Uint8Array.of(bump), program, PDA_MARKER));
    if (!isOnCurve(hash)) return hash;
  }
  throw new Error("no program-derived address for these seeds");
}

/** The associated token account of `owner` for `mint` under `tokenProgram`. */
export function associatedTokenAddress(owner: Uint8Array, mint: Uint8Array, tokenProgram: Uint8Array): Uint8Array {
  return findProgramAddress([owner, tokenProgram, mint], base58Decode(ASSOCIATED_TOKEN_PROGRAM));
}

// ------------------------------------------------------------------ the transaction

interface Instruction {
  program: string;
  /** [address, signer, writable] */
  accounts: [string, boolean, boolean][];
  data: Uint8Array;
}

export interface SolanaPaymentOptions {
  /** The Memo's text when the seller sets none: default a random 16-byte nonce in hex, as the Node client. */
  nonce?: string;
  computeUnitLimit?: number;
  computeUnitPriceMicroLamports?: bigint;
}

export interface UnsignedSolanaPayment {
  /** The wire transaction with empty signature slots, for `solana:signTransaction`. */
  transaction: Uint8Array;
  /** The compiled message the signatures cover. */
  message: Uint8Array;
}

/** The transaction paying `r` from `payer` (base58), with the chain data the server put in the page. */
export function unsignedSolanaPayment(r: PaymentRequirements, payer: string, chain: PaywallSolanaView, opts: SolanaPaymentOptions = {}): UnsignedSolanaPayment {
  if (r.scheme !== "exact") throw new Error(`requirements.scheme: expected "exact", got ${JSON.stringify(r.scheme)}`);
  if (!r.network.startsWith("solana:")) throw new Error(`requirements.network: ${JSON.stringify(r.network)} is not a Solana network`);
  const feePayer = r.extra?.feePayer;
  addressBytes(feePayer, "requirements.extra.feePayer");
  const mint = addressBytes(r.asset, "requirements.asset");
  const payTo = addressBytes(r.payTo, "requirements.payTo");
  const owner = addressBytes(payer, "the wallet's account");
  if (!/^(0|[1-9][0-9]{0,19})$/.test(r.amount) || BigInt(r.amount) >= 1n << 64n) throw new Error("requirements.amount: not an atomic u64 amount");
  if (chain.tokenProgram !== TOKEN_PROGRAM && chain.tokenProgram !== TOKEN_2022_PROGRAM) throw new Error("the mint is not owned by the SPL Token or Token-2022 program");
  if (!Number.isInteger(chain.decimals) || chain.decimals < 0 || chain.decimals > 255) throw new Error("the mint's decimals are unknown");
  const blockhash = addressBytes(chain.blockhash, "the recent blockhash");
  const tokenProgram = base58Decode(chain.tokenProgram);
  const source = base58Encode(associatedTokenAddress(owner, mint, tokenProgram));
  const destination = base58Encode(associatedTokenAddress(payTo, mint, tokenProgram));

  const limit = new Uint8Array(5);
  limit[0] = 2;
  new DataView(limit.buffer).setUint32(1, opts.computeUnitLimit ?? COMPUTE_UNIT_LIMIT, true);
  const price = new Uint8Array(9);
  price[0] = 3;
  new DataView(price.buffer).setBigUint64(1, opts.computeUnitPriceMicroLamports ?? COMPUTE_UNIT_PRICE_MICROLAMPORTS, true);
  const transfer = new Uint8Array(10);
  transfer[0] = 12;
  new DataView(transfer.buffer).setBigUint64(1, BigInt(r.amount), true);
  transfer[9] = chain.decimals;

  const instructions: Instruction[] = [
    { program: COMPUTE_BUDGET_PROGRAM, accounts: [], data: limit },
    { program: COMPUTE_BUDGET_PROGRAM, accounts: [], data: price },
    {
      program: chain.tokenProgram,
      accounts: [
        [source, false, true],
        [r.asset, false, false],
        [destination, false, true],
        [payer, true, false],
      ],
      data: transfer,
    },
    { program: MEMO_PROGRAM, accounts: [], data: memoBytes(r.extra?.memo, opts.nonce) },
  ];
  const message = compileMessage(feePayer as string, instructions, blockhash);
  const signers = message[1]!;
  // Wire format: shortvec signature count, the (empty) signatures, the message.
  return { transaction: concat(shortVec(signers), new Uint8Array(64 * signers), message), message };
}

/** The spec's Memo: the seller's `extra.memo`, or a random 16-byte nonce in hex (two payments never collide). */
function memoBytes(sellerMemo: unknown, nonce: string | undefined): Uint8Array {
  if (sellerMemo !== undefined) {
    if (typeof sellerMemo !== "string" || sellerMemo === "") throw new Error("requirements.extra.memo: expected a non-empty string");
    const bytes = new TextEncoder().encode(sellerMemo);
    if (bytes.length > MAX_MEMO_BYTES) throw new Error(`requirements.extra.memo: longer than ${MAX_MEMO_BYTES} bytes`);
    return bytes;
  }
  const hex = nonce ?? Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  return new TextEncoder().encode(hex);
}

/**
 * A v0 message without lookup tables. Accounts in the order @solana/kit compiles them (so the
 * bytes equal the Node client's): the fee payer, then signers before non-signers, writable before
 * read-only, and within a class by kit's address collation.
 */
function compileMessage(feePayer: string, instructions: Instruction[], blockhash: Uint8Array): Uint8Array {
  const roles = new Map<string, { signer: boolean; writable: boolean }>([[feePayer, { signer: true, writable: true }]]);
  const touch = (address: string, signer: boolean, writable: boolean) => {
    const role = roles.get(address) ?? { signer: false, writable: false };
    roles.set(address, { signer: role.signer || signer, writable: role.writable || writable });
  };
  for (const ix of instructions) {
    for (const [address, signer, writable] of ix.accounts) touch(address, signer, writable);
    touch(ix.program, false, false);
  }
  const collate = new Intl.Collator("en", { caseFirst: "lower", ignorePunctuation: false, localeMatcher: "best fit", numeric: false, sensitivity: "variant", usage: "sort" }).compare;
  const rest = [...roles.keys()].filter((a) => a !== feePayer);
  rest.sort((a, b) => {
    const ra = roles.get(a)!;
    const rb = roles.get(b)!;
    if (ra.signer !== rb.signer) return ra.signer ? -1 : 1;
    if (ra.writable !== rb.writable) return ra.writable ? -1 : 1;
    return collate(a, b);
  });
  const accounts = [feePayer, ...rest];
  const index = new Map(accounts.map((a, i) => [a, i]));
  const signers = accounts.filter((a) => roles.get(a)!.signer);
  const readonlySigners = signers.filter((a) => !roles.get(a)!.writable).length;
  const readonlyOthers = accounts.filter((a) => !roles.get(a)!.signer && !roles.get(a)!.writable).length;
  const parts: Uint8Array[] = [Uint8Array.of(0x80, signers.length, readonlySigners, readonlyOthers), shortVec(accounts.length)];
  for (const a of accounts) parts.push(addressBytes(a, "account"));
  parts.push(blockhash, shortVec(instructions.length));
  for (const ix of instructions) {
    parts.push(Uint8Array.of(index.get(ix.program)!), shortVec(ix.accounts.length), Uint8Array.from(ix.accounts.map(([a]) => index.get(a)!)), shortVec(ix.data.length), ix.data);
  }
  parts.push(shortVec(0)); // no address lookup tables
  return concat(...parts);
}

/** Solana's compact-u16 length prefix. */
function shortVec(n: number): Uint8Array {
  const out: number[] = [];
  let rest = n;
  for (;;) {
    const low = rest & 0x7f;
    rest >>= 7;
    if (rest === 0) {
      out.push(low);
      return Uint8Array.from(out);
    }
    out.push(low | 0x80);
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The payload from what the wallet returned: the base64 wire transaction, after checking it is one
 * transaction carrying the payer's signature. The wallet may add instructions of its own (Phantom's
 * Lighthouse guard, which the spec allows), so the message is not required to be byte-identical;
 * the facilitator verifies the transfer against the requirements before anything is submitted.
 */
export function solanaPayload(signed: Uint8Array, payer: string): { transaction: string } {
  const count = signed[0];
  if (count === undefined || count === 0 || count > 0x7f || signed.length < 1 + 64 * count + 4) throw new Error("the wallet returned no signed transaction");
  const message = signed.subarray(1 + 64 * count);
  const numAccounts = message[0]! & 0x80 ? message[4] : message[3];
  const keysAt = message[0]! & 0x80 ? 5 : 4;
  const payerBytes = addressBytes(payer, "the wallet's account");
  let signedByPayer = false;
  for (let i = 0; i < count && numAccounts !== undefined && i < numAccounts; i++) {
    const key = message.subarray(keysAt + 32 * i, keysAt + 32 * (i + 1));
    if (key.every((b, j) => b === payerBytes[j])) signedByPayer = signed.subarray(1 + 64 * i, 1 + 64 * (i + 1)).some((b) => b !== 0);
  }
  if (!signedByPayer) throw new Error("the wallet returned the transaction without its signature");
  let binary = "";
  for (const b of signed) binary += String.fromCharCode(b);
  return { transaction: btoa(binary) };
}
