/**
 * Before a transaction is sent: its calldata (the one encoder, exact/encode.ts), a simulation at
 * full gas, and for a batch with preflight, which items would fail. Those are answered "failed"
 * at once, with the token's reason and no gas spent, and the rest simulated again.
 */
import { Reason, safeMessage } from "@tollgate/core";
import { decodeFunctionResult, type Address, type Hex } from "viem";
import { batchSettlerAbi } from "../contracts/abi.ts";
import { errorText, revertDataOf } from "../errors.ts";
import { encodeBatchSettle, encodeTransferWithAuthorization } from "../exact/encode.ts";
import { permit2RevertReason } from "../exact/permit2-encode.ts";
import { reasonFromRevertData } from "./receipt.ts";
import { settlementFailed, type SettlementResult } from "./result.ts";
import type { EngineContext, Item, Lane, NetworkState } from "./state.ts";

export type Simulation = { success: true; returnData: Hex; gasUsed: bigint } | { success: false; returnData: Hex | undefined; message?: string };

export type Plan = { live: Item[]; to: Address; data: Hex; gasUsed: bigint } | { refused: SettlementResult };

/** Simulates the settlement of `items`; failing batch items are answered and left out. */
export async function plan(ctx: EngineContext, net: NetworkState, lane: Lane, asset: Address, items: Item[]): Promise<Plan> {
  let live = items;
  for (;;) {
    const { to, data, batch } = encodeSettlement(net, asset, live);
    const sim = await simulate(net, lane.account.address, to, data, true);
    if (!sim.success) return { refused: simulationRefusal(live, batch, sim) };
    if (!batch || !ctx.options.preflight) return { live, to, data, gasUsed: sim.gasUsed };
    let ok: readonly boolean[];
    try {
      ok = decodeFunctionResult({ abi: batchSettlerAbi, functionName: "settle", data: sim.returnData });
    } catch {
      return { refused: settlementFailed(Reason.evmSimulationFailed, "the batch settler returned an unexpected result") };
    }
    if (live.every((_, i) => ok[i])) return { live, to, data, gasUsed: sim.gasUsed };
    const failing = live.filter((_, i) => !ok[i]);
    live = live.filter((_, i) => ok[i]);
    await Promise.all(failing.map((item) => refuseItem(net, lane, asset, item)));
    if (live.length === 0) return { live, to, data, gasUsed: 0n };
  }
}

/** Asks the token directly for the reason (only for the rare failing item) and answers the item. */
async function refuseItem(net: NetworkState, lane: Lane, asset: Address, item: Item): Promise<void> {
  const direct = await simulate(net, lane.account.address, asset, encodeDirect(item), false).catch(() => undefined);
  const r = direct && !direct.success ? reasonFromRevertData(direct.returnData) : Reason.invalidTransactionState;
  const reason = r === Reason.invalidTransactionState ? Reason.evmSimulationFailed : r;
  item.final.resolve(settlementFailed(reason, "authorization would fail on chain; it was left out of the batch (nothing sent for it)"));
}

export function encodeDirect(item: Item): Hex {
  return encodeTransferWithAuthorization(item, item.signature, item.call.contractWallet ? { ecdsa: false } : undefined);
}

export function encodeSettlement(net: NetworkState, asset: Address, items: readonly Item[]): { to: Address; data: Hex; batch: boolean } {
  // A Permit2 payment is always dispatched alone (submit.ts): its proxy call goes as verified.
  const permit2 = items[0]!.permit2;
  if (permit2) return { to: permit2.to, data: permit2.data, batch: false };
  const settler = net.config.batchSettler;
  if (items.length === 1 || !settler) return { to: asset, data: encodeDirect(items[0]!), batch: false };
  return { to: settler, data: encodeBatchSettle(asset, items.map((i) => ({ authorization: i, signature: i.signature, ecdsa: !i.call.contractWallet }))), batch: true };
}

/** The answer for items whose transaction would revert: the token's (or Permit2's) reason when it is a single payment. */
function simulationRefusal(items: readonly Item[], batch: boolean, sim: Extract<Simulation, { success: false }>): SettlementResult {
  if (items[0]?.permit2) {
    const r = permit2RevertReason(sim.returnData);
    return settlementFailed(r.reason, `settlement would revert: ${r.description}; nothing was sent`);
  }
  const reason = batch ? Reason.evmSimulationFailed : reasonFromRevertData(sim.returnData);
  return settlementFailed(reason === Reason.invalidTransactionState ? Reason.evmSimulationFailed : reason, `settlement would revert${sim.message ? `: ${sim.message}` : ""}`);
}

/**
 * One execution at full gas: `eth_simulateV1` gives result and gas used together; nodes without
 * it get `eth_call` plus `eth_estimateGas` (a binary search, several executions).
 */
export async function simulate(net: NetworkState, from: Address, to: Address, data: Hex, needGas: boolean): Promise<Simulation> {
  if (net.simulateV1 !== false) {
    const viaV1 = await simulateV1(net, from, to, data);
    if (viaV1) return viaV1;
  }
  let returnData: Hex;
  try {
    returnData = (await net.direct.call({ account: from, to, data })).data ?? "0x";
  } catch (e) {
    const revert = revertDataOf(e);
    if (revert !== undefined) return { success: false, returnData: revert, message: safeMessage(e) };
    throw e;
  }
  if (!needGas) return { success: true, returnData, gasUsed: 0n };
  try {
    return { success: true, returnData, gasUsed: await net.direct.estimateGas({ account: from, to, data }) };
  } catch (e) {
    return { success: false, returnData: revertDataOf(e), message: safeMessage(e) };
  }
}

type SimulatedCall = { status?: Hex; returnData?: Hex; gasUsed?: Hex; error?: { message?: string; data?: Hex } };

/** eth_simulateV1, or undefined when the node does not answer it (remembered when unsupported). */
async function simulateV1(net: NetworkState, from: Address, to: Address, data: Hex): Promise<Simulation | undefined> {
  try {
    const blocks = (await net.direct.request({
      method: "eth_simulateV1",
      params: [{ blockStateCalls: [{ calls: [{ from, to, data }] }], validation: false }, "latest"],
    } as never)) as { calls?: SimulatedCall[] }[];
    const call = blocks?.[0]?.calls?.[0];
    if (call && typeof call.status === "string" && typeof call.gasUsed === "string") {
      net.simulateV1 = true;
      if (call.status === "0x1") return { success: true, returnData: call.returnData ?? "0x", gasUsed: BigInt(call.gasUsed) };
      return { success: false, returnData: call.error?.data ?? call.returnData, message: call.error?.message };
    }
    net.simulateV1 = false;
  } catch (e) {
    // Unsupported method: remember and fall back. Any other failure: fall back this once.
    if (net.simulateV1 === undefined || /not (found|supported|available)|unsupported|does not exist/i.test(errorText(e))) net.simulateV1 = false;
  }
  return undefined;
}
