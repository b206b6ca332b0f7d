/**
 * `tollgate demo upto`: "pay at most X" (the x402 `upto` scheme), narrated on a local chain that
 * is entirely real: anvil with our Permit2 and upto proxy at their canonical addresses, a plain
 * ERC-20 (no EIP-3009), our facilitator service, and a paid text generator priced "at most $0.05"
 * that charges per word AFTER it ran. Three requests:
 *   1. 24 words: the payer signs the $0.05 maximum, is charged $0.012 (on-chain balances shown);
 *   2. 0 words: charged nothing; no transaction is sent (block height unchanged);
 *   3. a server asking the facilitator for more than was signed: refused, nothing moves.
 * Ends by itself; everything it started is stopped.
 */
import { serve, type ServerType } from "@hono/node-server";
import { atomicToDecimal, decodeBase64Json, Headers as X402Headers, parseSettleResponse, type PaymentRequirements, type SchemeClient, type SettleResponse } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { PERMIT2_ADDRESS, UPTO_PERMIT2_PROXY_ADDRESS, erc20PermitAbi, uptoEvmClient, uptoEvmServer, type UptoPermit2Payload } from "@tollgate/evm";
import { startFacilitator } from "@tollgate/facilitator";
import { wrapFetch } from "@tollgate/fetch";
import { paymentMiddleware, setCharge, type PaymentEnv } from "@tollgate/hono";
import { Hono } from "hono";
import { createPublicClient, createWalletClient, http, maxUint256, type Address, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";

export interface DemoUptoOptions {
  out?: (line: string) => void;
}

export interface UptoRequestResult {
  words: number;
  /** The signed maximum and the charge, atomic units. */
  max: bigint;
  charged: bigint;
  transaction: string;
  payer: { before: bigint; after: bigint };
  payee: { before: bigint; after: bigint };
  blocks: { before: bigint; after: bigint };
}

export interface DemoUptoResult {
  requests: UptoRequestResult[];
  overcharge: { errorReason: string | undefined; moved: bigint };
}

/** $0.05 of a 6-decimal token: the most one request may cost. */
const MAX_ATOMIC = 50_000n;
/** $0.0005 per generated word. */
const PER_WORD_ATOMIC = 500n;
const WORDS = "the quick brown fox pays per word and never more than it signed".split(" ");

export async function demoUpto(options: DemoUptoOptions = {}): Promise<DemoUptoResult> {
  const out = options.out ?? ((l: string) => process.stdout.write(l + "\n"));
  const bold = !options.out && process.stdout.isTTY ? (s: string) => `\x1b[1m${s}\x1b[0m` : (s: string) => s;
  const step = (title: string) => out(`\n${bold(title)}`);
  const show = (label: string, value: unknown) => out(`   ${label.padEnd(20)} ${typeof value === "string" ? value : JSON.stringify(value)}`);
  const cleanups: Array<() => Promise<void>> = [];
  try {
    out("Starting a local network: anvil, Permit2 and the x402 upto proxy at their canonical addresses, a plain ERC-20, our facilitator, a paid API…");
    const chain = await startLocalNetwork({ payers: 1 });
    cleanups.push(() => chain.stop());
    const token = chain.plainToken;
    const fmt = (v: bigint) => `${atomicToDecimal(v, token.decimals)} ${token.symbol}`;
    const rpc = createPublicClient({ transport: http(chain.rpcUrl), pollingInterval: 50 });
    const balance = (a: Address) => rpc.readContract({ address: token.address, abi: erc20PermitAbi, functionName: "balanceOf", args: [a] });

    const facilitator = await startFacilitator({
      port: 0,
      host: "127.0.0.1",
      networks: [{ network: chain.network, rpcUrl: chain.rpcUrl, assets: [{ address: token.address, name: token.name, version: token.version, decimals: token.decimals }] }],
      privateKeys: [chain.accounts.facilitator.privateKey],
      logLevel: "silent",
    });
    cleanups.push(() => facilitator.close());
    const api = await startApi(chain, facilitator.url);
    cleanups.push(api.close);

    const payerKey = chain.accounts.payers[0]!.privateKey;
    const payer = privateKeyToAccount(payerKey);
    const payee = chain.accounts.payee.address;
    out(`   chain               ${chain.rpcUrl} (${chain.network})`);
    out(`   Permit2             ${PERMIT2_ADDRESS}`);
    out(`   upto proxy          ${UPTO_PERMIT2_PROXY_ADDRESS}`);
    out(`   token               ${token.address} (${token.name}, ${token.decimals} decimals; ERC-20 + EIP-2612, no EIP-3009)`);
    out(`   facilitator         ${facilitator.url}`);
    out(`   paid API            ${api.url}/generate?words=N   (at most ${fmt(MAX_ATOMIC)}; ${fmt(PER_WORD_ATOMIC)} per word, charged after it ran)`);

    step("0. The payer approves Permit2 once (the spec's Option A; every later payment is a signature only)");
    const wallet = createWalletClient({ account: payer, chain: { ...foundry, id: chain.chainId }, transport: http(chain.rpcUrl) });
    const approval = await wallet.writeContract({ address: token.address, abi: erc20PermitAbi, functionName: "approve", args: [PERMIT2_ADDRESS, maxUint256] });
    await rpc.waitForTransactionReceipt({ hash: approval });
    show("approve(Permit2)", approval);

    // The client as the agent runs it; each signed payload is kept to be shown.
    const signed: UptoPermit2Payload[] = [];
    const scheme = uptoEvmClient({ account: payer });
    const recording: SchemeClient = { ...scheme, createPayload: async (r, c) => {
      const p = await scheme.createPayload(r, c);
      signed.push(p as unknown as UptoPermit2Payload);
      return p;
    } };
    const paidFetch = wrapFetch(fetch, { schemes: [recording] });

    const requests: UptoRequestResult[] = [];
    for (const words of [24, 0]) {
      step(`${requests.length + 1}. GET /generate?words=${words}: the agent pays at most ${fmt(MAX_ATOMIC)}, the server charges ${words === 0 ? "nothing" : "per word"}`);
      const before = { payer: await balance(payer.address), payee: await balance(payee), block: await rpc.getBlockNumber({ cacheTime: 0 }) };
      const url = `${api.url}/generate?words=${words}`;
      const offer = await firstOffer(url);
      show("402 accepts", `scheme ${offer.scheme}, amount ${offer.amount} (the MAXIMUM = ${fmt(BigInt(offer.amount))})`);
      show("facilitatorAddress", String(offer.extra?.facilitatorAddress));
      const res = await paidFetch(url);
      const body = (await res.json()) as { text: string; words: number };
      const a = signed[signed.length - 1]!.permit2Authorization;
      show("signed (Permit2)", `permitted ${a.permitted.amount} to spender ${a.spender}`);
      show("witness", `to ${a.witness.to}, facilitator ${a.witness.facilitator}`);
      show("response", `${res.status}: "${body.text.slice(0, 60)}${body.text.length > 60 ? "…" : ""}" (${body.words} words)`);
      const settlement = settlementOf(res);
      show("PAYMENT-RESPONSE", `success ${settlement.success}, amount ${settlement.amount}, transaction ${settlement.transaction === "" ? '"" (none sent)' : settlement.transaction}`);
      const after = { payer: await balance(payer.address), payee: await balance(payee), block: await rpc.getBlockNumber({ cacheTime: 0 }) };
      const charged = before.payer - after.payer;
      show("payer on chain", `${fmt(before.payer)} -> ${fmt(after.payer)} (charged ${fmt(charged)} of the ${fmt(MAX_ATOMIC)} signed)`);
      show("payee on chain", `${fmt(before.payee)} -> ${fmt(after.payee)}`);
      show("block height", `${before.block} -> ${after.block}${after.block === before.block ? " (no transaction)" : ""}`);
      requests.push({ words, max: BigInt(a.permitted.amount), charged, transaction: settlement.transaction, payer: { before: before.payer, after: after.payer }, payee: { before: before.payee, after: after.payee }, blocks: { before: before.block, after: after.block } });
    }

    step(`3. A server asking the facilitator for more than was signed: POST /settle with amount ${MAX_ATOMIC + 1n}`);
    const offer = await firstOffer(`${api.url}/generate?words=1`);
    const payload = await scheme.createPayload(offer, { x402Version: 2 });
    const before = await balance(payer.address);
    const refused = await postSettle(facilitator.url, { x402Version: 2, accepted: offer, payload }, { ...offer, amount: (MAX_ATOMIC + 1n).toString() });
    const moved = before - (await balance(payer.address));
    show("success", refused.success);
    show("errorReason", String(refused.errorReason));
    show("moved on chain", fmt(moved));

    out(`\nDone: the payer signed ${fmt(MAX_ATOMIC)} twice and paid ${fmt(requests.reduce((s, r) => s + r.charged, 0n))}; nothing above a signed maximum can ever be settled.`);
    return { requests, overcharge: { errorReason: refused.errorReason, moved } };
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  }
}

/** The paid API: a "text generator" priced upto $0.05 that charges $0.0005 per word it produced. */
async function startApi(chain: RunningLocalNetwork, facilitatorUrl: string): Promise<{ url: string; close: () => Promise<void> }> {
  const token = chain.plainToken;
  const app = new Hono<PaymentEnv>();
  app.use(
    paymentMiddleware({
      facilitator: facilitatorUrl,
      schemes: [uptoEvmServer({ assets: [{ network: chain.network, address: token.address, decimals: token.decimals, name: token.name, version: token.version, symbol: token.symbol }] })],
      routes: { "GET /generate": { scheme: "upto", price: { amount: MAX_ATOMIC.toString(), asset: token.address }, network: chain.network, payTo: chain.accounts.payee.address, description: "Text, $0.0005 per word, at most $0.05" } },
    }),
  );
  app.get("/generate", (c) => {
    const requested = Number(c.req.query("words") ?? "0");
    const words = Number.isSafeInteger(requested) && requested > 0 ? Math.min(requested, 100) : 0;
    const text = Array.from({ length: words }, (_, i) => WORDS[i % WORDS.length]).join(" ");
    // The charge is known only now: what was produced, never above the signed maximum.
    setCharge(c, (BigInt(words) * PER_WORD_ATOMIC).toString());
    return c.json({ text, words });
  });
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
    s.once("error", reject);
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
    }),
  };
}

/** The first payment option of a 402 answer. */
async function firstOffer(url: string): Promise<PaymentRequirements> {
  const res = await fetch(url);
  await res.body?.cancel();
  const decoded = decodeBase64Json(res.headers.get(X402Headers.v2.required), X402Headers.v2.required);
  if (!decoded.ok) throw new Error(decoded.message);
  return (decoded.value as { accepts: PaymentRequirements[] }).accepts[0]!;
}

function settlementOf(res: Response): SettleResponse {
  const decoded = decodeBase64Json(res.headers.get(X402Headers.v2.response), X402Headers.v2.response);
  if (!decoded.ok) throw new Error(`no settlement receipt (status ${res.status}): ${decoded.message}`);
  const parsed = parseSettleResponse(decoded.value);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.value;
}

async function postSettle(facilitatorUrl: string, paymentPayload: unknown, paymentRequirements: PaymentRequirements): Promise<SettleResponse> {
  const res = await fetch(`${facilitatorUrl}/settle`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ x402Version: 2, paymentPayload, paymentRequirements }) });
  return (await res.json()) as SettleResponse;
}

export type { Hex };
