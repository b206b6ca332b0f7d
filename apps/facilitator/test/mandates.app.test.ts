/**
 * The facilitator's mandate gate without a chain (stub scheme, real signatures and mandates):
 * a payment already sent is not refused afterwards because its mandate was revoked in between
 * (that would charge the payer without the resource), while a new one is; the config block.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { privateKeyToAccount } from "viem/accounts";
import { createPaymentClient, type PaymentPayload } from "@tollgate/core";
import { exactEvmClient } from "@tollgate/evm";
import { generateMandateKey, issueOpenMandate, mandateWallet, type MandateWallet } from "@tollgate/mandates";
import { createFacilitatorApp } from "../src/app.ts";
import { parseConfig } from "../src/config.ts";
import { createLedger, type Ledger } from "../src/ledger/ledger.ts";
import { pgliteSql, type Sql } from "../src/ledger/sql.ts";
import { ASSET, NETWORK, PAYEE, PAYER_KEY, post, requirements, stubFacilitator, stubScheme } from "./helpers.ts";

let sql: Sql;
let ledger: Ledger;
let wallet: MandateWallet;
const dir = mkdtempSync(join(tmpdir(), "tollgate-facilitator-mandates-app-"));

beforeAll(async () => {
  sql = await pgliteSql();
  ledger = await createLedger({ sql });
  const [user, agent] = await Promise.all([generateMandateKey(), generateMandateKey()]);
  const open = await issueOpenMandate({
    userKey: user.privateJwk,
    agentPublicJwk: agent.publicJwk,
    constraints: { allowedPayees: [PAYEE], allowedAssets: [{ network: NETWORK, asset: ASSET, usdDecimals: 6 }], amountRange: { currency: "USD", max: "1" } },
    expiresAt: Math.floor(Date.now() / 1000) + 3600,
  });
  wallet = mandateWallet({ open, userPublicJwk: user.publicJwk, agentKey: agent, store: join(dir, "budget.json") });
});

afterAll(async () => {
  await sql?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function mandated(): Promise<PaymentPayload> {
  const client = createPaymentClient({ schemes: [exactEvmClient({ account: privateKeyToAccount(PAYER_KEY) })], authorizer: wallet });
  return (await client.pay({ x402Version: 2, resource: { url: "http://shop.test/a" }, accepts: [requirements()] })).payload as PaymentPayload;
}

describe("facilitator mandate gate", () => {
  it("a revocation after a payment was sent does not refuse its settle retry; a new payment is refused", async () => {
    const revoked = new Set<string>();
    const { scheme, facilitator } = stubFacilitator(stubScheme(1));
    const app = createFacilitatorApp({ facilitator, ledger, mandates: { require: "all", isRevoked: (id) => revoked.has(id) } });
    const first = { x402Version: 2, paymentPayload: await mandated(), paymentRequirements: requirements() };
    expect(await (await app.request(post("/settle", first))).json()).toMatchObject({ success: true });
    revoked.add((await wallet.mandate()).jti);
    // the same payment again: answered from the ledger (a payment buys one response), not as revoked
    const again = (await (await app.request(post("/settle", first))).json()) as { errorReason?: string };
    expect(again.errorReason).not.toBe("mandate_revoked");
    expect(scheme.settleCalls).toBe(1);
    // a new payment under the revoked mandate
    const next = { x402Version: 2, paymentPayload: await mandated(), paymentRequirements: requirements() };
    const refused = (await (await app.request(post("/settle", next))).json()) as { success: boolean; errorReason?: string };
    expect(refused).toMatchObject({ success: false, errorReason: "mandate_revoked" });
    expect(scheme.settleCalls).toBe(1);
    await app.audit.drain();
  });

  it("off unless asked for: /supported lists ap2-mandate only when on", async () => {
    const off = createFacilitatorApp({ facilitator: stubFacilitator().facilitator, ledger, discovery: false });
    expect(((await (await off.request("/supported")).json()) as { extensions: string[] }).extensions).not.toContain("ap2-mandate");
    const on = createFacilitatorApp({ facilitator: stubFacilitator().facilitator, ledger, discovery: false, mandates: {} });
    expect(((await (await on.request("/supported")).json()) as { extensions: string[] }).extensions).toContain("ap2-mandate");
  });

  it("config: on by default (verify when present), `false` turns it off, public keys only, fields named", () => {
    expect(parseConfig({}).mandates).toEqual({ require: "none" });
    expect(parseConfig({ mandates: false }).mandates).toBe(false);
    expect(parseConfig({ mandates: { require: [PAYEE], statusListUrl: "https://issuer.test/status.json" } }).mandates).toMatchObject({ require: [PAYEE] });
    const jwk = { kty: "EC", crv: "P-256", x: "A".repeat(43), y: "B".repeat(43) };
    expect(() => parseConfig({ mandates: { trustedIssuers: [{ ...jwk, d: "secret-d-value" }] } })).toThrow(/mandates\.trustedIssuers/);
    expect(() => parseConfig({ mandates: { trustedIssuers: [{ ...jwk, d: "secret-d-value" }] } })).not.toThrow(/secret-d-value/);
    expect(() => parseConfig({ mandates: { trustedIssuers: [{ ...jwk, x: "short" }] } })).toThrow(/mandates\.trustedIssuers\.0\.x/);
    expect(parseConfig({ mandates: { trustedIssuers: [jwk] } }).mandates).toMatchObject({ require: "none", trustedIssuers: [jwk] });
    expect(() => parseConfig({ mandates: { require: "some" } })).toThrow(/mandates\.require/);
    expect(() => parseConfig({ mandates: { statusListUrl: "ftp://x" } })).toThrow(/mandates\.statusListUrl/);
  });
});
