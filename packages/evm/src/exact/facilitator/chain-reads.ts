/**
 * Everything the chain must answer for a payment (balance, nonce state, the token's EIP-712
 * domain, and a dry run of the transfer) in ONE eth_call through Multicall3 when the chain has
 * it, coalesced with concurrent verifications (batch.ts); otherwise one call per read.
 */
import { Reason } from "@tollgate/core";
import { decodeFunctionResult, toFunctionSelector, type Address, type Hex } from "viem";
import { eip3009Abi } from "../../contracts/abi.ts";
import { revertDataOf } from "../../errors.ts";
import { describeRevert } from "../../settlement/receipt.ts";
import { decodeAggregate3, decodeBoolResult, decodeUint256Result, encodeAggregate3 } from "../abi-fast.ts";
import { createCallBatcher, type Aggregate3Result } from "../batch.ts";
import { domainSeparator } from "../digest.ts";
import type { TransferAuthorization } from "../payload.ts";
import type { FacilitatorContext, NetworkState, TokenDomain } from "./context.ts";
import { multicallAddress } from "./network.ts";
import { fail, type Failure, type Request } from "./requirements.ts";

const BALANCE_OF = toFunctionSelector("balanceOf(address)");
const AUTHORIZATION_STATE = toFunctionSelector("authorizationState(address,bytes32)");
const DOMAIN_READS: Hex[] = [toFunctionSelector("DOMAIN_SEPARATOR()"), toFunctionSelector("name()"), toFunctionSelector("version()")];

export interface ChainReads {
  domain: TokenDomain;
  balance?: bigint;
  used?: boolean;
  /** undefined when the dry run succeeded (or none was asked for). */
  simulationError?: string;
}

/** The chain's verdict on a request: token domain, balance, nonce state, and the dry run when given `transferData`. */
export async function judgeOnChain(ctx: FacilitatorContext, req: Request, transferData: Hex | undefined): Promise<Failure | undefined> {
  const { net, asset, auth, payer, name, version } = req;
  const chain = await readChain(ctx, net, asset, auth, transferData);
  const domain = chain.domain;
  const expected = domainSeparator({ name, version, chainId: net.chainId, verifyingContract: asset }).hex;
  const domainOk = domain.separator
    ? domain.separator.toLowerCase() === expected.toLowerCase()
    : domain.name !== undefined && domain.name === name && (domain.version === undefined || domain.version === version);
  if (!domainOk) {
    const actual = domain.name !== undefined ? `name=${JSON.stringify(domain.name)} version=${JSON.stringify(domain.version ?? "?")}` : "an unreadable EIP-712 domain";
    return fail(Reason.evmTokenDomainMismatch, `paymentRequirements.extra: token ${asset} has ${actual}, requirements say name=${JSON.stringify(name)} version=${JSON.stringify(version)}`, payer);
  }
  if (chain.balance === undefined) return fail(Reason.evmSimulationFailed, `balanceOf failed on ${asset}: not an ERC-20 token?`, payer);
  if (chain.balance < auth.value) return fail(Reason.insufficientFunds, `authorization.from holds ${chain.balance} atomic units of ${asset}, ${auth.value} required`, payer);
  if (chain.used === undefined) return fail(Reason.evmSimulationFailed, `authorizationState failed on ${asset}: not an EIP-3009 token?`, payer);
  if (chain.used) return fail(Reason.evmNonceUsed, `paymentPayload.payload.authorization.nonce: already used or canceled`, payer);
  if (chain.simulationError !== undefined) return fail(Reason.evmSimulationFailed, `transferWithAuthorization would revert: ${chain.simulationError}`, payer);
  return undefined;
}

/** Without `transferData`, reads only (no dry run). */
async function readChain(ctx: FacilitatorContext, net: NetworkState, asset: Address, auth: TransferAuthorization, transferData: Hex | undefined): Promise<ChainReads> {
  const key = `${net.network}|${asset.toLowerCase()}`;
  const cached = ctx.domains.get(key);
  const from = auth.from.slice(2).toLowerCase().padStart(64, "0");
  const calls: Hex[] = [
    `${BALANCE_OF}${from}`,
    `${AUTHORIZATION_STATE}${from}${auth.nonce.slice(2)}`,
    ...(cached ? [] : DOMAIN_READS),
    // Last: the dry run changes state inside the batch.
    ...(transferData ? [transferData] : []),
  ];
  // The dry run debits the payer (balance, nonce) and credits the payee: see batch.ts.
  const token = asset.toLowerCase();
  const keys = [`${token}|${auth.from.toLowerCase()}`, `${token}|${auth.to.toLowerCase()}`] as const;
  const write = transferData !== undefined;
  let { results, contended } = await callAll(ctx, net, asset, calls, keys, false, write);
  let balance = decodeOr(results[0], (d) => decodeUint256Result(d, "balanceOf"));
  let used = decodeOr(results[1], (d) => decodeBoolResult(d, "authorizationState"));
  // The dry run ran after another dry run by the same payer in that eth_call and failed although
  // the reads (the untouched state) would let it through: judge it alone.
  if (write && contended && !results[results.length - 1]!.success && balance !== undefined && balance >= auth.value && used === false) {
    ({ results } = await callAll(ctx, net, asset, calls, keys, true, write));
    balance = decodeOr(results[0], (d) => decodeUint256Result(d, "balanceOf"));
    used = decodeOr(results[1], (d) => decodeBoolResult(d, "authorizationState"));
  }
  const domain = cached ?? rememberDomain(ctx, key, results);
  if (!write) return { domain, balance, used };
  const sim = results[results.length - 1]!;
  return { domain, balance, used, simulationError: sim.success ? undefined : describeRevert(sim.returnData) };
}

function rememberDomain(ctx: FacilitatorContext, key: string, results: Aggregate3Result[]): TokenDomain {
  const domain: TokenDomain = {
    separator: decodeOr(results[2], (d) => decodeFunctionResult({ abi: eip3009Abi, functionName: "DOMAIN_SEPARATOR", data: d })),
    name: decodeOr(results[3], (d) => decodeFunctionResult({ abi: eip3009Abi, functionName: "name", data: d })),
    version: decodeOr(results[4], (d) => decodeFunctionResult({ abi: eip3009Abi, functionName: "version", data: d })),
  };
  // Only a token that answered is worth remembering; a non-token may get code later.
  if (domain.separator !== undefined || domain.name !== undefined) ctx.domains.set(key, domain);
  return domain;
}

/** All calls to `asset` in one eth_call via Multicall3 when present; otherwise one by one. */
async function callAll(
  ctx: FacilitatorContext,
  net: NetworkState,
  asset: Address,
  calls: Hex[],
  [payerKey, payeeKey]: readonly [string, string],
  alone: boolean,
  write: boolean,
): Promise<{ results: Aggregate3Result[]; contended: boolean }> {
  const mc = await multicallAddress(net);
  if (mc) {
    // Coalesced with concurrent verifications; the last call (the dry run) is the only write.
    const batcher = (net.batcher ??= createCallBatcher({ ...net.config.batch, send: (batch) => aggregate3(ctx, net, mc, batch) }));
    const reads = write ? calls.slice(0, -1) : calls;
    const r = await batcher.submit({
      reads: reads.map((callData) => ({ target: asset, callData })),
      writes: write ? [{ target: asset, callData: calls[calls.length - 1]! }] : [],
      ...(write ? { key: payerKey, credits: [payeeKey] } : {}),
      alone,
    });
    return { results: [...r.reads, ...r.writes], contended: r.contended };
  }
  const results = await Promise.all(
    calls.map(async (data) => {
      try {
        const r = await net.client.call({ to: asset, data, account: ctx.signer.address });
        return { success: true, returnData: r.data ?? "0x" };
      } catch (e) {
        const revert = revertDataOf(e);
        if (revert === undefined) throw e; // transport failure, not a revert
        return { success: false, returnData: revert };
      }
    }),
  );
  return { results, contended: false };
}

/** One aggregate3 eth_call, every call allowed to fail on its own. */
async function aggregate3(ctx: FacilitatorContext, net: NetworkState, mc: Address, calls: readonly { target: Address; callData: Hex }[]): Promise<Aggregate3Result[]> {
  const data = encodeAggregate3(calls); // targets are checksummed (getAddress)
  // A raw eth_call: viem's `call` action adds formatting and checks this hot path does not need.
  const out = await net.client.request({ method: "eth_call", params: [{ from: ctx.signer.address, to: mc, data }, "latest"] });
  if (!out || out === "0x") throw new Error("Multicall3 returned no data");
  return decodeAggregate3(out);
}

function decodeOr<T>(res: { success: boolean; returnData: Hex } | undefined, decode: (data: Hex) => T): T | undefined {
  if (!res || !res.success || res.returnData === "0x") return undefined;
  try {
    return decode(res.returnData);
  } catch {
    return undefined;
  }
}
