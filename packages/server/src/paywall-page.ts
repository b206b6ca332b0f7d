/**
 * The page a browser sees instead of the JSON 402. Static HTML, no scripts: it tells a person
 * what the resource costs and how to pay with an x402 client. Every value that reaches the
 * page comes from configuration or the request URL, and every one of them is escaped.
 */
import type { PaymentRequirements, ResourceInfo } from "@tollgate/core";

export interface PaywallPageOptions {
  /** Shown as the page heading. */
  appName?: string;
  /** Image URL shown beside the heading (http(s) or data: only). */
  appLogo?: string;
}

export interface PageOffer {
  requirements: PaymentRequirements;
  display: string;
  networkName?: string;
}

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function renderPaywallPage(resource: ResourceInfo, offers: readonly PageOffer[], error: string, options: PaywallPageOptions = {}): string {
  const title = options.appName ? `${options.appName}: payment required` : "Payment required";
  const logo = options.appLogo && /^(https?:|data:image\/)/i.test(options.appLogo) ? `<img src="${escapeHtml(options.appLogo)}" alt="" height="40">` : "";
  const rows = offers
    .map(({ requirements: r, display, networkName }) => {
      const network = networkName ? `${networkName} (${r.network})` : r.network;
      return `<tr><td>${escapeHtml(display)}</td><td>${escapeHtml(network)}</td><td><code>${escapeHtml(r.asset)}</code></td><td><code>${escapeHtml(r.payTo)}</code></td><td>${escapeHtml(r.scheme)}</td></tr>`;
    })
    .join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:52rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:.4rem;text-align:left;vertical-align:top}
code{word-break:break-all}.muted{color:#666}
</style>
</head>
<body>
<header>${logo}<h1>${escapeHtml(title)}</h1></header>
<p>This resource costs money. Pay with an <a href="https://www.x402.org">x402</a> client, which reads the
<code>PAYMENT-REQUIRED</code> header of this response, signs a payment, and retries.</p>
<p><strong>Resource:</strong> <code>${escapeHtml(resource.url)}</code></p>
${resource.description ? `<p><strong>Description:</strong> ${escapeHtml(resource.description)}</p>` : ""}
<table>
<thead><tr><th>Price</th><th>Network</th><th>Asset</th><th>Pay to</th><th>Scheme</th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
<p class="muted">${escapeHtml(error)}</p>
</body>
</html>
`;
}
