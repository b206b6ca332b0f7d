/**
 * Configuration checked at start (issue 9, item 7): a payee no scheme can pay is refused by
 * `createPaywall`; what the facilitator cannot settle is named by `ready()` and, unasked, by the
 * background check, together with what it does support.
 */
import { describe, expect, it } from "vitest";
import { FacilitatorError, httpFacilitatorClient } from "@tollgate/core";
import { exactEvmServer } from "@tollgate/evm";
import { exactSvmServer } from "@tollgate/svm";
import { createPaywall, PaywallConfigError, type PaywallConfig } from "@tollgate/server";
import { PAY_TO, stubFacilitator, stubScheme } from "./fixtures.ts";

const SOLANA_DEVNET = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1";
const SOL_PAYEE = "9WzDXwBbmkg8ZTbNMqUxvQRAyrZzDsGYdLVL9zYtAWWM";

const real = (network: string, payTo: string): PaywallConfig => ({
  facilitator: stubFacilitator(),
  schemes: [exactEvmServer(), exactSvmServer()],
  routes: { "GET /x": { price: "$0.01", network: network as `${string}:${string}`, payTo } },
  checkAtStart: false,
});

describe("payTo is checked per scheme when the paywall is built", () => {
  it("accepts a checksummed or lower-case EVM address and a base58 Solana address", () => {
    expect(() => createPaywall(real("eip155:8453", PAY_TO))).not.toThrow();
    expect(() => createPaywall(real("eip155:8453", PAY_TO.toLowerCase()))).not.toThrow();
    expect(() => createPaywall(real(SOLANA_DEVNET, SOL_PAYEE))).not.toThrow();
  });

  it("refuses, naming route, network and reason: not an address, a checksum typo, the zero address, a Solana payee on EVM and back", () => {
    const cases: Array<[string, string, RegExp]> = [
      ["eip155:8453", "0x1234", /route "GET \/x": payTo on eip155:8453: expected a 0x-prefixed 20-byte hex address, got "0x1234"/],
      // One letter's case flipped: the EIP-55 checksum no longer matches.
      ["eip155:8453", PAY_TO.replace("Bc", "bc"), /invalid EIP-55 checksum/],
      ["eip155:8453", "0x" + "0".repeat(40), /zero address cannot receive payments/],
      ["eip155:8453", SOL_PAYEE, /expected a 0x-prefixed 20-byte hex address/],
      [SOLANA_DEVNET, PAY_TO, /route "GET \/x": payTo on solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1: expected a base58 Solana address/],
      [SOLANA_DEVNET, "not base58 0OIl", /expected a base58 Solana address/],
    ];
    for (const [network, payTo, message] of cases) {
      const attempt = () => createPaywall(real(network, payTo));
      expect(attempt, `${network} ${payTo}`).toThrow(PaywallConfigError);
      expect(attempt).toThrow(message);
    }
  });

  it("checks the per-route form too", () => {
    const paywall = createPaywall({ facilitator: stubFacilitator(), schemes: [exactEvmServer()], checkAtStart: false });
    expect(() => paywall.route({ price: "$0.01", network: "eip155:8453", payTo: "0xnothex" }, "GET /one")).toThrow(/route "GET \/one": payTo on eip155:8453/);
  });
});

describe("what the facilitator cannot settle is named at start", () => {
  // The stub facilitator supports exact on eip155:84532 (v2), base-sepolia (v1) and eip155:8453.
  const config = (extra: Partial<PaywallConfig> = {}): PaywallConfig => ({
    facilitator: stubFacilitator(),
    schemes: [stubScheme],
    routes: {
      "GET /ok": { price: "$0.01", network: "eip155:84532", payTo: PAY_TO },
      "GET /partly": { price: "$0.01", network: ["eip155:8453", "eip155:10"], payTo: PAY_TO },
    },
    checkAtStart: false,
    ...extra,
  });

  it("ready() resolves with the supported kinds when every option is served", async () => {
    const paywall = createPaywall(config({ routes: { "GET /ok": { price: "$0.01", network: "eip155:84532", payTo: PAY_TO } } }));
    const report = await paywall.ready();
    expect(report.unservable).toEqual([]);
    expect(report.supported.map((k) => k.network)).toContain("eip155:84532");
  });

  it("ready() rejects naming each unservable option (per-route ones too) and what the facilitator supports", async () => {
    const paywall = createPaywall(config());
    paywall.route({ price: "$0.01", network: "eip155:137", payTo: PAY_TO }, "GET /attached");
    const error = await paywall.ready().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PaywallConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/route "GET \/partly": exact on eip155:10/);
    expect(message).toMatch(/route "GET \/attached": exact on eip155:137/);
    expect(message).not.toMatch(/GET \/ok/);
    expect(message).toMatch(/It supports: exact on eip155:84532 \(v2\), exact on base-sepolia \(v1\), exact on eip155:8453 \(v2\)/);
  });

  it("ready() rejects with the facilitator's error when it cannot be reached", async () => {
    const paywall = createPaywall(config({ facilitator: httpFacilitatorClient({ url: "http://127.0.0.1:1", timeoutMs: 2000 }) }));
    await expect(paywall.ready()).rejects.toBeInstanceOf(FacilitatorError);
  });

  it("unasked, warns once after construction (per-route options included); checkAtStart: false stays silent", async () => {
    const warnings: string[] = [];
    const paywall = createPaywall(config({ checkAtStart: true, onWarning: (m) => warnings.push(m) }));
    paywall.route({ price: "$0.01", network: "eip155:137", payTo: PAY_TO }, "GET /attached");
    const silent: string[] = [];
    createPaywall(config({ onWarning: (m) => silent.push(m) }));
    await expect.poll(() => warnings.length).toBe(1);
    expect(warnings[0]).toMatch(/^tollgate paywall: the facilitator cannot settle these payment options, so they are not offered: route "GET \/partly": exact on eip155:10; route "GET \/attached": exact on eip155:137\. It supports: /);
    await new Promise((r) => setTimeout(r, 50));
    expect(silent).toEqual([]);
  });

  it("unasked, warns when the facilitator is unreachable, saying what paid routes do meanwhile", async () => {
    const warnings: string[] = [];
    createPaywall(config({ facilitator: httpFacilitatorClient({ url: "http://127.0.0.1:1", timeoutMs: 2000 }), checkAtStart: true, onWarning: (m) => warnings.push(m) }));
    await expect.poll(() => warnings.length, { timeout: 5000 }).toBe(1);
    expect(warnings[0]).toMatch(/could not ask the facilitator what it supports \(.+\); paid routes answer 500 until it answers/);
  });
});
