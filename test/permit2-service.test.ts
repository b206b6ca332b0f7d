// exact with the Permit2 method through our whole stack on one anvil chain: our client
// (@tollgate/fetch) → our hono server pricing the devnet's plain ERC-20 with
// `assetTransferMethod: "permit2"` → our facilitator SERVICE, whose settlement engine carries the
// proxy call (guarded signer, write-ahead ledger, settle-once claim, receipt rules). The token
// must move from payer to payee exactly once per payment; refusals move nothing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPublicClient, createWalletClient, erc20Abi, http, maxUint256, toEventSelector, type Address, type Hex, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import type { PaymentPayload, PaymentRequirements } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { EXACT_PERMIT2_PROXY_ADDRESS, PERMIT2_ADDRESS, erc20PermitAbi, exactEvmClient, permit2PaymentKey, type ExactPermit2Payload } from "@tollgate/evm";
import { getPaymentReceipt, PaymentFailedError, wrapFetch } from "@tollgate/fetch";
import { officialFetch, readPaymentResponse, startOfficialServer, type OfficialServer } from "./support/official.ts";
import { startTollgateFacilitator, startTollgateServer, tollgateFetch, type TollgateFacilitator, type TollgateServer } from "./support/tollgate.ts";

const PRICE = "2500";
const USDC_PRICE = "10000";

let net: RunningLocalNetwork;
let chain: PublicClient;
let facilitator: TollgateFacilitator;
let permit2Server: TollgateServer;
let usdcServer: TollgateServer;
/** The official server advertising eip2612GasSponsoring (ours has no way to), settling through our facilitator. */
let sponsoringServer: OfficialServer;
/** The official server with the Permit2 method and no sponsoring extension: their 412 to compare ours with. */
let plainOfficialServer: OfficialServer;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 5 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  // Payers 0-2 approve Permit2 once (a direct approve from the payer key: they hold ETH on the
  // devnet); payer 3 never does; payer 4 pays in USDC (EIP-3009).
  for (const p of net.accounts.payers.slice(0, 3)) {
    const account = privateKeyToAccount(p.privateKey);
    const wallet = createWalletClient({ account, chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
    const hash = await wallet.writeContract({ address: net.plainToken.address, abi: erc20PermitAbi, functionName: "approve", args: [PERMIT2_ADDRESS, maxUint256] });
    expect((await chain.waitForTransactionReceipt({ hash })).status).toBe("success");
  }
  facilitator = await startTollgateFacilitator({ rpcUrl: net.rpcUrl, network: net.network, usdc: net.usdc, assets: [net.plainToken], privateKey: net.accounts.facilitator.privateKey });
  const payTo = net.accounts.payee.address;
  permit2Server = await startTollgateServer({
    facilitatorUrl: facilitator.url,
    network: net.network,
    usdc: net.usdc,
    assets: [{ ...net.plainToken, assetTransferMethod: "permit2" }],
    payTo,
    price: { amount: PRICE, asset: net.plainToken.address },
    framework: "hono",
  });
  usdcServer = await startTollgateServer({ facilitatorUrl: facilitator.url, network: net.network, usdc: net.usdc, payTo, price: USDC_PRICE, framework: "hono", path: "/usdc" });
  sponsoringServer = await startOfficialServer({
    facilitatorUrl: facilitator.url,
    network: net.network,
    payTo,
    asset: { address: net.plainToken.address, name: net.plainToken.name, version: net.plainToken.version },
    amount: PRICE,
    assetTransferMethod: "permit2",
    extensions: { eip2612GasSponsoring: { info: { description: "The facilitator accepts EIP-2612 gasless Permit to Permit2.", version: "1" } } },
  });
  plainOfficialServer = await startOfficialServer({
    facilitatorUrl: facilitator.url,
    network: net.network,
    payTo,
    asset: { address: net.plainToken.address, name: net.plainToken.name, version: net.plainToken.version },
    amount: PRICE,
    assetTransferMethod: "permit2",
  });
});

afterAll(async () => {
  await sponsoringServer?.close();
  await plainOfficialServer?.close();
  await permit2Server?.close();
  await usdcServer?.close();
  await facilitator?.close();
  await net?.stop();
});

const plainBalance = (who: Address) => chain.readContract({ address: net.plainToken.address, abi: erc20Abi, functionName: "balanceOf", args: [who] });
const usdcBalance = (who: Address) => chain.readContract({ address: net.usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [who] });
const payerKey = (i: number) => net.accounts.payers[i]!.privateKey;
const payerAddress = (i: number) => privateKeyToAccount(payerKey(i)).address;

/** The refusal reason a 402 carries (PAYMENT-REQUIRED's `error`). */
function errorOf(res: Response): string {
  const header = res.headers.get("PAYMENT-REQUIRED");
  if (!header) return `HTTP ${res.status}`;
  return (JSON.parse(Buffer.from(header, "base64").toString("utf8")) as { error?: string }).error ?? "";
}

function requirements(): PaymentRequirements {
  return {
    scheme: "exact",
    network: net.network,
    amount: PRICE,
    asset: net.plainToken.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 120,
    extra: { name: net.plainToken.name, version: net.plainToken.version, assetTransferMethod: "permit2" },
  };
}

async function signedPayload(payer: number): Promise<PaymentPayload> {
  const req = requirements();
  const payload = await exactEvmClient({ account: privateKeyToAccount(payerKey(payer)) }).createPayload(req, { x402Version: 2 });
  return { x402Version: 2, accepted: req, payload };
}

async function post(path: "verify" | "settle", paymentPayload: PaymentPayload) {
  const res = await fetch(`${facilitator.url}/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ x402Version: 2, paymentPayload, paymentRequirements: paymentPayload.accepted }),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

const SETTLED = toEventSelector("Settled()");
const TRANSFER = toEventSelector("Transfer(address,address,uint256)");

describe("exact Permit2 through our facilitator service", () => {
  it("our client → our hono server → our facilitator: the plain token moves from payer to payee once, in one proxy call written ahead", async () => {
    const payer = payerAddress(0);
    const payee = net.accounts.payee.address;
    const [payerBefore, payeeBefore] = [await plainBalance(payer), await plainBalance(payee)];
    const res = await tollgateFetch({ privateKey: payerKey(0) })(permit2Server.paidUrl);
    expect(res.status, errorOf(res)).toBe(200);
    expect(await res.json()).toEqual({ ok: true, path: "/paid" });
    const receipt = getPaymentReceipt(res)?.receipt;
    expect(receipt).toMatchObject({ success: true, network: net.network });
    const hash = receipt!.transaction as Hex;
    expect(await plainBalance(payer)).toBe(payerBefore - BigInt(PRICE));
    expect(await plainBalance(payee)).toBe(payeeBefore + BigInt(PRICE));

    // Sent by the facilitator's key to the proxy, with the proxy's log and the token's Transfer.
    const tx = await chain.getTransactionReceipt({ hash });
    expect(tx.from.toLowerCase()).toBe(facilitator.address.toLowerCase());
    expect(tx.to?.toLowerCase()).toBe(EXACT_PERMIT2_PROXY_ADDRESS.toLowerCase());
    expect(tx.logs.filter((l) => l.address.toLowerCase() === EXACT_PERMIT2_PROXY_ADDRESS.toLowerCase() && l.topics[0] === SETTLED)).toHaveLength(1);
    expect(tx.logs.filter((l) => l.address.toLowerCase() === net.plainToken.address.toLowerCase() && l.topics[0] === TRANSFER)).toHaveLength(1);

    // The ledger wrote the transaction ahead under the payment's settle-once key, and settled it.
    const rows = await facilitator.ledger.sql.query<{ payment_key: string; transaction_hash: string; outcome: string | null }>(
      `SELECT payment_key, transaction_hash, outcome FROM ${facilitator.ledger.schema}.payment_transactions WHERE transaction_hash = $1`,
      [hash],
    );
    expect(rows).toHaveLength(1);
    const key = rows[0]!.payment_key;
    expect(key).toMatch(new RegExp(`^${net.network}\\|${net.plainToken.address.toLowerCase()}\\|${payer.toLowerCase()}\\|[0-9]+$`));
    expect(await facilitator.ledger.get(key)).toMatchObject({ status: "settled", transaction: hash, answered: true });
  });

  it("20 concurrent /settle of one payload: exactly one success and one transfer; the rest are told duplicate_settlement", async () => {
    const payload = await signedPayload(1);
    const payer = payerAddress(1);
    const payee = net.accounts.payee.address;
    const [payerBefore, payeeBefore] = [await plainBalance(payer), await plainBalance(payee)];
    const fromBlock = await chain.getBlockNumber({ cacheTime: 0 });
    const answers = await Promise.all(Array.from({ length: 20 }, () => post("settle", payload)));
    const successes = answers.filter((a) => a.success === true);
    expect(successes).toHaveLength(1);
    for (const a of answers.filter((x) => x.success !== true)) expect(a.errorReason).toBe("duplicate_settlement");
    expect(await plainBalance(payer)).toBe(payerBefore - BigInt(PRICE));
    expect(await plainBalance(payee)).toBe(payeeBefore + BigInt(PRICE));
    const transfers = await chain.getLogs({ address: net.plainToken.address, event: erc20Abi.find((e) => e.type === "event" && e.name === "Transfer")!, args: { from: payer }, fromBlock });
    expect(transfers).toHaveLength(1);
    expect(transfers[0]!.transactionHash).toBe(successes[0]!.transaction);
  });

  it("a replayed payload is refused (at the facilitator and at the server) and moves nothing", async () => {
    // Capture the PAYMENT-SIGNATURE header of one paid request, then send it again.
    let paymentHeader: string | undefined;
    const capturing: typeof fetch = async (input, init) => {
      const h = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
      paymentHeader = h.get("PAYMENT-SIGNATURE") ?? paymentHeader;
      return fetch(input, init);
    };
    const pay = wrapFetch(capturing, { schemes: [exactEvmClient({ account: privateKeyToAccount(payerKey(2)) })] }) as typeof fetch;
    const first = await pay(permit2Server.paidUrl);
    expect(first.status, errorOf(first)).toBe(200);
    expect(paymentHeader).toBeTruthy();
    const payer = payerAddress(2);
    const payerBefore = await plainBalance(payer);

    const replay = await fetch(permit2Server.paidUrl, { headers: { "PAYMENT-SIGNATURE": paymentHeader! } });
    expect(replay.status).toBe(402);
    expect(errorOf(replay)).toMatch(/^(duplicate_settlement|permit2_invalid_nonce)/);

    const payload = JSON.parse(Buffer.from(paymentHeader!, "base64").toString("utf8")) as PaymentPayload;
    expect(await post("verify", payload)).toMatchObject({ isValid: false, invalidReason: "permit2_invalid_nonce" });
    expect(await post("settle", payload)).toMatchObject({ success: false, errorReason: "duplicate_settlement" });
    expect(await plainBalance(payer)).toBe(payerBefore);
  });

  it("no Permit2 allowance: permit2_allowance_required from the server and the facilitator, and nothing moves", async () => {
    const payer = payerAddress(3);
    const before = await plainBalance(payer);
    expect(before).toBeGreaterThan(BigInt(PRICE));
    // Our client reports the server's refusal as a failed payment that charged nothing.
    const refused = await tollgateFetch({ privateKey: payerKey(3) })(permit2Server.paidUrl).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(PaymentFailedError);
    // schemes/exact/scheme_exact_evm.md, Permit2 verification step 2: 412 Precondition Failed.
    expect((refused as PaymentFailedError).status).toBe(412);
    expect((refused as PaymentFailedError).reason).toMatch(/^permit2_allowance_required/);
    expect((refused as PaymentFailedError).message).toContain(`approve Permit2 (${PERMIT2_ADDRESS}) once`);
    expect((refused as PaymentFailedError).charged).not.toBe(true);
    const payload = await signedPayload(3);
    expect(await post("verify", payload)).toMatchObject({ isValid: false, invalidReason: "permit2_allowance_required" });
    expect(await post("settle", payload)).toMatchObject({ success: false, errorReason: "permit2_allowance_required" });
    expect(await plainBalance(payer)).toBe(before);
    // Nothing was written ahead for it.
    const auth = (payload.payload as unknown as ExactPermit2Payload).permit2Authorization;
    const key = permit2PaymentKey(net.network, net.plainToken.address, payer, auth.nonce);
    const rows = await facilitator.ledger.sql.query(`SELECT 1 FROM ${facilitator.ledger.schema}.payment_transactions WHERE payment_key = $1`, [key]);
    expect(rows).toHaveLength(0);
  });

  it("the official @x402/fetch client gets the same 412 from our server as from the official one, and nothing moves", async () => {
    const key = await freshPayer(10_000n);
    const payer = privateKeyToAccount(key).address;
    const theirs = await officialFetch({ privateKey: key })(plainOfficialServer.paidUrl);
    const ours = await officialFetch({ privateKey: key })(permit2Server.paidUrl);
    for (const res of [theirs, ours]) {
      expect(res.status, errorOf(res)).toBe(412);
      expect(errorOf(res)).toMatch(/^permit2_allowance_required/);
      // Both carry the offers again, as a 402 would.
      const required = JSON.parse(Buffer.from(res.headers.get("PAYMENT-REQUIRED")!, "base64").toString("utf8")) as { accepts: PaymentRequirements[] };
      expect(required.accepts[0]).toMatchObject({ scheme: "exact", asset: net.plainToken.address, extra: { assetTransferMethod: "permit2" } });
    }
    expect(await plainBalance(payer)).toBe(10_000n);
  });

  it("EIP-3009 USDC through the same service still settles", async () => {
    const payer = payerAddress(4);
    const payee = net.accounts.payee.address;
    const [payerBefore, payeeBefore] = [await usdcBalance(payer), await usdcBalance(payee)];
    const res = await tollgateFetch({ privateKey: payerKey(4) })(usdcServer.paidUrl);
    expect(res.status, errorOf(res)).toBe(200);
    expect(await usdcBalance(payer)).toBe(payerBefore - BigInt(USDC_PRICE));
    expect(await usdcBalance(payee)).toBe(payeeBefore + BigInt(USDC_PRICE));
  });
});

/** A fresh payer holding `tokens` of the plain token, no ETH, and no Permit2 allowance. */
async function freshPayer(tokens: bigint) {
  const key = generatePrivateKey();
  const funder = createWalletClient({ account: privateKeyToAccount(payerKey(0)), chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
  await chain.waitForTransactionReceipt({ hash: await funder.writeContract({ address: net.plainToken.address, abi: erc20Abi, functionName: "transfer", args: [privateKeyToAccount(key).address, tokens] }) });
  return key;
}

/** Our paying fetch, with chain reads for the eip2612GasSponsoring extension when `reads`; records the payloads it sent. */
function sponsoringFetch(key: Hex, reads: boolean, sent: PaymentPayload[]): typeof fetch {
  const capturing: typeof fetch = async (input, init) => {
    const header = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined)).get("PAYMENT-SIGNATURE");
    if (header) sent.push(JSON.parse(Buffer.from(header, "base64").toString("utf8")) as PaymentPayload);
    return fetch(input, init);
  };
  const client = exactEvmClient({ account: privateKeyToAccount(key), ...(reads ? { chainReader: () => chain } : {}) });
  return wrapFetch(capturing, { schemes: [client] }) as typeof fetch;
}

const SETTLED_WITH_PERMIT = toEventSelector("SettledWithPermit()");

describe("eip2612GasSponsoring from our client", () => {
  it("without chain reads the client adds no permit: the echoed advertisement is not a permit, and the payer without allowance is refused, nothing moves", async () => {
    const key = await freshPayer(10_000n);
    const sent: PaymentPayload[] = [];
    const refused = await sponsoringFetch(key, false, sent)(sponsoringServer.paidUrl).then(
      (r) => r,
      (e: unknown) => e,
    );
    expect(sent).toHaveLength(1);
    expect((sent[0]!.extensions?.eip2612GasSponsoring as { info: Record<string, unknown> }).info).not.toHaveProperty("signature");
    // Not paid (their server answers a failed verification with 402 or 412).
    const status = refused instanceof Response ? refused.status : (refused as PaymentFailedError).status;
    expect([402, 412]).toContain(status);
    expect(await post("verify", sent[0]!)).toMatchObject({ isValid: false, invalidReason: "permit2_allowance_required" });
    expect(await plainBalance(privateKeyToAccount(key).address)).toBe(10_000n);
  });

  it("a payer with no ETH and no allowance pays: the client signs an EIP-2612 permit for exactly the amount, our facilitator settles it with settleWithPermit", async () => {
    const key = await freshPayer(10_000n);
    const payer = privateKeyToAccount(key).address;
    const payee = net.accounts.payee.address;
    const payeeBefore = await plainBalance(payee);
    const sent: PaymentPayload[] = [];
    const res = await sponsoringFetch(key, true, sent)(sponsoringServer.paidUrl);
    expect(res.status).toBe(200);
    const info = (sent[0]!.extensions?.eip2612GasSponsoring as { info: Record<string, unknown> }).info;
    expect(info).toMatchObject({ from: payer, asset: net.plainToken.address, spender: PERMIT2_ADDRESS, amount: PRICE, nonce: "0", version: "1" });
    expect(info.deadline).toBe((sent[0]!.payload as unknown as ExactPermit2Payload).permit2Authorization.deadline);
    const receipt = readPaymentResponse(res);
    expect(receipt).toMatchObject({ success: true });
    const tx = await chain.getTransactionReceipt({ hash: receipt!.transaction as Hex });
    expect(tx.from.toLowerCase()).toBe(facilitator.address.toLowerCase());
    expect(tx.logs.some((l) => l.address.toLowerCase() === EXACT_PERMIT2_PROXY_ADDRESS.toLowerCase() && l.topics[0] === SETTLED_WITH_PERMIT)).toBe(true);
    expect(await plainBalance(payer)).toBe(10_000n - BigInt(PRICE));
    expect(await plainBalance(payee)).toBe(payeeBefore + BigInt(PRICE));
    expect(await chain.getBalance({ address: payer })).toBe(0n);
    // Exactly the amount was approved, and it was used up: no standing allowance is left behind.
    expect(await chain.readContract({ address: net.plainToken.address, abi: erc20Abi, functionName: "allowance", args: [payer, PERMIT2_ADDRESS] })).toBe(0n);
  });

  it("a payer whose allowance covers the amount gets no permit (plain settle)", async () => {
    const sent: PaymentPayload[] = [];
    const res = await sponsoringFetch(payerKey(0), true, sent)(sponsoringServer.paidUrl);
    expect(res.status).toBe(200);
    expect((sent[0]!.extensions?.eip2612GasSponsoring as { info: Record<string, unknown> }).info).not.toHaveProperty("signature");
    const tx = await chain.getTransactionReceipt({ hash: readPaymentResponse(res)!.transaction as Hex });
    expect(tx.logs.some((l) => l.topics[0] === SETTLED_WITH_PERMIT)).toBe(false);
    expect(tx.logs.some((l) => l.topics[0] === SETTLED)).toBe(true);
  });
});
