/**
 * The CLI's commands against a real local network: the narrated demo moves exactly the price
 * from payer to payee on-chain, once on EVM (anvil) and once on Solana (local litesvm endpoint),
 * and `tollgate pay` pays the dev stack's API within its policy.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, http, type PublicClient } from "viem";
import { findRegisteredFacilitators } from "@tollgate/erc8004";
import { demo } from "../src/commands/demo.ts";
import { dev } from "../src/commands/dev.ts";
import { facilitator } from "../src/commands/facilitator.ts";
import { pay } from "../src/commands/pay.ts";
import { startDevStack, type DevStack } from "../src/stack.ts";
import { getBase58Decoder } from "@solana/kit";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PayResult } from "../src/commands/pay.ts";
import { readDevState } from "../src/dev-state.ts";
import { wallet } from "../src/commands/wallet.ts";

describe("tollgate demo (npm start)", () => {
  it("narrates the seven steps, then the Solana run, and moves exactly the price on both chains", async () => {
    const lines: string[] = [];
    const result = await demo({ out: (l) => lines.push(l) });
    const text = lines.join("\n");
    for (let n = 1; n <= 7; n++) expect(text).toMatch(new RegExp(`(?<![0-9])${n}\\. `));
    expect(result.transaction).toMatch(/^0x[0-9a-f]{64}$/);
    expect(text).toContain(result.transaction);
    expect(result.amount).toBe(10_000n);
    expect(result.payer.before - result.payer.after).toBe(result.amount);
    expect(result.payee.after - result.payee.before).toBe(result.amount);
    expect(result.network).toBe("eip155:31337");

    // The same route paid on Solana: a base58 transaction signature, the same price, moved exactly.
    const sol = result.solana;
    expect(sol.network).toMatch(/^solana:/);
    expect(sol.transaction).toMatch(/^[1-9A-HJ-NP-Za-km-z]{64,88}$/);
    expect(text).toContain(sol.transaction);
    expect(text).toMatch(/chooser prefers solana:\*/);
    expect(sol.amount).toBe(10_000n);
    expect(sol.payer.before - sol.payer.after).toBe(sol.amount);
    expect(sol.payee.after - sol.payee.before).toBe(sol.amount);
    // Printed balances agree with the returned ones.
    expect(text).toMatch(/payee \S+ {2}0 USDC -> 0\.01 USDC[\s\S]*Token balances on Solana[\s\S]*payee \S+ {2}0 USDC -> 0\.01 USDC/);
  });
});

describe("tollgate pay", () => {
  let stack: DevStack;
  beforeAll(async () => {
    stack = await startDevStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  const usdAsset = () => `${stack.chain.network}/${stack.chain.usdc.address}:6`;

  it("pays within the policy and prints the body and the receipt", async () => {
    const lines: string[] = [];
    const code = await pay({
      url: `${stack.apiUrl}/weather`,
      usdAssets: [usdAsset()],
      env: { TOLLGATE_PRIVATE_KEY: stack.chain.accounts.payers[1]!.privateKey },
      out: (l) => lines.push(l),
    });
    expect(code).toBe(0);
    expect(lines[0]).toBe("HTTP 200");
    expect(lines.join("\n")).toMatch(/"transaction": "0x[0-9a-f]{64}"/);
  });

  it("pays on Solana with TOLLGATE_SOLANA_KEY and --prefer solana:*, exactly the price", async () => {
    const sol = stack.solana;
    const key = getBase58Decoder().decode(sol.payer.secretKey);
    const before = { payer: sol.tokenBalance(sol.payer.tokenAccount), payee: sol.tokenBalance(sol.payee.tokenAccount) };
    const lines: string[] = [];
    const code = await pay({
      url: `${stack.apiUrl}/weather`,
      solanaRpc: sol.url,
      prefer: ["solana:*"],
      usdAssets: [usdAsset(), `${sol.network}/${sol.mint}:6`],
      env: { TOLLGATE_PRIVATE_KEY: stack.chain.accounts.payers[0]!.privateKey, TOLLGATE_SOLANA_KEY: key },
      out: (l) => lines.push(l),
    });
    expect(code).toBe(0);
    expect(lines.join("\n")).toContain(`"network": "${sol.network}"`);
    expect(lines.join("\n")).not.toContain(key);
    expect(before.payer - sol.tokenBalance(sol.payer.tokenAccount)).toBe(10_000n);
    expect(sol.tokenBalance(sol.payee.tokenAccount) - before.payee).toBe(10_000n);
  });

  it("refuses a price over --max, signs nothing, and never prints the key", async () => {
    const key = stack.chain.accounts.payers[2]!.privateKey;
    const lines: string[] = [];
    const errors: string[] = [];
    const code = await pay({ url: `${stack.apiUrl}/weather`, max: "$0.001", usdAssets: [usdAsset()], env: { TOLLGATE_PRIVATE_KEY: key }, out: (l) => lines.push(l), err: (l) => errors.push(l) });
    expect(code).toBe(1);
    expect(errors.join("\n")).toMatch(/max_per_request[\s\S]*nothing was signed/);
    expect([...lines, ...errors].join("\n")).not.toContain(key.slice(2));
    expect(lines.join("\n")).not.toMatch(/no payment was needed/);
  });

  it("--json prints one object with status, body, receipt, amount, network and payer", async () => {
    const lines: string[] = [];
    const code = await pay({ url: `${stack.apiUrl}/weather`, usdAssets: [usdAsset()], json: true, env: { TOLLGATE_PRIVATE_KEY: stack.chain.accounts.payers[1]!.privateKey }, out: (l) => lines.push(l) });
    expect(code).toBe(0);
    expect(lines).toHaveLength(1);
    const r = JSON.parse(lines[0]!) as PayResult;
    expect(r).toMatchObject({ ok: true, status: 200, paid: true, amount: "10000", amountUsd: "0.01", network: stack.chain.network, payer: stack.chain.accounts.payers[1]!.address });
    expect(JSON.parse(r.body!)).toMatchObject({ city: "Lisbon" });
    expect(r.receipt?.transaction).toMatch(/^0x[0-9a-f]{64}$/);
  });

  it("--budget is kept across runs and holds when two runs spend from it at once", async () => {
    const env = { XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), "tollgate-budget-")), TOLLGATE_PRIVATE_KEY: stack.chain.accounts.payers[2]!.privateKey };
    const run = () => {
      const out: string[] = [];
      return pay({ url: `${stack.apiUrl}/weather`, usdAssets: [usdAsset()], budget: "$0.015/day", json: true, env, out: (l) => out.push(l) }).then(() => JSON.parse(out[0]!) as PayResult);
    };
    const results = await Promise.all([run(), run()]);
    expect(results.filter((r) => r.ok).length).toBe(1);
    expect(results.find((r) => !r.ok)?.error?.code).toBe("refused_by_policy");
    const third = await run();
    expect(third.error?.message).toMatch(/budget/);
    // One store for every budget (the mandates' budget store): one entry, $0.01 spent, nothing left reserved.
    const file = JSON.parse(readFileSync(join(env.XDG_CONFIG_HOME, "tollgate", "budgets.json"), "utf8")) as { mandates: Record<string, { periods: Record<string, { committed: string; reservations: object }> }> };
    const periods = Object.values(file.mandates).flatMap((m) => Object.values(m.periods));
    expect(periods.map((p) => [p.committed, Object.keys(p.reservations).length])).toEqual([["10000", 0]]);
  });

  it("wallet new / import / address / balance keep the key encrypted and never print it", async () => {
    const env = { XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), "tollgate-wallet-")), TOLLGATE_KEYSTORE_PASSWORD: "correct horse battery" };
    const out: string[] = [];
    const noPrompt = async () => undefined;
    const key = stack.chain.accounts.payers[0]!.privateKey;
    await wallet({ action: "import", env: { ...env, TOLLGATE_PRIVATE_KEY: key }, out: (l) => out.push(l), prompt: noPrompt, kdf: { n: 1024 } });
    const path = join(env.XDG_CONFIG_HOME, "tollgate", "wallet.json");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, "utf8")).not.toContain(key.slice(2));
    await expect(wallet({ action: "new", env, prompt: noPrompt, kdf: { n: 1024 } })).rejects.toThrow(/already exists/);
    await wallet({ action: "address", env, out: (l) => out.push(l) });
    expect(out.at(-1)).toBe(stack.chain.accounts.payers[0]!.address);
    await wallet({ action: "balance", env, rpcUrl: stack.chain.rpcUrl, out: (l) => out.push(l) });
    expect(out.join("\n")).toMatch(/USDC\s+\d+(\.\d+)?\s+\(0x/);
    expect(out.join("\n")).not.toContain(key.slice(2));
    // pay uses the default wallet when no key is in the environment
    const paid: string[] = [];
    expect(await pay({ url: `${stack.apiUrl}/weather`, usdAssets: [usdAsset()], env, out: (l) => paid.push(l) })).toBe(0);
    const other = mkdtempSync(join(tmpdir(), "tollgate-wallet-"));
    await wallet({ action: "new", keystore: join(other, "w.json"), env, out: (l) => out.push(l), prompt: noPrompt, kdf: { n: 1024 } });
    expect(out.at(-1)).toMatch(/^created 0x[0-9a-fA-F]{40} in /);
    await expect(wallet({ action: "new", keystore: join(other, "x.json"), env: {}, prompt: noPrompt })).rejects.toThrow(/TOLLGATE_KEYSTORE_PASSWORD/);
  });

  it("names the URL and the cause when nothing answers, and never says no payment was needed", async () => {
    const errors: string[] = [];
    const lines: string[] = [];
    const dead = `http://127.0.0.1:${await closedPort()}/weather`;
    const code = await pay({ url: dead, env: { TOLLGATE_PRIVATE_KEY: stack.chain.accounts.payers[1]!.privateKey }, out: (l) => lines.push(l), err: (l) => errors.push(l) });
    expect(code).toBe(1);
    expect(errors.join("\n")).toContain(`${dead}: connection refused by ${new URL(dead).host}`);
    expect(lines.join("\n")).not.toMatch(/no payment was needed/);
    const json: string[] = [];
    await pay({ url: "http://no-such-host.invalid/x", json: true, env: { TOLLGATE_PRIVATE_KEY: stack.chain.accounts.payers[1]!.privateKey }, out: (l) => json.push(l) });
    expect(JSON.parse(json[0]!)).toMatchObject({ ok: false, paid: false, error: { code: "dns" } });
  });

  it("explains a missing or malformed key without echoing it", async () => {
    await expect(pay({ url: `${stack.apiUrl}/weather`, env: {} })).rejects.toThrow(/TOLLGATE_PRIVATE_KEY/);
    const bad = "0x1234-not-a-key-secretish";
    const err = await pay({ url: `${stack.apiUrl}/weather`, env: { TOLLGATE_PRIVATE_KEY: bad } }).catch((e: Error) => e);
    expect((err as Error).message).not.toContain(bad);
  });
});

describe("tollgate dev and tollgate facilitator", () => {
  it("dev prints what a user needs, serves the paid API, and stops cleanly", async () => {
    const lines: string[] = [];
    const env = { XDG_CONFIG_HOME: mkdtempSync(join(tmpdir(), "tollgate-cfg-")) };
    const stop = await dev({ out: (l) => lines.push(l), logLevel: "silent", chainPort: 0, solanaPort: 0, facilitatorPort: 0, apiPort: 0, env });
    try {
      const text = lines.join("\n");
      const api = /paid API\s+(http:\/\/127\.0\.0\.1:\d+)\/weather/.exec(text)?.[1];
      const facilitatorUrl = /facilitator\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(text)?.[1];
      expect(api).toBeDefined();
      expect(facilitatorUrl).toBeDefined();
      expect(text).toMatch(/payer 0\s+0x[0-9a-fA-F]{40}\s+key 0x[0-9a-f]{64}/);
      expect((await fetch(`${api}/weather`)).status).toBe(402);
      // The operator dashboard's URL, served to this machine (no API keys in dev).
      const dashboardUrl = /dashboard\s+(http:\/\/127\.0\.0\.1:\d+\/dashboard)\s/.exec(text)?.[1];
      expect(dashboardUrl).toBe(`${facilitatorUrl}/dashboard`);
      expect((await fetch(dashboardUrl!)).status).toBe(200);
      const supported = (await (await fetch(`${facilitatorUrl}/supported`)).json()) as { kinds: { network: string }[] };
      expect(supported.kinds.map((k) => k.network)).toContain("eip155:31337");
      expect(supported.kinds.map((k) => k.network)).toContain("solana:localnet");

      // The Solana side is printed and live: endpoint, mint, keys; the 402 offers both chains.
      const solanaUrl = /Solana\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(text)?.[1];
      expect(solanaUrl).toBeDefined();
      expect(text).toMatch(/mint\s+[1-9A-HJ-NP-Za-km-z]{32,44}/);
      expect(text).toMatch(/key [1-9A-HJ-NP-Za-km-z]{80,90}/);
      const health = await (await fetch(solanaUrl!, { method: "POST", headers: { "content-type": "application/json" }, body: '{"jsonrpc":"2.0","id":1,"method":"getHealth"}' })).json();
      expect(health).toMatchObject({ result: "ok" });
      const required = JSON.parse(Buffer.from((await fetch(`${api}/weather`)).headers.get("payment-required")!, "base64").toString()) as { accepts: { network: string; amount: string }[] };
      expect(required.accepts.map((a) => [a.network, a.amount])).toEqual([
        ["eip155:31337", "10000"],
        ["solana:localnet", "10000"],
      ]);

      // The printed pay line works as printed: the local token counts as dollars without flags,
      // and the payment shows up as one readable line.
      const key = /payer 0\s+0x[0-9a-fA-F]{40}\s+key (0x[0-9a-f]{64})/.exec(text)![1]!;
      const paid: string[] = [];
      expect(await pay({ url: `${api}/weather`, env: { ...env, TOLLGATE_PRIVATE_KEY: key }, out: (l) => paid.push(l) })).toBe(0);
      expect(paid.join("\n")).toMatch(/paid \$0\.01 on eip155:31337/);
      expect(lines.join("\n")).toMatch(/paid {6}0x[0-9a-fA-F]{40} → 0x[0-9a-fA-F]{40} {2}\$0\.01 {2}eip155:31337 {2}tx 0x[0-9a-f]{64} {2}\d+ ms/);
      expect(readDevState(env)?.apiUrl).toBe(api);
      await stop();
      expect(readDevState(env)).toBeUndefined();
      await expect(fetch(`${api}/weather`)).rejects.toThrow();
    } finally {
      await stop();
    }
  });

  it("facilitator runs from flags and env against any RPC, and refuses a bad config by field", async () => {
    const stack = await startDevStack();
    try {
      const lines: string[] = [];
      const stop = await facilitator(
        {
          network: stack.chain.network,
          rpcUrl: stack.chain.rpcUrl,
          solanaNetwork: stack.solana.network,
          solanaRpcUrl: stack.solana.url,
          port: "0",
          env: { FACILITATOR_PRIVATE_KEY: stack.chain.accounts.facilitator.privateKey, SOLANA_FEE_PAYER_KEY: JSON.stringify([...stack.solana.feePayer.secretKey]), LOG_LEVEL: "silent" },
        },
        (l) => lines.push(l),
      );
      try {
        const url = /listening on (http:\/\/\S+)/.exec(lines.join("\n"))?.[1];
        const supported = (await (await fetch(`${url}/supported`)).json()) as { kinds: { network: string }[]; signers: Record<string, string[]> };
        expect(supported.kinds.map((k) => k.network)).toContain(stack.chain.network);
        expect(supported.signers["eip155:*"]).toContain(stack.chain.accounts.facilitator.address);
        expect(supported.kinds.map((k) => k.network)).toContain(stack.solana.network);
        expect(supported.signers["solana:*"]).toEqual([stack.solana.feePayer.address]);
      } finally {
        await stop();
      }
      // --register: the node becomes an ERC-8004 agent on the dev chain's registries, findable from the chain.
      const registered: string[] = [];
      const operator = stack.chain.accounts.payers[2]!;
      const stopRegistered = await facilitator(
        { network: stack.chain.network, rpcUrl: stack.chain.rpcUrl, port: "0", register: true, publicUrl: "https://facilitator.example.com", env: { FACILITATOR_PRIVATE_KEY: stack.chain.accounts.facilitator.privateKey, FACILITATOR_OPERATOR_KEY: operator.privateKey, LOG_LEVEL: "silent" } },
        (l) => registered.push(l),
      );
      try {
        expect(registered.join("\n")).toMatch(/registered as ERC-8004 agent #\d+ on eip155:31337/);
        const found = await findRegisteredFacilitators(createPublicClient({ transport: http(stack.chain.rpcUrl) }) as PublicClient);
        expect(found).toContainEqual(expect.objectContaining({ url: "https://facilitator.example.com", owner: operator.address, wallet: stack.chain.accounts.facilitator.address, networks: [stack.chain.network], schemes: ["exact"] }));
      } finally {
        await stopRegistered();
      }
      const secret = "0x" + "ab".repeat(31) + "zz";
      const err = await facilitator({ network: stack.chain.network, rpcUrl: stack.chain.rpcUrl, port: "0", env: { FACILITATOR_PRIVATE_KEY: secret } }).catch((e: Error) => e);
      expect((err as Error).message).toMatch(/privateKeys/);
      expect((err as Error).message).not.toContain(secret);
    } finally {
      await stack.close();
    }
  });
});

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const { createServer } = await import("node:net");
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}
