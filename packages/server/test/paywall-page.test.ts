// The paywall page as HTML: the committed wallet-script bundle is what the sources build to, the
// page's CSP allows exactly that script, the JSON island cannot be broken out of, and the island
// carries the same PaymentRequired as the PAYMENT-REQUIRED header.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decodeBase64Json, type PaymentRequired, type PaymentRequirements } from "@tollgate/core";
import { createPaywall, escapeHtml, renderPaywallPage } from "@tollgate/server";
import { PAYWALL_BUNDLE_MODULE, bundlePaywallScript, paywallBundleModule } from "../scripts/build-paywall.ts";
import { PAYWALL_SCRIPT, PAYWALL_SCRIPT_SHA256 } from "../src/paywall-bundle.ts";
import type { PaywallPageData } from "../src/paywall-data.ts";
import { PAY_TO, stubFacilitator, stubScheme } from "./fixtures.ts";

const HOSTILE = `</script><script>alert(1)</script><!-- & \u2028 "'\``;
const island = (html: string) => /<script type="application\/json" id="tollgate-paywall-data">([\s\S]*?)<\/script>/.exec(html)?.[1];

describe("paywall page", () => {
  it("ships the bundle its sources build to (run `npm run build:paywall` after changing src/paywall-browser)", async () => {
    expect(readFileSync(PAYWALL_BUNDLE_MODULE, "utf8")).toBe(paywallBundleModule(await bundlePaywallScript()));
  }, 30_000);

  it("allows exactly the inlined script by its hash, and nothing but its own origin for requests", () => {
    const required: PaymentRequired = { x402Version: 2, error: "e", resource: { url: "https://a.example/r" }, accepts: [] };
    const html = renderPaywallPage({ url: "https://a.example/r" }, [], "e", {}, required);
    expect(createHash("sha256").update(PAYWALL_SCRIPT, "utf8").digest("base64")).toBe(PAYWALL_SCRIPT_SHA256);
    expect(html).toContain(escapeHtml(`script-src 'sha256-${PAYWALL_SCRIPT_SHA256}'`));
    expect(html).toContain(escapeHtml("connect-src 'self'"));
    expect(html).toContain(`<script>${PAYWALL_SCRIPT}</script>`);
    // The static page (wallet: false, or no PaymentRequired) runs no script at all.
    for (const page of [renderPaywallPage({ url: "https://a.example/r" }, [], "e", { wallet: false }, required), renderPaywallPage({ url: "https://a.example/r" }, [], "e")]) {
      expect(page).not.toMatch(/<script/i);
      expect(page).toContain(escapeHtml("script-src 'none'"));
    }
  });

  it("carries the 402's PaymentRequired in a JSON island nothing can break out of", async () => {
    const paywall = createPaywall({
      facilitator: stubFacilitator(),
      schemes: [stubScheme],
      routes: { "GET /r": { price: "$0.01", network: "eip155:84532", payTo: PAY_TO, description: HOSTILE } },
    });
    const decision = await paywall.handle({ method: "GET", url: `https://api.example.com/r?q=${encodeURIComponent(HOSTILE)}`, headers: (n) => (n === "accept" ? "text/html" : undefined) });
    if (decision.kind !== "respond") throw new Error(`expected a 402, got ${decision.kind}`);
    const html = String(decision.body);
    expect(html.match(/<script/gi)).toHaveLength(2);
    expect(html.match(/<\/script/gi)).toHaveLength(2);
    expect(html).not.toContain("<!--");
    const json = island(html)!;
    expect(json).not.toMatch(/[<>&\u2028]/);
    const data = JSON.parse(json) as PaywallPageData;
    const header = decodeBase64Json(decision.headers["PAYMENT-REQUIRED"], "PAYMENT-REQUIRED");
    expect(header.ok && data.required).toEqual(header.ok ? header.value : undefined);
    expect(data.required.resource.description).toBe(HOSTILE);
    expect(data.offers).toEqual([{ display: "$0.01", networkName: "Base Sepolia", chainId: 84532, token: { symbol: "USDC", decimals: 6 }, explorer: { prefix: "https://sepolia.basescan.org/tx/", suffix: "" }, addChain: { chainName: "Base Sepolia", rpcUrls: ["https://sepolia.base.org"], blockExplorerUrls: ["https://sepolia.basescan.org"], nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 } } }]);
  });

  it("names the paid heading for the script, and takes add-chain parameters for chains the table lacks", () => {
    const local: PaymentRequirements = { scheme: "exact", network: "eip155:31337", amount: "1", asset: "0x5fbdb2315678afecb367f032d93f642f64180aa3", payTo: PAY_TO, maxTimeoutSeconds: 60 };
    const required = { x402Version: 2 as const, error: "", resource: { url: "https://a.example/r" }, accepts: [local] };
    const chains = { "eip155:31337": { chainName: "Dev <chain>", rpcUrls: ["http://127.0.0.1:8545"], nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 } } };
    const page = renderPaywallPage({ url: "https://a.example/r" }, [{ requirements: local, display: "1 unit" }], "e", { appName: "Shop & Co", chains }, required);
    expect(page).toContain(`<h1 id="tg-title" data-paid-title="Shop &#38; Co: paid">Shop &#38; Co: payment required</h1>`);
    const data = JSON.parse(island(page)!) as PaywallPageData;
    expect(data.offers[0]!.addChain).toEqual(chains["eip155:31337"]);
    const bare = JSON.parse(island(renderPaywallPage({ url: "https://a.example/r" }, [{ requirements: local, display: "1 unit" }], "e", {}, required))!) as PaywallPageData;
    expect(bare.offers[0]!.addChain).toBeUndefined();
  });
});
