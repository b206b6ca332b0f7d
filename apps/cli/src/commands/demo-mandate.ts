/**
 * `tollgate demo mandate`: AP2 Payment Mandates over x402, on a local chain that is entirely real
 * (anvil, a USDC-like token, our facilitator service, a paid API with three services).
 *   1. The user issues a mandate to the agent's key: at most $0.05 per call, $0.20 a day, only the
 *      weather and news services, USDC on this chain, for 24 hours.
 *   2. The agent pays the two services inside it: each payment carries the mandate chain, and the
 *      EIP-3009 nonce the chain records (AuthorizationUsed) is keccak256 of that chain.
 *   3. A third payment, to a payee outside the mandate, is refused by the wallet before signing.
 *   4. A client without a mandate is refused by the server (mandate_required) before anything settles.
 * Ends by itself; everything it started is stopped.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve, type ServerType } from "@hono/node-server";
import { atomicToDecimal, type PaymentPayload } from "@tollgate/core";
import { devAccount, startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { eip3009Abi, exactEvmClient, exactEvmServer } from "@tollgate/evm";
import { startFacilitator } from "@tollgate/facilitator";
import { getPaymentReceipt, PaymentFailedError, wrapFetch } from "@tollgate/fetch";
import { paymentMiddleware } from "@tollgate/hono";
import { generateMandateKey, issueOpenMandate, mandateWallet, MandateRefusedError, type MandateKeyPair } from "@tollgate/mandates";
import { Hono } from "hono";
import { createPublicClient, erc20Abi, http, keccak256, parseEventLogs, toBytes, type Address, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

export interface DemoMandateOptions {
  out?: (line: string) => void;
}

export interface MandatePaymentResult {
  service: string;
  amount: bigint;
  payTo: Address;
  transaction: Hex;
  chainHash: Hex;
  onChainNonce: Hex;
}

export interface DemoMandateResult {
  mandateId: string;
  paid: MandatePaymentResult[];
  refusedAtWallet: { service: string; constraint: string; code: string; signedBefore: number; signedAfter: number };
  refusedByServer: { reason: string; charged: unknown; moved: bigint };
  agent: { before: bigint; after: bigint };
}

const SERVICES = [
  { name: "weather", path: "/weather", price: 20_000n, payee: devAccount(10).address, body: { city: "Lisbon", forecast: "sunny", high: 24 } },
  { name: "news", path: "/news", price: 30_000n, payee: devAccount(11).address, body: { headline: "Agents pay agents, within their mandates" } },
  { name: "oracle", path: "/oracle", price: 40_000n, payee: devAccount(12).address, body: { price: "3120.55" } },
] as const;

export async function demoMandate(options: DemoMandateOptions = {}): Promise<DemoMandateResult> {
  const out = options.out ?? ((l: string) => process.stdout.write(l + "\n"));
  const bold = !options.out && process.stdout.isTTY ? (s: string) => `\x1b[1m${s}\x1b[0m` : (s: string) => s;
  const step = (title: string) => out(`\n${bold(title)}`);
  const show = (label: string, value: unknown) => out(`   ${label.padEnd(22)} ${typeof value === "string" ? value : JSON.stringify(value)}`);
  const cleanups: Array<() => Promise<void>> = [];
  const dir = mkdtempSync(join(tmpdir(), "tollgate-demo-mandate-"));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  try {
    out("Starting a local network: anvil, a USDC-like token, our facilitator, a paid API (weather, news, oracle)…");
    const chain = await startLocalNetwork({ payers: 2 });
    cleanups.push(() => chain.stop());
    const usdc = chain.usdc;
    const usd = (v: bigint) => `$${atomicToDecimal(v, usdc.decimals)}`;
    const rpc = createPublicClient({ transport: http(chain.rpcUrl), pollingInterval: 50 });
    const balance = (a: Address) => rpc.readContract({ address: usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [a] });
    const facilitator = await startFacilitator({
      port: 0,
      host: "127.0.0.1",
      networks: [{ network: chain.network, rpcUrl: chain.rpcUrl, assets: [{ address: usdc.address, name: usdc.name, version: usdc.version, decimals: usdc.decimals }] }],
      privateKeys: [chain.accounts.facilitator.privateKey],
      logLevel: "silent",
    });
    cleanups.push(() => facilitator.close());
    const [user, agent] = await Promise.all([generateMandateKey(), generateMandateKey()]);
    const api = await startApi(chain, facilitator.url, user);
    cleanups.push(api.close);

    step("1. The user issues an open Payment Mandate to the agent's key (SD-JWT VC, ES256)");
    const open = await issueOpenMandate({
      userKey: user.privateJwk,
      agentPublicJwk: agent.publicJwk,
      constraints: {
        allowedPayees: [{ id: SERVICES[0].payee, name: "Weather service" }, { id: SERVICES[1].payee, name: "News service" }],
        allowedAssets: [{ network: chain.network, asset: usdc.address, usdDecimals: usdc.decimals, description: "USDC on the local chain" }],
        amountRange: { currency: "USD", max: "0.05" },
        budget: { currency: "USD", max: "0.20", periodSeconds: 86_400 },
      },
      expiresAt: Math.floor(Date.now() / 1000) + 86_400,
    });
    const wallet = mandateWallet({ open, userPublicJwk: user.publicJwk, agentKey: agent, store: join(dir, "budgets.json") });
    const mandate = await wallet.mandate();
    show("mandate id", mandate.jti);
    show("user key (kid)", user.publicJwk.kid ?? "");
    show("agent key (cnf.jwk)", agent.publicJwk.kid ?? "");
    show("per call", "at most $0.05");
    show("budget", "$0.20 a day");
    show("payees", `weather ${SERVICES[0].payee}, news ${SERVICES[1].payee}`);
    show("expires", new Date(mandate.exp * 1000).toISOString());

    // The agent's EVM account pays; its mandate wallet decides before anything is signed.
    const payerAccount = privateKeyToAccount(chain.accounts.payers[0]!.privateKey);
    let signed = 0;
    const account = { address: payerAccount.address, signTypedData: ((p: Parameters<typeof payerAccount.signTypedData>[0]) => (signed++, payerAccount.signTypedData(p))) as typeof payerAccount.signTypedData };
    const agentFetch = wrapFetch(fetch, { schemes: [exactEvmClient({ account })], authorizer: wallet });
    const agentBefore = await balance(payerAccount.address);

    step("2. The agent pays the two services inside the mandate");
    const paid: MandatePaymentResult[] = [];
    for (const s of SERVICES.slice(0, 2)) {
      const res = await agentFetch(`${api.url}${s.path}`);
      const info = getPaymentReceipt(res);
      if (!res.ok || !info?.receipt?.transaction) throw new Error(`${s.name}: HTTP ${res.status}`);
      const chainText = ((info.payload as PaymentPayload).extensions?.["ap2-mandate"] as { info: { chain: string } }).info.chain;
      const tx = info.receipt.transaction as Hex;
      const logs = parseEventLogs({ abi: eip3009Abi, logs: (await rpc.getTransactionReceipt({ hash: tx })).logs, eventName: "AuthorizationUsed" });
      const onChainNonce = (logs[0]?.args as { nonce: Hex } | undefined)?.nonce ?? "0x";
      const r: MandatePaymentResult = { service: s.name, amount: s.price, payTo: s.payee, transaction: tx, chainHash: keccak256(toBytes(chainText)), onChainNonce };
      paid.push(r);
      out(`   ${s.name}: HTTP ${res.status} ${await res.text()}`);
      show("  paid", `${usd(s.price)} to ${s.payee}`);
      show("  transaction", tx);
      show("  keccak256(chain)", r.chainHash);
      show("  AuthorizationUsed", `nonce ${onChainNonce}`);
      show("  bound", r.chainHash === onChainNonce ? "yes: the transfer names the mandate chain it spent" : "NO");
    }

    step("3. A payment to a payee outside the mandate is refused by the wallet, before signing");
    const oracle = SERVICES[2];
    const signedBefore = signed;
    const refusal = await agentFetch(`${api.url}${oracle.path}`).then(
      () => { throw new Error("the oracle payment was not refused"); },
      (e: unknown) => e,
    );
    if (!(refusal instanceof MandateRefusedError)) throw refusal;
    show("oracle", `${usd(oracle.price)} to ${oracle.payee}`);
    show("refused", `${refusal.constraint}: ${refusal.code}`);
    show("signatures", `${signedBefore} before, ${signed} after: nothing was signed`);

    step("4. A client without a mandate: the server requires one and refuses before anything settles");
    const bare = privateKeyToAccount(chain.accounts.payers[1]!.privateKey);
    const bareBefore = await balance(bare.address);
    const noMandate = await wrapFetch(fetch, { schemes: [exactEvmClient({ account: bare })] })(`${api.url}/weather`).then(
      () => { throw new Error("the payment without a mandate was accepted"); },
      (e: unknown) => e,
    );
    if (!(noMandate instanceof PaymentFailedError)) throw noMandate;
    const moved = bareBefore - (await balance(bare.address));
    show("server said", noMandate.reason);
    show("charged", `${String(noMandate.charged)} (balance moved by ${usd(moved)})`);

    const agentAfter = await balance(payerAccount.address);
    step("Receipts");
    for (const p of paid) out(`   ${p.service.padEnd(8)} ${usd(p.amount).padEnd(6)} tx ${p.transaction}  nonce = keccak256(chain) ${p.chainHash === p.onChainNonce ? "✓" : "✗"}`);
    show("agent spent", `${usd(agentBefore - agentAfter)} of the $0.20 daily budget`);
    out("\nDone: two payments inside the mandate, one refused before signing, one refused by the server; nothing else moved.");
    return {
      mandateId: mandate.jti,
      paid,
      refusedAtWallet: { service: oracle.name, constraint: refusal.constraint, code: refusal.code, signedBefore, signedAfter: signed },
      refusedByServer: { reason: noMandate.reason, charged: noMandate.charged, moved },
      agent: { before: agentBefore, after: agentAfter },
    };
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  }
}

async function startApi(chain: RunningLocalNetwork, facilitatorUrl: string, user: MandateKeyPair): Promise<{ url: string; close: () => Promise<void> }> {
  const usdc = chain.usdc;
  const app = new Hono();
  const route = (s: (typeof SERVICES)[number]) => ({
    price: { amount: s.price.toString(), asset: usdc.address },
    network: chain.network,
    payTo: s.payee,
    description: `The ${s.name} service`,
    // Every service here requires an AP2 mandate issued by this user.
    mandate: { required: true as const, trustedIssuers: [user.publicJwk] },
  });
  app.use(
    paymentMiddleware({
      facilitator: facilitatorUrl,
      schemes: [exactEvmServer({ assets: [{ network: chain.network, address: usdc.address, decimals: usdc.decimals, name: usdc.name, version: usdc.version, symbol: "USDC" }] })],
      routes: Object.fromEntries(SERVICES.map((s) => [`GET ${s.path}`, route(s)])),
    }),
  );
  for (const s of SERVICES) app.get(s.path, (c) => c.json(s.body));
  const server = await new Promise<ServerType>((resolve, reject) => {
    const srv = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(srv));
    srv.once("error", reject);
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      }),
  };
}
