// Feedback backed by an x402 payment. The ERC-8004 off-chain feedback file may carry
// `proofOfPayment { fromAddress, toAddress, chainId, txHash }`; here we check such a proof against
// the chain (a successful transaction that moved the asset from the client to the agent) and
// average only the feedback whose proof holds, so unpaid (Sybil) feedback weighs nothing.
import {
  TransactionReceiptNotFoundError,
  decodeEventLog,
  getAddress,
  isAddressEqual,
  keccak256,
  parseAbi,
  toBytes,
  type Address,
  type Hex,
  type PublicClient,
} from "viem";
import { z } from "zod/v4";
import { firstIssue, jsonInput, type ParseFailure } from "./result.ts";
import { formatFixedPoint, MAX_VALUE_DECIMALS } from "./value.ts";

export type PaymentProof = {
  fromAddress: Address;
  toAddress: Address;
  /** Decimal string, as in the spec ("1", "8453"). */
  chainId: string;
  txHash: Hex;
};

export type FeedbackFile = {
  /** eip155:<chainId>:<identity registry> */
  agentRegistry: string;
  agentId: number | string;
  /** eip155:<chainId>:<client address> */
  clientAddress: string;
  /** ISO 8601. */
  createdAt: string;
  /** Integer (as a JSON number when safe, else a decimal string) with `valueDecimals`. */
  value: number | string;
  valueDecimals: number;
  tag1?: string;
  tag2?: string;
  endpoint?: string;
  proofOfPayment?: PaymentProof;
  [extra: string]: unknown;
};

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, "must be a 0x address");
const caip10 = z.string().regex(/^eip155:\d+:0x[0-9a-fA-F]{40}$/, "must be eip155:<chainId>:<address>");
const integer = z.union([z.number().int().min(-Number.MAX_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER), z.string().regex(/^-?\d+$/, "must be an integer")]);

export const paymentProofSchema = z.object({
  fromAddress: address,
  toAddress: address,
  chainId: z.union([z.string().regex(/^\d+$/, "must be a decimal chain id"), z.number().int().positive()]).transform(String),
  txHash: z.string().regex(/^0x[0-9a-fA-F]{64}$/, "must be a 32-byte 0x hash"),
});

export const feedbackFileSchema = z
  .object({
    agentRegistry: caip10,
    agentId: z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/)]),
    clientAddress: caip10,
    createdAt: z.string().min(1),
    value: integer,
    valueDecimals: z.number().int().min(0).max(MAX_VALUE_DECIMALS),
    tag1: z.string().optional(),
    tag2: z.string().optional(),
    endpoint: z.string().optional(),
    proofOfPayment: paymentProofSchema.optional(),
  })
  .passthrough();

export type BuildFeedbackFileInput = {
  chainId: number;
  identityRegistry: Address;
  agentId: bigint;
  clientAddress: Address;
  value: bigint;
  valueDecimals: number;
  tag1?: string;
  tag2?: string;
  endpoint?: string;
  proofOfPayment?: { fromAddress: Address; toAddress: Address; chainId: number | string; txHash: Hex };
  /** Default: now. */
  createdAt?: Date;
};

/** The off-chain feedback file (spec fields), with the payment proof when there is one. */
export function buildFeedbackFile(input: BuildFeedbackFileInput): FeedbackFile {
  const file: FeedbackFile = {
    agentRegistry: `eip155:${input.chainId}:${getAddress(input.identityRegistry)}`,
    agentId: safeJsonInteger(input.agentId),
    clientAddress: `eip155:${input.chainId}:${getAddress(input.clientAddress)}`,
    createdAt: (input.createdAt ?? new Date()).toISOString(),
    value: safeJsonInteger(input.value),
    valueDecimals: input.valueDecimals,
    ...(input.tag1 !== undefined ? { tag1: input.tag1 } : {}),
    ...(input.tag2 !== undefined ? { tag2: input.tag2 } : {}),
    ...(input.endpoint !== undefined ? { endpoint: input.endpoint } : {}),
    ...(input.proofOfPayment
      ? {
          proofOfPayment: {
            fromAddress: getAddress(input.proofOfPayment.fromAddress),
            toAddress: getAddress(input.proofOfPayment.toAddress),
            chainId: String(input.proofOfPayment.chainId),
            txHash: input.proofOfPayment.txHash,
          },
        }
      : {}),
  };
  const checked = parseFeedbackFile(file);
  if (!checked.ok) throw new Error(`invalid feedback file: ${checked.field}: ${checked.reason}`);
  return checked.file;
}

export function parseFeedbackFile(input: unknown): { ok: true; file: FeedbackFile } | ParseFailure {
  const json = jsonInput(input);
  if (!json.ok) return json;
  const parsed = feedbackFileSchema.safeParse(json.value);
  if (!parsed.success) return firstIssue(parsed.error);
  return { ok: true, file: parsed.data as FeedbackFile };
}

/** The feedbackHash to post on-chain for a file published as `JSON.stringify(file)`. */
export function feedbackFileHash(file: FeedbackFile): Hex {
  return keccak256(toBytes(JSON.stringify(file)));
}

const tokenEventsAbi = parseAbi([
  "event Transfer(address indexed from, address indexed to, uint256 value)",
  "event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)",
]);

export type VerifyPaymentProofOptions = {
  /** The token the payment must be in (e.g. USDC). */
  asset: Address;
  /** Refuse smaller payments (atomic units). Default: any positive amount. */
  minAmount?: bigint;
  /** Insist on an EIP-3009 AuthorizationUsed by `fromAddress` (an x402 "exact" payment). Default false. */
  requireAuthorization?: boolean;
};

export type PaymentProofVerdict = { ok: true; amount: bigint; authorizationNonce?: Hex; blockNumber: bigint; /** Who sent the transaction (for a settlement: the facilitator's fee payer). */ sender: Address } | { ok: false; reason: string };

/**
 * Checks a proofOfPayment against the chain `publicClient` reads: same chain id, the transaction
 * succeeded, and it carries `asset` Transfer logs from `fromAddress` to `toAddress` (their sum is
 * the amount). Never throws for a bad proof; RPC failures other than "no such transaction" do throw.
 */
export async function verifyPaymentProof(publicClient: PublicClient, proof: PaymentProof, opts: VerifyPaymentProofOptions): Promise<PaymentProofVerdict> {
  const shape = paymentProofSchema.safeParse(proof);
  if (!shape.success) {
    const issue = firstIssue(shape.error);
    return { ok: false, reason: `malformed proof: ${issue.field}: ${issue.reason}` };
  }
  const chainId = await publicClient.getChainId();
  if (String(chainId) !== shape.data.chainId) return { ok: false, reason: `proof is for chain ${shape.data.chainId}, this client reads chain ${chainId}` };

  let receipt;
  try {
    receipt = await publicClient.getTransactionReceipt({ hash: proof.txHash });
  } catch (error) {
    if (error instanceof TransactionReceiptNotFoundError) return { ok: false, reason: `transaction ${proof.txHash} not found` };
    throw error;
  }
  if (receipt.status !== "success") return { ok: false, reason: `transaction ${proof.txHash} reverted` };

  let amount = 0n;
  let transfers = 0;
  let authorizationNonce: Hex | undefined;
  for (const log of receipt.logs) {
    if (!isAddressEqual(log.address, opts.asset)) continue;
    let event;
    try {
      event = decodeEventLog({ abi: tokenEventsAbi, data: log.data, topics: log.topics, strict: true });
    } catch {
      continue; // some other event of the token
    }
    if (event.eventName === "Transfer") {
      if (isAddressEqual(event.args.from, proof.fromAddress) && isAddressEqual(event.args.to, proof.toAddress)) {
        amount += event.args.value;
        transfers += 1;
      }
    } else if (isAddressEqual(event.args.authorizer, proof.fromAddress)) {
      authorizationNonce = event.args.nonce;
    }
  }
  if (transfers === 0 || amount === 0n) {
    return { ok: false, reason: `transaction ${proof.txHash} moves no ${opts.asset} from ${proof.fromAddress} to ${proof.toAddress}` };
  }
  if (opts.requireAuthorization && authorizationNonce === undefined) {
    return { ok: false, reason: `transaction ${proof.txHash} used no EIP-3009 authorization of ${proof.fromAddress}` };
  }
  if (opts.minAmount !== undefined && amount < opts.minAmount) {
    return { ok: false, reason: `paid ${amount}, less than the required ${opts.minAmount}` };
  }
  return { ok: true, amount, blockNumber: receipt.blockNumber, sender: getAddress(receipt.from), ...(authorizationNonce ? { authorizationNonce } : {}) };
}

export type SummarizeProvenFeedbackOptions = VerifyPaymentProofOptions & {
  /** Payments must go to this address (the agent's wallet); default: whatever the proof names. */
  payTo?: Address;
  /**
   * Feedback about a facilitator from the servers it settles for: the proof is then a settlement
   * the facilitator sent (the transaction's sender is this address, its verified agent wallet)
   * paying the reviewer's `payTo`, not a payment made by the reviewer. The reviewer may not be
   * the payer, so the "paid by the client" rule does not apply; each transaction still backs
   * one entry only.
   */
  settledBy?: Address;
  /**
   * Weight of feedback without a valid proof, as a fraction of one proven entry: `{ numerator, denominator }`.
   * Default 0: unproven feedback counts for nothing.
   */
  unprovenWeight?: { numerator: bigint; denominator: bigint };
};

export type ProvenFeedbackSummary = {
  /** Feedback with a verified payment proof. */
  proven: number;
  /** Feedback without one (absent, invalid, reused, or paid by someone else). */
  unproven: number;
  /** Weighted mean at `valueDecimals` (the most decimals any counted entry used), rounded toward zero; 0 when nothing counts. */
  value: bigint;
  valueDecimals: number;
  decimal: string;
  /** Per file, in input order: why it did not count as proven. */
  rejected: { index: number; reason: string }[];
};

/**
 * Averages feedback files, weighing proven ones 1 and the rest `unprovenWeight` (default 0). A
 * proof counts only if it verifies on-chain, was paid by the file's own clientAddress, goes to
 * `payTo` when given, and its transaction was not already used by an earlier file.
 */
export async function summarizeProvenFeedback(
  publicClient: PublicClient,
  files: readonly FeedbackFile[],
  opts: SummarizeProvenFeedbackOptions,
): Promise<ProvenFeedbackSummary> {
  const weight = opts.unprovenWeight ?? { numerator: 0n, denominator: 1n };
  if (weight.denominator <= 0n || weight.numerator < 0n) throw new Error("unprovenWeight must be a non-negative fraction");
  const usedTx = new Set<string>();
  const rejected: { index: number; reason: string }[] = [];
  const counted: { value: bigint; decimals: number; proven: boolean }[] = [];

  for (const [index, file] of files.entries()) {
    const reason = await proofProblem(publicClient, file, opts, usedTx);
    if (reason !== undefined) rejected.push({ index, reason });
    counted.push({ value: BigInt(file.value), decimals: file.valueDecimals, proven: reason === undefined });
  }

  const proven = counted.filter((c) => c.proven).length;
  const unproven = counted.length - proven;
  // Everything in 18-decimal units times the weight denominator, so the fraction stays exact.
  const scale = (c: { value: bigint; decimals: number }) => c.value * 10n ** BigInt(MAX_VALUE_DECIMALS - c.decimals);
  let sum = 0n;
  let totalWeight = 0n;
  let decimals = 0;
  for (const c of counted) {
    const w = c.proven ? weight.denominator : weight.numerator;
    if (w === 0n) continue;
    sum += scale(c) * w;
    totalWeight += w;
    decimals = Math.max(decimals, c.decimals);
  }
  const value = totalWeight === 0n ? 0n : sum / totalWeight / 10n ** BigInt(MAX_VALUE_DECIMALS - decimals);
  return { proven, unproven, value, valueDecimals: decimals, decimal: formatFixedPoint(value, decimals), rejected };
}

async function proofProblem(
  publicClient: PublicClient,
  file: FeedbackFile,
  opts: SummarizeProvenFeedbackOptions,
  usedTx: Set<string>,
): Promise<string | undefined> {
  const proof = file.proofOfPayment;
  if (!proof) return "no proofOfPayment";
  const client = file.clientAddress.split(":")[2];
  if (!opts.settledBy && (!client || !isAddressEqual(client as Address, proof.fromAddress))) return "proof was paid by someone other than the client";
  if (opts.payTo && !isAddressEqual(opts.payTo, proof.toAddress)) return `proof pays ${proof.toAddress}, not the agent's ${opts.payTo}`;
  const key = proof.txHash.toLowerCase();
  if (usedTx.has(key)) return `transaction ${proof.txHash} already backs other feedback`;
  const verdict = await verifyPaymentProof(publicClient, proof, opts);
  if (!verdict.ok) return verdict.reason;
  if (opts.settledBy && !isAddressEqual(verdict.sender, opts.settledBy)) return `transaction ${proof.txHash} was sent by ${verdict.sender}, not by ${opts.settledBy}`;
  usedTx.add(key);
  return undefined;
}

function safeJsonInteger(n: bigint): number | string {
  return n >= BigInt(-Number.MAX_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString();
}
