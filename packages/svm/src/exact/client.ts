/**
 * Client face of `exact` on Solana: builds the payment transaction the spec prescribes
 * (SetComputeUnitLimit, SetComputeUnitPrice, TransferChecked, Memo), with the facilitator as fee
 * payer, signs it as the token owner only, and returns it base64-encoded for the facilitator to
 * co-sign and submit.
 */
import {
  getSetComputeUnitLimitInstruction,
  getSetComputeUnitPriceInstruction,
} from "@solana-program/compute-budget";
import { findAssociatedTokenPda, getTransferCheckedInstruction } from "@solana-program/token";
import {
  address as toAddress,
  appendTransactionMessageInstructions,
  createTransactionMessage,
  getBase64EncodedWireTransaction,
  isAddress,
  partiallySignTransactionMessageWithSigners,
  pipe,
  setTransactionMessageFeePayer,
  setTransactionMessageLifetimeUsingBlockhash,
  type Blockhash,
  type TransactionSigner,
} from "@solana/kit";
import { parseAtomic, type Network, type PaymentRequirements, type PayloadContext, type SchemeClient } from "@tollgate/core";
import type { SolanaChain } from "../chain.ts";
import {
  DEFAULT_COMPUTE_UNIT_LIMIT,
  DEFAULT_COMPUTE_UNIT_PRICE_MICROLAMPORTS,
  MAX_MEMO_BYTES,
  MEMO_PROGRAM,
  TOKEN_2022_PROGRAM,
  TOKEN_PROGRAM,
} from "../constants.ts";
import { resolveChain, type ChainSource } from "./chains.ts";

export interface ExactSvmClientOptions {
  /** The token owner paying; a kit `KeyPairSigner` or any transaction partial signer. */
  signer: TransactionSigner;
  /** One chain for every network, or one per CAIP-2 network; a URL means JSON-RPC. */
  rpc: ChainSource | Readonly<Record<string, ChainSource>>;
  /** Networks this client pays on (default `solana:*`). */
  networks?: readonly string[];
  computeUnitLimit?: number;
  computeUnitPriceMicroLamports?: bigint;
}

export interface ExactSvmPayload {
  /** Base64 wire transaction, signed by the payer, fee payer signature empty. */
  transaction: string;
}

export function exactSvmClient(options: ExactSvmClientOptions): SchemeClient {
  const { signer } = options;
  const chainFor = (network: string): SolanaChain => resolveChain(options.rpc, network);

  async function createPayload(requirements: PaymentRequirements, _context: PayloadContext): Promise<Record<string, unknown>> {
    const feePayer = requirements.extra?.feePayer;
    if (typeof feePayer !== "string" || !isAddress(feePayer)) {
      throw new TypeError("requirements.extra.feePayer: expected the facilitator's Solana address (the facilitator pays the fee)");
    }
    if (!isAddress(requirements.asset)) throw new TypeError("requirements.asset: expected a Solana mint address");
    if (!isAddress(requirements.payTo)) throw new TypeError("requirements.payTo: expected a Solana address");
    const amount = parseAtomic(requirements.amount, "requirements.amount");
    if (amount >= 1n << 64n) throw new RangeError("requirements.amount: exceeds u64");

    const chain = chainFor(requirements.network);
    const mintAccount = await chain.getAccountInfo(requirements.asset);
    if (!mintAccount) throw new Error(`requirements.asset: mint ${requirements.asset} not found on ${requirements.network}`);
    const tokenProgram = mintAccount.owner;
    if (tokenProgram !== TOKEN_PROGRAM && tokenProgram !== TOKEN_2022_PROGRAM) {
      throw new Error(`requirements.asset: ${requirements.asset} is not a mint of the SPL Token or Token-2022 program`);
    }
    // Mint layout: decimals is the byte at offset 44 in both token programs.
    const decimals = mintAccount.data[44];
    if (decimals === undefined) throw new Error(`requirements.asset: ${requirements.asset} is not a mint account`);

    const mint = toAddress(requirements.asset);
    const [source] = await findAssociatedTokenPda({ owner: signer.address, mint, tokenProgram: toAddress(tokenProgram) });
    const [destination] = await findAssociatedTokenPda({ owner: toAddress(requirements.payTo), mint, tokenProgram: toAddress(tokenProgram) });

    const memo = memoBytes(requirements.extra?.memo);
    const { blockhash, lastValidBlockHeight } = await chain.getLatestBlockhash();

    const message = pipe(
      createTransactionMessage({ version: 0 }),
      (m) => setTransactionMessageFeePayer(toAddress(feePayer), m),
      (m) =>
        appendTransactionMessageInstructions(
          [
            getSetComputeUnitLimitInstruction({ units: options.computeUnitLimit ?? DEFAULT_COMPUTE_UNIT_LIMIT }),
            getSetComputeUnitPriceInstruction({ microLamports: options.computeUnitPriceMicroLamports ?? DEFAULT_COMPUTE_UNIT_PRICE_MICROLAMPORTS }),
            getTransferCheckedInstruction(
              { source, mint, destination, authority: signer, amount, decimals },
              { programAddress: toAddress(tokenProgram) },
            ),
            { programAddress: toAddress(MEMO_PROGRAM), data: memo },
          ],
          m,
        ),
      (m) => setTransactionMessageLifetimeUsingBlockhash({ blockhash: blockhash as Blockhash, lastValidBlockHeight }, m),
    );
    const signed = await partiallySignTransactionMessageWithSigners(message);
    const payload: ExactSvmPayload = { transaction: getBase64EncodedWireTransaction(signed) };
    return { ...payload };
  }

  return {
    scheme: "exact",
    networks: options.networks ?? ["solana:*"],
    payer: (_network: Network) => signer.address,
    createPayload,
  };
}

/**
 * The spec requires a Memo: the seller's `extra.memo` when given, else a random 16-byte nonce
 * (hex), so that two payments with identical parameters are distinct transactions.
 */
function memoBytes(sellerMemo: unknown): Uint8Array {
  if (sellerMemo !== undefined) {
    if (typeof sellerMemo !== "string" || sellerMemo.length === 0) throw new TypeError("requirements.extra.memo: expected a non-empty string");
    const bytes = new TextEncoder().encode(sellerMemo);
    if (bytes.length > MAX_MEMO_BYTES) throw new RangeError(`requirements.extra.memo: longer than ${MAX_MEMO_BYTES} bytes`);
    return bytes;
  }
  const nonce = crypto.getRandomValues(new Uint8Array(16));
  return new TextEncoder().encode(Buffer.from(nonce).toString("hex"));
}
