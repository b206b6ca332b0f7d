// Unit tests of the exact EVM scheme that need no chain: pricing, payload creation, payload parsing.
import { Reason, type PaymentRequirements } from "@tollgate/core";
import { createPublicClient, custom, decodeFunctionData, encodeFunctionData, getAddress, recoverTypedDataAddress, type Hex, type PublicClient } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { describe, expect, it } from "vitest";
import { batchSettleItem, encodeBatchSettle } from "../src/exact/encode.ts";
import {
  batchSettlerAbi,
  createPayerBackoff,
  encodeTransferWithAuthorization,
  exactEvmClient,
  exactEvmFacilitator,
  normalizeSignature,
  redactRpcUrl,
  exactEvmServer,
  eip3009Abi,
  parseExactEvmPayload,
  transferWithAuthorizationTypes,
  type EvmAssetInfo,
  type ExactEvmPayload,
} from "../src/index.ts";

const USDC_BASE: EvmAssetInfo = {
  network: "eip155:8453",
  address: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
  decimals: 6,
  name: "USD Coin",
  version: "2",
  symbol: "USDC",
};
const EURC_BASE: EvmAssetInfo = { ...USDC_BASE, address: "0x60a3E35Cc302bFA44Cb288Bc5a4F316Fdb1adb42", name: "EURC", symbol: "EURC" };
const DAI_LOCAL: EvmAssetInfo = { ...USDC_BASE, network: "eip155:31337", address: "0x0000000000000000000000000000000000000d41", decimals: 18, name: "Dai", version: "1", symbol: "DAI" };

describe("exactEvmServer.parsePrice", () => {
  const server = exactEvmServer({ assets: [EURC_BASE, USDC_BASE, DAI_LOCAL] });

  it("resolves dollar strings to the network's USDC with its EIP-712 domain", () => {
    expect(server.parsePrice("$0.01", "eip155:8453")).toEqual({
      amount: "10000",
      asset: USDC_BASE.address,
      extra: { name: "USD Coin", version: "2" },
    });
    expect(server.parsePrice("$1,000.5", "eip155:8453").amount).toBe("1000500000");
    expect(server.parsePrice("0.000001 USD", "eip155:8453").amount).toBe("1");
  });

  it("resolves a token symbol, and other USD stablecoins by their own decimals", () => {
    expect(server.parsePrice("2.5 EURC", "eip155:8453")).toMatchObject({ amount: "2500000", asset: EURC_BASE.address, extra: { name: "EURC" } });
    expect(server.parsePrice("$0.01", "eip155:31337")).toMatchObject({ amount: "10000000000000000", asset: getAddress(DAI_LOCAL.address) });
  });

  it("passes an asset amount through, validated and with the known domain filled in", () => {
    expect(server.parsePrice({ amount: "123", asset: USDC_BASE.address.toLowerCase() }, "eip155:8453")).toEqual({
      amount: "123",
      asset: USDC_BASE.address,
      extra: { name: "USD Coin", version: "2" },
    });
    const custom = server.parsePrice({ amount: "5", asset: "0x1111111111111111111111111111111111111111", extra: { name: "X", version: "9" } }, "eip155:1");
    expect(custom).toEqual({ amount: "5", asset: "0x1111111111111111111111111111111111111111", extra: { name: "X", version: "9" } });
    expect(() => server.parsePrice({ amount: "1.5", asset: USDC_BASE.address }, "eip155:8453")).toThrow(/price\.amount/);
    expect(() => server.parsePrice({ amount: "-1", asset: USDC_BASE.address }, "eip155:8453")).toThrow(/price\.amount/);
    expect(() => server.parsePrice({ amount: "1", asset: "0xnope" }, "eip155:8453")).toThrow(/price\.asset/);
  });

  it("refuses unknown networks, unknown symbols, inexact and malformed prices", () => {
    expect(() => server.parsePrice("$0.01", "eip155:10")).toThrow(/no USD stablecoin is configured for eip155:10/);
    expect(() => server.parsePrice("1 WETH", "eip155:8453")).toThrow(/no asset with symbol WETH/);
    expect(() => server.parsePrice("$0.0000001", "eip155:8453")).toThrow(/more than 6 decimal places/);
    expect(() => server.parsePrice("$abc", "eip155:8453")).toThrow(/not an amount/);
    expect(() => server.parsePrice(0.01 as unknown as string, "eip155:8453")).toThrow(/numbers lose precision/);
    expect(() => server.parsePrice("$0.01", "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp")).toThrow(/not an eip155 network/);
    expect(() => exactEvmServer({ assets: [] }).parsePrice("$0.01", "eip155:8453")).toThrow(/no USD stablecoin/);
  });

  it("fills a missing domain into requirements for known assets only", () => {
    const req: PaymentRequirements = { scheme: "exact", network: "eip155:8453", amount: "1", asset: USDC_BASE.address, payTo: USDC_BASE.address, maxTimeoutSeconds: 60 };
    expect(server.enhanceRequirements!(req, undefined).extra).toEqual({ name: "USD Coin", version: "2" });
    const other = { ...req, asset: "0x1111111111111111111111111111111111111111" };
    expect(server.enhanceRequirements!(other, undefined)).toBe(other);
  });
});

describe("exactEvmClient", () => {
  const account = privateKeyToAccount("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
  const requirements: PaymentRequirements = {
    scheme: "exact",
    network: "eip155:84532",
    amount: "10000",
    asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    payTo: "0x209693bc6afc0c5328ba36faf03c514ef312287c",
    maxTimeoutSeconds: 60,
    extra: { name: "USDC", version: "2" },
  };

  it("signs a TransferWithAuthorization that recovers to the account", async () => {
    const client = exactEvmClient({ account, now: () => 1_800_000_000 });
    expect(client.networks).toEqual(["eip155:*"]);
    expect(client.payer("eip155:84532")).toBe(account.address);
    const payload = (await client.createPayload(requirements, { x402Version: 2 })) as unknown as ExactEvmPayload;
    expect(payload.authorization).toEqual({
      from: account.address,
      to: getAddress(requirements.payTo),
      value: "10000",
      validAfter: String(1_800_000_000 - 600),
      validBefore: String(1_800_000_000 + 60),
      nonce: expect.stringMatching(/^0x[0-9a-f]{64}$/),
    });
    expect(payload.signature).toMatch(/^0x[0-9a-f]{130}$/);
    const recovered = await recoverTypedDataAddress({
      domain: { name: "USDC", version: "2", chainId: 84532, verifyingContract: requirements.asset as Hex },
      types: transferWithAuthorizationTypes,
      primaryType: "TransferWithAuthorization",
      message: { ...payload.authorization, value: 10000n, validAfter: BigInt(payload.authorization.validAfter), validBefore: BigInt(payload.authorization.validBefore) },
      signature: payload.signature,
    });
    expect(recovered).toBe(account.address);
    expect(parseExactEvmPayload(payload).ok).toBe(true);
  });

  it("uses a fresh random nonce each time", async () => {
    const client = exactEvmClient({ account });
    const a = (await client.createPayload(requirements, { x402Version: 2 })) as unknown as ExactEvmPayload;
    const b = (await client.createPayload(requirements, { x402Version: 2 })) as unknown as ExactEvmPayload;
    expect(a.authorization.nonce).not.toBe(b.authorization.nonce);
  });

  it("refuses requirements without the token's EIP-712 domain or with a bad network", async () => {
    const client = exactEvmClient({ account });
    await expect(client.createPayload({ ...requirements, extra: { version: "2" } }, { x402Version: 2 })).rejects.toThrow(/extra\.name and requirements\.extra\.version are required/);
    await expect(client.createPayload({ ...requirements, extra: undefined }, { x402Version: 2 })).rejects.toThrow(/extra\.name/);
    await expect(client.createPayload({ ...requirements, network: "solana:abc" }, { x402Version: 2 })).rejects.toThrow(/not an eip155 network/);
    await expect(client.createPayload({ ...requirements, payTo: "bob" }, { x402Version: 2 })).rejects.toThrow(/payTo/);
  });
});

describe("parseExactEvmPayload", () => {
  const good = {
    signature: `0x${"11".repeat(65)}`,
    authorization: {
      from: "0x857b06519E91e3A54538791bDbb0E22373e36b66",
      to: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
      value: "10000",
      validAfter: "1740672089",
      validBefore: "1740672154",
      nonce: `0x${"ab".repeat(32)}`,
    },
  };

  it("accepts the spec's shape and longer smart-wallet signatures", () => {
    expect(parseExactEvmPayload(good).ok).toBe(true);
    expect(parseExactEvmPayload({ ...good, signature: `0x${"22".repeat(200)}` }).ok).toBe(true);
  });

  it.each([
    [{ ...good, signature: "0x1234" }, "paymentPayload.payload.signature: expected at least 65 bytes"],
    [{ ...good, signature: `0x${"1".repeat(131)}` }, "paymentPayload.payload.signature: expected 0x-prefixed hex bytes"],
    [{ ...good, authorization: { ...good.authorization, value: "1.5" } }, "paymentPayload.payload.authorization.value"],
    [{ ...good, authorization: { ...good.authorization, validBefore: 1740672154 } }, "paymentPayload.payload.authorization.validBefore"],
    [{ ...good, authorization: { ...good.authorization, nonce: "0x1234" } }, "paymentPayload.payload.authorization.nonce: expected 0x followed by 32 bytes"],
    [{ ...good, authorization: { ...good.authorization, to: "0xdead" } }, "paymentPayload.payload.authorization.to: expected a 0x-prefixed 20-byte address"],
    [{ signature: good.signature }, "paymentPayload.payload.authorization"],
  ])("names the bad field (%#)", (value, message) => {
    const r = parseExactEvmPayload(value);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toContain(message);
  });

  it("encodes settlement with the (v, r, s) overload for 65-byte signatures, bytes otherwise", () => {
    const data = encodeTransferWithAuthorization(good.authorization as ExactEvmPayload["authorization"], `0x${"11".repeat(64)}1b`);
    const decoded = decodeFunctionData({ abi: eip3009Abi, data });
    expect(decoded.functionName).toBe("transferWithAuthorization");
    expect(decoded.args).toHaveLength(9);
    expect(decoded.args![6]).toBe(27);
    const long = encodeTransferWithAuthorization(good.authorization as ExactEvmPayload["authorization"], `0x${"22".repeat(100)}`);
    expect(decodeFunctionData({ abi: eip3009Abi, data: long }).args).toHaveLength(7);
  });
});

describe("exactEvmServer default assets", () => {
  it("prices dollars in USDC on the networks of core's table, with each token's EIP-712 domain", () => {
    const server = exactEvmServer();
    expect(server.parsePrice("$0.01", "eip155:8453")).toEqual({ amount: "10000", asset: "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", extra: { name: "USD Coin", version: "2" } });
    expect(server.parsePrice("$1.5", "eip155:84532")).toEqual({ amount: "1500000", asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e", extra: { name: "USDC", version: "2" } });
    for (const n of ["eip155:1", "eip155:10", "eip155:42161", "eip155:137", "eip155:43114"] as const) {
      expect(server.parsePrice("$0.000001", n).amount).toBe("1");
    }
    // tollgate dev's chain: its USD Coin (deterministic address) prices dollars too.
    expect(server.parsePrice("$0.01", "eip155:31337")).toEqual({ amount: "10000", asset: "0x5FbDB2315678afecb367f032d93F642f64180aa3", extra: { name: "USD Coin", version: "2" } });
    expect(() => server.parsePrice("$0.01", "eip155:1337")).toThrow(/no USD stablecoin/);
  });
});

describe("one encoder for transferWithAuthorization (single, batch, dry run)", () => {
  const auth = {
    from: getAddress("0x857b06519e91e3a54538791bdbb0e22373e36b66"),
    to: getAddress("0x209693bc6afc0c5328ba36faf03c514ef312287c"),
    value: "10000",
    validAfter: "0",
    validBefore: "1740672154",
    nonce: `0x${"ab".repeat(32)}` as Hex,
  };
  const rs = `0x${"11".repeat(32)}${"22".repeat(32)}`;

  it("v = 0/1 encodes exactly as v = 27/28 (viem's encoding), in the single call and in a batch item", () => {
    for (const [yParity, v] of [["00", 27], ["01", 28]] as const) {
      const viem = encodeFunctionData({
        abi: eip3009Abi,
        functionName: "transferWithAuthorization",
        args: [auth.from, auth.to, 10000n, 0n, 1740672154n, auth.nonce, v, `0x${"11".repeat(32)}`, `0x${"22".repeat(32)}`],
      });
      expect(encodeTransferWithAuthorization(auth, `${rs}${yParity}` as Hex)).toBe(viem);
      expect(encodeTransferWithAuthorization(auth, `${rs}${v.toString(16)}` as Hex)).toBe(viem);
      // BatchSettler hands the raw bytes to the token, whose ecrecover wants 27/28.
      expect(batchSettleItem(auth, `${rs}${yParity}` as Hex).signature).toBe(`${rs}${v.toString(16)}`);
      expect(normalizeSignature(`${rs}${yParity}` as Hex)).toBe(`${rs}${v.toString(16)}`);
    }
    const batch = encodeBatchSettle(USDC_BASE.address, [{ authorization: auth, signature: `${rs}00` as Hex }]);
    const decoded = decodeFunctionData({ abi: batchSettlerAbi, data: batch });
    expect((decoded.args![1] as ReadonlyArray<{ signature: Hex }>)[0]!.signature).toBe(`${rs}1b`);
  });

  it("a contract wallet's signature goes through the bytes overload untouched, even at 65 bytes", () => {
    const sig = `${rs}00` as Hex;
    const data = encodeTransferWithAuthorization(auth, sig, { ecdsa: false });
    const decoded = decodeFunctionData({ abi: eip3009Abi, data });
    expect(decoded.args).toHaveLength(7);
    expect(decoded.args![6]).toBe(sig);
    expect(batchSettleItem(auth, sig, { ecdsa: false }).signature).toBe(sig);
  });
});

describe("asset allowlist, zero amount and payer back-off need no chain", () => {
  /** A client whose every call fails: any RPC would show up as an unexpected error. */
  const noChain = createPublicClient({ transport: custom({ request: async ({ method }) => Promise.reject(new Error(`no RPC expected (${method})`)) }) }) as PublicClient;
  const signer = privateKeyToAccount(generatePrivateKey());
  const requirements: PaymentRequirements = { scheme: "exact", network: "eip155:8453", amount: "10000", asset: USDC_BASE.address, payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C", maxTimeoutSeconds: 60, extra: { name: "USD Coin", version: "2" } };
  const payload = async (req: PaymentRequirements) => ({ x402Version: 2 as const, accepted: req, payload: await exactEvmClient({ account: privateKeyToAccount(generatePrivateKey()) }).createPayload(req, { x402Version: 2 }) });

  it("without `assets`, a network accepts its USDC from the table and nothing else", async () => {
    const f = exactEvmFacilitator({ networks: [{ network: "eip155:8453", publicClient: noChain }], signer });
    const eurc = { ...requirements, asset: EURC_BASE.address, extra: { name: "EURC", version: "2" } };
    expect(await f.verify(await payload(eurc), eurc)).toMatchObject({ isValid: false, invalidReason: Reason.evmAssetNotAllowed });
    expect(await f.settle(await payload(eurc), eurc)).toMatchObject({ success: false, errorReason: Reason.evmAssetNotAllowed, transaction: "" });
    // USDC passes the allowlist (and then needs the chain: no verdict on the payment from this stub).
    expect(await f.verify(await payload(requirements), requirements)).toMatchObject({ isValid: false, invalidReason: Reason.unexpectedVerifyError });
  });

  it("zero amount is refused with invalid_amount_zero", async () => {
    const f = exactEvmFacilitator({ networks: [{ network: "eip155:8453", publicClient: noChain }], signer });
    const zero = { ...requirements, amount: "0" };
    expect(await f.verify(await payload(zero), zero)).toMatchObject({ isValid: false, invalidReason: Reason.amountZero });
    expect(await f.settle(await payload(zero), zero)).toMatchObject({ success: false, errorReason: Reason.amountZero, transaction: "" });
  });

  it("a suspended payer is refused before the chain is asked, until the back-off ends", async () => {
    let now = 1_000_000;
    const backoff = createPayerBackoff({ backoffMs: 60_000, now: () => now });
    const f = exactEvmFacilitator({ networks: [{ network: "eip155:8453", publicClient: noChain }], signer, payerBackoff: backoff });
    const p = await payload(requirements);
    const from = (p.payload as unknown as ExactEvmPayload).authorization.from;
    backoff.suspend("eip155:8453", from.toLowerCase());
    expect(await f.verify(p, requirements)).toMatchObject({ isValid: false, invalidReason: Reason.payerSuspended });
    expect(backoff.suspendedUntil("eip155:1", from)).toBeUndefined();
    now += 60_001;
    expect(backoff.suspendedUntil("eip155:8453", from)).toBeUndefined();
  });
});

describe("redactRpcUrl", () => {
  it("keeps scheme and host; hides credentials, query values and path segments that look like keys", () => {
    expect(redactRpcUrl("https://base-mainnet.g.alchemy.com/v2/abcDEF123456ghiJKL789")).toBe("https://base-mainnet.g.alchemy.com/v2/[redacted]");
    expect(redactRpcUrl("https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef")).toBe("https://mainnet.infura.io/v3/[redacted]");
    expect(redactRpcUrl("https://rpc.ankr.com/eth/deadbeefcafe1234")).toBe("https://rpc.ankr.com/eth/[redacted]");
    expect(redactRpcUrl("https://u:pw@rpc.example.com/rpc?apikey=s3cret")).toBe("https://rpc.example.com/rpc?apikey=[redacted]");
    expect(redactRpcUrl("http://127.0.0.1:8545")).toBe("http://127.0.0.1:8545");
    expect(redactRpcUrl("not a url with a key 0123456789abcdef")).toBe("<invalid URL>");
  });
});
