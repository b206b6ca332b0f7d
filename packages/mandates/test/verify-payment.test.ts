import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPaymentClient, spendingPolicy, type PaymentPayload, type PaymentRequired, type PaymentRequirements } from "@tollgate/core";
import { exactEvmClient } from "@tollgate/evm";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  issueOpenMandate,
  makeClosedMandate,
  mandateChain,
  mandateTransactionId,
  mandateWallet,
  readStatusListFile,
  revokeInStatusListFile,
  statusListRevocation,
  verifyMandatedPayment,
  type OpenMandateConstraints,
} from "../src/index.ts";
import { NETWORK, PAYEE, T0, testKeys, USDC } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "tollgate-verify-"));
const statusFile = join(dir, "status.json");
let server: Server;
let statusUrl = "";
beforeAll(async () => {
  // The issuer's published status list, served over HTTP as a verifier would fetch it.
  server = createServer((_req, res) => {
    void readStatusListFile(statusFile).then((l) => res.setHeader("content-type", "application/json").end(JSON.stringify(l)));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  statusUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/status.json`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const URL_A = "https://api.example/weather";
const req = (over: Partial<PaymentRequirements> = {}): PaymentRequirements => ({
  scheme: "exact", network: NETWORK, amount: "50000", asset: USDC, payTo: PAYEE, maxTimeoutSeconds: 60, extra: { name: "USD Coin", version: "2" }, ...over,
});
const required = (r: PaymentRequirements, url = URL_A): PaymentRequired => ({ x402Version: 2, resource: { url }, accepts: [r] });
const constraints: OpenMandateConstraints = {
  allowedPayees: [PAYEE],
  allowedAssets: [{ network: NETWORK, asset: USDC, usdDecimals: 6 }],
  amountRange: { currency: "USD", max: "0.05" },
  budget: { currency: "USD", max: "0.20", periodSeconds: 86_400 },
};
let k = 0;

async function paid(o: { expiresAt?: number; id?: string; r?: PaymentRequirements; url?: string; signer?: "user" | "other" } = {}) {
  const keys = await testKeys();
  const issuer = o.signer === "other" ? keys.other : keys.user;
  const id = o.id ?? `v-${++k}`;
  const open = await issueOpenMandate({ userKey: issuer.privateJwk, agentPublicJwk: keys.agent.publicJwk, constraints, expiresAt: o.expiresAt ?? T0 + 86_400, issuedAt: T0 - 100, id });
  const wallet = mandateWallet({ open, userPublicJwk: issuer.publicJwk, agentKey: keys.agent, store: join(dir, `${id}.json`), now: () => T0 });
  const client = createPaymentClient({ schemes: [exactEvmClient({ account: privateKeyToAccount("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"), now: () => T0 })], policy: spendingPolicy({ now: () => T0 }), authorizer: wallet });
  const payment = await client.pay(required(o.r ?? req(), o.url ?? URL_A));
  return { payload: payment.payload as PaymentPayload, open, keys, id };
}
const info = (p: PaymentPayload) => (p.extensions!["ap2-mandate"] as { info: { chain: string; issuerJwk: unknown } }).info;
const withChain = (p: PaymentPayload, chain: string): PaymentPayload => ({ ...p, extensions: { ...p.extensions, "ap2-mandate": { info: { ...info(p), chain } } } });

describe("verifyMandatedPayment (server / facilitator side)", () => {
  it("accepts a bound, valid chain from a trusted issuer", async () => {
    const { payload, keys } = await paid();
    const res = await verifyMandatedPayment(payload, req(), { resourceUrl: URL_A, trustedIssuers: [keys.user.publicJwk], now: T0 });
    expect(res).toMatchObject({ ok: true, transactionId: mandateTransactionId(URL_A, req()) });
  });

  it("refuses a payment without a mandate", async () => {
    const { payload } = await paid();
    const bare = { ...payload, extensions: {} };
    expect(await verifyMandatedPayment(bare, req(), { resourceUrl: URL_A, now: T0 })).toMatchObject({ ok: false, reason: "mandate_required" });
  });

  it("refuses forged mandates: another key's (untrusted), or a signature that is not the presented issuer's", async () => {
    const forged = await paid({ signer: "other" });
    expect(await verifyMandatedPayment(forged.payload, req(), { resourceUrl: URL_A, trustedIssuers: [forged.keys.user.publicJwk], now: T0 })).toMatchObject({ ok: false, reason: "mandate_untrusted_issuer" });
    // the forger claims the real user's key
    const claimed = { ...forged.payload, extensions: { "ap2-mandate": { info: { ...info(forged.payload), issuerJwk: forged.keys.user.publicJwk } } } };
    expect(await verifyMandatedPayment(claimed, req(), { resourceUrl: URL_A, now: T0 })).toMatchObject({ ok: false, reason: "mandate_invalid_signature" });
  });

  it("refuses an expired mandate", async () => {
    const { payload } = await paid({ expiresAt: T0 + 10 });
    expect(await verifyMandatedPayment(payload, req(), { resourceUrl: URL_A, now: T0 + 11 })).toMatchObject({ ok: false, reason: "mandate_expired" });
  });

  it("refuses a mandate revoked in the published status list (and fails closed when the list is unreachable)", async () => {
    const { payload, id } = await paid();
    expect((await verifyMandatedPayment(payload, req(), { resourceUrl: URL_A, now: T0, isRevoked: statusListRevocation(statusUrl, { ttlMs: 0 }) })).ok).toBe(true);
    await revokeInStatusListFile(statusFile, id);
    expect(await verifyMandatedPayment(payload, req(), { resourceUrl: URL_A, now: T0, isRevoked: statusListRevocation(statusUrl, { ttlMs: 0 }) })).toMatchObject({ ok: false, reason: "mandate_revoked" });
    const down = statusListRevocation("http://127.0.0.1:1/status.json");
    expect(await verifyMandatedPayment((await paid()).payload, req(), { resourceUrl: URL_A, now: T0, isRevoked: down })).toMatchObject({ ok: false, reason: "mandate_revoked" });
  });

  it("refuses a closed mandate signed by a key other than the open mandate's cnf", async () => {
    const { payload, open, keys } = await paid();
    const closed = await makeClosedMandate({ agentKey: keys.other, open, payment: { payTo: PAYEE, amount: "50000", asset: USDC, network: NETWORK, at: T0 }, transactionId: mandateTransactionId(URL_A, req()), audience: PAYEE });
    const res = await verifyMandatedPayment(withChain(payload, mandateChain(open, closed)), req(), { resourceUrl: URL_A, now: T0 });
    expect(res).toMatchObject({ ok: false, reason: "mandate_key_binding_invalid" });
  });

  it("refuses a tampered disclosure", async () => {
    const { payload } = await paid();
    const chain = info(payload).chain;
    const parts = chain.split("~");
    // re-encode the first disclosure with another payee: its digest no longer matches the signed payload
    const d = JSON.parse(Buffer.from(parts[1]!, "base64url").toString()) as unknown[];
    (d[1] as { id: string }).id = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
    parts[1] = Buffer.from(JSON.stringify(d)).toString("base64url");
    const res = await verifyMandatedPayment(withChain(payload, parts.join("~")), req(), { resourceUrl: URL_A, now: T0 });
    expect(res).toMatchObject({ ok: false, reason: "mandate_tampered_disclosure" });
  });

  it("refuses replays: the chain on another resource, or with an authorization whose nonce is not the chain's hash", async () => {
    const { payload } = await paid();
    expect(await verifyMandatedPayment(payload, req(), { resourceUrl: "https://api.example/other", now: T0 })).toMatchObject({ ok: false, reason: "mandate_transaction_mismatch" });
    // the same chain moved onto a second authorization (fresh nonce): not bound
    const second = await paid();
    const moved = withChain(second.payload, info(payload).chain);
    expect(await verifyMandatedPayment(moved, req(), { resourceUrl: URL_A, now: T0 })).toMatchObject({ ok: false, reason: "mandate_nonce_mismatch" });
  });

  it("refuses a payment that does not match the closed mandate, and one outside the constraints", async () => {
    const { payload } = await paid();
    expect(await verifyMandatedPayment(payload, req({ amount: "40000" }), { resourceUrl: URL_A, now: T0 })).toMatchObject({ ok: false });
    // an over-the-range payment signed under a mandate (the closed mandate says 60000): constraint named
    const { user, agent } = await testKeys();
    const open = await issueOpenMandate({ userKey: user.privateJwk, agentPublicJwk: agent.publicJwk, constraints, expiresAt: T0 + 86_400, issuedAt: T0 - 100, id: "over" });
    const r = req({ amount: "60000" });
    const closed = await makeClosedMandate({ agentKey: agent, open, payment: { payTo: PAYEE, amount: "60000", asset: USDC, network: NETWORK, at: T0 }, transactionId: mandateTransactionId(URL_A, r), audience: PAYEE });
    const res = await verifyMandatedPayment(withChain(payload, mandateChain(open, closed)), r, { resourceUrl: URL_A, now: T0 });
    expect(res).toMatchObject({ ok: false, reason: "mandate_constraint_violated", constraint: "payment.amount_range" });
  });
});
