/**
 * Facilitator side of `erc20ApprovalGasSponsoring`, the part that SPENDS: a payer without ETH and
 * without a Permit2 allowance sent its signed `approve(Permit2, amount)`; at /settle (never at
 * /verify) the facilitator funds exactly the gas that approve may cost from a dedicated sponsor
 * key, broadcasts the payer's approve, waits for it, then settles as any Permit2 payment.
 *
 * The order, and why:
 *   1. the scheme's own verify: every other claim of the payment must hold, the only thing
 *      missing being the allowance (`permit2_allowance_required`);
 *   2. the pre-check (erc20-approval-check.ts): the signed approve field by field, then the chain
 *      (nonce, fee, funding cap) and a simulation of approve + settle. A refusal spends nothing;
 *   3. the intent is written to the store keyed by the payment's settle-once key, with the
 *      per-payer bounds decided in the same step (at most `perPayerMax` fundings per
 *      `perPayerWindowMs`, never a second while one is outstanding). A retry of the same payment
 *      finds its row and resumes it: it never funds twice;
 *   4. the funding transfer is signed, stored, then broadcast (write-ahead, as the batch-settlement
 *      relayer does), and awaited; then the payer's approve (stored in step 3) is broadcast and
 *      awaited; only then the settlement goes through the scheme's normal Permit2 path (exact, or
 *      upto for the charge: a zero charge sends nothing and is never funded, see settleTarget).
 *
 * Residual risks, bounded not removed (README, "Gas sponsoring"):
 *   - after the funding lands, the payer can send another transaction at the approve's nonce (a
 *     replacement) and keep the ETH: the loss is at most the funding cap, once per outstanding
 *     funding per payer, and `perPayerMax` per window;
 *   - a base fee rise above the approve's maxFeePerGas leaves it unmined: the funding stays with
 *     the payer, the row stays outstanding (so no second funding) and `recoverSponsoredApprovals`
 *     rebroadcasts it until it mines or its nonce is taken.
 */
import type { Network, PaymentPayload, PaymentRequirements, SchemeFacilitator, SettleResponse, VerifyResponse } from "@tollgate/core";
import { keccak256, type Address, type Hex, type LocalAccount, type PublicClient, type TransactionReceipt } from "viem";
import { serialized, shortMessage } from "../../batch-settlement/facilitator-chain.ts";
import { EXACT_PERMIT2_PROXY_ADDRESS, PERMIT2_ADDRESS, UPTO_PERMIT2_PROXY_ADDRESS, erc20PermitAbi } from "../../contracts/permit2-abi.ts";
import { uptoSettleAmount } from "../../upto/charge.ts";
import { encodeUptoSettle } from "../../upto/encode.ts";
import { encodePermit2Settle } from "../permit2-encode.ts";
import { Permit2Reason, type ExactPermit2Payload } from "../permit2-payload.ts";
import { judgeErc20Approval, readErc20ApprovalClaim, type ApprovalPlan, type ApprovalSponsoringPolicy } from "./erc20-approval-check.ts";

/** Reasons of the spending part (the pre-check's are Erc20ApprovalReason). */
export const SponsorReason = {
  payerOutstanding: "erc20_approval_funding_outstanding",
  payerLimit: "erc20_approval_funding_limit",
  fundingFailed: "erc20_approval_funding_failed",
  approveFailed: "erc20_approval_tx_failed",
  approvePending: "erc20_approval_tx_pending",
  /** This process may not send from the sponsor key now (another instance holds it): nothing was sent; retry. */
  sponsorUnavailable: "erc20_approval_sponsor_unavailable",
} as const;

export type SponsoredStatus = "intent" | "funded" | "approved" | "failed";

/** One sponsored approval, as stored. */
export interface SponsoredApproval {
  /** The payment's settle-once key. */
  key: string;
  network: Network;
  payer: Address;
  /** Wei sent to the payer (0n: the payer already held enough). */
  funding: bigint;
  approveHash: Hex;
  approveRaw: Hex;
  approveNonce: number;
  fundingHash?: Hex;
  fundingRaw?: Hex;
  status: SponsoredStatus;
  reason?: string;
  /** When the intent was stored (ms since epoch), as `open` returns it. */
  createdAt?: number;
}

export interface SponsorLimits {
  /** Most fundings (funding > 0) per payer and network within `perPayerWindowMs`. */
  perPayerMax: number;
  perPayerWindowMs: number;
}

export type BeginResult = { ok: true } | { ok: false; existing: SponsoredApproval } | { ok: false; refused: "outstanding" | "limit" };

/** Where sponsored approvals are kept (the service: its ledger). `begin` decides atomically. */
export interface SponsorStore {
  /** Inserts the intent unless the key exists (returned) or the payer's bounds refuse it. */
  begin(row: SponsoredApproval, limits: SponsorLimits): Promise<BeginResult>;
  update(key: string, change: Partial<Pick<SponsoredApproval, "status" | "reason" | "fundingHash" | "fundingRaw">>): Promise<void>;
  /** Not final (intent or funded), for recovery. */
  open(network: Network): Promise<SponsoredApproval[]>;
}

export interface ApprovalSponsorOptions {
  /** The sponsor key: pays the funding transfers. Its own key (the exact engine manages its keys' nonces). */
  sponsor: LocalAccount;
  networks: ReadonlyArray<{ network: Network; chainId: number; client: PublicClient }>;
  policy: ApprovalSponsoringPolicy;
  limits: SponsorLimits;
  store: SponsorStore;
  /** Receipt wait bound for the funding and the approve. Default 30 s. */
  receiptTimeoutMs?: number;
  /**
   * Whether this process may send from the sponsor key on `network` now (the service: its lease).
   * Asked before a funding is begun and again right before its signature; a refusal spends
   * nothing and leaves the payment's row open for a retry. Omitted: always.
   */
  canSend?: (network: Network) => boolean;
}

/** An in-memory store (library use, tests): nothing survives a restart. */
export function memorySponsorStore(now: () => number = Date.now): SponsorStore {
  const rows = new Map<string, SponsoredApproval & { at: number }>();
  return {
    async begin(row, limits) {
      const existing = rows.get(row.key);
      if (existing) return { ok: false, existing };
      const same = [...rows.values()].filter((r) => r.network === row.network && r.payer.toLowerCase() === row.payer.toLowerCase() && r.funding > 0n);
      if (row.funding > 0n && same.some((r) => r.status === "intent" || r.status === "funded")) return { ok: false, refused: "outstanding" };
      if (row.funding > 0n && same.filter((r) => r.at > now() - limits.perPayerWindowMs).length >= limits.perPayerMax) return { ok: false, refused: "limit" };
      rows.set(row.key, { ...row, at: now() });
      return { ok: true };
    },
    async update(key, change) {
      const r = rows.get(key);
      if (r) rows.set(key, { ...r, ...change });
    },
    async open(network) {
      return [...rows.values()].filter((r) => r.network === network && (r.status === "intent" || r.status === "funded")).map((r) => ({ ...r, createdAt: r.at }));
    },
  };
}

const failed = (requirements: PaymentRequirements, reason: string, message: string, payer?: string): SettleResponse => ({
  success: false,
  errorReason: reason,
  errorMessage: message,
  transaction: "",
  network: requirements.network as Network,
  ...(payer ? { payer } : {}),
});

/**
 * `inner` (the exact or the upto scheme) with erc20ApprovalGasSponsoring honoured: verify judges a
 * payment that lacks only the allowance and carries a signed approve; settle funds, approves, then
 * settles. Payments without the extension, or with the allowance already in place, go to `inner`
 * untouched; so does every payment of another scheme.
 *
 * upto: /verify judges the signed maximum (requirements.amount is the maximum there); /settle
 * judges the CHARGE. What the settlement would move is decided by uptoSettleAmount, the same
 * function the upto scheme settles by: a zero charge (nothing sent) or one above the signed
 * maximum (refused) is handed to `inner` before anything is read or funded.
 */
export function withErc20ApprovalSponsoring(inner: SchemeFacilitator, opts: ApprovalSponsorOptions): SchemeFacilitator {
  if (inner.scheme !== "exact" && inner.scheme !== "upto") return inner;
  const scheme = inner.scheme;
  const judge = async (payload: PaymentPayload, requirements: PaymentRequirements, verdict: VerifyResponse, charge?: bigint) => {
    const net = opts.networks.find((n) => n.network === requirements.network);
    if (verdict.isValid || verdict.invalidReason !== Permit2Reason.allowanceRequired || !net || !carries(payload)) return undefined;
    return planApproval(net, scheme, payload, requirements, charge ?? BigInt(requirements.amount), opts);
  };
  // Concurrent settles of one payment share one funding (the store's row alone would not stop a
  // second signer that read it before the first stored its funding).
  const inFlight = new Map<string, Promise<true | Refusal>>();
  return {
    ...bind(inner),
    async verify(payload, requirements) {
      const verdict = await inner.verify(payload, requirements);
      const plan = await judge(payload, requirements, verdict);
      if (!plan) return verdict;
      if ("reason" in plan) return { isValid: false, invalidReason: plan.reason, invalidMessage: plan.message, payer: plan.payer ?? verdict.payer };
      return { isValid: true, payer: plan.payer };
    },
    async settle(payload, requirements) {
      // Cheap exit: no signed approve offered, the inner scheme decides alone.
      if (!carries(payload)) return inner.settle(payload, requirements);
      const target = settleTarget(scheme, payload, requirements);
      // Nothing would be sent (upto, zero) or the settlement is refused off-chain: nothing to fund.
      if (!target) return inner.settle(payload, requirements);
      const verdict = await inner.verify(payload, target.verifyAs);
      const plan = await judge(payload, target.verifyAs, verdict, target.charge);
      if (!plan) return inner.settle(payload, requirements);
      if ("reason" in plan) return failed(requirements, plan.reason, plan.message, plan.payer ?? verdict.payer);
      if (plan.funding > 0n && !mayFund(opts, requirements.network as Network)) {
        const refused = unavailable(opts, requirements.network);
        return failed(requirements, refused.reason, refused.message, plan.payer);
      }
      const identity = await inner.authenticate?.(payload, requirements);
      const key = identity?.ok ? identity.key : `${requirements.network}|${plan.payer.toLowerCase()}|${(payload.payload as unknown as ExactPermit2Payload).permit2Authorization.nonce}`;
      const net = opts.networks.find((n) => n.network === requirements.network)!;
      let running = inFlight.get(key);
      if (!running) {
        running = carryOut(net, opts, { key, network: requirements.network as Network, payer: plan.payer, funding: plan.funding, approveHash: plan.hash, approveRaw: plan.serialized, approveNonce: plan.nonce, status: "intent" });
        inFlight.set(key, running);
        void running.finally(() => inFlight.delete(key)).catch(() => undefined);
      }
      const done = await running;
      if (done !== true) return failed(requirements, done.reason, done.message, plan.payer);
      return inner.settle(payload, requirements);
    },
  };
}

/** Whether the payment carries the extension (filled or not: the pre-check tells). */
const carries = (payload: PaymentPayload) => (payload.extensions as Record<string, unknown> | undefined)?.erc20ApprovalGasSponsoring !== undefined;

/**
 * The requirements the inner scheme's verify judges at /settle, and the charge the settlement
 * moves; undefined when the settlement sends nothing or is refused off-chain (upto only).
 * exact: the requirements as they are (the charge is their amount).
 */
function settleTarget(scheme: "exact" | "upto", payload: PaymentPayload, requirements: PaymentRequirements): { verifyAs: PaymentRequirements; charge?: bigint } | undefined {
  if (scheme === "exact") return { verifyAs: requirements };
  const amount = uptoSettleAmount(payload, requirements);
  if (!amount.ok || !amount.sends) return undefined;
  return { verifyAs: amount.asSigned, charge: amount.charge };
}

/** The inner scheme's identity and read-only faces, bound (they may use `this`). */
function bind(inner: SchemeFacilitator): SchemeFacilitator {
  return {
    scheme: inner.scheme,
    networks: inner.networks,
    signers: (n) => inner.signers(n),
    ...(inner.kindExtra ? { kindExtra: (n: Network) => inner.kindExtra!(n) } : {}),
    ...(inner.authenticate ? { authenticate: (p: PaymentPayload, r: PaymentRequirements) => inner.authenticate!(p, r) } : {}),
    verify: (p, r) => inner.verify(p, r),
    settle: (p, r) => inner.settle(p, r),
  };
}

type Refusal = { reason: string; message: string; payer?: string };

/**
 * The pre-check on a payment the inner scheme found valid but for the allowance. `charge` is what
 * the settlement moves (upto at /settle: below the maximum the verdict was about).
 */
async function planApproval(
  net: ApprovalSponsorOptions["networks"][number],
  scheme: "exact" | "upto",
  payload: PaymentPayload,
  requirements: PaymentRequirements,
  charge: bigint,
  opts: ApprovalSponsorOptions,
): Promise<ApprovalPlan | Refusal | undefined> {
  const p = payload.payload as unknown as ExactPermit2Payload;
  const auth = p.permit2Authorization;
  const asset = requirements.asset as Address;
  if (charge < BigInt(auth.permitted.amount)) {
    // The verdict said the allowance is below the signed maximum; one covering the charge needs no
    // approve. Unreadable: no funding on a guess (the inner scheme then answers alone).
    const allowance = await net.client.readContract({ address: asset, abi: erc20PermitAbi, functionName: "allowance", args: [auth.from, PERMIT2_ADDRESS] }).catch(() => undefined);
    if (allowance === undefined || allowance >= charge) return undefined;
  }
  const expected = { payer: auth.from, asset, chainId: net.chainId, charge };
  const claim = await readErc20ApprovalClaim(payload, expected, opts.policy);
  if (claim === undefined) return undefined;
  if ("ok" in claim) return { reason: claim.reason, message: claim.message, payer: auth.from };
  const plan = await judgeErc20Approval({ client: net.client }, claim, settleCall(scheme, p, charge, opts.sponsor.address), opts.policy);
  if ("ok" in plan) return { reason: plan.reason, message: plan.message, payer: auth.from };
  return plan;
}

/**
 * The proxy call the simulation runs after the approve: the scheme's own settlement. upto moves
 * the charge and only witness.facilitator may send it; exact's proxy takes any sender.
 */
function settleCall(scheme: "exact" | "upto", p: ExactPermit2Payload, charge: bigint, sponsor: Address): { from: Address; to: Address; data: Hex } {
  const auth = p.permit2Authorization;
  if (scheme === "upto") return { from: auth.witness.facilitator ?? sponsor, to: UPTO_PERMIT2_PROXY_ADDRESS, data: encodeUptoSettle(auth, p.signature, charge) };
  return { from: sponsor, to: EXACT_PERMIT2_PROXY_ADDRESS, data: encodePermit2Settle(auth, p.signature) };
}

/** Steps 3 and 4: intent, funding, approve. true once the approve is mined; a refusal otherwise. */
async function carryOut(net: ApprovalSponsorOptions["networks"][number], opts: ApprovalSponsorOptions, row: SponsoredApproval): Promise<true | Refusal> {
  const begun = await opts.store.begin(row, opts.limits);
  if (!begun.ok && "refused" in begun) {
    return begun.refused === "outstanding"
      ? { reason: SponsorReason.payerOutstanding, message: `a sponsored approval for ${row.payer} is still outstanding on ${row.network}: no second funding until it is mined or dropped` }
      : { reason: SponsorReason.payerLimit, message: `${row.payer} reached this facilitator's limit of ${opts.limits.perPayerMax} sponsored approvals per ${Math.round(opts.limits.perPayerWindowMs / 60_000)} min` };
  }
  // A retry of the same payment resumes its own row (its stored approve, never a new funding).
  const current = begun.ok ? row : begun.existing;
  if (current.status === "approved") return true;
  if (current.status === "failed") return { reason: current.reason ?? SponsorReason.approveFailed, message: `the sponsored approval of this payment failed earlier (${current.reason ?? "unknown"})` };
  const funded = await fund(net, opts, current);
  if (funded !== true) return funded;
  return approve(net, opts, current);
}

async function fund(net: ApprovalSponsorOptions["networks"][number], opts: ApprovalSponsorOptions, row: SponsoredApproval): Promise<true | Refusal> {
  if (row.status === "funded" || row.funding === 0n) return true;
  const { client } = net;
  const timeout = opts.receiptTimeoutMs ?? 30_000;
  let raw = row.fundingRaw;
  if (!raw) {
    // Signed and stored under the sponsor's lock, before the broadcast (nonces from the pending count).
    const sent = await serialized(`${net.network}|${opts.sponsor.address}`, async (): Promise<Hex | Refusal> => {
      let signed: Hex;
      try {
        const [nonce, fees] = await Promise.all([client.getTransactionCount({ address: opts.sponsor.address, blockTag: "pending" }), client.estimateFeesPerGas()]);
        // Right before the signature: a lease lost while the nonce was read stops the funding here.
        if (!mayFund(opts, net.network)) return unavailable(opts, net.network);
        signed = await opts.sponsor.signTransaction({ type: "eip1559", chainId: net.chainId, to: row.payer, value: row.funding, gas: 21_000n, nonce, maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas });
      } catch (e) {
        return { reason: SponsorReason.fundingFailed, message: `the funding transfer could not be prepared: ${shortMessage(e)}` };
      }
      // Written ahead: from here a crash leaves the signed bytes for recoverSponsoredApprovals.
      await opts.store.update(row.key, { fundingRaw: signed, fundingHash: keccak256(signed) });
      try {
        await client.sendRawTransaction({ serializedTransaction: signed });
      } catch (e) {
        const known = await client.getTransaction({ hash: keccak256(signed) }).catch(() => undefined);
        if (!known) return { reason: SponsorReason.fundingFailed, message: `the funding transfer could not be sent: ${shortMessage(e)}` };
      }
      return signed;
    });
    if (typeof sent !== "string") {
      // Not this process's key now: the row stays open (unsigned) for the retry at the key's holder.
      if (sent.reason === SponsorReason.sponsorUnavailable) return sent;
      await opts.store.update(row.key, { status: "failed", reason: sent.reason });
      return sent;
    }
    raw = sent;
  } else {
    await client.sendRawTransaction({ serializedTransaction: raw }).catch(() => undefined);
  }
  const receipt = await wait(client, keccak256(raw), timeout);
  if (receipt === undefined) return { reason: SponsorReason.approvePending, message: "the funding transfer is not mined yet; retry the settlement later" };
  if (receipt.status !== "success") {
    await opts.store.update(row.key, { status: "failed", reason: SponsorReason.fundingFailed });
    return { reason: SponsorReason.fundingFailed, message: "the funding transfer reverted" };
  }
  await opts.store.update(row.key, { status: "funded" });
  return true;
}

const mayFund = (opts: ApprovalSponsorOptions, network: Network) => opts.canSend?.(network) ?? true;

function unavailable(opts: ApprovalSponsorOptions, network: string): Refusal {
  return { reason: SponsorReason.sponsorUnavailable, message: `the gas sponsor ${opts.sponsor.address} is held by another facilitator instance on ${network}; nothing was sent; retry shortly` };
}

async function approve(net: ApprovalSponsorOptions["networks"][number], opts: ApprovalSponsorOptions, row: SponsoredApproval): Promise<true | Refusal> {
  const { client } = net;
  await client.sendRawTransaction({ serializedTransaction: row.approveRaw }).catch(() => undefined); // "known" on a resume
  const receipt = await wait(client, row.approveHash, opts.receiptTimeoutMs ?? 30_000);
  if (receipt === undefined) {
    const mined = await client.getTransactionCount({ address: row.payer, blockTag: "latest" }).catch(() => undefined);
    if (mined !== undefined && mined > row.approveNonce) {
      // Replaced at its nonce: the funding is lost to the payer (bounded by the cap): recorded as a cost.
      await opts.store.update(row.key, { status: "failed", reason: SponsorReason.approveFailed });
      return { reason: SponsorReason.approveFailed, message: "the payer's approve was replaced by another transaction at its nonce" };
    }
    return { reason: SponsorReason.approvePending, message: "the payer's approve is not mined yet (its fee may be below the base fee); retry the settlement later" };
  }
  if (receipt.status !== "success") {
    await opts.store.update(row.key, { status: "failed", reason: SponsorReason.approveFailed });
    return { reason: SponsorReason.approveFailed, message: "the payer's approve reverted on chain" };
  }
  await opts.store.update(row.key, { status: "approved" });
  return true;
}

async function wait(client: PublicClient, hash: Hex, timeout: number): Promise<TransactionReceipt | undefined> {
  try {
    return await client.waitForTransactionReceipt({ hash, timeout });
  } catch {
    return undefined;
  }
}

/** An intent never signed for this long was abandoned by a crash (a live one signs within seconds). */
const ABANDONED_AFTER_MS = 5 * 60_000;

/**
 * Finishes what a previous run left open: the stored funding and approve are rebroadcast (same
 * signed bytes: each lands at most once) and their rows closed from the receipts. Returns how
 * many rows were closed. Does not settle: the payment's retry does (its allowance is then in place).
 */
export async function recoverSponsoredApprovals(opts: ApprovalSponsorOptions): Promise<number> {
  let closed = 0;
  for (const net of opts.networks) {
    for (const row of await opts.store.open(net.network)) {
      if (row.status === "intent" && row.funding > 0n && !row.fundingRaw) {
        // Never signed: nothing was spent. Recovery only finishes; it never starts a funding. A
        // young row may be a live /settle about to sign: left alone (it still blocks the payer).
        if (row.createdAt === undefined || Date.now() - row.createdAt < ABANDONED_AFTER_MS) continue;
        await opts.store.update(row.key, { status: "failed", reason: SponsorReason.fundingFailed });
        closed++;
        continue;
      }
      const quick = { ...opts, receiptTimeoutMs: 2_000 };
      const r = (await fund(net, quick, row)) === true ? await approve(net, quick, { ...row, status: "funded" }) : undefined;
      if (r === true || (r && r.reason === SponsorReason.approveFailed)) closed++;
    }
  }
  return closed;
}
