/**
 * `upto` (Permit2, "at most this much") attacked on a real anvil chain, through our facilitator
 * service and our paywall (hono, the charge API and metered streams):
 *
 * - the paywall: a handler's charge written every wrong way or above the maximum is never settled
 *   (and its response never served); a charge set before the handler throws charges nothing; a
 *   settled payment's header replayed buys nothing more; a permit that expires while the handler
 *   runs is never served; zero moves nothing;
 * - the facilitator: charges that are not atomic units, above the maximum, a replayed permit
 *   (same charge, another charge), a permit for another facilitator or recipient, expired or not
 *   yet valid, a tampered witness or amount, a forged signature — each refused with its reason and
 *   nothing sent (the fee payer's nonce and ETH unchanged);
 * - exact via Permit2 (same facilitator): one permit settled by 8 concurrent /settle moves once; an
 *   upto permit presented as exact, and an exact one presented as upto, are refused unsent;
 * - metered streams: the cap, a client that stops reading, a producer that fails or reports a
 *   negative usage, a client that signs less than the cap, one permit for two streams, a permit
 *   that expires seconds after verification: the charge is exactly what was delivered.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type ServerType } from "@hono/node-server";
import { decodeBase64Json, encodeBase64Json, readMeteredStream, type PaymentRequired, type PaymentRequirements } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { PERMIT2_ADDRESS, erc20PermitAbi, signExactPermit2Authorization, signUptoPermit2Authorization, uptoEvmClient, uptoEvmServer, type UptoPermit2Payload } from "@tollgate/evm";
import { startFacilitator, type RunningFacilitator } from "@tollgate/facilitator";
import { wrapFetch } from "@tollgate/fetch";
import { meteredResponse, paymentMiddleware, setCharge, type MeteredProducer, type PaymentEnv } from "@tollgate/hono";
import type { SettledEvent } from "@tollgate/server";
import { Hono } from "hono";
import { createPublicClient, createWalletClient, http, maxUint256, type Address, type PublicClient } from "viem";
import { privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { foundry } from "viem/chains";

/** The maximum of the charged route (6-decimal token: 1 cent). */
const MAX = 10_000n;
/** The metered route: at most 5 cents, 1 500 per token (33 fit). */
const CAP = 50_000n;
const PER_TOKEN = 1_500n;
const SECRET = "the-paid-content-7f3a";

let net: RunningLocalNetwork;
let chain: PublicClient;
let service: RunningFacilitator;
let apiUrl: string;
let httpServer: ServerType;
let feePayer: Address;
/** What the /work handler does on its next run. */
let plan: { charge?: string; throwAfter?: boolean; delayMs?: number } = {};
let workRuns = 0;
const settled: SettledEvent[] = [];
const errors: unknown[] = [];
const serverSide: Array<{ path: string; delivered: bigint; charged: bigint }> = [];

const balance = (who: Address) => chain.readContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "balanceOf", args: [who] });

function tokens(path: string, limit: number, o: { delayMs?: number; failAt?: number; lieAt?: number } = {}): MeteredProducer {
  return async (meter) => {
    try {
      for (let i = 0; i < limit; i++) {
        if (i === o.failAt) throw new Error("producer exploded");
        // A producer reporting a negative (or fractional) usage: refused, the stream stops.
        if (!(await meter.send(`token-${i}`, i === o.lieAt ? -1 : 1))) break;
        if (o.delayMs) await new Promise((r) => setTimeout(r, o.delayMs));
      }
    } finally {
      serverSide.push({ path, delivered: meter.delivered, charged: meter.charged });
    }
  };
}

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 3 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  const token = net.plainToken;
  feePayer = net.accounts.facilitator.address;
  service = await startFacilitator({
    port: 0,
    host: "127.0.0.1",
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [{ address: token.address, name: token.name, version: token.version, decimals: token.decimals }] }],
    privateKeys: [net.accounts.facilitator.privateKey],
    logLevel: "silent",
  });
  for (const p of net.accounts.payers) {
    const wallet = createWalletClient({ account: privateKeyToAccount(p.privateKey), chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
    await chain.waitForTransactionReceipt({ hash: await wallet.writeContract({ address: token.address, abi: erc20PermitAbi, functionName: "approve", args: [PERMIT2_ADDRESS, maxUint256] }) });
  }

  const app = new Hono<PaymentEnv>();
  const base = { scheme: "upto", network: net.network, payTo: net.accounts.payee.address, maxTimeoutSeconds: 120 } as const;
  const metered = { ...base, price: { amount: CAP.toString(), asset: token.address }, metered: { unit: "token", pricePerUnit: PER_TOKEN.toString() } };
  app.use(
    paymentMiddleware({
      facilitator: service.url,
      schemes: [uptoEvmServer({ assets: [{ network: net.network, address: token.address, decimals: token.decimals, name: token.name, version: token.version, symbol: token.symbol }] })],
      routes: {
        "GET /work": { ...base, price: { amount: MAX.toString(), asset: token.address } },
        "GET /stream": metered,
        "GET /slow": metered,
        "GET /crash": metered,
        "GET /liar": metered,
      },
      onSettled: (e) => void settled.push(e),
      onError: (e) => void errors.push(e),
      checkAtStart: false,
    }),
  );
  // Handler failures are expected here: answered 500 quietly (hono's default logs each one).
  app.onError((_e, c) => c.text("Internal Server Error", 500));
  app.get("/work", async (c) => {
    workRuns++;
    const { charge, throwAfter, delayMs } = plan;
    plan = {};
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    if (charge !== undefined) setCharge(c, charge);
    if (throwAfter) throw new Error("handler exploded after charging");
    return c.json({ content: SECRET });
  });
  app.get("/stream", (c) => meteredResponse(c, tokens("/stream", 1_000)));
  app.get("/slow", (c) => meteredResponse(c, tokens("/slow", 1_000, { delayMs: 40 })));
  app.get("/crash", (c) => meteredResponse(c, tokens("/crash", 1_000, { failAt: 4 })));
  app.get("/liar", (c) => meteredResponse(c, tokens("/liar", 1_000, { lieAt: 3 })));
  httpServer = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s));
    s.once("error", reject);
  });
  const address = httpServer.address();
  apiUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
}, 120_000);

afterAll(async () => {
  await new Promise<void>((resolve) => {
    if (!httpServer) return resolve();
    httpServer.close(() => resolve());
    (httpServer as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
  });
  await service?.close();
  await net?.stop();
});

// ------------------------------------------------------------------------------------ helpers

const payer = (i: number) => privateKeyToAccount(net.accounts.payers[i]!.privateKey);

/** What must not move when nothing is settled: the fee payer's nonce and ETH, the payer's and payee's tokens. */
async function state(who: Address) {
  return {
    nonce: await chain.getTransactionCount({ address: feePayer }),
    eth: await chain.getBalance({ address: feePayer }),
    payer: await balance(who),
    payee: await balance(net.accounts.payee.address),
  };
}

async function offer(path: string): Promise<PaymentRequirements> {
  const res = await fetch(`${apiUrl}${path}`);
  expect(res.status).toBe(402);
  return (decodeBase64Json(res.headers.get("PAYMENT-REQUIRED"), "PAYMENT-REQUIRED") as { ok: true; value: PaymentRequired }).value.accepts[0]!;
}

/** A PAYMENT-SIGNATURE for `path`, signed by `account` for the offer (optionally edited before signing). */
async function paymentHeader(path: string, account: PrivateKeyAccount, edit: (q: PaymentRequirements) => PaymentRequirements = (q) => q): Promise<string> {
  const accepted = await offer(path);
  const payload = await signUptoPermit2Authorization(account, edit(accepted));
  return encodeBase64Json({ x402Version: 2, accepted, payload });
}

const pay = (path: string, header: string) => fetch(`${apiUrl}${path}`, { headers: { "PAYMENT-SIGNATURE": header } });

/** The requirements the facilitator is asked about (the signed maximum, or a charge at settle). */
function requirements(amount: string = MAX.toString(), facilitator: Address = feePayer): PaymentRequirements {
  return {
    scheme: "upto",
    network: net.network,
    amount,
    asset: net.plainToken.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 300,
    extra: { name: net.plainToken.name, version: net.plainToken.version, assetTransferMethod: "permit2", facilitatorAddress: facilitator },
  };
}

async function signed(i: number, o: { facilitator?: Address; payTo?: Address; now?: number } = {}): Promise<UptoPermit2Payload> {
  const q = { ...requirements(MAX.toString(), o.facilitator ?? feePayer), ...(o.payTo ? { payTo: o.payTo } : {}) };
  return signUptoPermit2Authorization(payer(i), q, o.now === undefined ? {} : { now: o.now });
}

async function call(path: "/verify" | "/settle", payload: unknown, charge: string = MAX.toString()): Promise<{ status: number; json: Record<string, any> }> {
  const accepted = requirements();
  const res = await fetch(`${service.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ x402Version: 2, paymentPayload: { x402Version: 2, accepted, payload }, paymentRequirements: { ...accepted, amount: charge } }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

// ---------------------------------------------------------------------------- the paywall

describe("upto at the paywall: the handler's charge", () => {
  it("a charge written every wrong way or above the maximum: 500, the response not served, nothing settled", async () => {
    const account = payer(0);
    const charges = ["-1", "1e3", "0x10", "101%", "$-1", "1.5", "", "  ", "50.125%", "1000%", (MAX + 1n).toString(), "$1", "$0.0100001", "NaN", "١٠٠"];
    for (const charge of charges) {
      const before = await state(account.address);
      const header = await paymentHeader("/work", account);
      plan = { charge };
      const runs = workRuns;
      const res = await pay("/work", header);
      const body = await res.text();
      expect(res.status, `charge ${JSON.stringify(charge)}: ${body.slice(0, 200)}`).toBe(500);
      expect(body).not.toContain(SECRET);
      expect(res.headers.get("PAYMENT-RESPONSE")).toBeNull();
      expect(workRuns).toBe(runs + 1);
      expect(await state(account.address), `charge ${JSON.stringify(charge)}`).toEqual(before);
    }
  }, 60_000);

  it("a charge set, then the handler throws: nothing charged; the same permit then pays for the next response", async () => {
    const account = payer(0);
    const before = await state(account.address);
    const header = await paymentHeader("/work", account);
    plan = { charge: "4000", throwAfter: true };
    const failed = await pay("/work", header);
    expect(failed.status).toBe(500);
    expect(await failed.text()).not.toContain(SECRET);
    expect(await state(account.address)).toEqual(before);
    // Nothing was used up: the same header buys one response, at its own charge.
    plan = { charge: "25%" };
    const ok = await pay("/work", header);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ content: SECRET });
    const receipt = decodeBase64Json(ok.headers.get("PAYMENT-RESPONSE"), "PAYMENT-RESPONSE") as { ok: true; value: { success: boolean; amount: string; transaction: string } };
    expect(receipt.value).toMatchObject({ success: true, amount: "2500" });
    expect(before.payer - (await balance(account.address))).toBe(2500n);
    expect((await balance(net.accounts.payee.address)) - before.payee).toBe(2500n);
    expect(await chain.getTransactionCount({ address: feePayer })).toBe(before.nonce + 1);
  }, 60_000);

  it("a settled payment's header replayed (sequentially and 5 at once): no second charge, the handler not run again for money", async () => {
    const account = payer(1);
    const header = await paymentHeader("/work", account);
    plan = { charge: "3000" };
    const before = await state(account.address);
    const first = await pay("/work", header);
    expect(first.status).toBe(200);
    expect(before.payer - (await balance(account.address))).toBe(3000n);
    const after = await state(account.address);
    const replays = await Promise.all([pay("/work", header), ...Array.from({ length: 5 }, () => pay("/work", header))]);
    for (const r of replays) {
      // A replay is either answered from the paywall's cache (the same receipt) or refused; never charged again.
      expect([200, 402]).toContain(r.status);
      if (r.status === 200) expect(r.headers.get("PAYMENT-RESPONSE")).toBe(first.headers.get("PAYMENT-RESPONSE"));
    }
    expect(await state(account.address)).toEqual(after);
  }, 60_000);

  it("a permit that expires while the handler runs: the response is withheld, nothing charged", async () => {
    const account = payer(1);
    const accepted = await offer("/work");
    const t = Math.floor(Date.now() / 1000);
    const payload = await signUptoPermit2Authorization(account, accepted, { now: t - (accepted.maxTimeoutSeconds - 7) });
    const before = await state(account.address);
    // The facilitator wants 6 s left at settle: after 2.5 s of handler only 4-5 remain.
    plan = { charge: "50%", delayMs: 2_500 };
    const runs = workRuns;
    const res = await pay("/work", encodeBase64Json({ x402Version: 2, accepted, payload }));
    const body = await res.text();
    expect(workRuns).toBe(runs + 1);
    expect(res.status).toBe(402);
    expect(body).not.toContain(SECRET);
    expect((decodeBase64Json(res.headers.get("PAYMENT-REQUIRED"), "PAYMENT-REQUIRED") as { ok: true; value: PaymentRequired }).value.error).toMatch(/^permit2_deadline_expired/);
    expect(await state(account.address)).toEqual(before);
  }, 60_000);

  it("a charge of zero serves the response and sends no transaction", async () => {
    const account = payer(1);
    const before = await state(account.address);
    plan = { charge: "0" };
    const res = await pay("/work", await paymentHeader("/work", account));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ content: SECRET });
    expect(await state(account.address)).toEqual(before);
  }, 60_000);

  it("a permit for another facilitator, another recipient, or less than the maximum: 402 with the reason, nothing run or moved", async () => {
    const account = payer(2);
    const stranger = privateKeyToAccount(`0x${"47".repeat(32)}`).address;
    const cases: Array<[(q: PaymentRequirements) => PaymentRequirements, RegExp]> = [
      [(q) => ({ ...q, extra: { ...q.extra, facilitatorAddress: stranger } }), /upto_facilitator_mismatch/],
      [(q) => ({ ...q, payTo: stranger }), /invalid_permit2_recipient_mismatch/],
      [(q) => ({ ...q, amount: "1" }), /permit2_amount_mismatch/],
    ];
    for (const [edit, reason] of cases) {
      const before = await state(account.address);
      const runs = workRuns;
      const res = await pay("/work", await paymentHeader("/work", account, edit));
      expect(res.status).toBe(402);
      const required = decodeBase64Json(res.headers.get("PAYMENT-REQUIRED"), "PAYMENT-REQUIRED") as { ok: true; value: PaymentRequired };
      expect(required.value.error).toMatch(reason);
      expect(workRuns).toBe(runs);
      expect(await state(account.address)).toEqual(before);
    }
  }, 60_000);
});

// ------------------------------------------------------------------------ the facilitator

describe("upto at the facilitator: refused, nothing sent", () => {
  it("charges that are not atomic units, or above the maximum: refused before any chain call", async () => {
    const p = await signed(0);
    const before = await state(p.permit2Authorization.from);
    for (const charge of ["-1", "1e3", "0x10", "101%", "$-1", "1.5", "", " 5", "99999999999999999999999999999999999999999999999999999999999999999999999999999999"]) {
      const r = await call("/settle", p, charge);
      expect(r.status, `${charge}: ${JSON.stringify(r.json)}`).toBeLessThan(500);
      expect(r.json.success, charge).toBe(false);
      expect(r.json.transaction).toBe("");
      expect(r.json.errorReason, charge).toBe("invalid_payment_requirements");
      expect(r.json.errorMessage, charge).toMatch(/amount/);
    }
    const over = await call("/settle", p, (MAX + 1n).toString());
    expect(over.json).toMatchObject({ success: false, errorReason: "invalid_upto_evm_payload_settlement_exceeds_amount", transaction: "" });
    expect(await state(p.permit2Authorization.from)).toEqual(before);
  }, 60_000);

  it("a settled permit replayed with the same charge, another charge, and 5 at once: one transfer of the first charge", async () => {
    const p = await signed(0);
    const from = p.permit2Authorization.from;
    const before = await state(from);
    const first = await call("/settle", p, "2000");
    expect(first.json).toMatchObject({ success: true, amount: "2000" });
    const after = await state(from);
    expect(after.nonce).toBe(before.nonce + 1);
    expect(before.payer - after.payer).toBe(2000n);
    const same = await call("/settle", p, "2000");
    expect(same.json).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: "" });
    const more = await call("/settle", p, "9000");
    expect(more.json).toMatchObject({ success: false, errorReason: "invalid_payload_authorization_reused", transaction: "" });
    const burst = await Promise.all(Array.from({ length: 5 }, (_, i) => call("/settle", p, String(1000 + i))));
    for (const b of burst) expect(b.json).toMatchObject({ success: false, transaction: "" });
    const v = await call("/verify", p);
    expect(v.json).toMatchObject({ isValid: false, invalidReason: "permit2_invalid_nonce" });
    expect(await state(from)).toEqual({ ...after, eth: after.eth });
  }, 60_000);

  it("a permit for another facilitator, or another recipient: refused at verify and settle", async () => {
    const other = privateKeyToAccount(`0x${"48".repeat(32)}`).address;
    const foreign = await signed(1, { facilitator: other });
    const elsewhere = await signed(1, { payTo: other });
    const before = await state(foreign.permit2Authorization.from);
    for (const [p, reason] of [
      [foreign, "upto_facilitator_mismatch"],
      [elsewhere, "invalid_permit2_recipient_mismatch"],
    ] as const) {
      expect((await call("/verify", p)).json).toMatchObject({ isValid: false, invalidReason: reason });
      for (const charge of ["5000", "0"]) expect((await call("/settle", p, charge)).json, `${reason} ${charge}`).toMatchObject({ success: false, errorReason: reason, transaction: "" });
    }
    expect(await state(foreign.permit2Authorization.from)).toEqual(before);
  }, 60_000);

  it("expired and not-yet-valid permits: refused with the window's reason", async () => {
    const t = Math.floor(Date.now() / 1000);
    const expired = await signed(1, { now: t - 3600 });
    const early = await signed(1, { now: t + 3600 });
    const before = await state(expired.permit2Authorization.from);
    for (const [p, reason] of [
      [expired, "permit2_deadline_expired"],
      [early, "permit2_not_yet_valid"],
    ] as const) {
      expect((await call("/verify", p)).json).toMatchObject({ isValid: false, invalidReason: reason });
      expect((await call("/settle", p, "1000")).json).toMatchObject({ success: false, errorReason: reason, transaction: "" });
    }
    expect(await state(expired.permit2Authorization.from)).toEqual(before);
  }, 60_000);

  it("a tampered witness or amount, and a permit signed by someone else in the victim's name: bad signature, nothing sent", async () => {
    const p = await signed(2);
    const a = p.permit2Authorization;
    const thief = privateKeyToAccount(`0x${"49".repeat(32)}`);
    const forgedByThief = await signUptoPermit2Authorization(thief, requirements());
    const cases: Array<[string, unknown]> = [
      // The payee swapped after signing: the requirements then name the new payee, the signature does not.
      ["witness.validAfter", { ...p, permit2Authorization: { ...a, witness: { ...a.witness, validAfter: "0" } } }],
      ["permitted.amount", { ...p, permit2Authorization: { ...a, permitted: { ...a.permitted, amount: (MAX * 2n).toString() } } }],
      ["deadline", { ...p, permit2Authorization: { ...a, deadline: (BigInt(a.deadline) - 1n).toString() } }],
      ["nonce", { ...p, permit2Authorization: { ...a, nonce: (BigInt(a.nonce) + 1n).toString() } }],
      ["from", { ...forgedByThief, permit2Authorization: { ...forgedByThief.permit2Authorization, from: a.from } }],
    ];
    const before = await state(a.from);
    for (const [what, payload] of cases) {
      const amount = what === "permitted.amount" ? (MAX * 2n).toString() : MAX.toString();
      const accepted = { ...requirements(), amount };
      const res = await fetch(`${service.url}/settle`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ x402Version: 2, paymentPayload: { x402Version: 2, accepted, payload }, paymentRequirements: { ...accepted, amount: "1000" } }) });
      const json = (await res.json()) as Record<string, any>;
      expect(json, what).toMatchObject({ success: false, errorReason: "invalid_permit2_signature", transaction: "" });
      const v = await fetch(`${service.url}/verify`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ x402Version: 2, paymentPayload: { x402Version: 2, accepted, payload }, paymentRequirements: accepted }) });
      expect(await v.json(), what).toMatchObject({ isValid: false, invalidReason: "invalid_permit2_signature" });
    }
    // witness.to rewritten to the thief, with requirements that pay the thief: still the payer's signature over the old payee.
    const redirected = { ...p, permit2Authorization: { ...a, witness: { ...a.witness, to: thief.address } } };
    const q = { ...requirements(), payTo: thief.address };
    const r = await fetch(`${service.url}/settle`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ x402Version: 2, paymentPayload: { x402Version: 2, accepted: q, payload: redirected }, paymentRequirements: { ...q, amount: "1000" } }) });
    expect(await r.json()).toMatchObject({ success: false, errorReason: "invalid_permit2_signature", transaction: "" });
    expect(await balance(thief.address)).toBe(0n);
    expect(await state(a.from)).toEqual(before);
  }, 60_000);
});

// ---------------------------------------------------------------------- exact via Permit2

describe("exact via Permit2 at the facilitator", () => {
  const exactRequirements = (amount = "3000"): PaymentRequirements => ({
    scheme: "exact",
    network: net.network,
    amount,
    asset: net.plainToken.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 300,
    extra: { name: net.plainToken.name, version: net.plainToken.version, assetTransferMethod: "permit2" },
  });
  const body = (q: PaymentRequirements, payload: unknown, settleQ: PaymentRequirements = q) => JSON.stringify({ x402Version: 2, paymentPayload: { x402Version: 2, accepted: q, payload }, paymentRequirements: settleQ });
  const post = async (path: "/verify" | "/settle", b: string) => {
    const res = await fetch(`${service.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: b });
    return { status: res.status, json: (await res.json()) as Record<string, any> };
  };

  it("8 concurrent /settle of one permit, then a replay: one success, one transfer", async () => {
    const q = exactRequirements();
    const p = await signExactPermit2Authorization(payer(0), q);
    const before = await state(p.permit2Authorization.from);
    const answers = await Promise.all(Array.from({ length: 8 }, () => post("/settle", body(q, p))));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const wins = answers.filter((a) => a.json.success === true);
    expect(wins).toHaveLength(1);
    for (const a of answers.filter((x) => !x.json.success)) expect(["duplicate_settlement", "settlement_pending"]).toContain(a.json.errorReason);
    const replay = await post("/settle", body(q, p));
    expect(replay.json).toMatchObject({ success: false, errorReason: "duplicate_settlement", transaction: "" });
    const after = await state(p.permit2Authorization.from);
    expect(before.payer - after.payer).toBe(3000n);
    expect(after.payee - before.payee).toBe(3000n);
    expect(after.nonce).toBe(before.nonce + 1);
  }, 60_000);

  it("cross-scheme: an upto permit settled as exact, an exact permit settled as upto, a lower exact amount: refused, nothing sent", async () => {
    const up = await signed(1);
    const ex = await signExactPermit2Authorization(payer(1), exactRequirements(MAX.toString()));
    const before = await state(up.permit2Authorization.from);
    const asExact = await post("/settle", body(exactRequirements(MAX.toString()), up));
    expect(asExact.json).toMatchObject({ success: false, errorReason: "invalid_permit2_spender", transaction: "" });
    const asUpto = await post("/settle", body(requirements(), ex, { ...requirements(), amount: "1000" }));
    expect(asUpto.json).toMatchObject({ success: false, transaction: "" });
    expect(asUpto.json.errorReason).toMatch(/invalid_payload|invalid_permit2_spender/);
    expect(asUpto.json.errorMessage).toMatch(/witness\.facilitator|spender/);
    // exact is not "at most": settling less than signed is another amount, refused.
    const less = await post("/settle", body(exactRequirements(MAX.toString()), ex, exactRequirements("1000")));
    expect(less.json.success).toBe(false);
    expect(less.json.transaction).toBe("");
    expect(await state(up.permit2Authorization.from)).toEqual(before);
  }, 60_000);
});

// --------------------------------------------------------------------------- metered streams

describe("metered streams: the charge is what was delivered", () => {
  const paidFetch = () => wrapFetch(fetch, { schemes: [uptoEvmClient({ account: payer(2) })] }) as typeof fetch;

  async function until<T>(read: () => T | undefined, what: string, ms = 20_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = read();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  it("the cap reached: exactly 33 tokens delivered and charged, one transaction", async () => {
    const who = payer(2).address;
    const before = await state(who);
    const res = await paidFetch()(`${apiUrl}/stream`);
    expect(res.status).toBe(200);
    const messages: string[] = [];
    const result = await readMeteredStream(res, { onMessage: (m) => messages.push(m.data) });
    expect(result).toMatchObject({ stopped: "cap", capReached: true, success: true, delivered: 33n, charged: 33n * PER_TOKEN });
    expect(messages).toHaveLength(33);
    expect(before.payer - (await balance(who))).toBe(33n * PER_TOKEN);
    expect((await balance(net.accounts.payee.address)) - before.payee).toBe(33n * PER_TOKEN);
    expect(await chain.getTransactionCount({ address: feePayer })).toBe(before.nonce + 1);
  }, 60_000);

  it("a client that stops reading mid-stream pays what the server handed over, no more", async () => {
    const who = payer(2).address;
    const before = { payer: await balance(who), settled: settled.length, server: serverSide.length };
    const res = await paidFetch()(`${apiUrl}/slow`);
    const stop = new AbortController();
    let seen = 0;
    await readMeteredStream(res, { onMessage: () => void (++seen === 3 && stop.abort()) }, stop.signal);
    await until(() => (settled.length > before.settled ? true : undefined), "the stream's settlement");
    const server = serverSide[before.server]!;
    expect(server.path).toBe("/slow");
    expect(server.delivered === 3n || server.delivered === 4n).toBe(true);
    expect(before.payer - (await balance(who))).toBe(server.delivered * PER_TOKEN);
  }, 60_000);

  it("a producer that fails after 4 tokens, or reports a negative usage after 3: charged exactly what was delivered", async () => {
    const who = payer(2).address;
    for (const [path, delivered] of [
      ["/crash", 4n],
      ["/liar", 3n],
    ] as const) {
      const before = { payer: await balance(who), errors: errors.length };
      const res = await paidFetch()(`${apiUrl}${path}`);
      const messages: string[] = [];
      const result = await readMeteredStream(res, { onMessage: (m) => messages.push(m.data) });
      expect(result, path).toMatchObject({ stopped: "error", success: true, delivered, charged: delivered * PER_TOKEN });
      expect(messages).toHaveLength(Number(delivered));
      expect(before.payer - (await balance(who)), path).toBe(delivered * PER_TOKEN);
      expect(errors.length).toBeGreaterThan(before.errors);
    }
  }, 60_000);

  it("one permit, a second stream while the first runs, and a replay after it settled: one stream, one charge of what it delivered", async () => {
    const account = payer(1);
    const header = await paymentHeader("/slow", account);
    const before = await state(account.address);
    const streams = serverSide.length;
    const first = await pay("/slow", header);
    expect(first.status).toBe(200);
    // The second request goes out once the first stream has delivered two tokens.
    let seen = 0;
    let streaming!: () => void;
    const twoDelivered = new Promise<void>((resolve) => (streaming = resolve));
    const reading = readMeteredStream(first, { onMessage: () => void (++seen === 2 && streaming()) });
    await twoDelivered;
    const reasonOf = (res: Response) => (decodeBase64Json(res.headers.get("PAYMENT-REQUIRED"), "PAYMENT-REQUIRED") as { ok: true; value: PaymentRequired }).value.error;
    const second = await pay("/slow", header);
    expect(second.status).toBe(402);
    expect(reasonOf(second)).toMatch(/^duplicate_settlement/);
    const result = await reading;
    expect(result).toMatchObject({ stopped: "cap", success: true, delivered: 33n, charged: 33n * PER_TOKEN });
    const replay = await pay("/slow", header);
    expect(replay.status).toBe(402);
    expect(reasonOf(replay)).toMatch(/^permit2_invalid_nonce/);
    // One stream ran (the second and the replay never reached the producer); it was paid once.
    expect(serverSide.length).toBe(streams + 1);
    const after = await state(account.address);
    expect(before.payer - after.payer).toBe(33n * PER_TOKEN);
    expect(after.nonce).toBe(before.nonce + 1);
  }, 60_000);

  it("a permit signed to expire seconds after verification: the stream stops in time, nothing is delivered unpaid", async () => {
    // Verify accepts the permit (7 s left, above the facilitator's 6 s), but a stream of 1.3 s
    // would end after it can be settled: before the fix, 33 tokens went out and nothing was charged.
    const account = payer(0);
    const accepted = await offer("/slow");
    const t = Math.floor(Date.now() / 1000);
    const payload = await signUptoPermit2Authorization(account, accepted, { now: t - (accepted.maxTimeoutSeconds - 7) });
    const before = await state(account.address);
    const res = await pay("/slow", encodeBase64Json({ x402Version: 2, accepted, payload }));
    expect(res.status).toBe(200);
    const result = await readMeteredStream(res);
    expect(result.stopped).toBe("time-limit");
    expect(result.success).toBe(true);
    const moved = before.payer - (await balance(account.address));
    expect(moved).toBe(result.delivered * PER_TOKEN);
    expect(result.charged).toBe(moved);
    expect(result.delivered).toBe(0n);
    expect(await state(account.address)).toEqual(before);
  }, 60_000);

  it("a client that signs less than the cap (or rewrites the cap it accepted): 402, nothing streamed or moved", async () => {
    const account = payer(2);
    const before = await state(account.address);
    const runs = serverSide.length;
    const low = await pay("/stream", await paymentHeader("/stream", account, (q) => ({ ...q, amount: PER_TOKEN.toString() })));
    expect(low.status).toBe(402);
    expect((decodeBase64Json(low.headers.get("PAYMENT-REQUIRED"), "PAYMENT-REQUIRED") as { ok: true; value: PaymentRequired }).value.error).toMatch(/permit2_amount_mismatch/);
    // The accepted copy rewritten to the lower cap: matches no offer.
    const accepted = await offer("/stream");
    const cheap = { ...accepted, amount: PER_TOKEN.toString() };
    const rewritten = await pay("/stream", encodeBase64Json({ x402Version: 2, accepted: cheap, payload: await signUptoPermit2Authorization(account, cheap) }));
    expect(rewritten.status).toBe(402);
    expect((decodeBase64Json(rewritten.headers.get("PAYMENT-REQUIRED"), "PAYMENT-REQUIRED") as { ok: true; value: PaymentRequired }).value.error).toMatch(/accepted\.amount/);
    expect(serverSide.length).toBe(runs);
    expect(await state(account.address)).toEqual(before);
  }, 60_000);
});
