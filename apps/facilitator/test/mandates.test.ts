/**
 * AP2 mandates checked by the facilitator service (src/mandates.ts) on a real anvil chain, for
 * resource servers that delegate the check. The service requires a mandate for one payee (its own
 * config, not the client's word); a payment without one, or with a forged, tampered or revoked one
 * (status list served over HTTP here), is refused at /verify and /settle and nothing moves on chain;
 * a valid one settles with the on-chain nonce equal to keccak256 of the chain. A mandate on a payment
 * to a payee that does not require one is still verified. Our paywall WITHOUT `mandate` on its route,
 * delegating to this facilitator, refuses a mandate-less payment end to end.
 */
import { createServer, type Server } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, erc20Abi, http, keccak256, parseEventLogs, toBytes, type Address, type Hex, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { createPaymentClient, type PaymentAuthorizer, type PaymentPayload, type PaymentRequirements } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { eip3009Abi, exactEvmClient } from "@tollgate/evm";
import { getPaymentReceipt, PaymentFailedError, wrapFetch } from "@tollgate/fetch";
import { generateMandateKey, issueOpenMandate, mandateWallet, STATUS_LIST_TYPE, type MandateKeyPair, type MandateWallet } from "@tollgate/mandates";
import { startTollgateServer, type TollgateServer } from "../../../test/support/tollgate.ts";
import { startFacilitator, type RunningFacilitator } from "../src/start.ts";

const PRICE = "10000"; // $0.01
const RESOURCE = "http://shop.test/report";
/** A payee this facilitator does NOT require mandates for. */
const FREE_PAYEE: Address = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";

let net: RunningLocalNetwork;
let chain: PublicClient;
let service: RunningFacilitator;
let statusServer: Server;
let paywall: TollgateServer;
let user: MandateKeyPair;
let rogue: MandateKeyPair;
let agent: MandateKeyPair;
let trusted: MandateWallet;
let untrusted: MandateWallet;
let revoked: MandateWallet;
const revokedIds: string[] = [];
const dir = mkdtempSync(join(tmpdir(), "tollgate-facilitator-mandates-"));

async function walletFor(userKey: MandateKeyPair, name: string): Promise<MandateWallet> {
  const open = await issueOpenMandate({
    userKey: userKey.privateJwk,
    agentPublicJwk: agent.publicJwk,
    constraints: {
      allowedPayees: [net.accounts.payee.address, FREE_PAYEE],
      allowedAssets: [{ network: net.network, asset: net.usdc.address, usdDecimals: net.usdc.decimals }],
      amountRange: { currency: "USD", max: "0.05" },
      budget: { currency: "USD", max: "1.00", periodSeconds: 86_400 },
    },
    expiresAt: Math.floor(Date.now() / 1000) + 3600,
  });
  return mandateWallet({ open, userPublicJwk: userKey.publicJwk, agentKey: agent, store: join(dir, `budget-${name}.json`) });
}

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 4 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  [user, rogue, agent] = await Promise.all([generateMandateKey(), generateMandateKey(), generateMandateKey()]);
  [trusted, untrusted, revoked] = await Promise.all([walletFor(user, "trusted"), walletFor(rogue, "rogue"), walletFor(user, "revoked")]);
  // The issuer's published status list, read by the facilitator (fetched at its first check).
  revokedIds.push((await revoked.mandate()).jti);
  statusServer = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ type: STATUS_LIST_TYPE, revoked: revokedIds, updatedAt: 1 }));
  });
  await new Promise<void>((r) => statusServer.listen(0, "127.0.0.1", r));
  const statusListUrl = `http://127.0.0.1:${(statusServer.address() as { port: number }).port}/status.json`;
  service = await startFacilitator({
    port: 0,
    logLevel: "silent",
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [{ address: net.usdc.address, name: net.usdc.name, version: net.usdc.version, decimals: net.usdc.decimals }] }],
    privateKeys: [net.accounts.facilitator.privateKey],
    settle: { pollMs: 25 },
    mandates: { require: [net.accounts.payee.address.toLowerCase()], trustedIssuers: [user.publicJwk], statusListUrl },
  });
  // A paywall that does not check mandates itself: it relies on the facilitator.
  paywall = await startTollgateServer({ facilitatorUrl: service.url, network: net.network, usdc: net.usdc, payTo: net.accounts.payee.address, price: PRICE, framework: "hono", path: "/delegated" });
}, 120_000);

afterAll(async () => {
  await paywall?.close();
  await service?.close();
  await new Promise((r) => (statusServer ? statusServer.close(r) : r(undefined)));
  await net?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function requirements(payTo: Address = net.accounts.payee.address): PaymentRequirements {
  return { scheme: "exact", network: net.network, amount: PRICE, asset: net.usdc.address, payTo, maxTimeoutSeconds: 120, extra: { name: net.usdc.name, version: net.usdc.version } };
}

/** A signed payment for `q` made by our client (with a mandate wallet when given), not sent anywhere. */
async function signed(payer: number, q: PaymentRequirements, authorizer?: PaymentAuthorizer): Promise<PaymentPayload> {
  const client = createPaymentClient({ schemes: [exactEvmClient({ account: privateKeyToAccount(net.accounts.payers[payer]!.privateKey) })], ...(authorizer ? { authorizer } : {}) });
  const payment = await client.pay({ x402Version: 2, resource: { url: RESOURCE }, accepts: [q] });
  return payment.payload as PaymentPayload;
}

const post = async (path: "/verify" | "/settle", paymentPayload: PaymentPayload, q: PaymentRequirements) =>
  (await (
    await fetch(`${service.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ x402Version: 2, paymentPayload, paymentRequirements: q }) })
  ).json()) as { isValid?: boolean; invalidReason?: string; invalidMessage?: string; success?: boolean; errorReason?: string; errorMessage?: string; transaction?: string };

const balance = (who: Address) => chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [who] });
const nonceOf = (p: PaymentPayload) => (p.payload.authorization as { nonce: Hex }).nonce;
const used = (p: PaymentPayload, payer: number) =>
  chain.readContract({ address: net.usdc.address, abi: eip3009Abi, functionName: "authorizationState", args: [net.accounts.payers[payer]!.address, nonceOf(p)] }) as Promise<boolean>;
const chainOf = (p: PaymentPayload) => (p.extensions!["ap2-mandate"] as { info: { chain: string } }).info.chain;

/** Refused at /verify and at /settle with `reason`; the authorization stays unused, no balance moves. */
async function expectRefused(p: PaymentPayload, q: PaymentRequirements, payer: number, reason: string): Promise<string> {
  const before = await balance(net.accounts.payers[payer]!.address);
  const v = await post("/verify", p, q);
  expect(v.isValid).toBe(false);
  expect(v.invalidReason).toBe(reason);
  const s = await post("/settle", p, q);
  expect(s.success).toBe(false);
  expect(s.errorReason).toBe(reason);
  expect(s.transaction).toBe("");
  expect(await used(p, payer)).toBe(false);
  expect(await balance(net.accounts.payers[payer]!.address)).toBe(before);
  return v.invalidMessage ?? "";
}

describe("facilitator: AP2 mandates (anvil)", () => {
  it("/supported lists ap2-mandate", async () => {
    const supported = (await (await fetch(`${service.url}/supported`)).json()) as { extensions: string[] };
    expect(supported.extensions).toContain("ap2-mandate");
  });

  it("a payee that requires a mandate: a payment without one is refused at /verify and /settle, nothing moves", async () => {
    const q = requirements();
    const message = await expectRefused(await signed(0, q), q, 0, "mandate_required");
    expect(message).toContain(net.accounts.payee.address);
  });

  it("a valid mandate verifies and settles; the on-chain nonce is keccak256 of the chain", async () => {
    const q = requirements();
    const p = await signed(0, q, trusted);
    const before = await balance(net.accounts.payee.address);
    expect(await post("/verify", p, q)).toMatchObject({ isValid: true });
    const s = await post("/settle", p, q);
    expect(s).toMatchObject({ success: true });
    const receipt = await chain.getTransactionReceipt({ hash: s.transaction as Hex });
    const logs = parseEventLogs({ abi: eip3009Abi, logs: receipt.logs, eventName: "AuthorizationUsed" });
    expect(logs).toHaveLength(1);
    expect((logs[0]!.args as { nonce: Hex }).nonce).toBe(keccak256(toBytes(chainOf(p))));
    expect(await balance(net.accounts.payee.address)).toBe(before + BigInt(PRICE));
  });

  it("a mandate from an issuer the facilitator does not trust is refused", async () => {
    const q = requirements();
    await expectRefused(await signed(1, q, untrusted), q, 1, "mandate_untrusted_issuer");
  });

  it("a revoked mandate (published status list) is refused", async () => {
    const q = requirements();
    const message = await expectRefused(await signed(1, q, revoked), q, 1, "mandate_revoked");
    expect(message).toMatch(/revoked/);
  });

  it("tampered chains are refused: the user's signature, the agent's signature, the nonce binding", async () => {
    const q = requirements();
    const p = await signed(1, q, trusted);
    const chainText = chainOf(p);
    const withChain = (c: string): PaymentPayload => ({ ...p, extensions: { ...p.extensions, "ap2-mandate": { info: { ...(p.extensions!["ap2-mandate"] as { info: object }).info, chain: c } } } });
    const flipLast = (s: string) => s.slice(0, -2) + (s.at(-2) === "A" ? "B" : "A") + s.at(-1);
    // the open mandate's issuer JWT: flip its signature
    const [issuerJwt, ...rest] = chainText.split("~");
    await expectRefused(withChain([flipLast(issuerJwt!), ...rest].join("~")), q, 1, "mandate_invalid_signature");
    // the closed mandate (agent's KB-JWT): flip its signature
    await expectRefused(withChain(flipLast(chainText)), q, 1, "mandate_key_binding_invalid");
    // a valid chain moved onto another authorization (a random nonce)
    const bare = await signed(1, q);
    await expectRefused({ ...bare, extensions: p.extensions! }, q, 1, "mandate_nonce_mismatch");
    // and the untouched one still goes through
    expect(await post("/settle", p, q)).toMatchObject({ success: true });
  });

  it("a payee that does not require one: no mandate settles; a mandate present is still verified", async () => {
    const q = requirements(FREE_PAYEE);
    expect(await post("/verify", await signed(2, q), q)).toMatchObject({ isValid: true });
    await expectRefused(await signed(2, q, untrusted), q, 2, "mandate_untrusted_issuer");
    await expectRefused(await signed(2, q, revoked), q, 2, "mandate_revoked");
    const ok = await signed(2, q, trusted);
    expect(await post("/settle", ok, q)).toMatchObject({ success: true });
    expect(await used(ok, 2)).toBe(true);
  });

  it("a client that echoes a 402 asking for a mandate but sends none is refused, whoever the payee", async () => {
    const q = requirements(FREE_PAYEE);
    const p = await signed(2, q);
    await expectRefused({ ...p, extensions: { "ap2-mandate": { info: { required: true, version: "0.2" } } } }, q, 2, "mandate_required");
  });

  it("our paywall without `mandate` on its route, delegating to this facilitator: a payment without a mandate is refused end to end", async () => {
    const before = await balance(net.accounts.payers[3]!.address);
    const bare = wrapFetch(fetch, { schemes: [exactEvmClient({ account: privateKeyToAccount(net.accounts.payers[3]!.privateKey) })] });
    const err = (await bare(paywall.paidUrl).catch((e: unknown) => e)) as PaymentFailedError;
    expect(err).toBeInstanceOf(PaymentFailedError);
    expect(err.reason).toMatch(/^mandate_required/);
    expect(err.charged).toBe(false);
    expect(await balance(net.accounts.payers[3]!.address)).toBe(before);
    // the same payer under a trusted mandate gets the resource
    const agentFetch = wrapFetch(fetch, { schemes: [exactEvmClient({ account: privateKeyToAccount(net.accounts.payers[3]!.privateKey) })], authorizer: trusted });
    const res = await agentFetch(paywall.paidUrl);
    expect(res.status).toBe(200);
    expect(getPaymentReceipt(res)?.receipt?.success).toBe(true);
    expect(await balance(net.accounts.payers[3]!.address)).toBe(before - BigInt(PRICE));
  });
});
