/**
 * Verification of one `exact` payment with the Permit2 method, cheapest first, each failure with
 * the official reason code so clients of either stack know what to fix:
 *   off-chain: payload shape, scheme/network/amount/asset allowlist (shared with EIP-3009), the
 *   spender (the proxy, never anyone else), recipient, token, amount, time window, the
 *   eip2612GasSponsoring extension's fields, and who signed;
 *   on-chain (one round of parallel reads): proxy deployed, nonce unused, balance, Permit2
 *   allowance (none and no sponsoring extension: `permit2_allowance_required`), then a dry run of
 *   the exact call settlement would send.
 */
import { Reason, safeMessage, type PaymentPayload, type PaymentRequirements } from "@tollgate/core";
import { encodeFunctionData, getAddress, hexToBytes, isAddressEqual, size, type Address, type Hex } from "viem";
import { PERMIT2_ADDRESS, erc20PermitAbi, permit2Abi } from "../../contracts/permit2-abi.ts";
import { recoverAddress } from "../../crypto/recover.ts";
import { revertDataOf } from "../../errors.ts";
import { signatureProblem } from "../authenticate.ts";
import { permit2RevertReason, type Eip2612Permit } from "../permit2-encode.ts";
import { Permit2Reason, type Permit2Authorization } from "../permit2-payload.ts";
import { exactPermit2Method, type Permit2Method } from "./permit2-method.ts";
import type { FacilitatorContext, NetworkState } from "./context.ts";
import { checkChain, hasCode } from "./network.ts";
import { checkTarget, fail, type Failure } from "./requirements.ts";

/** A Permit2 payment whose claims held up off-chain. */
export interface Permit2Request {
  ok: true;
  net: NetworkState;
  asset: Address;
  payer: Address;
  auth: Permit2Authorization;
  signature: Hex;
  /** The signed (permitted) amount: for `upto`, the maximum. */
  amount: bigint;
  /** What settlement would move: the signed amount, or (`upto` at settle) the charge, at most that. */
  charge: bigint;
  method: Permit2Method;
  /** The eip2612GasSponsoring permit, when the payload carries one (validated). */
  eip2612?: Eip2612Permit;
}

export interface Permit2Verified extends Permit2Request {
  /** Calldata of the proxy call, as dry-run and as to be sent. */
  data: Hex;
  /** The signature is a contract wallet's (ERC-1271), judged by Permit2 in the dry run. */
  contractWallet: boolean;
}

/** How a check runs: the scheme's method (default exact) and, for `upto` at settle, the charge. */
export interface Permit2CheckOptions {
  method?: Permit2Method;
  /** Atomic units to settle, at most the signed amount (checked by the caller); default the signed amount. */
  charge?: bigint;
}

/**
 * The off-chain checks. `requirements.amount` must equal the signed amount: for `upto` at settle
 * the caller passes the requirements with the signed maximum (as verify saw them) and the charge
 * in `opts.charge`, so the signature is always checked against what the payer signed.
 */
export function checkPermit2Requirements(ctx: FacilitatorContext, payload: PaymentPayload, requirements: PaymentRequirements, opts: Permit2CheckOptions = {}): Permit2Request | Failure {
  const method = opts.method ?? exactPermit2Method;
  const parsed = method.parse(payload?.payload);
  if (!parsed.ok) return fail(Reason.invalidPayload, parsed.message);
  const auth = parsed.value.permit2Authorization;
  const payer = auth.from;
  const target = checkTarget(ctx, payload, requirements, payer, method.scheme);
  if (!target.ok) return target;
  const { net, asset } = target;
  const at = "paymentPayload.payload.permit2Authorization";
  if (!isAddressEqual(auth.spender, method.proxy)) {
    return fail(Permit2Reason.invalidSpender, `${at}.spender: ${auth.spender} is not ${method.proxyName} ${method.proxy}`, payer);
  }
  if (!isAddressEqual(auth.witness.to, requirements.payTo as Address)) {
    return fail(Permit2Reason.recipientMismatch, `${at}.witness.to: ${auth.witness.to} is not payTo ${getAddress(requirements.payTo)}`, payer);
  }
  if (!isAddressEqual(auth.permitted.token, asset)) return fail(Permit2Reason.tokenMismatch, `${at}.permitted.token: ${auth.permitted.token} is not the asset ${asset}`, payer);
  const amount = BigInt(auth.permitted.amount);
  if (amount !== BigInt(requirements.amount)) {
    return fail(Permit2Reason.amountMismatch, `${at}.permitted.amount: ${amount} differs from the required amount ${requirements.amount}`, payer);
  }
  const window = checkWindow(ctx, auth, requirements, payer);
  if (window) return window;
  const own = method.check?.(ctx, auth, payer);
  if (own) return own;
  const until = ctx.backoff.suspendedUntil(net.network, payer);
  if (until !== undefined) {
    return fail(Reason.payerSuspended, `${at}.from: a settlement by this payer reverted on chain; refused until ${new Date(until).toISOString()}`, payer);
  }
  const eip2612 = readEip2612Extension(ctx, payload, payer, asset, amount);
  if (eip2612 && "ok" in eip2612) return eip2612;
  const charge = opts.charge ?? amount;
  return { ok: true, net, asset, payer, auth, signature: parsed.value.signature, amount, charge, method, ...(eip2612 ? { eip2612 } : {}) };
}

/** The deadline must leave time to mine; validAfter must have passed; the reach is bounded like EIP-3009's. */
function checkWindow(ctx: FacilitatorContext, auth: Permit2Authorization, requirements: PaymentRequirements, payer: Address): Failure | undefined {
  const at = "paymentPayload.payload.permit2Authorization";
  const t = BigInt(Math.floor(ctx.now()));
  const deadline = BigInt(auth.deadline);
  const validAfter = BigInt(auth.witness.validAfter);
  if (deadline < t + ctx.minValidity) return fail(Permit2Reason.deadlineExpired, `${at}.deadline: ${deadline} is expired or closer than ${ctx.minValidity}s (now ${t})`, payer);
  if (validAfter > t) return fail(Permit2Reason.notYetValid, `${at}.witness.validAfter: not valid until ${validAfter} (now ${t})`, payer);
  const reach = deadline - t;
  if (ctx.tolerance !== null && reach > BigInt(requirements.maxTimeoutSeconds + ctx.tolerance)) {
    return fail(Reason.evmValidityTooLong, `${at}.deadline: valid for ${reach}s more, beyond maxTimeoutSeconds ${requirements.maxTimeoutSeconds} + ${ctx.tolerance}s`, payer);
  }
  return undefined;
}

const UINT = /^[0-9]{1,78}$/;
/** What a client fills in when it offers a permit. */
const PERMIT_FIELDS = ["from", "asset", "spender", "amount", "nonce", "deadline", "signature"] as const;
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

/**
 * The eip2612GasSponsoring extension's permit (spec: extensions/eip2612_gas_sponsoring.md), or
 * undefined when the payload has none. It must be the payer's own permit of this token to
 * Permit2, for exactly the amount (the proxy refuses any other value), and not about to expire.
 */
function readEip2612Extension(ctx: FacilitatorContext, payload: PaymentPayload, payer: Address, asset: Address, amount: bigint): Eip2612Permit | Failure | undefined {
  const ext = (payload.extensions as Record<string, unknown> | undefined)?.eip2612GasSponsoring as { info?: unknown } | undefined;
  if (ext === undefined || ext === null) return undefined;
  const info = ext.info as Record<string, unknown> | undefined;
  const at = "paymentPayload.extensions.eip2612GasSponsoring.info";
  if (typeof info !== "object" || info === null) return fail(Permit2Reason.eip2612InvalidFormat, `${at}: expected an object`, payer);
  // The server's advertisement echoed back unfilled (x402 clients copy the 402's extensions into
  // the payload): no permit offered, as the official facilitator reads it. Partly filled is malformed.
  if (PERMIT_FIELDS.every((f) => info[f] === undefined)) return undefined;
  for (const f of ["from", "asset", "spender"]) if (typeof info[f] !== "string" || !ADDRESS.test(info[f] as string)) return fail(Permit2Reason.eip2612InvalidFormat, `${at}.${f}: expected an address`, payer);
  for (const f of ["amount", "nonce", "deadline"]) if (typeof info[f] !== "string" || !UINT.test(info[f] as string)) return fail(Permit2Reason.eip2612InvalidFormat, `${at}.${f}: expected a decimal integer string`, payer);
  if (typeof info.signature !== "string" || !/^0x[0-9a-fA-F]{130}$/.test(info.signature)) return fail(Permit2Reason.eip2612InvalidFormat, `${at}.signature: expected 65 bytes of 0x-hex`, payer);
  if (!isAddressEqual(info.from as Address, payer)) return fail(Permit2Reason.eip2612FromMismatch, `${at}.from: is not the payer ${payer}`, payer);
  if (!isAddressEqual(info.asset as Address, asset)) return fail(Permit2Reason.eip2612AssetMismatch, `${at}.asset: is not the asset ${asset}`, payer);
  if (!isAddressEqual(info.spender as Address, PERMIT2_ADDRESS)) return fail(Permit2Reason.eip2612SpenderNotPermit2, `${at}.spender: is not Permit2 ${PERMIT2_ADDRESS}`, payer);
  const deadline = BigInt(info.deadline as string);
  if (deadline < BigInt(Math.floor(ctx.now())) + ctx.minValidity) return fail(Permit2Reason.eip2612DeadlineExpired, `${at}.deadline: ${deadline} is expired or about to`, payer);
  const value = BigInt(info.amount as string);
  if (value !== amount) return fail(Permit2Reason.eip2612AmountMismatch, `${at}.amount: ${value} differs from the permitted amount ${amount}`, payer);
  return { value, deadline, signature: info.signature as Hex };
}

/** The EIP-712 digest the payer signed (canonical Permit2 domain, the scheme's witness; default exact's). */
export function permit2Digest(chainId: number, a: Permit2Authorization, method: Permit2Method = exactPermit2Method): Hex {
  return method.digest(chainId, a);
}

/** true: the payer's own ECDSA signature; false: not (a contract wallet may still accept it); a string: malformed. */
export function isPayersPermit2Ecdsa(req: Pick<Permit2Request, "net" | "auth" | "signature" | "payer" | "method">): boolean | string {
  if (size(req.signature) !== 65) return false;
  const problem = signatureProblem(req.signature);
  if (problem) return problem;
  const recovered = recoverAddress(hexToBytes(req.method.digest(req.net.chainId, req.auth)), hexToBytes(req.signature));
  return recovered !== undefined && recovered.toLowerCase() === req.payer.toLowerCase();
}

async function judgePermit2Signature(req: Permit2Request): Promise<{ contractWallet: boolean } | Failure> {
  const own = isPayersPermit2Ecdsa(req);
  const at = "paymentPayload.payload.signature";
  if (typeof own === "string") return fail(Permit2Reason.invalidSignature, `${at}: ${own}`, req.payer);
  if (own) return { contractWallet: false };
  // A contract wallet (opted in): Permit2 asks it (ERC-1271) during the dry run.
  if (req.net.contractWallets && (await hasCode(req.net, req.payer))) return { contractWallet: true };
  return fail(Permit2Reason.invalidSignature, `${at}: does not recover to permit2Authorization.from for this chain and message`, req.payer);
}

/** The whole verification; `dryRun: false` skips only the final simulation (a submitter simulates). */
export async function checkPermit2(ctx: FacilitatorContext, payload: PaymentPayload, requirements: PaymentRequirements, dryRun: boolean, opts: Permit2CheckOptions = {}): Promise<Permit2Verified | Failure> {
  try {
    const req = checkPermit2Requirements(ctx, payload, requirements, opts);
    if (!req.ok) return req;
    const chainProblem = await checkChain(req.net);
    if (chainProblem) return fail(Reason.invalidNetwork, chainProblem, req.payer);
    const sig = await judgePermit2Signature(req);
    if ("ok" in sig) return sig;
    const data = req.method.encode(req.auth, req.signature, req.charge, req.eip2612);
    const verdict = await judgePermit2OnChain(ctx, req, data, dryRun || sig.contractWallet);
    if (verdict) return verdict;
    return { ...req, data, contractWallet: sig.contractWallet };
  } catch (e) {
    // RPC failures and the like: no verdict on the payload.
    return fail(Reason.unexpectedVerifyError, safeMessage(e));
  }
}

/** Reads (in parallel) what the chain must say, then the dry run of `data` from the fee payer. */
async function judgePermit2OnChain(ctx: FacilitatorContext, req: Permit2Request, data: Hex, dryRun: boolean): Promise<Failure | undefined> {
  // What settlement moves decides balance and allowance (upto: the charge, never above the signed maximum).
  const { net, asset, payer, auth, charge: amount } = req;
  const nonce = BigInt(auth.nonce);
  const read = (to: Address, callData: Hex) => net.client.call({ to, data: callData }).then((r) => r.data ?? "0x");
  const word = (hex: Hex) => (hex.length >= 66 ? BigInt(hex.slice(0, 66)) : undefined);
  const [proxyCode, bitmap, balance, allowance] = await Promise.all([
    proxyDeployed(net, req.method.proxy),
    read(PERMIT2_ADDRESS, encodeFunctionData({ abi: permit2Abi, functionName: "nonceBitmap", args: [payer, nonce >> 8n] })).then(word, () => undefined),
    read(asset, encodeFunctionData({ abi: erc20PermitAbi, functionName: "balanceOf", args: [payer] })).then(word, () => undefined),
    read(asset, encodeFunctionData({ abi: erc20PermitAbi, functionName: "allowance", args: [payer, PERMIT2_ADDRESS] })).then(word, () => undefined),
  ]);
  if (!proxyCode) return fail(Permit2Reason.proxyNotDeployed, `${req.method.proxyName} (or Permit2) is not deployed on ${net.network}`, payer);
  if (bitmap !== undefined && ((bitmap >> (nonce & 0xffn)) & 1n) === 1n) {
    return fail(Permit2Reason.invalidNonce, "paymentPayload.payload.permit2Authorization.nonce: already used or invalidated in Permit2", payer);
  }
  if (balance === undefined) return fail(Permit2Reason.simulationFailed, `balanceOf failed on ${asset}: not an ERC-20 token?`, payer);
  if (balance < amount) return fail(Permit2Reason.insufficientBalance, `permit2Authorization.from holds ${balance} atomic units of ${asset}, ${amount} required`, payer);
  if (!req.eip2612 && (allowance === undefined || allowance < amount)) {
    return fail(
      Permit2Reason.allowanceRequired,
      `permit2Authorization.from has approved Permit2 for ${allowance ?? "an unreadable amount of"} ${asset}, ${amount} required: approve Permit2 (${PERMIT2_ADDRESS}) once, or pay with the eip2612GasSponsoring extension`,
      payer,
    );
  }
  if (!dryRun) return undefined;
  try {
    await net.client.call({ account: ctx.signer.address, to: req.method.proxy, data });
  } catch (e) {
    const revert = revertDataOf(e);
    if (revert === undefined) throw e;
    const r = permit2RevertReason(revert);
    return fail(r.reason, `the proxy's ${req.eip2612 ? "settleWithPermit" : "settle"} would revert: ${r.description}`, payer);
  }
  return undefined;
}

/** Both the proxy and Permit2 have code (cached once found: code does not go away on these). */
async function proxyDeployed(net: NetworkState, address: Address): Promise<boolean> {
  const found = (net.permit2Proxies ??= new Set());
  if (found.has(address)) return true;
  const [proxy, permit2] = await Promise.all([hasCode(net, address), hasCode(net, PERMIT2_ADDRESS)]);
  if (proxy && permit2) found.add(address);
  return proxy && permit2;
}
