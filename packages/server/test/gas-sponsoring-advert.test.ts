// Which gas-sponsoring extensions a 402 advertises: exactly those the facilitator lists in
// /supported, and only for routes with an option paid through Permit2.
import { describe, expect, it } from "vitest";
import type { PaymentRequirements, SupportedResponse } from "@tollgate/core";
import { gasSponsoringExtensions } from "../src/gas-sponsoring.ts";

const permit2: PaymentRequirements = {
  scheme: "exact",
  network: "eip155:84532",
  amount: "10000",
  asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
  payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
  maxTimeoutSeconds: 60,
  extra: { assetTransferMethod: "permit2", name: "USDC", version: "2" },
};
const eip3009: PaymentRequirements = { ...permit2, extra: { name: "USDC", version: "2" } };
/** An upto option (Permit2 by construction), as uptoEvmServer fills it in. */
const upto: PaymentRequirements = { ...permit2, scheme: "upto", extra: { assetTransferMethod: "permit2", facilitatorAddress: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C" } };
const supported = (extensions: string[]): SupportedResponse => ({ kinds: [{ x402Version: 2, scheme: "exact", network: "eip155:84532" }], extensions, signers: {} });

describe("gasSponsoringExtensions", () => {
  it("advertises erc20ApprovalGasSponsoring as the spec shows it when the facilitator lists it", () => {
    const ext = gasSponsoringExtensions([permit2], supported(["erc20ApprovalGasSponsoring"]));
    expect(Object.keys(ext)).toEqual(["erc20ApprovalGasSponsoring"]);
    const adv = ext.erc20ApprovalGasSponsoring as { info: { version: string }; schema: { required: string[]; properties: Record<string, { pattern: string }> } };
    expect(adv.info.version).toBe("1");
    expect(adv.schema.required).toEqual(["from", "asset", "spender", "amount", "signedTransaction", "version"]);
    expect(new RegExp(adv.schema.properties.version!.pattern).test("1.2.3")).toBe(true);
    expect(new RegExp(adv.schema.properties.version!.pattern).test("1.x")).toBe(false);
  });

  it("advertises both when both are listed, none for a route without Permit2 or a facilitator listing neither", () => {
    expect(Object.keys(gasSponsoringExtensions([permit2], supported(["eip2612GasSponsoring", "erc20ApprovalGasSponsoring"]))).sort()).toEqual(["eip2612GasSponsoring", "erc20ApprovalGasSponsoring"]);
    expect(gasSponsoringExtensions([eip3009], supported(["eip2612GasSponsoring", "erc20ApprovalGasSponsoring"]))).toEqual({});
    expect(gasSponsoringExtensions([permit2], supported(["payment-identifier"]))).toEqual({});
    expect(gasSponsoringExtensions([permit2], undefined)).toEqual({});
  });

  it("an upto route advertises erc20ApprovalGasSponsoring when the facilitator lists it, and nothing when it does not", () => {
    const ext = gasSponsoringExtensions([upto], supported(["erc20ApprovalGasSponsoring"]));
    expect(ext).toEqual({ erc20ApprovalGasSponsoring: gasSponsoringExtensions([permit2], supported(["erc20ApprovalGasSponsoring"])).erc20ApprovalGasSponsoring });
    expect((ext.erc20ApprovalGasSponsoring as { info: { version: string } }).info.version).toBe("1");
    expect(gasSponsoringExtensions([upto], supported(["eip2612GasSponsoring"]))).not.toHaveProperty("erc20ApprovalGasSponsoring");
    // Not for an upto option off EVM (no Permit2 there).
    expect(gasSponsoringExtensions([{ ...upto, network: "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1" }], supported(["erc20ApprovalGasSponsoring"]))).toEqual({});
  });
});
