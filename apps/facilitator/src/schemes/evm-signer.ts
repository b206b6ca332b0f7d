/**
 * The only signer the settlement engine gets: it checks the signer lease, then writes the
 * transaction to the ledger (write-ahead) BEFORE handing the signed bytes out. So no transaction
 * can land that the ledger does not know about, even if the process dies between broadcast and
 * bookkeeping; and a key whose lease this process lost signs nothing.
 */
import { Reason } from "@tollgate/core";
import { authorizationKey, batchSettlerAbi, decodeBatchSettleKeys, decodePermit2SettleKey, eip3009Abi, EXACT_PERMIT2_PROXY_ADDRESS, keccak256Hex, SettlementError, UPTO_PERMIT2_PROXY_ADDRESS } from "@tollgate/evm";
import { decodeFunctionData, getAbiItem, toFunctionSelector, type AbiFunction, type Hex, type LocalAccount, type PublicClient } from "viem";
import type { Ledger } from "../ledger/ledger.ts";
import type { SignerLeases } from "../signer-leases.ts";

export interface FeePayer {
  account: LocalAccount;
  /** Lower-case. */
  address: string;
  /**
   * Per network: the lease generation the engine's nonce for this key was (re)read under, and the
   * lowest nonce it may sign in that generation. Anything older belongs to a lease this process lost.
   */
  lanes: Map<string, { generation: number; floor: number }>;
}

const UPTO = UPTO_PERMIT2_PROXY_ADDRESS.toLowerCase();
const PROXIES = new Set([EXACT_PERMIT2_PROXY_ADDRESS.toLowerCase(), UPTO]);
const BATCH_SETTLE_SELECTOR = toFunctionSelector(getAbiItem({ abi: batchSettlerAbi, name: "settle" }) as AbiFunction).toLowerCase();

/**
 * The payments (settle-once keys) a transaction carries, read from its calldata: a direct EIP-3009
 * call, BatchSettler.settle, or the x402 exact Permit2 proxy's settle/settleWithPermit (one
 * payment, `network|token|owner|nonce` in decimal). Anything else throws: it is not signed.
 */
export function paymentsIn(network: string, to: string, data: Hex): string[] {
  if (PROXIES.has(to.toLowerCase())) {
    // The exact and upto proxies' calls name one payment each, by the same settle-once key.
    const permit2 = decodePermit2SettleKey(network, data);
    if (!permit2) throw new Error(`refusing to sign an unexpected call of the x402 ${to.toLowerCase() === UPTO ? "upto" : "exact"} Permit2 proxy`);
    return [permit2.key];
  }
  // Decoded by selector: a failed decode throws, and viem's error costs more than the decode.
  if (data.slice(0, 10).toLowerCase() === BATCH_SETTLE_SELECTOR) {
    // Hand-decoded (only the words naming each payment); viem's decoder for anything unusual.
    const fast = decodeBatchSettleKeys(data);
    if (fast) return fast.items.map((i) => authorizationKey(network, fast.token, i.from, i.nonce));
    const call = decodeFunctionData({ abi: batchSettlerAbi, data });
    const [token, items] = call.args as unknown as [string, ReadonlyArray<{ from: string; nonce: string }>];
    return items.map((i) => authorizationKey(network, token, i.from, i.nonce));
  }
  const call = decodeFunctionData({ abi: eip3009Abi, data });
  if (call.functionName !== "transferWithAuthorization") throw new Error(`refusing to sign an unexpected call (${call.functionName})`);
  const args = call.args as unknown as [string, string, bigint, bigint, bigint, string];
  return [authorizationKey(network, to, args[0], args[5])];
}

export interface GuardedSignerDeps {
  leases: SignerLeases;
  ledger: Ledger;
  clientFor(network: string): PublicClient | undefined;
}

/**
 * After a lease was lost (generation bumped), the first signature under the new generation
 * re-reads the key's pending nonce from the node: a nonce below it was either used by another
 * holder meanwhile (refused as "nonce too low", so the engine resyncs its counter and retries
 * once) or belongs to a transaction from before the loss (a fee bump: refused).
 */
export function guardedSigner(payer: FeePayer, deps: GuardedSignerDeps): LocalAccount {
  const base = payer.account;
  const notHeld = (network: string) => new SettlementError(Reason.facilitatorNotReady, `signer ${base.address} is not held by this process on ${network}`);
  return {
    ...base,
    async signTransaction(tx, opts) {
      const network = `eip155:${Number(tx.chainId)}`;
      if (!deps.leases.holds(network, payer.address)) throw notHeld(network);
      if (!tx.to || !tx.data || tx.nonce === undefined) throw new Error("refusing to sign a transaction without recipient, data or nonce");
      const generation = deps.leases.generation(payer.address);
      const lane = await laneFor(payer, deps, network, generation);
      if (tx.nonce < lane.floor) {
        // Worded so the engine's nonce-error handling resyncs (new sends); a bump just stops.
        throw new Error(`nonce too low: ${tx.nonce} is below ${lane.floor}, the first nonce of ${base.address} since its lease was (re)taken`);
      }
      if (deps.leases.generation(payer.address) !== generation || !deps.leases.holds(network, payer.address)) throw notHeld(network);
      // A nonce filler (0 ETH to itself, no data) carries no payment: nothing to write ahead.
      if (isNonceFiller(tx, base.address)) return base.signTransaction(tx, opts as never);
      const keys = paymentsIn(network, tx.to, tx.data);
      const serialized = await base.signTransaction(tx, opts as never);
      const refused = await deps.ledger.recordTransaction({ keys, hash: keccak256Hex(serialized), network, signer: base.address, nonce: Number(tx.nonce) });
      if (refused.length > 0) {
        // Finished elsewhere while this settlement was being prepared (its claim's lease ran
        // out): the transaction is not recorded, so it must not leave this process.
        throw new SettlementError(
          Reason.unexpectedSettleError,
          `${refused.length} of the ${keys.length} payment(s) in this transaction were finished elsewhere while it was prepared; nothing was sent; retry`,
        );
      }
      return serialized;
    },
  } as LocalAccount;
}

async function laneFor(payer: FeePayer, deps: GuardedSignerDeps, network: string, generation: number): Promise<{ generation: number; floor: number }> {
  const known = payer.lanes.get(network);
  if (known && known.generation === generation) return known;
  const client = deps.clientFor(network);
  if (!client) throw new Error(`no RPC client for ${network}`);
  const floor = await client.getTransactionCount({ address: payer.account.address, blockTag: "pending" });
  const lane = { generation, floor };
  payer.lanes.set(network, lane);
  return lane;
}

function isNonceFiller(tx: { to?: string | null; data?: string; value?: bigint }, self: string): boolean {
  return !!tx.to && tx.to.toLowerCase() === self.toLowerCase() && (tx.data === undefined || tx.data === "0x") && !tx.value;
}
