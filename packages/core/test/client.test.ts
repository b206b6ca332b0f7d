import { describe, expect, it } from "vitest";
import {
  cheapest,
  createPaymentClient,
  decodeBase64Json,
  InvalidPaymentRequiredError,
  PaymentRefusedError,
  preferNetworks,
  spendingPolicy,
  type PaymentPayload,
  type PaymentPayloadV1,
  type PaymentRequired,
  type PaymentRequiredV1,
  type PaymentRequirements,
  type PayloadContext,
  type SchemeClient,
} from "../src/index.ts";

const USDC_BASE = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913";
const USDC_SEPOLIA = "0x036CbD53842c5426634e7929541eC2318f3dCF7e";
const PAYEE = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C";
const PAYER = "0x857b06519E91e3A54538791bDbb0E22373e36b66";

/** A chain-free scheme client that records every signing request. */
function stubScheme(networks: string[] = ["eip155:*"], opts: { delayMs?: number; fail?: boolean } = {}) {
  const calls: { requirements: PaymentRequirements; context: PayloadContext }[] = [];
  const scheme: SchemeClient = {
    scheme: "exact",
    networks,
    payer: () => PAYER,
    async createPayload(requirements, context) {
      calls.push({ requirements, context });
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      if (opts.fail) throw new Error("signer unavailable");
      return { signature: "0xsig", authorization: { value: requirements.amount, to: requirements.payTo } };
    },
  };
  return { scheme, calls };
}

function option(over: Partial<PaymentRequirements> = {}): PaymentRequirements {
  return {
    scheme: "exact",
    network: "eip155:8453",
    amount: "10000",
    asset: USDC_BASE,
    payTo: PAYEE,
    maxTimeoutSeconds: 60,
    extra: { name: "USD Coin", version: "2" },
    ...over,
  };
}

function required(accepts: PaymentRequirements[], extensions?: Record<string, unknown>): PaymentRequired {
  const r: PaymentRequired = { x402Version: 2, resource: { url: "https://api.example.com/data", description: "data" }, accepts };
  if (extensions) r.extensions = extensions;
  return r;
}

const usdAssets = [
  { network: "eip155:8453", asset: USDC_BASE, decimals: 6 },
  { network: "eip155:84532", asset: USDC_SEPOLIA, decimals: 6 },
];

async function refusal(p: Promise<unknown>): Promise<PaymentRefusedError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(PaymentRefusedError);
  return e as PaymentRefusedError;
}

describe("createPaymentClient: v2", () => {
  it("builds a PAYMENT-SIGNATURE payload echoing resource, accepted and extensions", async () => {
    const { scheme, calls } = stubScheme();
    const client = createPaymentClient({ schemes: [scheme] });
    const ext = { "payment-identifier": { info: { required: false }, schema: { type: "object" } } };
    const payment = await client.pay(required([option()], ext), {
      extensions: { "payment-identifier": { info: { id: "pay_0123456789abcdef", required: true } } },
    });
    expect(payment.x402Version).toBe(2);
    expect(payment.header.name).toBe("PAYMENT-SIGNATURE");
    expect(payment.payer).toBe(PAYER);
    const decoded = decodeBase64Json(payment.header.value, "h");
    expect(decoded.ok).toBe(true);
    const p = (decoded as { value: PaymentPayload }).value;
    expect(p).toEqual(payment.payload);
    expect(p.x402Version).toBe(2);
    expect(p.resource?.url).toBe("https://api.example.com/data");
    expect(p.accepted).toEqual(option());
    expect(p.payload).toEqual({ signature: "0xsig", authorization: { value: "10000", to: PAYEE } });
    // Server info kept (required: false wins), client id appended.
    expect(p.extensions).toEqual({
      "payment-identifier": { info: { required: false, id: "pay_0123456789abcdef" }, schema: { type: "object" } },
    });
    expect(calls).toHaveLength(1);
    expect(calls[0]!.context.x402Version).toBe(2);
  });

  it("a scheme's payloadExtensions are merged over the server's extensions, the scheme's signed leaves winning", async () => {
    const { scheme } = stubScheme();
    const seen: Array<{ payload: Record<string, unknown>; context: PayloadContext }> = [];
    const withExtensions: SchemeClient = {
      ...scheme,
      async payloadExtensions(_requirements, payload, context) {
        seen.push({ payload, context });
        return { eip2612GasSponsoring: { info: { from: PAYER, signature: "0xpermit", version: "9" } } };
      },
    };
    const advertised = { eip2612GasSponsoring: { info: { description: "sponsored", version: "1" }, schema: { type: "object" } } };
    const payment = await createPaymentClient({ schemes: [withExtensions] }).pay(required([option()], advertised));
    const p = payment.payload as PaymentPayload;
    expect(p.extensions).toEqual({
      eip2612GasSponsoring: { info: { description: "sponsored", version: "9", from: PAYER, signature: "0xpermit" }, schema: { type: "object" } },
    });
    // The hook saw the payload it extends and the server's advertisement.
    expect(seen).toHaveLength(1);
    expect(seen[0]!.payload).toEqual(p.payload);
    expect(seen[0]!.context.extensions).toEqual(advertised);
    // Nothing added: the server's extensions as before.
    const none: SchemeClient = { ...scheme, payloadExtensions: async () => undefined };
    expect(((await createPaymentClient({ schemes: [none] }).pay(required([option()], advertised))).payload as PaymentPayload).extensions).toEqual(advertised);
  });

  it("picks only options a scheme supports (scheme name and network pattern)", async () => {
    const { scheme, calls } = stubScheme(["eip155:84532"]);
    const client = createPaymentClient({ schemes: [scheme] });
    const payment = await client.pay(
      required([option(), option({ scheme: "upto", network: "eip155:84532" }), option({ network: "eip155:84532", asset: USDC_SEPOLIA })]),
    );
    expect(payment.requirements.network).toBe("eip155:84532");
    expect(payment.requirements.scheme).toBe("exact");
    expect(calls).toHaveLength(1);
  });

  it("refuses with no_supported_option and signs nothing", async () => {
    const { scheme, calls } = stubScheme(["solana:*"]);
    const client = createPaymentClient({ schemes: [scheme] });
    const e = await refusal(client.pay(required([option(), option({ scheme: "upto" })])));
    expect(e.code).toBe("no_supported_option");
    expect(e.message).toContain("exact on eip155:8453");
    expect(e.refusals).toHaveLength(2);
    expect(calls).toHaveLength(0);
  });

  it("rejects a malformed PaymentRequired naming the field, signing nothing", async () => {
    const { scheme, calls } = stubScheme();
    const client = createPaymentClient({ schemes: [scheme] });
    const bad = required([option({ amount: "1.5" })]);
    const e = await client.pay(bad).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InvalidPaymentRequiredError);
    expect((e as Error).message).toContain("paymentRequired.accepts.0.amount");
    expect(calls).toHaveLength(0);
  });

  it("a payload signed and then dropped unsent is reported to its scheme as 'no answer' (status 0)", async () => {
    const { scheme } = stubScheme();
    const heard: Array<{ status: number; payload: Record<string, unknown> }> = [];
    const stateful: SchemeClient = { ...scheme, onPaymentResponse: async (ctx) => void heard.push({ status: ctx.status, payload: ctx.payload }) };
    const client = createPaymentClient({
      schemes: [stateful],
      authorizer: { authorize: async () => ({ handOver: () => Promise.reject(new Error("mandate says no")), commit: () => {}, release: () => {} }) },
    });
    await expect(client.pay(required([option()]))).rejects.toThrow("mandate says no");
    expect(heard).toHaveLength(1);
    expect(heard[0]!.status).toBe(0);
    expect(heard[0]!.payload).toBeTypeOf("object");
  });

  it("releases the reservation when signing fails", async () => {
    const { scheme } = stubScheme(["eip155:*"], { fail: true });
    const policy = spendingPolicy({ budget: "$1", usdAssets });
    const client = createPaymentClient({ schemes: [scheme], policy });
    await expect(client.pay(required([option()]))).rejects.toThrow("signer unavailable");
    expect(policy.remaining().usd).toBe("1");
    expect(policy.reserved().usd).toBe("0");
  });
});

describe("choosers", () => {
  const a = option({ network: "eip155:8453", amount: "300" });
  const b = option({ network: "eip155:84532", asset: USDC_SEPOLIA, amount: "100" });
  const c = option({ network: "eip155:8453", amount: "200" });
  const sol = option({ network: "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", asset: "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU", amount: "1" });

  it("keeps server order by default", async () => {
    const { scheme } = stubScheme();
    const payment = await createPaymentClient({ schemes: [scheme] }).pay(required([a, b, c]));
    expect(payment.requirements).toEqual(a);
  });

  it("preferNetworks ranks by pattern, stable otherwise", () => {
    const ctx = { x402Version: 2 as const };
    expect(preferNetworks(["eip155:84532"])([a, b, c], ctx)).toEqual([b, a, c]);
    expect(preferNetworks(["solana:*", "eip155:84532"])([a, b, c, sol], ctx)).toEqual([sol, b, a, c]);
  });

  it("cheapest compares amounts only within the same asset", async () => {
    const ctx = { x402Version: 2 as const };
    // a and c share an asset: c (200) moves ahead of a (300); b keeps its slot although its 100 is smaller.
    expect(cheapest()([a, b, c], ctx)).toEqual([c, b, a]);
    const { scheme } = stubScheme();
    const payment = await createPaymentClient({ schemes: [scheme], choose: cheapest() }).pay(required([a, b, c]));
    expect(payment.requirements.amount).toBe("200");
  });

  it("accepts a custom chooser and ignores options it invents", async () => {
    const { scheme, calls } = stubScheme();
    const client = createPaymentClient({ schemes: [scheme], choose: (opts) => [option({ amount: "1" }), opts[1]!] });
    const payment = await client.pay(required([a, b, c]));
    expect(payment.requirements).toEqual(b);
    const none = createPaymentClient({ schemes: [scheme], choose: () => [] });
    expect((await refusal(none.pay(required([a])))).code).toBe("no_supported_option");
    expect(calls).toHaveLength(1);
  });
});

describe("spending policy refusals (nothing signed)", () => {
  const cases: [string, Parameters<typeof spendingPolicy>[0], PaymentRequirements][] = [
    ["max_per_request", { maxPerRequest: "$0.01", usdAssets }, option({ amount: "10001" })],
    ["max_per_request", { maxPerRequest: { [`eip155:8453/${USDC_BASE.toLowerCase()}`]: "9999" } }, option()],
    ["budget_exceeded", { budget: "$0.0099", usdAssets }, option()],
    ["budget_exceeded", { budget: { [`eip155:8453/${USDC_BASE}`]: "5" } }, option()],
    ["network_not_allowed", { networks: ["eip155:84532", "solana:*"] }, option()],
    ["asset_not_allowed", { assets: [`eip155:84532/${USDC_SEPOLIA}`] }, option()],
    ["payee_not_allowed", { payees: ["0x0000000000000000000000000000000000000001"] }, option()],
    ["unknown_asset_value", { maxPerRequest: "$1", usdAssets }, option({ asset: "0x1111111111111111111111111111111111111111" })],
    ["unknown_asset_value", { budget: { [`eip155:8453/${USDC_BASE}`]: "5" } }, option({ network: "eip155:84532", asset: USDC_SEPOLIA })],
  ];
  it.each(cases)("%s", async (code, opts, req) => {
    const { scheme, calls } = stubScheme();
    const policy = spendingPolicy(opts);
    const e = await refusal(createPaymentClient({ schemes: [scheme], policy }).pay(required([req])));
    expect(e.code).toBe(code);
    expect(e.message.startsWith(code)).toBe(true);
    expect(e.refusals[0]!.requirements).toEqual(req);
    expect(calls).toHaveLength(0);
    expect(policy.reserved().assets).toEqual({});
  });

  it("allowlists compare 0x addresses case-insensitively", async () => {
    const { scheme, calls } = stubScheme();
    const policy = spendingPolicy({
      payees: [PAYEE.toLowerCase()],
      assets: [USDC_BASE.toUpperCase().replace("0X", "0x")],
      networks: ["eip155:*"],
    });
    await createPaymentClient({ schemes: [scheme], policy }).pay(required([option()]));
    expect(calls).toHaveLength(1);
  });

  it("skips a refused option for an allowed one, and reports every refusal when none remains", async () => {
    const { scheme, calls } = stubScheme();
    const policy = spendingPolicy({ maxPerRequest: "$0.05", usdAssets });
    const client = createPaymentClient({ schemes: [scheme], policy });
    const payment = await client.pay(required([option({ amount: "60000" }), option({ network: "eip155:84532", asset: USDC_SEPOLIA, amount: "50000" })]));
    expect(payment.requirements.network).toBe("eip155:84532");
    const e = await refusal(client.pay(required([option({ amount: "60000" }), option({ network: "eip155:1", asset: USDC_BASE })])));
    expect(e.code).toBe("max_per_request");
    expect(e.refusals.map((r) => r.code)).toEqual(["max_per_request", "unknown_asset_value"]);
    expect(e.message).toContain("$0.06 exceeds maxPerRequest $0.05");
    expect(calls).toHaveLength(1);
  });

  it("rejects bad configuration up front", () => {
    expect(() => spendingPolicy({ budget: "$5", usdAssets: [{ network: "eip155:1", asset: "0x1", decimals: 99 }] })).toThrow(/usdAssets\[0\]\.decimals/);
    expect(() => spendingPolicy({ budget: "5 USDC", usdAssets })).toThrow(/not a dollar amount/);
    expect(() => spendingPolicy({ budget: { "eip155:8453": "1" } })).toThrow(/network\/asset/);
    expect(() => spendingPolicy({ budget: { [`eip155:8453/${USDC_BASE}`]: "1.5" } })).toThrow(/budget/);
  });
});

describe("dollar limits out of the box", () => {
  it("value USDC of core's network table as dollars without configuration, and nothing else", async () => {
    const { scheme, calls } = stubScheme(["eip155:*"]);
    const client = createPaymentClient({ schemes: [scheme], policy: spendingPolicy({ maxPerRequest: "$0.05" }) });
    const usdc = { scheme: "exact", network: "eip155:8453" as const, asset: USDC_BASE, payTo: "0x0000000000000000000000000000000000000001", maxTimeoutSeconds: 60, extra: { name: "USD Coin", version: "2" } };
    await expect(client.pay({ x402Version: 2, resource: { url: "https://x" }, accepts: [{ ...usdc, amount: "50000" }] })).resolves.toBeDefined();
    await expect(client.pay({ x402Version: 2, resource: { url: "https://x" }, accepts: [{ ...usdc, amount: "50001" }] })).rejects.toThrow(/max_per_request/);
    const other = { ...usdc, asset: "0x00000000000000000000000000000000000000aa", amount: "1" };
    await expect(client.pay({ x402Version: 2, resource: { url: "https://x" }, accepts: [other] })).rejects.toThrow(/unknown_asset_value/);
    expect(calls.length).toBe(1);
  });
});

describe("budget reservation", () => {
  it("10 concurrent pays with budget for 3: exactly 3 succeed, 7 refused unsigned", async () => {
    const { scheme, calls } = stubScheme(["eip155:*"], { delayMs: 20 });
    const policy = spendingPolicy({ budget: "$0.03", usdAssets });
    const client = createPaymentClient({ schemes: [scheme], policy });
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => client.pay(required([option()]))));
    const ok = results.filter((r) => r.status === "fulfilled");
    const refused = results.filter((r) => r.status === "rejected");
    expect(ok).toHaveLength(3);
    expect(refused).toHaveLength(7);
    for (const r of refused) expect((r.reason as PaymentRefusedError).code).toBe("budget_exceeded");
    expect(calls).toHaveLength(3);
    expect(policy.reserved().usd).toBe("0.03");
    expect(policy.remaining().usd).toBe("0");
    expect(policy.spent().usd).toBe("0");
  });

  it("release restores the budget; commit spends it; both idempotent", async () => {
    const { scheme } = stubScheme();
    const key = `eip155:8453/${USDC_BASE.toLowerCase()}`;
    const policy = spendingPolicy({ budget: { [key]: "20000" } });
    const client = createPaymentClient({ schemes: [scheme], policy });
    const p1 = await client.pay(required([option()]));
    const p2 = await client.pay(required([option()]));
    expect((await refusal(client.pay(required([option()])))).code).toBe("budget_exceeded");
    p1.release();
    p1.release();
    p1.commit(); // no-op after release
    expect(policy.remaining().assets[key]).toBe("10000");
    const p3 = await client.pay(required([option()]));
    p2.commit();
    p3.commit();
    p2.release(); // no-op after commit
    expect(policy.spent().assets[key]).toBe("20000");
    expect(policy.reserved().assets).toEqual({});
    expect(policy.remaining().assets[key]).toBe("0");
  });

  it("dollar arithmetic is exact: $0.1 + $0.2 fills a $0.3 budget exactly", async () => {
    const { scheme } = stubScheme();
    // Mixed decimals: an 18-decimal USD token next to 6-decimal USDC.
    const DAI = "0x50c5725949A6F0c72E6C4a641F24049A917DB0Cb";
    const policy = spendingPolicy({ budget: "$0.3", maxPerRequest: "$0.2", usdAssets: [...usdAssets, { network: "eip155:8453", asset: DAI, decimals: 18 }] });
    const client = createPaymentClient({ schemes: [scheme], policy });
    (await client.pay(required([option({ amount: "100000" })]))).commit(); // $0.1 in USDC
    (await client.pay(required([option({ asset: DAI, amount: "200000000000000000" })]))).commit(); // $0.2 in DAI
    expect(policy.spent().usd).toBe("0.3");
    expect(policy.remaining().usd).toBe("0");
    const e = await refusal(client.pay(required([option({ asset: DAI, amount: "1" })])));
    expect(e.code).toBe("budget_exceeded");
    expect(e.message).toContain("$0.000000000000000001 exceeds the remaining budget $0");
    // maxPerRequest boundary is inclusive and exact at 18 decimals.
    const fresh = spendingPolicy({ maxPerRequest: "$0.2", usdAssets: [{ network: "eip155:8453", asset: DAI, decimals: 18 }] });
    const c2 = createPaymentClient({ schemes: [scheme], policy: fresh });
    await c2.pay(required([option({ asset: DAI, amount: "200000000000000000" })]));
    expect((await refusal(c2.pay(required([option({ asset: DAI, amount: "200000000000000001" })])))).code).toBe("max_per_request");
  });
});

describe("createPaymentClient: v1", () => {
  const v1: PaymentRequiredV1 = {
    x402Version: 1,
    error: "X-PAYMENT header is required",
    accepts: [
      {
        scheme: "exact",
        network: "base-sepolia",
        maxAmountRequired: "10000",
        resource: "https://api.example.com/premium-data",
        description: "premium",
        mimeType: "application/json",
        outputSchema: null,
        payTo: PAYEE,
        maxTimeoutSeconds: 60,
        asset: USDC_SEPOLIA,
        extra: { name: "USDC", version: "2" },
      },
    ],
  };

  it("converts v1 requirements for the scheme and answers with an X-PAYMENT v1 payload", async () => {
    const { scheme, calls } = stubScheme(["eip155:84532"]);
    const policy = spendingPolicy({ maxPerRequest: "$0.01", usdAssets });
    const payment = await createPaymentClient({ schemes: [scheme], policy }).pay(v1);
    expect(payment.x402Version).toBe(1);
    expect(payment.header.name).toBe("X-PAYMENT");
    expect(calls[0]!.requirements).toEqual({
      scheme: "exact",
      network: "eip155:84532",
      amount: "10000",
      asset: USDC_SEPOLIA,
      payTo: PAYEE,
      maxTimeoutSeconds: 60,
      extra: { name: "USDC", version: "2" },
    });
    expect(calls[0]!.context).toMatchObject({ x402Version: 1, resource: { url: "https://api.example.com/premium-data" } });
    const decoded = decodeBase64Json(payment.header.value, "X-PAYMENT");
    const p = (decoded as { value: PaymentPayloadV1 }).value;
    expect(p).toEqual({ x402Version: 1, scheme: "exact", network: "base-sepolia", payload: { signature: "0xsig", authorization: { value: "10000", to: PAYEE } } });
    expect(payment.requirementsV1?.network).toBe("base-sepolia");
  });

  it("unknown v1 network names are unsupported unless mapped via v1Networks", async () => {
    const { scheme, calls } = stubScheme(["eip155:*"]);
    const odd = { ...v1, accepts: [{ ...v1.accepts[0]!, network: "my-chain" }] };
    expect((await refusal(createPaymentClient({ schemes: [scheme] }).pay(odd))).code).toBe("no_supported_option");
    expect(calls).toHaveLength(0);
    const payment = await createPaymentClient({ schemes: [scheme], v1Networks: { "my-chain": "eip155:777" } }).pay(odd);
    expect(payment.requirements.network).toBe("eip155:777");
    expect((payment.payload as PaymentPayloadV1).network).toBe("my-chain");
  });
});

describe("spending policy: the budget counts what was handed over", () => {
  const key = `eip155:8453/${USDC_BASE.toLowerCase()}`;
  const T0 = 1_750_000_000;

  /** A clock in unix seconds and a scheme client that signs EVM-style validBefore from it (or a fixed one). */
  function setup(opts: { validBefore?: (now: number, r: PaymentRequirements) => string | undefined } = {}) {
    const clock = { t: T0 };
    const signed: PaymentRequirements[] = [];
    const scheme: SchemeClient = {
      scheme: "exact",
      networks: ["eip155:*", "solana:*", "other:*"],
      payer: () => PAYER,
      async createPayload(r) {
        signed.push(r);
        const validBefore = opts.validBefore ? opts.validBefore(clock.t, r) : String(clock.t + r.maxTimeoutSeconds);
        return validBefore === undefined ? { transaction: "AQID" } : { signature: "0xsig", authorization: { value: r.amount, validBefore, nonce: `0x0${signed.length}` } };
      },
    };
    return { clock, signed, scheme };
  }

  it("maxTimeoutSeconds above the cap is refused before signing, naming the limit (policy cap and the default cap)", async () => {
    const { scheme, signed, clock } = setup();
    const policy = spendingPolicy({ budget: { [key]: "1000000" }, maxTimeoutSeconds: 120, now: () => clock.t });
    const client = createPaymentClient({ schemes: [scheme], policy });
    const e = await refusal(client.pay(required([option({ maxTimeoutSeconds: 121 })])));
    expect(e.code).toBe("max_timeout_exceeded");
    expect(e.message).toBe("max_timeout_exceeded: maxTimeoutSeconds 121 exceeds the limit maxTimeoutSeconds=120 (a signed payment stays settleable that long)");
    expect(signed).toHaveLength(0);
    expect(policy.reserved().assets).toEqual({});
    expect(policy.maxTimeoutSeconds).toBe(120);
    // The boundary is inclusive; among several options the short one is chosen.
    const p = await client.pay(required([option({ maxTimeoutSeconds: 3600 }), option({ maxTimeoutSeconds: 120 })]));
    expect(p.requirements.maxTimeoutSeconds).toBe(120);
    expect(signed).toHaveLength(1);
    // Without a policy the default cap (300 s, the official SDK's default) applies.
    const bare = createPaymentClient({ schemes: [scheme] });
    expect((await refusal(bare.pay(required([option({ maxTimeoutSeconds: 31_536_000 })])))).message).toContain("maxTimeoutSeconds=300");
    expect(signed).toHaveLength(1);
    expect((await bare.pay(required([option({ maxTimeoutSeconds: 300 })]))).validUntil).toBe(T0 + 300); // the signed validBefore
    expect(() => spendingPolicy({ maxTimeoutSeconds: 0 })).toThrow("maxTimeoutSeconds: expected a positive integer");
  });

  it("a scheme client that signs beyond the cap: dropped unsent, refused, the reservation released", async () => {
    const { scheme, signed, clock } = setup({ validBefore: (now) => String(now + 31_536_000) });
    const policy = spendingPolicy({ budget: { [key]: "1000000" }, now: () => clock.t });
    const e = await refusal(createPaymentClient({ schemes: [scheme], policy }).pay(required([option()])));
    expect(e.code).toBe("max_timeout_exceeded");
    expect(e.message).toContain(`valid until ${T0 + 31_536_000} (31536000s from now), beyond the limit maxTimeoutSeconds=300; it was not sent`);
    expect(signed).toHaveLength(1);
    expect(policy.reserved().assets).toEqual({});
    expect(policy.outstanding()).toEqual([]);
    // A validBefore that is not a finite number is refused too.
    const huge = setup({ validBefore: () => "9".repeat(400) });
    const e2 = await refusal(createPaymentClient({ schemes: [huge.scheme], policy }).pay(required([option()])));
    expect(e2.code).toBe("max_timeout_exceeded");
  });

  it("handed-over payments stay counted until validBefore + grace, then are released lazily", async () => {
    const { scheme, clock } = setup();
    const policy = spendingPolicy({ budget: { [key]: "20000" }, now: () => clock.t, expiryGraceSeconds: 10 });
    const client = createPaymentClient({ schemes: [scheme], policy });
    const p1 = await client.pay(required([option({ maxTimeoutSeconds: 60 })]));
    clock.t += 30;
    const p2 = await client.pay(required([option({ maxTimeoutSeconds: 60 })]));
    expect(p1.reservationId).toBe("r1");
    expect(p1.validUntil).toBe(T0 + 60);
    expect(p2.validUntil).toBe(T0 + 90);
    expect(policy.outstanding().map((o) => [o.id, o.validUntil, o.payer])).toEqual([
      ["r1", T0 + 60, PAYER],
      ["r2", T0 + 90, PAYER],
    ]);
    expect((await refusal(client.pay(required([option()])))).code).toBe("budget_exceeded");
    clock.t = T0 + 69; // p1 past validBefore, inside the grace
    expect(policy.remaining().assets[key]).toBe("0");
    clock.t = T0 + 70;
    expect(policy.remaining().assets[key]).toBe("10000");
    expect(policy.outstanding().map((o) => o.id)).toEqual(["r2"]);
    p2.commit(); // settled: expiry never gives it back
    clock.t = T0 + 1000;
    expect(policy.spent().assets[key]).toBe("10000");
    expect(policy.remaining().assets[key]).toBe("10000");
    // Commit after expiry-release is a no-op (the payment was already given back).
    p1.commit();
    expect(policy.spent().assets[key]).toBe("10000");
  });

  it("validity without a validBefore: maxTimeoutSeconds as signed; on Solana at least the blockhash lifetime", async () => {
    const { scheme, clock } = setup({ validBefore: () => undefined });
    const policy = spendingPolicy({ now: () => clock.t });
    const client = createPaymentClient({ schemes: [scheme], policy });
    const other = await client.pay(required([option({ network: "other:1", maxTimeoutSeconds: 45 })]));
    const sol = await client.pay(required([option({ network: "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", asset: "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", maxTimeoutSeconds: 45 })]));
    expect(other.validUntil).toBe(T0 + 45);
    expect(sol.validUntil).toBe(T0 + 150);
  });

  it("release(id) / commit(id): by the caller, once, only while counted", async () => {
    const { scheme, clock } = setup();
    const policy = spendingPolicy({ budget: { [key]: "30000" }, now: () => clock.t });
    const client = createPaymentClient({ schemes: [scheme], policy });
    const a = await client.pay(required([option()]));
    const b = await client.pay(required([option()]));
    expect(policy.release(a.reservationId!)).toBe(true);
    expect(policy.release(a.reservationId!)).toBe(false);
    expect(policy.commit(a.reservationId!)).toBe(false);
    expect(policy.commit(b.reservationId!)).toBe(true);
    expect(policy.release("r999")).toBe(false);
    expect(policy.spent().assets[key]).toBe("10000");
    expect(policy.remaining().assets[key]).toBe("20000");
  });

  it("resolveExpired decides expired payments: settled commits, unused releases, unknown asks again later", async () => {
    const { scheme, clock } = setup();
    const answers = new Map<string, "settled" | "unused" | "unknown">();
    const asked: string[] = [];
    const policy = spendingPolicy({
      budget: { [key]: "100000" },
      now: () => clock.t,
      expiryGraceSeconds: 0,
      resolveExpired: (p) => {
        asked.push(p.id);
        return answers.get(p.id) ?? "unknown";
      },
    });
    const client = createPaymentClient({ schemes: [scheme], policy });
    const settled = await client.pay(required([option({ amount: "1000" })]));
    const unused = await client.pay(required([option({ amount: "2000" })]));
    const unknown = await client.pay(required([option({ amount: "4000" })]));
    answers.set(settled.reservationId!, "settled");
    answers.set(unused.reservationId!, "unused");
    clock.t = T0 + 59;
    expect(policy.reserved().assets[key]).toBe("7000");
    expect(asked).toEqual([]);
    clock.t = T0 + 60;
    expect(policy.spent().assets[key]).toBe("1000");
    expect(policy.reserved().assets[key]).toBe("4000");
    expect(asked).toEqual(["r1", "r2", "r3"]);
    clock.t = T0 + 65; // "unknown" is not asked again at once
    policy.remaining();
    expect(asked).toHaveLength(3);
    answers.set(unknown.reservationId!, "unused");
    clock.t = T0 + 70;
    expect(policy.remaining().assets[key]).toBe("99000");
    expect(asked).toEqual(["r1", "r2", "r3", "r3"]);
  });

  it("an async resolveExpired that fails keeps the payment counted", async () => {
    const { scheme, clock } = setup();
    const policy = spendingPolicy({ now: () => clock.t, budget: { [key]: "10000" }, resolveExpired: async () => Promise.reject(new Error("rpc down")) });
    await createPaymentClient({ schemes: [scheme], policy }).pay(required([option()]));
    clock.t += 1000;
    expect(policy.reserved().assets[key]).toBe("10000");
    await new Promise((r) => setTimeout(r, 0));
    expect(policy.reserved().assets[key]).toBe("10000");
    expect(policy.outstanding()).toHaveLength(1);
  });
});
