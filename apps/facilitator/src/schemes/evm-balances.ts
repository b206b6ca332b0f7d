/**
 * The fee payers' balance floor: a key under `minSignerBalanceWei` is not used; with none left
 * on a network, /settle answers facilitator_not_ready (nothing sent) and /ready names the keys.
 */
import { safeMessage } from "@tollgate/core";
import type { PublicClient } from "viem";
import type { ReadinessProbe } from "../readiness.ts";
import type { Logger } from "../logger.ts";
import type { SignerLeases } from "../signer-leases.ts";
import type { FeePayer } from "./evm-signer.ts";

export interface SignerBalances {
  /** Usable on `network`: leased by this process and not under the floor. Cheap (asked per dispatch). */
  usable(network: string, address: string): boolean;
  anyUsable(network: string): boolean;
  /** Why nothing can be settled on `network` now. */
  notReadyMessage(network: string): string;
  readinessProbes(networks: readonly string[]): ReadinessProbe[];
  start(): Promise<void>;
  stop(): void;
}

export interface SignerBalancesOptions {
  payers: readonly FeePayer[];
  networks: readonly string[];
  leases: SignerLeases;
  clientFor(network: string): PublicClient | undefined;
  floor: bigint | undefined;
  intervalMs: number;
  logger: Logger;
}

export function createSignerBalances(options: SignerBalancesOptions): SignerBalances {
  const { payers, networks, leases, floor, logger } = options;
  /** network|signer → balance, for signers under the floor. */
  const low = new Map<string, bigint>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const usable = (network: string, address: string) => leases.holds(network, address) && !low.has(`${network}|${address}`);
  const anyUsable = (network: string) => payers.some((p) => usable(network, p.address));

  async function checkOne(network: string, payer: FeePayer): Promise<void> {
    const k = `${network}|${payer.address}`;
    try {
      const balance = await options.clientFor(network)!.getBalance({ address: payer.account.address });
      if (balance < floor!) {
        if (!low.has(k)) logger.warn({ network, signer: payer.account.address, balance: balance.toString() }, "signer below minSignerBalanceWei; not used");
        low.set(k, balance);
      } else low.delete(k);
    } catch (e) {
      logger.warn({ network, err: safeMessage(e) }, "signer balance check failed");
    }
  }

  async function checkAll(): Promise<void> {
    if (floor === undefined) return;
    await Promise.all(networks.flatMap((n) => payers.map((p) => checkOne(n, p))));
  }

  function schedule() {
    if (floor === undefined) return;
    timer = setTimeout(() => void checkAll().finally(schedule), options.intervalMs);
    timer.unref?.();
  }

  return {
    usable,
    anyUsable,
    notReadyMessage(network) {
      const lows = [...low.entries()].filter(([k]) => k.startsWith(`${network}|`));
      if (lows.length > 0 && !anyUsable(network)) {
        return `every fee-paying signer on ${network} is below minSignerBalanceWei (${lows.map(([k, b]) => `${k.split("|")[1]}: ${b}`).join(", ")}); nothing was settled`;
      }
      return `no fee-paying signer is available to this facilitator on ${network} (held by other instances); nothing was settled`;
    },
    readinessProbes: (list) =>
      list.map((network) => ({
        name: `signers:${network}`,
        check: async () => {
          const lows = payers.filter((p) => low.has(`${network}|${p.address}`));
          if (lows.length > 0) {
            throw new Error(`signer(s) below minSignerBalanceWei ${floor}: ${lows.map((p) => `${p.account.address} (balance ${low.get(`${network}|${p.address}`)})`).join(", ")}`);
          }
          if (!anyUsable(network)) throw new Error("no fee-paying signer held by this instance");
        },
      })),
    async start() {
      await checkAll();
      schedule();
    },
    stop() {
      clearTimeout(timer);
    },
  };
}
