/**
 * The dashboard's HTML: a static shell (no data in it) that its script fills from the JSON API
 * and the event stream. Nothing inline runs (the CSP allows scripts from this origin only); every
 * value the script shows goes in as text, never as markup.
 */

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function shell(title: string, body: string, extraHead = ""): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard/assets/dashboard.css">
${extraHead}
</head>
<body>
${body}
</body>
</html>
`;
}

export function loginPage(error?: string): string {
  return shell(
    "Sign in: Tollgate facilitator",
    `<main class="login"><section>
<h1>Tollgate facilitator dashboard</h1>
<p>This facilitator requires an API key. It is sent once, over this form; the browser keeps a session cookie that does not contain it.</p>
${error ? `<p class="bad" role="alert">${escapeHtml(error)}</p>` : ""}
<form method="post" action="/dashboard/login">
<input type="text" name="username" value="operator" autocomplete="username" hidden>
<p><label for="key">API key</label><br><input id="key" name="key" type="password" autocomplete="current-password" required minlength="16" maxlength="512"></p>
<p><button type="submit">Sign in</button></p>
</form>
</section></main>`,
  );
}

export function refusedPage(message: string): string {
  return shell("Tollgate facilitator dashboard", `<main class="login"><section><h1>Dashboard not available</h1><p role="alert">${escapeHtml(message)}</p></section></main>`);
}

export function dashboardPage(options: { loginRequired: boolean }): string {
  const logout = options.loginRequired ? `<form method="post" action="/dashboard/logout"><button class="plain" type="submit">Sign out</button></form>` : "";
  return shell(
    "Tollgate facilitator dashboard",
    `<header>
<h1>Tollgate facilitator</h1>
<span id="live" class="live" role="status" aria-live="polite">connecting…</span>
<label>Window <select id="window"><option value="1h">last hour</option><option value="24h">last 24 hours</option><option value="7d">last 7 days</option></select></label>
${logout}
</header>
<main>
<section class="wide" aria-labelledby="h-kpi"><h2 id="h-kpi">Overview</h2><div id="kpis" class="kpis"></div></section>
<section aria-labelledby="h-volume"><h2 id="h-volume">Settled volume</h2><div id="chart-volume" class="chart" role="img" aria-label="Settled volume over time per network and asset"></div></section>
<section aria-labelledby="h-count"><h2 id="h-count">Settled payments</h2><div id="chart-count" class="chart" role="img" aria-label="Number of settled payments over time per network and asset"></div></section>
<section class="wide" aria-labelledby="h-search"><h2 id="h-search">Search the ledger</h2>
<form id="search" class="search" role="search"><label class="visually-hidden" for="q">Payer, payee or transaction hash</label>
<input id="q" name="q" type="search" placeholder="payer or payee address, or transaction hash" autocomplete="off" spellcheck="false" maxlength="100" required>
<button type="submit">Search</button></form>
<div id="search-result" aria-live="polite"></div></section>
<section class="wide" aria-labelledby="h-live"><h2 id="h-live">Live payments</h2><div class="scroll"><table id="live-table"><caption class="visually-hidden">Payment events as they verify and settle, newest first</caption>
<thead><tr><th scope="col">Time</th><th scope="col">Kind</th><th scope="col">Outcome</th><th scope="col">Network</th><th scope="col">Payer</th><th scope="col">Payee</th><th scope="col" class="num">Amount</th><th scope="col">Transaction</th></tr></thead><tbody></tbody></table></div></section>
<section aria-labelledby="h-outcomes"><h2 id="h-outcomes">Outcomes by reason</h2><div class="scroll" id="outcomes"></div></section>
<section aria-labelledby="h-open"><h2 id="h-open">Pending and in-doubt settlements</h2><div class="scroll" id="open"></div></section>
<section aria-labelledby="h-gas"><h2 id="h-gas">Gas per payment</h2><div class="scroll" id="gas"></div></section>
<section aria-labelledby="h-feepayers"><h2 id="h-feepayers">Fee payers</h2><div class="scroll" id="feepayers"></div></section>
<section class="wide" aria-labelledby="h-payees"><h2 id="h-payees">Payees</h2><div class="scroll" id="payees"></div></section>
<section class="wide" aria-labelledby="h-recent"><h2 id="h-recent">Latest ledger records</h2><div class="scroll" id="recent"></div></section>
</main>
<script src="/dashboard/assets/uPlot.iife.min.js"></script>
<script src="/dashboard/assets/dashboard.js"></script>`,
    `<link rel="stylesheet" href="/dashboard/assets/uPlot.min.css">`,
  );
}
