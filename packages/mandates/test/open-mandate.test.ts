import { describe, expect, it } from "vitest";
import { decoderInstance, issuerInstance } from "../src/sdjwt.ts";
import { issueOpenMandate, verifyOpenMandate } from "../src/index.ts";
import { openMandate, PAYEE, T0, testKeys } from "./helpers.ts";

describe("open Payment Mandate", () => {
  it("round-trips: user signature, vct, cnf and the AP2 constraints", async () => {
    const { user, agent } = await testKeys();
    const sdJwt = await openMandate();
    const res = await verifyOpenMandate(sdJwt, { userPublicJwk: user.publicJwk, now: T0 });
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    expect(res.mandate.vct).toBe("mandate.payment.open.1");
    expect(res.mandate.jti).toBe("mandate-1");
    expect(res.mandate.cnf.jwk.x).toBe(agent.publicJwk.x);
    const types = res.mandate.constraints.map((c) => c.type);
    expect(types).toEqual([
      "payment.allowed_payees",
      "payment.allowed_payment_instruments",
      "payment.amount_range",
      "payment.budget",
      "payment.agent_recurrence",
      "payment.execution_date",
    ]);
    const payees = res.mandate.constraints.find((c) => c.type === "payment.allowed_payees");
    expect(payees && "allowed" in payees && payees.allowed[0]?.id).toBe(PAYEE);
  });

  it("makes the allowed payees and instruments selectively disclosable (AP2 x-selectively-disclosable-array)", async () => {
    const sdJwt = await openMandate();
    const decoded = await decoderInstance().decode(sdJwt);
    const signed = decoded.jwt?.payload as { constraints: Array<{ type: string; allowed?: unknown[] }> };
    const payees = signed.constraints.find((c) => c.type === "payment.allowed_payees");
    expect(payees?.allowed?.every((e) => typeof e === "object" && e !== null && "..." in e)).toBe(true);
    expect(decoded.disclosures?.length).toBe(3);
    // the amounts are never floats
    expect(JSON.stringify(signed)).toContain('"max":"5"');
  });

  it("refuses a forged signature (signed by another key)", async () => {
    const { other, user } = await testKeys();
    const forged = await openMandate({ userKey: other.privateJwk });
    const res = await verifyOpenMandate(forged, { userPublicJwk: user.publicJwk, now: T0 });
    expect(res).toMatchObject({ ok: false, code: "signature" });
  });

  it("refuses a payload changed after signing", async () => {
    const { user } = await testKeys();
    const sdJwt = await openMandate();
    const [h, p, ...rest] = sdJwt.split(".");
    const payload = JSON.parse(Buffer.from(p!, "base64url").toString());
    payload.exp += 1_000_000;
    const tampered = [h, Buffer.from(JSON.stringify(payload)).toString("base64url"), ...rest].join(".");
    expect(await verifyOpenMandate(tampered, { userPublicJwk: user.publicJwk, now: T0 })).toMatchObject({ ok: false, code: "signature" });
  });

  it("refuses expired and not-yet-valid mandates", async () => {
    const { user } = await testKeys();
    const sdJwt = await openMandate();
    expect(await verifyOpenMandate(sdJwt, { userPublicJwk: user.publicJwk, now: T0 + 31 * 86_400 })).toMatchObject({ ok: false, code: "expired" });
    expect(await verifyOpenMandate(sdJwt, { userPublicJwk: user.publicJwk, now: T0 - 3600 })).toMatchObject({ ok: false, code: "not_yet_valid" });
  });

  it("refuses a revoked mandate (status check callback)", async () => {
    const { user } = await testKeys();
    const sdJwt = await openMandate();
    const res = await verifyOpenMandate(sdJwt, { userPublicJwk: user.publicJwk, now: T0, isRevoked: async (id) => id === "mandate-1" });
    expect(res).toMatchObject({ ok: false, code: "revoked", field: "status" });
    expect((await verifyOpenMandate(sdJwt, { userPublicJwk: user.publicJwk, now: T0, isRevoked: () => false })).ok).toBe(true);
  });

  it("refuses a tampered disclosure", async () => {
    const { user } = await testKeys();
    const sdJwt = await openMandate();
    const parts = sdJwt.split("~");
    const disclosure = JSON.parse(Buffer.from(parts[1]!, "base64url").toString()) as [string, { id: string; name: string }];
    disclosure[1] = { id: "0x000000000000000000000000000000000000dEaD", name: "attacker" };
    parts[1] = Buffer.from(JSON.stringify(disclosure)).toString("base64url");
    const res = await verifyOpenMandate(parts.join("~"), { userPublicJwk: user.publicJwk, now: T0 });
    expect(res).toMatchObject({ ok: false, code: "tampered_disclosure" });
  });

  it("accepts a presentation that withholds disclosures (the withheld payees are absent)", async () => {
    const { user } = await testKeys();
    const sdJwt = await openMandate();
    const parts = sdJwt.split("~");
    const withheld = [parts[0], parts[2], parts[3], ""].join("~");
    const res = await verifyOpenMandate(withheld, { userPublicJwk: user.publicJwk, now: T0 });
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    const payees = res.mandate.constraints.find((c) => c.type === "payment.allowed_payees");
    expect(payees && "allowed" in payees ? payees.allowed.map((m) => m.id) : []).not.toContain(PAYEE);
  });

  it("refuses a wrong vct", async () => {
    const { user, agent } = await testKeys();
    const sd = await issuerInstance(user.privateJwk);
    const wrong = await sd.issue({ vct: "mandate.payment.1", jti: "x", iat: T0 - 10, exp: T0 + 3600, cnf: { jwk: agent.publicJwk }, constraints: [] });
    expect(await verifyOpenMandate(wrong, { userPublicJwk: user.publicJwk, now: T0 })).toMatchObject({ ok: false, code: "wrong_vct", field: "vct" });
  });

  it("refuses malformed input and bad amounts at issue time", async () => {
    const { user, agent } = await testKeys();
    expect(await verifyOpenMandate("not-a-jwt", { userPublicJwk: user.publicJwk, now: T0 })).toMatchObject({ ok: false, code: "malformed" });
    await expect(
      issueOpenMandate({ userKey: user.privateJwk, agentPublicJwk: agent.publicJwk, constraints: { amountRange: { currency: "USD", max: "1e3" } }, expiresAt: T0 + 10, issuedAt: T0 }),
    ).rejects.toThrow(/decimal USD amount/);
  });
});
