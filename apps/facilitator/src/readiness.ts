/**
 * What the facilitator depends on (store, each chain's RPC, fee-payer balances), asked the same
 * way by `/ready` and by the start-up check, which warns about what does not answer instead of
 * letting the first payment find out.
 */
import { safeMessage } from "@tollgate/core";

export interface ReadinessProbe {
  name: string;
  /** Resolves when the dependency answers; throws (or rejects) when it does not. */
  check: () => Promise<void>;
}

/** Each probe's verdict, "ok" or why not, all asked at once and each bounded by `timeoutMs`. */
export async function runProbes(probes: readonly ReadinessProbe[], timeoutMs: number): Promise<Array<readonly [name: string, result: string]>> {
  return Promise.all(
    probes.map(async (p) => {
      try {
        await withTimeout(p.check(), timeoutMs, `${p.name}: no answer within ${timeoutMs} ms`);
        return [p.name, "ok"] as const;
      } catch (e) {
        return [p.name, safeMessage(e)] as const;
      }
    }),
  );
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]).finally(() => clearTimeout(timer));
}
