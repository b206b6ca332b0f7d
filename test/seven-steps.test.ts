// The x402 flow end to end on a real anvil chain, over HTTP, through OUR server (every adapter)
// and OUR facilitator service, asserting each of the specification's steps; then every way a
// payment can be wrong, sent as raw HTTP to the server and to the facilitator: each must be
// refused with its reason code, and no transaction may be sent and no balance may move.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createPublicClient,
  erc20Abi,
  http,
  parseEventLogs,
  verifyTypedData,
  type Address,
  type Hex,
  type PublicClient,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import {
  Reason,
  createPaymentClient,
  decodeBase64Json,
  encodeBase64Json,
  parsePaymentRequired,
  parseSettleResponse,
  type FacilitatorClient,
  type PaymentPayload,
  type PaymentRequired,
  type PaymentRequiredV1,
  type PaymentRequirements,
  type SettleResponse,
  type VerifyResponse,
} from "@tollgate/core";
import { exactEvmClient, signExactEvmAuthorization, transferWithAuthorizationTypes } from "@tollgate/evm";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { localChain } from "./support/official.ts";
import { startTollgateFacilitator, startTollgateServer, type Framework, type TollgateFacilitator, type TollgateServer } from "./support/tollgate.ts";

const AMOUNT = "10000"; // 0.01 USDC
const FRAMEWORKS: Framework[] = ["express", "hono", "fastify", "next"];

let net: RunningLocalNetwork;
let chain: PublicClient;
let facilitator: TollgateFacilitator;
const servers = {} as Record<Framework, TollgateServer>;
/** What each server asked the facilitator, in order. */
const calls: { framework: Framework; kind: "verify" | "settle"; result: VerifyResponse | SettleResponse }[] = [];

function recording(framework: Framework) {
  return (client: FacilitatorClient): FacilitatorClient => ({
    supported: () => client.supported(),
    verify: async (p, r) => {
      const result = await client.verify(p, r);
      calls.push({ framework, kind: "verify", result });
      return result;
    },
    settle: async (p, r) => {
      const result = await client.settle(p, r);
      calls.push({ framework, kind: "settle", result });
      return result;
    },
  });
}

beforeAll(async () => {
  // One payer per adapter, then one for the v1 client and one for the refusals.
  net = await startLocalNetwork({ payers: FRAMEWORKS.length + 2 });
  chain = createPublicClient({ chain: localChain(net.chainId, net.rpcUrl), transport: http(net.rpcUrl) });
  facilitator = await startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, privateKey: net.accounts.facilitator.privateKey });
  for (const framework of FRAMEWORKS) {
    servers[framework] = await startTollgateServer({
      facilitatorUrl: facilitator.url,
      network: net.network,
      usdc: net.usdc,
      payTo: net.accounts.payee.address,
      price: AMOUNT,
      framework,
      wrapFacilitator: recording(framework),
    });
  }
});

afterAll(async () => {
  for (const s of Object.values(servers)) await s.close();
  await facilitator?.close();
  await net?.stop();
});

const balanceOf = (owner: Address) =>
  chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [owner] });

/** Everything a refused payment must leave untouched: balances and the facilitator's transaction count. */
async function snapshot(extra: Address[] = []) {
  const owners = [net.accounts.payee.address, ...net.accounts.payers.map((p) => p.address), ...extra];
  const balances = await Promise.all(owners.map(balanceOf));
  const sent = await chain.getTransactionCount({ address: facilitator.address });
  return { balances: Object.fromEntries(owners.map((o, i) => [o, balances[i]!.toString()])), sent };
}

function decodeHeader<T>(res: Response, name: string): T {
  const header = res.headers.get(name);
  expect(header, `${name} header`).toBeTruthy();
  const decoded = decodeBase64Json(header, name);
  if (!decoded.ok) throw new Error(decoded.message);
  return decoded.value as T;
}

describe.each(FRAMEWORKS)("the seven steps through the %s adapter", (framework) => {
  it("402 → signed payload → retry → verify + settle → 200 with receipt → balances moved", async () => {
    const server = servers[framework];
    const payer = net.accounts.payers[FRAMEWORKS.indexOf(framework)]!;
    const account = privateKeyToAccount(payer.privateKey);
    const payee = net.accounts.payee.address;
    const before = { payer: await balanceOf(payer.address), payee: await balanceOf(payee) };
    const firstCall = calls.length;

    // 1. The client asks; the server answers 402 with PAYMENT-REQUIRED.
    const first = await fetch(server.paidUrl);
    expect(first.status).toBe(402);
    const parsed = parsePaymentRequired(decodeHeader(first, "PAYMENT-REQUIRED"));
    if (!parsed.ok) throw new Error(parsed.message);
    const required = parsed.value;
    expect(required.x402Version).toBe(2);
    expect(required.resource.url).toBe(server.paidUrl);
    expect(required.accepts).toEqual([
      { scheme: "exact", network: net.network, amount: AMOUNT, asset: net.usdc.address, payTo: payee, maxTimeoutSeconds: 60, extra: { name: net.usdc.name, version: net.usdc.version } },
    ]);

    // 2. The client signs an EIP-3009 authorization for exactly that requirement.
    const payment = await createPaymentClient({ schemes: [exactEvmClient({ account })] }).pay(required, { url: server.paidUrl });
    expect(payment.header.name).toBe("PAYMENT-SIGNATURE");
    const payload = decodeBase64Json(payment.header.value, "PAYMENT-SIGNATURE");
    if (!payload.ok) throw new Error(payload.message);
    const sent = payload.value as PaymentPayload;
    expect(sent.x402Version).toBe(2);
    expect(sent.accepted).toEqual(required.accepts[0]);
    const { authorization, signature } = sent.payload as { authorization: Record<string, string>; signature: Hex };
    expect(authorization).toMatchObject({ from: payer.address, to: payee, value: AMOUNT });
    const now = BigInt(Math.floor(Date.now() / 1000));
    expect(BigInt(authorization.validAfter!)).toBeLessThanOrEqual(now);
    expect(BigInt(authorization.validBefore!)).toBeGreaterThan(now);
    expect(authorization.nonce).toMatch(/^0x[0-9a-f]{64}$/);
    const signedByPayer = await verifyTypedData({
      address: payer.address,
      domain: { name: net.usdc.name, version: net.usdc.version, chainId: net.chainId, verifyingContract: net.usdc.address },
      types: transferWithAuthorizationTypes,
      primaryType: "TransferWithAuthorization",
      message: {
        from: authorization.from as Address,
        to: authorization.to as Address,
        value: BigInt(authorization.value!),
        validAfter: BigInt(authorization.validAfter!),
        validBefore: BigInt(authorization.validBefore!),
        nonce: authorization.nonce as Hex,
      },
      signature,
    });
    expect(signedByPayer).toBe(true);

    // 3. The client retries with the PAYMENT-SIGNATURE header.
    const paid = await fetch(server.paidUrl, { headers: { [payment.header.name]: payment.header.value } });

    // 4. The server had the facilitator verify, then settle.
    const made = calls.slice(firstCall).filter((c) => c.framework === framework);
    expect(made.map((c) => c.kind)).toEqual(["verify", "settle"]);
    expect(made[0]!.result).toMatchObject({ isValid: true, payer: payer.address });
    expect(made[1]!.result).toMatchObject({ success: true, network: net.network, payer: payer.address });

    // 5. 200 with the resource and PAYMENT-RESPONSE naming a transaction that succeeded on chain.
    expect(paid.status).toBe(200);
    expect(await paid.json()).toEqual({ ok: true, path: "/paid" });
    const receipt = parseSettleResponse(decodeHeader(paid, "PAYMENT-RESPONSE"));
    if (!receipt.ok) throw new Error(receipt.message);
    expect(receipt.value).toMatchObject({ success: true, network: net.network, payer: payer.address });
    expect(receipt.value.transaction).toBe((made[1]!.result as SettleResponse).transaction);
    const tx = await chain.getTransactionReceipt({ hash: receipt.value.transaction as Hex });
    expect(tx.status).toBe("success");
    expect(tx.from.toLowerCase()).toBe(facilitator.address.toLowerCase());
    expect(tx.to?.toLowerCase()).toBe(net.usdc.address.toLowerCase());
    const transfers = parseEventLogs({ abi: erc20Abi, eventName: "Transfer", logs: tx.logs });
    expect(transfers.map((t) => t.args)).toEqual([{ from: payer.address, to: payee, value: BigInt(AMOUNT) }]);

    // 6–7. The payer paid exactly the amount, the payee received exactly it.
    expect(await balanceOf(payer.address)).toBe(before.payer - BigInt(AMOUNT));
    expect(await balanceOf(payee)).toBe(before.payee + BigInt(AMOUNT));
  });
});

describe.each(FRAMEWORKS)("a v1 client through the %s adapter", (framework) => {
  it("pays with X-PAYMENT on network \"anvil\" and gets 200 with X-PAYMENT-RESPONSE", async () => {
    const server = servers[framework];
    const payer = net.accounts.payers[FRAMEWORKS.length]!;
    const before = await balanceOf(payer.address);
    const first = await fetch(server.paidUrl);
    expect(first.status).toBe(402);
    const body = (await first.json()) as PaymentRequiredV1;
    expect(body.x402Version).toBe(1);
    expect(body.accepts[0]).toMatchObject({ scheme: "exact", network: "anvil", maxAmountRequired: AMOUNT, payTo: net.accounts.payee.address });

    const payment = await createPaymentClient({ schemes: [exactEvmClient({ account: privateKeyToAccount(payer.privateKey) })] }).pay(body);
    expect(payment.header.name).toBe("X-PAYMENT");
    expect(payment.payload).toMatchObject({ x402Version: 1, scheme: "exact", network: "anvil" });

    const paid = await fetch(server.paidUrl, { headers: { "X-PAYMENT": payment.header.value } });
    expect(paid.status).toBe(200);
    expect(paid.headers.get("PAYMENT-RESPONSE")).toBeNull();
    const receipt = decodeHeader<SettleResponse>(paid, "X-PAYMENT-RESPONSE");
    expect(receipt).toMatchObject({ success: true, network: "anvil" });
    expect((await chain.getTransactionReceipt({ hash: receipt.transaction as Hex })).status).toBe("success");
    expect(await balanceOf(payer.address)).toBe(before - BigInt(AMOUNT));
  });
});

describe("refused payments move nothing", () => {
  let required: PaymentRequired;
  let requirements: PaymentRequirements;
  const payer = () => net.accounts.payers[FRAMEWORKS.length + 1]!;
  const now = () => Math.floor(Date.now() / 1000);

  beforeAll(async () => {
    const res = await fetch(servers.hono.paidUrl);
    required = decodeHeader<PaymentRequired>(res, "PAYMENT-REQUIRED");
    requirements = required.accepts[0]!;
  });

  /** A payload as a client would send it, signed by `key` over `signed` (default: the real requirements). */
  async function payload(o: { key?: Hex; signed?: Partial<PaymentRequirements>; accepted?: PaymentRequirements; now?: number; skew?: number } = {}): Promise<PaymentPayload> {
    const account = privateKeyToAccount(o.key ?? payer().privateKey);
    const inner = await signExactEvmAuthorization(account, { ...requirements, ...o.signed }, { now: o.now ?? now(), ...(o.skew !== undefined ? { skew: o.skew } : {}) });
    return { x402Version: 2, resource: required.resource, accepted: o.accepted ?? requirements, payload: inner as unknown as Record<string, unknown> };
  }

  const postJson = (path: string, body: unknown) =>
    fetch(`${facilitator.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) });

  const payServer = (p: PaymentPayload) => fetch(servers.hono.paidUrl, { headers: { "PAYMENT-SIGNATURE": encodeBase64Json(p) } });

  interface Refusal {
    name: string;
    build: () => Promise<{ payload: PaymentPayload; requirements?: PaymentRequirements; fresh?: Address }>;
    /** Reason in the server's 402 and in the facilitator's verify/settle answers. */
    server: string;
    facilitator: string;
  }

  const stranger = generatePrivateKey();
  let replayTx = "";
  const refusals: Refusal[] = [
    {
      name: "tampered amount",
      build: async () => {
        const p = await payload();
        (p.payload.authorization as { value: string }).value = (BigInt(AMOUNT) * 100n).toString();
        return { payload: p };
      },
      server: Reason.evmValueMismatch,
      facilitator: Reason.evmValueMismatch,
    },
    {
      name: "wrong payTo",
      build: async () => ({ payload: await payload({ signed: { payTo: net.accounts.deployer.address } }) }),
      server: Reason.evmRecipientMismatch,
      facilitator: Reason.evmRecipientMismatch,
    },
    {
      name: "expired",
      build: async () => ({ payload: await payload({ now: now() - 1_000 }) }),
      server: Reason.evmValidBefore,
      facilitator: Reason.evmValidBefore,
    },
    {
      name: "not yet valid",
      build: async () => ({ payload: await payload({ now: now() + 1_000, skew: 0 }) }),
      server: Reason.evmValidAfter,
      facilitator: Reason.evmValidAfter,
    },
    {
      name: "signed for another chain id",
      build: async () => ({ payload: await payload({ signed: { network: "eip155:1" } }) }),
      server: Reason.evmSignature,
      facilitator: Reason.evmSignature,
    },
    {
      // The server compares `accepted` with what it offered; the facilitator reads the token's domain on chain.
      name: "wrong token name/version",
      build: async () => {
        const wrong = { ...requirements, extra: { name: "USDC", version: "1" } };
        return { payload: await payload({ signed: wrong, accepted: wrong }), requirements: wrong };
      },
      server: Reason.requirementsMismatch,
      facilitator: Reason.evmTokenDomainMismatch,
    },
    {
      name: "insufficient balance",
      build: async () => ({ payload: await payload({ key: stranger }), fresh: privateKeyToAccount(stranger).address }),
      server: Reason.insufficientFunds,
      facilitator: Reason.insufficientFunds,
    },
    {
      name: "signature by another key",
      build: async () => {
        const p = await payload({ key: stranger });
        (p.payload.authorization as { from: string }).from = payer().address;
        return { payload: p };
      },
      server: Reason.evmSignature,
      facilitator: Reason.evmSignature,
    },
    {
      // Settled once (moving money, before the snapshot), then sent again.
      name: "reused nonce (replay)",
      build: async () => {
        const p = await payload();
        const first = await payServer(p);
        expect(first.status).toBe(200);
        replayTx = decodeHeader<SettleResponse>(first, "PAYMENT-RESPONSE").transaction;
        return { payload: p };
      },
      server: Reason.evmNonceUsed,
      facilitator: Reason.evmNonceUsed,
    },
  ];

  it.each(refusals)("$name: server 402 and facilitator verify/settle refuse with the reason, nothing moves", async (c) => {
    const built = await c.build();
    const before = await snapshot(built.fresh ? [built.fresh] : []);

    const res = await payServer(built.payload);
    expect(res.status).toBe(402);
    expect(res.headers.get("PAYMENT-RESPONSE")).toBeNull();
    const answer = decodeHeader<PaymentRequired>(res, "PAYMENT-REQUIRED");
    expect(answer.error?.split(":")[0]).toBe(c.server);

    const body = { x402Version: 2, paymentPayload: built.payload, paymentRequirements: built.requirements ?? requirements };
    const verify = await postJson("/verify", body);
    expect(verify.status).toBe(200);
    expect(await verify.json()).toMatchObject({ isValid: false, invalidReason: c.facilitator });

    const settle = await postJson("/settle", body);
    const settled = (await settle.json()) as SettleResponse;
    if (c.name.startsWith("reused nonce")) {
      // The same authorization settled and answered before: one payment buys one response, so a
      // second /settle is refused (naming the first transaction for audit) and sends nothing.
      expect(settle.status).toBe(200);
      expect(settled).toMatchObject({ success: false, errorReason: Reason.duplicateSettlement, transaction: "", extensions: { "tollgate-settlement": { status: "settled", transaction: replayTx } } });
    } else {
      expect(settle.status).toBe(200);
      expect(settled).toMatchObject({ success: false, errorReason: c.facilitator, transaction: "" });
    }

    expect(await snapshot(built.fresh ? [built.fresh] : [])).toEqual(before);
  });

  it("malformed headers get 400 invalid_payload from the server, nothing moves", async () => {
    const before = await snapshot();
    const good = await payload();
    const { accepted: _dropped, ...withoutAccepted } = good;
    const headers: [string, string, RegExp][] = [
      ["malformed base64", "%%%not*base64%%%", /not valid base64/],
      ["malformed JSON", Buffer.from("{not json").toString("base64"), /not valid JSON/],
      ["missing fields", encodeBase64Json(withoutAccepted), /accepted/],
      ["oversized header", "A".repeat(20 * 1024), /limit/],
    ];
    for (const [name, value, message] of headers) {
      const res = await fetch(servers.hono.paidUrl, { headers: { "PAYMENT-SIGNATURE": value } });
      expect(res.status, name).toBe(400);
      const body = (await res.json()) as { reason: string; error: string };
      expect(body.reason, name).toBe(Reason.invalidPayload);
      expect(body.error, name).toMatch(message);
    }
    expect(await snapshot()).toEqual(before);
  });

  it("malformed bodies get 4xx with the reason from the facilitator, nothing moves", async () => {
    const before = await snapshot();
    const good = await payload();
    const { amount: _a, ...requirementsWithoutAmount } = requirements;
    const { accepted: _b, ...payloadWithoutAccepted } = good;
    const { signature: _c, ...innerWithoutSignature } = good.payload;
    const cases: [string, unknown, number, string][] = [
      ["malformed JSON", "{not json", 400, Reason.invalidPayload],
      ["missing paymentRequirements.amount", { x402Version: 2, paymentPayload: good, paymentRequirements: requirementsWithoutAmount }, 400, Reason.invalidPaymentRequirements],
      ["missing paymentPayload.accepted", { x402Version: 2, paymentPayload: payloadWithoutAccepted, paymentRequirements: requirements }, 400, Reason.invalidPayload],
      ["missing payload.signature", { x402Version: 2, paymentPayload: { ...good, payload: innerWithoutSignature }, paymentRequirements: requirements }, 200, Reason.invalidPayload],
      ["oversized body", { x402Version: 2, paymentPayload: { ...good, padding: "A".repeat(100 * 1024) }, paymentRequirements: requirements }, 413, Reason.invalidPayload],
    ];
    for (const [name, body, status, reason] of cases) {
      for (const path of ["/verify", "/settle"]) {
        const res = await postJson(path, body);
        expect(res.status, `${name} ${path}`).toBe(status);
        const answer = (await res.json()) as { invalidReason?: string; errorReason?: string; isValid?: boolean; success?: boolean };
        expect(path === "/verify" ? answer.invalidReason : answer.errorReason, `${name} ${path}`).toBe(reason);
        expect(answer.isValid ?? answer.success, `${name} ${path}`).toBe(false);
      }
    }
    expect(await snapshot()).toEqual(before);
  });
});
