/**
 * Facilitator face of `exact` on Solana: verification (facilitator/check.ts: the spec's rules,
 * the asset allowlist, the compute budget) before the fee payer signs anything, then settling
 * (facilitator/settle.ts: one send per transaction id, answers as values).
 *
 * Replay: a transaction's id is the fee payer's signature, deterministic for a given message.
 * Verify refuses an id the chain already has (`duplicate_settlement`); settle never sends one
 * again. Which /settle gets the one success is the facilitator ledger's decision, not this one's.
 */
import { address as toAddress, getPublicKeyFromAddress, verifySignature, type KeyPairSigner } from "@solana/kit";
import {
  findUsdc,
  Reason,
  type AuthenticateResult,
  type Network,
  type PaymentPayload,
  type PaymentRequirements,
  type SchemeFacilitator,
  type SettleResponse,
  type VerifyResponse,
} from "@tollgate/core";
import { MAX_COMPUTE_UNIT_LIMIT, MAX_COMPUTE_UNIT_PRICE_MICROLAMPORTS, MAX_PRIORITY_FEE_LAMPORTS } from "../constants.ts";
import { decodeBase64Transaction, parseTransferChecked, svmAuthorizationKey } from "../transaction.ts";
import { resolveChain, type ChainSource } from "./chains.ts";
import { check, fail, type CheckContext, type Checked, type Failure } from "./facilitator/check.ts";
import { failureAnswer, settleChecked, simulationFailure, type SettleContext } from "./facilitator/settle.ts";

export { SETTLEMENT_EXTENSION } from "./facilitator/settle.ts";

export interface ExactSvmFacilitatorOptions {
  /**
   * `assets`: the mints accepted on that network. Omitted: the network table's USDC for it
   * (@tollgate/core `findUsdc`) and nothing else; a network without USDC in the table (a local
   * validator) accepts nothing until its mints are listed.
   */
  networks: ReadonlyArray<{ network: Network; rpc: ChainSource; assets?: readonly string[] }>;
  /** Pays the transaction fees; never the payer of the payment itself. */
  feePayer: KeyPairSigner;
  /** Cap on SetComputeUnitPrice, micro-lamports per CU (default and maximum per spec: 5 lamports). */
  maxComputeUnitPrice?: bigint;
  /** Cap on SetComputeUnitLimit (default 400 000, the official SDK's smart-wallet maximum). */
  maxComputeUnitLimit?: number;
  /** Cap on the priority fee, limit × price, in lamports (default 10 000). */
  maxPriorityFeeLamports?: bigint;
  /** Bound on waiting for confirmation after submission (default 30 s). */
  confirmTimeoutMs?: number;
  /** Poll interval while confirming (default 500 ms). */
  pollIntervalMs?: number;
}

export function exactSvmFacilitator(options: ExactSvmFacilitatorOptions): SchemeFacilitator {
  const checks = checkContext(options);
  const settling: SettleContext = {
    chains: checks.chains,
    confirmTimeoutMs: options.confirmTimeoutMs ?? 30_000,
    pollIntervalMs: options.pollIntervalMs ?? 500,
    inFlight: new Map(),
    recent: new Map(),
  };

  /** Full verification: static checks, replay check, then simulation of the co-signed transaction. */
  async function verifyFull(payload: PaymentPayload, requirements: PaymentRequirements): Promise<Failure | Checked> {
    const c = await check(checks, payload, requirements);
    if (!c.ok) return c;
    const chain = checks.chains.get(requirements.network)!;
    if (await chain.getSignatureStatus(c.signature)) return fail(Reason.duplicateSettlement, `transaction ${c.signature} was already submitted`, c.payer);
    const sim = await chain.simulateTransaction(c.wire);
    return sim.err ? simulationFailure(sim.err, c) : c;
  }

  async function verify(payload: PaymentPayload, requirements: PaymentRequirements): Promise<VerifyResponse> {
    const r = await verifyFull(payload, requirements);
    if (!r.ok) return { isValid: false, invalidReason: r.reason, invalidMessage: r.message, ...(r.payer ? { payer: r.payer } : {}) };
    return { isValid: true, payer: r.payer };
  }

  async function settle(payload: PaymentPayload, requirements: PaymentRequirements): Promise<SettleResponse> {
    const c = await check(checks, payload, requirements);
    if (!c.ok) return failureAnswer(c, requirements.network);
    return settleChecked(settling, c, requirements);
  }

  return {
    scheme: "exact",
    networks: [...checks.chains.keys()] as Network[],
    signers: () => [checks.feePayer.address],
    kindExtra: () => ({ feePayer: checks.feePayer.address }),
    verify,
    settle,
    // Network and asset first: nothing is keyed, written or decoded for a mint nobody listed.
    authenticate: (payload, requirements) => {
      const refused = checkServed(checks, requirements);
      return refused ? Promise.resolve(refused) : authenticate(payload, requirements);
    },
  };
}

function checkServed(ctx: CheckContext, requirements: PaymentRequirements): Extract<AuthenticateResult, { ok: false }> | undefined {
  if (!ctx.chains.has(requirements.network)) return { ok: false, reason: Reason.invalidNetwork, message: `paymentRequirements.network: ${requirements.network} is not served` };
  if (!ctx.assets.get(requirements.network)?.has(requirements.asset)) {
    return { ok: false, reason: Reason.svmAssetNotAllowed, message: `paymentRequirements.asset: ${requirements.asset} is not accepted on ${requirements.network}` };
  }
  return undefined;
}

function checkContext(options: ExactSvmFacilitatorOptions): CheckContext {
  const maxComputeUnitPrice = options.maxComputeUnitPrice ?? MAX_COMPUTE_UNIT_PRICE_MICROLAMPORTS;
  if (maxComputeUnitPrice < 0n || maxComputeUnitPrice > MAX_COMPUTE_UNIT_PRICE_MICROLAMPORTS) {
    throw new RangeError(`maxComputeUnitPrice: must be between 0 and ${MAX_COMPUTE_UNIT_PRICE_MICROLAMPORTS} micro-lamports (spec cap)`);
  }
  const maxComputeUnitLimit = options.maxComputeUnitLimit ?? MAX_COMPUTE_UNIT_LIMIT;
  if (!Number.isSafeInteger(maxComputeUnitLimit) || maxComputeUnitLimit < 0) throw new RangeError("maxComputeUnitLimit: must be a non-negative integer");
  const maxPriorityFeeLamports = options.maxPriorityFeeLamports ?? MAX_PRIORITY_FEE_LAMPORTS;
  if (maxPriorityFeeLamports < 0n) throw new RangeError("maxPriorityFeeLamports: must not be negative");
  const chains = new Map<string, ReturnType<typeof resolveChain>>();
  const assets = new Map<string, ReadonlySet<string>>();
  for (const n of options.networks) {
    if (!n.network.startsWith("solana:")) throw new TypeError(`networks: ${n.network} is not a Solana network`);
    chains.set(n.network, resolveChain(n.rpc, n.network));
    const usdc = findUsdc(n.network);
    assets.set(n.network, new Set(n.assets ?? (usdc ? [usdc.address] : [])));
  }
  return { feePayer: options.feePayer, chains, assets, maxComputeUnitPrice, maxComputeUnitLimit, maxPriorityFeeLamports };
}

/**
 * The transfer authority, proven by its ed25519 signature over the message, and a key unique to
 * the payment's content (the signed message), for the service's ledger.
 */
async function authenticate(payload: PaymentPayload, requirements: PaymentRequirements): Promise<AuthenticateResult> {
  let decoded: ReturnType<typeof decodeBase64Transaction>;
  try {
    decoded = decodeBase64Transaction(payload.payload?.transaction);
  } catch {
    return { ok: false, reason: Reason.svmTransactionUndecodable, message: "payload.transaction: could not be decoded" };
  }
  const ix = decoded.instructions[2];
  const transfer = ix ? parseTransferChecked(ix) : undefined;
  if (!transfer) return { ok: false, reason: Reason.svmNoTransferInstruction, message: "payload.transaction: the third instruction is not an SPL TransferChecked" };
  const tx = decoded.transaction;
  const sig = tx.signatures[toAddress(transfer.authority)];
  let valid = false;
  try {
    valid = !!sig && (await verifySignature(await getPublicKeyFromAddress(toAddress(transfer.authority)), sig, tx.messageBytes));
  } catch {
    valid = false;
  }
  if (!valid) return { ok: false, reason: Reason.svmSignature, message: "payload.transaction: the transfer authority's signature is missing or invalid" };
  return { ok: true, payer: transfer.authority, key: svmAuthorizationKey(requirements.network, tx.messageBytes) };
}
