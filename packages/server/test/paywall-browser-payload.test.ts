// The paywall page's wallet script builds the same payment as @tollgate/evm's Node client: for the
// same requirements, time and nonce, the typed data it hands the wallet, signed by the same key,
// gives a payload equal in value AND in JSON text; its header encoding equals core's; the EIP-2612
// sponsoring extension equals the Node client's. (The browser modules are pure; they run here too.)
import { describe, expect, it } from "vitest";
import { privateKeyToAccount } from "viem/accounts";
import { Headers, encodeBase64Json, type PaymentRequired, type PaymentRequirements } from "@tollgate/core";
import { mergeExtensions } from "../../core/src/client/client.ts";
import * as evm from "@tollgate/evm";
import { eip2612SponsoringExtension, signExactEvmAuthorization, signExactPermit2Authorization, type SponsoringReader } from "@tollgate/evm";
import * as constants from "../src/paywall-browser/constants.ts";
import { encodeBase64Json as browserEncode, decodeBase64Json as browserDecode } from "../src/paywall-browser/encode.ts";
import { mergeExtensions as browserMerge, paymentPayload, unsignedPayment, unsignedSponsoringPermit, payableChainId } from "../src/paywall-browser/evm.ts";
import { checksumAddress } from "../src/paywall-browser/address.ts";

const account = privateKeyToAccount("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
// What a wallet does with eth_signTypedData_v4's JSON: parse it and sign (viem honours the EIP712Domain given).
const walletSign = (typed: unknown) => account.signTypedData(JSON.parse(JSON.stringify(typed)));
const NOW = 1_767_000_000;

const usdc: PaymentRequirements = {
  scheme: "exact",
  network: "eip155:84532",
  amount: "10000",
  asset: "0x036cbd53842c5426634e7929541ec2318f3dcf7e",
  payTo: "0x209693bc6afc0c5328ba36faf03c514ef312287c",
  maxTimeoutSeconds: 300,
  extra: { name: "USDC", version: "2" },
};
const permit2: PaymentRequirements = { ...usdc, asset: "0x5fbdb2315678afecb367f032d93f642f64180aa3", extra: { name: "Plain", version: "1", assetTransferMethod: "permit2" } };

describe("paywall wallet script: payload identical to the Node client's", () => {
  it("signs with the Node packages' constants (written out in the bundle)", () => {
    expect([constants.PAYMENT_SIGNATURE, constants.PAYMENT_REQUIRED, constants.PAYMENT_RESPONSE]).toEqual([Headers.v2.payment, Headers.v2.required, Headers.v2.response]);
    expect(constants.PERMIT2_ADDRESS).toBe(evm.PERMIT2_ADDRESS);
    expect(constants.EXACT_PERMIT2_PROXY_ADDRESS).toBe(evm.EXACT_PERMIT2_PROXY_ADDRESS);
    expect(constants.transferWithAuthorizationTypes).toEqual(evm.transferWithAuthorizationTypes);
    expect(constants.permit2WitnessTypes).toEqual(evm.permit2WitnessTypes);
    expect(constants.eip2612PermitTypes).toEqual(evm.eip2612PermitTypes);
  });

  it("EIP-3009 TransferWithAuthorization", async () => {
    const nonce = `0x${"ab".repeat(32)}`;
    const node = await signExactEvmAuthorization(account, usdc, { now: NOW, skew: 600, nonce: nonce as `0x${string}` });
    // The wallet answers with a lower-case address: the script checksums it.
    const unsigned = unsignedPayment(usdc, account.address.toLowerCase(), { now: NOW, nonce });
    const browser = unsigned.payload(await walletSign(unsigned.typedData));
    expect(browser).toEqual(node);
    expect(JSON.stringify(browser)).toBe(JSON.stringify(node));
  });

  it("Permit2 PermitWitnessTransferFrom", async () => {
    const nonce = "123456789012345678901234567890";
    const node = await signExactPermit2Authorization(account, permit2, { now: NOW, skew: 600, nonce });
    const unsigned = unsignedPayment(permit2, account.address, { now: NOW, nonce });
    const browser = unsigned.payload(await walletSign(unsigned.typedData));
    expect(browser).toEqual(node);
    expect(JSON.stringify(browser)).toBe(JSON.stringify(node));
  });

  it("the eip2612GasSponsoring permit and its merge into the server's advertisement", async () => {
    const node = await signExactPermit2Authorization(account, permit2, { now: NOW, nonce: "7" });
    let reads = 0;
    const reader = { readContract: async () => (reads++ === 0 ? 0n : 3n) } as unknown as SponsoringReader;
    const advertised = { eip2612GasSponsoring: { info: { description: "gasless", version: "1" } }, "payment-identifier": { info: { required: false } } };
    const nodeExtension = await eip2612SponsoringExtension(account, reader, permit2, node as unknown as Record<string, unknown>, advertised);
    const permit = unsignedSponsoringPermit(permit2, account.address, 3n, node.permit2Authorization.deadline);
    const browserExtension = permit.extension(await walletSign(permit.typedData));
    expect(browserExtension).toEqual(nodeExtension);
    expect(JSON.stringify(browserMerge(browserExtension, advertised))).toBe(JSON.stringify(mergeExtensions(nodeExtension, advertised)));
  });

  it("the PAYMENT-SIGNATURE header: core's shape and base64", () => {
    const required: PaymentRequired = { x402Version: 2, error: "", resource: { url: "https://a.example/r", description: "naïve ☕" }, accepts: [usdc], extensions: { "payment-identifier": { info: { required: false } } } };
    const payload = paymentPayload(required, usdc, { signature: "0x01" });
    expect(Object.keys(payload)).toEqual(["x402Version", "resource", "accepted", "payload", "extensions"]);
    expect(browserEncode(payload)).toBe(encodeBase64Json(payload));
    expect(browserDecode(encodeBase64Json(payload))).toEqual(payload);
    expect(browserDecode("%%%")).toBeUndefined();
  });

  it("checks what it signs for, naming the field", () => {
    expect(checksumAddress("0x209693bc6afc0c5328ba36faf03c514ef312287c")).toBe("0x209693Bc6afc0C5328bA36FaF03C514EF312287C");
    expect(() => payableChainId({ ...usdc, network: "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1" })).toThrow(/requirements.network/);
    expect(() => payableChainId({ ...usdc, amount: "1.5" })).toThrow(/requirements.amount/);
    expect(() => payableChainId({ ...usdc, payTo: "0x12" })).toThrow(/requirements.payTo/);
    expect(() => unsignedPayment({ ...usdc, extra: {} }, account.address, { now: NOW })).toThrow(/extra.name/);
  });
});
