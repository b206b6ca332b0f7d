// A resource server over four facilitators under load, with real processes: one facilitator is
// down from the start, three run as their own processes (own fee payer, own ledger), and one of
// those is SIGKILLed while hundreds of paid requests are in flight. Afterwards, from the chain:
//   - nothing is settled twice (each authorization used once; the payee up by exactly the served);
//   - nothing paid is unserved (every authorization used on chain belongs to a 200 response);
//   - no authorization went to two facilitators as a fresh settlement (only a move the chain
//     proved safe, announced as such).
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, erc20Abi, http, parseEventLogs, type Address, type PublicClient } from "viem";
import { canonicalJson, httpFacilitatorClient, type FacilitatorClient, type PaymentPayload } from "@tollgate/core";
import { devAccount, startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { eip3009Abi, exactEvmAuthorizationUnused, exactEvmSettlementOnChain } from "@tollgate/evm";
import { getPaymentReceipt } from "@tollgate/fetch";
import { facilitatorPool, type PoolEvent } from "@tollgate/server";
import { localAssets, spawnFacilitator, type Child } from "../apps/facilitator/test/settlement-helpers.ts";
import { startTollgateServer, tollgateFetch, type TollgateServer } from "./support/tollgate.ts";

const REQUESTS = 200;
let net: RunningLocalNetwork;
let chain: PublicClient;
const children: Child[] = [];

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 4 });
  chain = createPublicClient({ transport: http(net.rpcUrl) }) as PublicClient;
  const keys = [devAccount(1), devAccount(7), devAccount(8)];
  children.push(
    ...(await Promise.all(
      keys.map((k) =>
        spawnFacilitator({ port: 0, logLevel: "warn", networks: [{ network: net.network, rpcUrl: net.rpcUrl, batchSettler: net.batchSettler.address, assets: localAssets(net) }], privateKeys: [k.privateKey] }),
      ),
    )),
  );
}, 120_000);

afterAll(async () => {
  for (const c of children) if (c.proc.exitCode === null) c.proc.kill("SIGKILL");
  await Promise.all(children.map((c) => c.exited));
  await net?.stop();
});

const payloadKey = (p: PaymentPayload) => createHash("sha256").update(canonicalJson(p.payload)).digest("hex");

describe("a pool of facilitator processes, one SIGKILLed under load", () => {
  it("settles nothing twice, leaves nothing paid unserved, and never races one authorization at two facilitators", async () => {
    const events: PoolEvent[] = [];
    /** Which members received /settle for each payload. */
    const settledAt = new Map<string, Set<string>>();
    const member = (name: string, url: string): { facilitator: FacilitatorClient; name: string } => {
      const client = httpFacilitatorClient({ url, timeoutMs: 5_000, settleTimeoutMs: 10_000 });
      return {
        name,
        facilitator: {
          ...client,
          settle: (payload, requirements, o) => {
            const k = payloadKey(payload);
            settledAt.set(k, new Set([...(settledAt.get(k) ?? []), name]));
            return client.settle(payload, requirements, o);
          },
        },
      };
    };
    const chainAccess = { rpcUrls: { [net.network]: net.rpcUrl } };
    const server: TollgateServer = await startTollgateServer({
      facilitatorUrl: children[0]!.url,
      network: net.network,
      usdc: net.usdc,
      payTo: net.accounts.payee.address,
      price: "10000",
      framework: "hono",
      paywall: { settlementPollMs: 100, settlementTimeoutMs: 30_000 },
      wrapFacilitator: () =>
        facilitatorPool({
          facilitators: [member("down-from-start", "http://127.0.0.1:9"), ...children.map((c, i) => member(`p${i}`, c.url))],
          settleAttempts: 2,
          breaker: { failures: 2, cooldownMs: 60_000 },
          proveUnused: exactEvmAuthorizationUnused(chainAccess),
          proveSettled: exactEvmSettlementOnChain(chainAccess),
          onEvent: (e) => events.push(e),
        }),
    });
    const payeeBefore = await chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [net.accounts.payee.address] });
    const fromBlock = await chain.getBlockNumber();
    try {
      const payers = net.accounts.payers.map((p) => ({ address: p.address, pay: tollgateFetch({ privateKey: p.privateKey }) }));
      let done = 0;
      let killed: string | undefined;
      const results = await Promise.all(
        Array.from({ length: REQUESTS }, async (_, i) => {
          const payer = payers[i % payers.length]!;
          try {
            const res = await payer.pay(server.paidUrl);
            const info = getPaymentReceipt(res);
            return { ok: res.status === 200, payer: payer.address, nonce: nonceOf(info?.payload as PaymentPayload | undefined), transaction: info?.receipt?.transaction };
          } catch (e) {
            return { ok: false, payer: payer.address, nonce: undefined, transaction: undefined, error: String(e) };
          } finally {
            // SIGKILL the busiest process once a fifth of the answers are in: the rest are in flight.
            if (++done === REQUESTS / 5) {
              const busiest = [...children.keys()].sort((a, b) => busy(b) - busy(a))[0]!;
              killed = `p${busiest}`;
              children[busiest]!.proc.kill("SIGKILL");
            }
          }
        }),
      );
      function busy(i: number): number {
        return [...settledAt.values()].filter((s) => s.has(`p${i}`)).length;
      }
      expect(killed).toBeDefined();
      if (process.env.POOL_TEST_SUMMARY) console.log(JSON.stringify({ killed, served: results.filter((r) => r.ok).length, failed: results.filter((r) => !r.ok).map((r) => r.error?.slice(0, 120)), events: events.reduce<Record<string, number>>((m, e) => ((m[e.kind] = (m[e.kind] ?? 0) + 1), m), {}) }));

      const served = results.filter((r) => r.ok);
      const used = parseEventLogs({ abi: eip3009Abi, eventName: "AuthorizationUsed", logs: await chain.getLogs({ address: net.usdc.address, fromBlock, toBlock: "latest" }) });
      const usedKeys = used.map((u) => `${u.args.authorizer.toLowerCase()}|${u.args.nonce.toLowerCase()}`);
      // Nothing settled twice: each authorization once, and the payee up by exactly what was served.
      expect(new Set(usedKeys).size).toBe(usedKeys.length);
      const payeeAfter = await chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [net.accounts.payee.address] });
      expect(payeeAfter - payeeBefore).toBe(BigInt(served.length) * 10_000n);
      // Nothing paid is unserved: every authorization used on chain is a served request's.
      const servedKeys = new Set(served.map((r) => `${r.payer.toLowerCase()}|${r.nonce}`));
      expect(usedKeys.filter((k) => !servedKeys.has(k))).toEqual([]);
      expect(served.length).toBe(usedKeys.length);
      // Most requests are served despite the kill and the member that was never up.
      expect(served.length).toBeGreaterThan(REQUESTS * 0.9);
      // No payload at two facilitators unless the chain proved it unused first (announced as a move).
      const moved = events.filter((e) => e.kind === "settle-moved").length;
      const atTwo = [...settledAt.values()].filter((s) => s.size > 1).length;
      expect(atTwo).toBeLessThanOrEqual(moved);
      expect(events.some((e) => e.kind === "failover" && e.from === "down-from-start")).toBe(true);
    } finally {
      await server.close();
    }
  }, 240_000);
});

function nonceOf(payload: PaymentPayload | undefined): string | undefined {
  const auth = payload?.payload?.authorization as { nonce?: string } | undefined;
  return auth?.nonce?.toLowerCase();
}

export type { Address };
