/**
 * The page a browser sees instead of the JSON 402. Without scripts it tells a person what the
 * resource costs and how to pay with an x402 client; with them, the bundled wallet script
 * (./paywall-browser, built into ./paywall-bundle.ts) pays from a browser wallet on the same page.
 *
 * Every value that reaches the page comes from configuration or the request URL: in HTML it is
 * escaped, in the JSON island every `<`, `>` and `&` is a \u escape, so nothing can close the
 * island or open a tag. The page's own Content-Security-Policy allows exactly the bundled script
 * (by hash), requests to its own origin, and blob: frames/images for the paid content.
 */
import { findToken, getNetwork, evmChainId, type PaymentRequired, type PaymentRequirements, type ResourceInfo } from "@tollgate/core";
import { PAYWALL_SCRIPT, PAYWALL_SCRIPT_SHA256 } from "./paywall-bundle.ts";
import { PAYWALL_DATA_ID, PAYWALL_PANEL_ID, type PaywallOfferView, type PaywallPageData, type PaywallSolanaView } from "./paywall-data.ts";
import type { PaywallSolanaChain } from "./paywall-solana.ts";
import { addChainParameters, explorerFor, type AddChainParameters } from "./paywall-networks.ts";

export interface PaywallPageOptions {
  /** Shown as the page heading. */
  appName?: string;
  /** Image URL shown beside the heading (http(s) or data: only). */
  appLogo?: string;
  /** false: the static page only, without the script that pays from a browser wallet. Default true. */
  wallet?: boolean;
  /**
   * Per CAIP-2 Solana network, the chain the SERVER reads a recent blockhash and the mint from
   * when it renders the page (./paywall-solana.ts), so a browser wallet can pay Solana offers
   * without the page talking to any RPC. @tollgate/svm's `rpcChain(url)` fits. Without it the page
   * shows Solana offers for x402 clients only.
   */
  solana?: Readonly<Record<string, PaywallSolanaChain>>;
  /**
   * Per CAIP-2 eip155 network, what `wallet_addEthereumChain` needs when a wallet does not know the
   * chain (it answers 4902 to the switch): for networks the built-in table lacks (a private or
   * local chain), or to replace its public RPC. The RPC URL is handed to the wallet, never fetched
   * by the page.
   */
  chains?: Readonly<Record<string, AddChainParameters>>;
}

export interface PageOffer {
  requirements: PaymentRequirements;
  display: string;
  /** The x402 v1 name of the network, when it has one. */
  networkName?: string;
  /** Solana offers: the chain data the server read for the page (paywallSolanaViews). */
  solana?: PaywallSolanaView;
}

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON that can sit inside a <script> element: nothing in it can end the element or start markup. */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** What a person needs to see of one offer (human network name, token, explorer, chain parameters). */
export function offerView(offer: PageOffer, options: PaywallPageOptions = {}): PaywallOfferView {
  const r = offer.requirements;
  const networkName = getNetwork(r.network)?.name ?? offer.networkName ?? r.network;
  const chainId = evmChainId(r.network);
  const token = findToken(r.network, r.asset);
  const explorer = explorerFor(r.network);
  const configured = options.chains && Object.hasOwn(options.chains, r.network) ? options.chains[r.network] : undefined;
  const addChain = chainId !== undefined ? (configured ?? addChainParameters(r.network, networkName)) : undefined;
  return {
    display: offer.display,
    networkName,
    ...(chainId !== undefined ? { chainId } : {}),
    ...(token ? { token: { symbol: token.symbol, decimals: token.decimals } } : {}),
    ...(explorer ? { explorer } : {}),
    ...(addChain ? { addChain } : {}),
    ...(offer.solana ? { solana: offer.solana } : {}),
  };
}

export function renderPaywallPage(
  resource: ResourceInfo,
  offers: readonly PageOffer[],
  error: string,
  options: PaywallPageOptions = {},
  /** The PaymentRequired of this 402 (what the wallet script pays); without it the page has no script. */
  required?: PaymentRequired,
): string {
  const title = options.appName ? `${options.appName}: payment required` : "Payment required";
  // What the wallet script turns the heading and the tab title into once the payment went through.
  const paidTitle = options.appName ? `${options.appName}: paid` : "Paid";
  const logo = options.appLogo && /^(https?:|data:image\/)/i.test(options.appLogo) ? `<img src="${escapeHtml(options.appLogo)}" alt="" height="40">` : "";
  const views = offers.map((o) => offerView(o, options));
  const rows = offers
    .map(({ requirements: r }, i) => {
      const network = `${views[i]!.networkName} (${r.network})`;
      return `<tr><td data-label="Price">${escapeHtml(views[i]!.display)}</td><td data-label="Network">${escapeHtml(network)}</td><td data-label="Asset"><code>${escapeHtml(r.asset)}</code></td><td data-label="Pay to"><code>${escapeHtml(r.payTo)}</code></td><td data-label="Scheme">${escapeHtml(r.scheme)}</td></tr>`;
    })
    .join("\n");
  const wallet = options.wallet !== false && required !== undefined;
  const data: PaywallPageData | undefined = wallet ? { required, offers: views } : undefined;
  const csp = [
    "default-src 'none'",
    wallet ? `script-src 'sha256-${PAYWALL_SCRIPT_SHA256}'` : "script-src 'none'",
    "style-src 'unsafe-inline'",
    "img-src * data: blob:",
    "connect-src 'self'",
    "frame-src blob:",
    "base-uri 'none'",
    "form-action 'none'",
  ].join("; ");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>${PAGE_STYLE}</style>
</head>
<body>
<main>
<header>${logo}<h1 id="tg-title" data-paid-title="${escapeHtml(paidTitle)}">${escapeHtml(title)}</h1></header>
<section aria-labelledby="tg-what">
<h2 id="tg-what">What you are buying</h2>
<dl>
<dt>Resource</dt><dd><code>${escapeHtml(resource.url)}</code></dd>
${resource.description ? `<dt>Description</dt><dd>${escapeHtml(resource.description)}</dd>` : ""}
</dl>
</section>
<section aria-labelledby="tg-price">
<h2 id="tg-price">Price</h2>
<div class="scroll" tabindex="0" role="region" aria-labelledby="tg-price">
<table>
<thead><tr><th scope="col">Price</th><th scope="col">Network</th><th scope="col">Asset</th><th scope="col">Pay to</th><th scope="col">Scheme</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
</div>
</section>
${wallet ? `<section id="${PAYWALL_PANEL_ID}" aria-labelledby="tg-pay-title" hidden></section>\n<noscript><p>Turn on JavaScript to pay from a browser wallet on this page.</p></noscript>` : ""}
<p class="muted">An <a href="https://www.x402.org">x402</a> client can pay too: it reads the <code>PAYMENT-REQUIRED</code> header of this response, signs a payment, and retries.</p>
<p class="muted" id="tg-server-error">${escapeHtml(error)}</p>
</main>
${data ? `<script type="application/json" id="${PAYWALL_DATA_ID}">${jsonForScript(data)}</script>\n<script>${PAYWALL_SCRIPT}</script>` : ""}
</body>
</html>
`;
}

// Contrast: every text colour is at least 4.5:1 on its background (WCAG AA); focus is always visible.
const PAGE_STYLE = `
*{box-sizing:border-box}
[hidden]{display:none!important}
body{font-family:system-ui,sans-serif;line-height:1.5;margin:0;color:#1a1a1a;background:#fff}
main{max-width:52rem;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{font-size:1.6rem;margin:.5rem 0 1rem}h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
header{display:flex;gap:.75rem;align-items:center}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}dt{font-weight:600}dd{margin:0;min-width:0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #c4c4c4;padding:.4rem;text-align:left;vertical-align:top}
code{word-break:break-all;font-size:.92em}dd,.status{overflow-wrap:anywhere}.muted{color:#4a4a4a}
a{color:#0645ad}
button{font:inherit;font-weight:600;border:2px solid #0b57d0;border-radius:.4rem;padding:.55rem 1rem;min-height:2.75rem;cursor:pointer;background:#0b57d0;color:#fff}
button.secondary{background:#fff;color:#0b57d0}
button[disabled]{background:#e4e4e4;border-color:#767676;color:#3d3d3d;cursor:not-allowed}
:focus-visible{outline:3px solid #1a1a1a;outline-offset:2px}
.wallets{display:flex;flex-wrap:wrap;gap:.5rem;margin:.5rem 0}
.wallets button img{width:1.25rem;height:1.25rem;vertical-align:-.25rem;margin-right:.4rem}
.status{margin:1rem 0;padding:.75rem 1rem;border-radius:.4rem;border:1px solid #c4c4c4;background:#f5f5f5}
.status[data-tone=error]{border-color:#b3261e;background:#fdecea;color:#5c0f0b}
.status[data-tone=ok]{border-color:#146c2e;background:#e8f5ec;color:#0b3d1a}
.status:empty{display:none}
fieldset{border:1px solid #c4c4c4;border-radius:.4rem;margin:.5rem 0}
.content pre{white-space:pre-wrap;word-break:break-word;background:#f5f5f5;padding:.75rem;border-radius:.4rem;overflow:auto}
.content iframe{width:100%;min-height:24rem;border:1px solid #c4c4c4;border-radius:.4rem}
.content img{max-width:100%}
@media (max-width:30rem){dl{grid-template-columns:1fr}dt{margin-top:.5rem}button{width:100%}
thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}table,tbody,tr,td{display:block}tr{border:1px solid #c4c4c4;margin-bottom:.5rem}td{border:0;border-bottom:1px solid #e4e4e4}td::before{content:attr(data-label);display:block;font-weight:600;font-size:.85em}}
`;
