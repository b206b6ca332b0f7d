/**
 * A sending key of its own (the batch-settlement relayer, the gas sponsor) on a shared ledger:
 * leased per network through the signer leases (signer-leases.ts, in a group of its own), so of
 * several processes configured alike exactly one sends from it at a time. Their nonces come from
 * the node's pending count, serialized per key within a process only: two senders would race.
 *
 * A process that does not hold the key sends nothing from it; the scheme answers with a
 * retryable refusal, and the holder's failover (its lease expires) hands the key to another
 * process, which then also finishes the transactions stored as pending for it (recovery runs
 * only in the holder). On PGlite (one process) the key is always held.
 */
import type { LocalAccount } from "viem";
import type { Ledger } from "../ledger/ledger.ts";
import type { Logger } from "../logger.ts";
import { allSignerLeases, createSignerLeases, type SignerLeases } from "../signer-leases.ts";

/** Marks a refusal by the guarded account, so the scheme's failure can be told from a real one. */
export const NOT_HELD_MARK = "is held by another facilitator instance";

export interface LeasedKey {
  /** Lower-case. */
  address: string;
  leases: SignerLeases;
  /** Whether this process may send from the key on `network` now. */
  holds(network: string): boolean;
  /** The key's account, refusing to sign a transaction for a network whose lease this process does not hold. */
  account: LocalAccount;
  /** The refusal's message (names the key's role and address, never the key). */
  unavailableMessage(network: string): string;
}

export interface LeasedKeyOptions {
  ledger: Ledger | undefined;
  /** The lease group (signer-leases.ts), e.g. "batch-relayer". */
  group: string;
  /** How the key is named in messages, e.g. "the batch-settlement relayer". */
  role: string;
  account: LocalAccount;
  networks: readonly string[];
  ttlMs: number;
  logger: Logger;
  /** Called when this process took (or lost) the key: the caller's recovery runs on a take. */
  onChange?: () => void;
}

export function leasedKey(options: LeasedKeyOptions): LeasedKey {
  const { ledger, account } = options;
  const address = account.address.toLowerCase();
  const leases =
    ledger?.dialect === "postgres"
      ? createSignerLeases({
          sql: ledger.sql,
          schema: ledger.schema,
          networks: options.networks,
          signers: [address],
          ttlMs: options.ttlMs,
          group: options.group,
          logger: options.logger,
          ...(options.onChange ? { onChange: options.onChange } : {}),
        })
      : allSignerLeases([address]);
  const holds = (network: string) => leases.holds(network, address);
  const unavailableMessage = (network: string) => `${options.role} ${account.address} ${NOT_HELD_MARK} on ${network}; nothing was sent; retry shortly`;
  return { address, leases, holds, account: guardedAccount(account, holds, unavailableMessage), unavailableMessage };
}

/**
 * The account with its lease checked inside signTransaction, right before the signature (after
 * the nonce was read): a lease lost while an operation was prepared stops it there, unsigned.
 */
function guardedAccount(base: LocalAccount, holds: (network: string) => boolean, message: (network: string) => string): LocalAccount {
  return {
    ...base,
    async signTransaction(tx, opts) {
      const network = `eip155:${Number(tx.chainId)}`;
      if (tx.chainId === undefined || !holds(network)) throw new Error(message(network));
      return base.signTransaction(tx, opts as never);
    },
  } as LocalAccount;
}

/**
 * What a sender awaits before sending from a leased key on `network`: after the lease was taken (at
 * start, over from a dead holder, again after every loss and re-take, told by the lease's
 * generation), one recovery pass first, so transactions the last holder wrote ahead get their
 * nonces back before a new send could take them. Later sends under the same lease wait for nothing.
 */
export function recoveredUnderLease(key: LeasedKey, recover: () => Promise<void>): (network: string) => Promise<void> {
  const recoveredAt = new Map<string, number>();
  /** The pass a network's first sends are waiting for: concurrent first sends share it. */
  const waiting = new Map<string, Promise<void>>();
  return async (network) => {
    const generation = key.leases.generation(key.address);
    if (recoveredAt.get(network) === generation) return;
    let pass = waiting.get(network);
    if (!pass) {
      pass = recover()
        .then(() => void recoveredAt.set(network, generation))
        .finally(() => waiting.delete(network));
      waiting.set(network, pass);
    }
    await pass;
  };
}

/** `pass` one at a time: a call while one runs is answered by it, plus one more pass after it. */
export function onePassAtATime(pass: () => Promise<void>): () => Promise<void> {
  let current: Promise<void> | undefined;
  let again = false;
  return () => {
    if (current) {
      again = true;
      return current;
    }
    current = (async () => {
      do {
        again = false;
        await pass();
      } while (again);
    })().finally(() => {
      current = undefined;
    });
    return current;
  };
}
