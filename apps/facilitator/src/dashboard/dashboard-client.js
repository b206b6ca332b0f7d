/*
 * The dashboard page's script (served by the facilitator at /dashboard/assets/dashboard.js, with
 * uPlot from the same origin). It reads /dashboard/api/overview, follows /dashboard/api/events
 * (server-sent events) and searches with /dashboard/api/search. Every value from the ledger
 * (payer, payee, reason, hashes: hostile strings) is put in the page as text, never as markup;
 * links are set only for http(s) URLs the server built.
 */
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const state = { window: "1h", assets: new Map(), charts: {}, reloadTimer: undefined, liveRows: 0, lastEventId: "" };
  const MAX_LIVE_ROWS = 100;

  /** An element with text children only (strings become text nodes). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else node.setAttribute(k, String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null) continue;
      node.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return node;
  }

  function safeLink(url, text) {
    if (typeof url === "string" && /^https?:\/\//.test(url)) {
      const a = el("a", { href: url, rel: "noopener noreferrer", target: "_blank", class: "mono" }, text);
      return a;
    }
    return el("code", {}, text);
  }

  function short(s) {
    if (typeof s !== "string") return "";
    return s.length > 14 ? s.slice(0, 8) + "…" + s.slice(-4) : s;
  }

  function assetKey(network, asset) {
    return network + "|" + String(asset || "").toLowerCase();
  }

  /** Atomic units (decimal string) as a token amount, exactly (string arithmetic, no floats). */
  function formatAmount(network, asset, atomic) {
    if (atomic === null || atomic === undefined) return "";
    const info = state.assets.get(assetKey(network, asset));
    if (!info || !/^\d+$/.test(atomic)) return atomic + " (atomic)";
    const d = info.decimals;
    const padded = atomic.padStart(d + 1, "0");
    const whole = padded.slice(0, padded.length - d);
    const frac = d > 0 ? padded.slice(padded.length - d).replace(/0+$/, "") : "";
    return whole + (frac ? "." + frac : "") + " " + info.symbol;
  }

  /** A fee payer's native balance in whole units (ETH: 18 decimals, SOL: 9), exactly. */
  function formatNative(network, smallest) {
    const decimals = network.startsWith("eip155:") ? 18 : network.startsWith("solana:") ? 9 : 0;
    const unit = network.startsWith("eip155:") ? " ETH" : network.startsWith("solana:") ? " SOL" : "";
    if (!/^\d+$/.test(smallest) || decimals === 0) return smallest;
    const padded = smallest.padStart(decimals + 1, "0");
    const frac = padded.slice(padded.length - decimals).replace(/0+$/, "");
    return padded.slice(0, padded.length - decimals) + (frac ? "." + frac : "") + unit;
  }

  /** For drawing only: a token amount as a number (charts need numbers; tables keep exact strings). */
  function plotAmount(network, asset, atomic) {
    const info = state.assets.get(assetKey(network, asset));
    return Number(atomic) / Math.pow(10, info ? info.decimals : 0);
  }

  function seriesName(network, asset) {
    const info = state.assets.get(assetKey(network, asset));
    return network + " " + (info ? info.symbol : short(asset));
  }

  function table(headers, rows, empty) {
    if (rows.length === 0) return el("p", { class: "muted" }, empty);
    return el(
      "table",
      {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col", class: h.num ? "num" : undefined }, h.label || h)))),
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c, i) => el("td", { class: headers[i] && headers[i].num ? "num" : undefined }, c))))),
    );
  }

  function replace(id, node) {
    const target = $(id);
    target.replaceChildren(node);
  }

  async function api(path) {
    const res = await fetch(path, { credentials: "same-origin", headers: { accept: "application/json" } });
    if (res.status === 401) {
      location.reload();
      throw new Error("signed out");
    }
    const body = await res.json();
    if (!res.ok) throw new Error(body && body.error ? body.error : "HTTP " + res.status);
    return body;
  }

  // ------------------------------------------------------------------ overview

  function renderKpis(o) {
    const settled = o.volume.reduce((n, p) => n + p.count, 0);
    const totals = new Map();
    for (const p of o.volume) {
      const k = assetKey(p.network, p.asset);
      totals.set(k, { network: p.network, asset: p.asset, sum: (totals.get(k) ? totals.get(k).sum : 0n) + BigInt(p.volume) });
    }
    const failed = o.outcomes.filter((x) => (x.kind === "settle" || x.kind === "final") && x.outcome === "failed").reduce((n, x) => n + x.count, 0);
    const cards = [
      ["Settled payments", String(settled)],
      ...[...totals.values()].map((t) => ["Volume " + seriesName(t.network, t.asset), formatAmount(t.network, t.asset, t.sum.toString())]),
      ["Failed settlements", String(failed)],
      ["Pending", String(o.open.pending)],
      ["In doubt", String(o.open.inDoubt)],
    ];
    replace("kpis", el("div", { class: "kpis", id: "kpi-list" }, cards.map(([label, value]) => el("div", { class: "kpi" }, el("b", {}, value), el("span", {}, label)))));
    $("kpis").setAttribute("data-settled", String(settled));
  }

  /** uPlot data: one x per bucket over the whole window, one series per network and asset. */
  function chartData(o, pick) {
    const step = o.bucketSeconds;
    const start = Math.floor((o.now - o.windowSeconds) / step) * step;
    const xs = [];
    for (let t = start; t <= o.now; t += step) xs.push(t);
    const index = new Map(xs.map((t, i) => [t, i]));
    const keys = [...new Set(o.volume.map((p) => assetKey(p.network, p.asset)))];
    const names = keys.map((k) => {
      const p = o.volume.find((v) => assetKey(v.network, v.asset) === k);
      return seriesName(p.network, p.asset);
    });
    const ys = keys.map(() => xs.map(() => 0));
    for (const p of o.volume) {
      const i = index.get(p.t);
      if (i !== undefined) ys[keys.indexOf(assetKey(p.network, p.asset))][i] += pick(p);
    }
    return { data: [xs, ...ys], names };
  }

  const COLORS = ["#0969da", "#1a7f37", "#bf3989", "#9a6700", "#8250df", "#cf222e"];

  function drawChart(id, o, pick, label) {
    const box = $(id);
    const { data, names } = chartData(o, pick);
    const width = Math.max(240, box.clientWidth);
    const signature = names.join("\n");
    const existing = state.charts[id];
    if (existing && existing.signature === signature) {
      existing.plot.setData(data);
      return;
    }
    if (existing) existing.plot.destroy();
    box.replaceChildren();
    if (names.length === 0) box.append(el("p", { class: "muted" }, "Nothing settled in this window yet."));
    const opts = {
      width,
      height: 220,
      scales: { x: { time: true } },
      axes: [{}, { label }],
      series: [
        {},
        ...(names.length === 0
          ? [{ label: "nothing settled", stroke: "#8c959f", width: 1 }]
          : names.map((n, i) => ({ label: n, stroke: COLORS[i % COLORS.length], width: 2, fill: COLORS[i % COLORS.length] + "22", points: { show: true, size: 4 } }))),
      ],
    };
    // eslint-disable-next-line no-undef
    const plot = new uPlot(opts, names.length === 0 ? [data[0], data[0].map(() => 0)] : data, box);
    state.charts[id] = { plot, signature };
  }

  function renderOutcomes(o) {
    replace(
      "outcomes",
      table(
        ["Request", "Outcome", "Reason", { label: "Count", num: true }],
        o.outcomes.map((x) => [x.kind, el("span", { class: /valid|settled/.test(x.outcome) && x.outcome !== "invalid" ? "ok" : x.outcome === "pending" ? "warn" : "bad" }, x.outcome), x.reason || "—", String(x.count)]),
        "No requests in this window.",
      ),
    );
  }

  function renderOpen(o) {
    replace(
      "open",
      table(
        ["State", "Network", "Payer", "Payee", { label: "Amount", num: true }, "Transaction", "Since"],
        o.open.rows.map((r) => [
          el("span", { class: r.inDoubt ? "bad" : "warn" }, r.inDoubt ? "in doubt" : "pending"),
          r.network,
          el("code", { title: r.payer }, short(r.payer)),
          el("code", { title: r.payee }, short(r.payee)),
          formatAmount(r.network, r.asset, r.amount),
          r.transaction ? el("code", { title: r.transaction }, short(r.transaction)) : "—",
          new Date(r.since).toLocaleString(),
        ]),
        "Nothing pending.",
      ),
    );
  }

  function renderGas(o) {
    replace(
      "gas",
      table(
        ["Network", { label: "Transactions", num: true }, { label: "Payments", num: true }, { label: "Gas per payment", num: true }, { label: "Fees (wei)", num: true }],
        o.gas.map((g) => [g.network, String(g.transactions), String(g.payments), g.gasPerPayment, g.feesWei]),
        "No settlement receipts recorded in this window.",
      ),
    );
  }

  function renderFeePayers(o) {
    if (!Array.isArray(o.feePayers)) return replace("feepayers", el("p", { class: "bad" }, o.feePayers.error));
    replace(
      "feepayers",
      table(
        ["Network", "Address", { label: "Balance", num: true }, { label: "Floor", num: true }, "State"],
        o.feePayers.map((b) => [
          b.network,
          el("code", { title: b.address }, short(b.address)),
          el("span", { title: b.balance + " (smallest unit)", "data-balance": b.balance }, formatNative(b.network, b.balance)),
          b.floor ? el("span", { title: b.floor + " (smallest unit)", "data-floor": b.floor }, formatNative(b.network, b.floor)) : "—",
          el("span", { class: b.belowFloor ? "bad" : "ok" }, b.belowFloor ? "below floor: not used" : "ok"),
        ]),
        "No fee payers configured.",
      ),
    );
  }

  function renderPayees(o) {
    replace(
      "payees",
      table(
        ["Payee", "Network", { label: "Payments", num: true }, { label: "Total", num: true }],
        o.payees.map((p) => [el("code", {}, p.payee), p.network, String(p.count), formatAmount(p.network, p.asset, p.total)]),
        "No settled payments in this window.",
      ),
    );
  }

  function renderRecent(o) {
    replace(
      "recent",
      table(
        ["Updated", "Status", "Network", "Payer", "Payee", { label: "Amount", num: true }, "Transaction"],
        o.recent.map((p) => [
          new Date(p.updatedAt).toLocaleString(),
          el("span", { class: p.status === "settled" ? "ok" : p.status === "failed" ? "bad" : "warn" }, p.status + (p.reason ? " (" + p.reason + ")" : "")),
          p.network,
          searchButton(p.payer),
          searchButton(p.payee),
          formatAmount(p.network, p.asset, p.amount),
          p.transaction ? searchButton(p.transaction) : "—",
        ]),
        "The ledger is empty.",
      ),
    );
  }

  function searchButton(value) {
    const b = el("button", { type: "button", class: "plain mono", title: "Search for " + value }, short(value));
    b.addEventListener("click", () => {
      $("q").value = value;
      void search(value);
    });
    return b;
  }

  async function load() {
    try {
      const o = await api("/dashboard/api/overview?window=" + encodeURIComponent(state.window));
      state.assets = new Map(o.assets.map((a) => [assetKey(a.network, a.address), a]));
      renderKpis(o);
      drawChart("chart-volume", o, (p) => plotAmount(p.network, p.asset, p.volume), "volume");
      drawChart("chart-count", o, (p) => p.count, "payments");
      renderOutcomes(o);
      renderOpen(o);
      renderGas(o);
      renderFeePayers(o);
      renderPayees(o);
      renderRecent(o);
      document.body.setAttribute("data-loaded", String(Date.now()));
    } catch (e) {
      $("live").textContent = "could not load: " + e.message;
    }
  }

  function reloadSoon() {
    if (state.reloadTimer) return;
    state.reloadTimer = setTimeout(() => {
      state.reloadTimer = undefined;
      void load();
    }, 1000);
  }

  // ------------------------------------------------------------------ live

  function addLive(e) {
    const body = $("live-table").tBodies[0];
    const good = e.outcome === "settled" || e.outcome === "valid" || e.outcome === "replay";
    const row = el(
      "tr",
      { class: "fresh", "data-kind": e.kind, "data-outcome": e.outcome, "data-transaction": e.transaction || undefined },
      el("td", {}, new Date(e.at).toLocaleTimeString()),
      el("td", {}, e.kind),
      el("td", {}, el("span", { class: good ? "ok" : e.outcome === "pending" ? "warn" : "bad" }, e.outcome + (e.reason ? " (" + e.reason + ")" : ""))),
      el("td", {}, e.network),
      el("td", {}, e.payer ? el("code", { title: e.payer }, short(e.payer)) : "—"),
      el("td", {}, e.payee ? el("code", { title: e.payee }, short(e.payee)) : "—"),
      el("td", { class: "num" }, e.amount ? formatAmount(e.network, e.asset, e.amount) : "—"),
      el("td", {}, e.transaction ? safeLink(e.link, short(e.transaction)) : "—"),
    );
    body.insertBefore(row, body.firstChild);
    while (body.rows.length > MAX_LIVE_ROWS) body.deleteRow(body.rows.length - 1);
  }

  /**
   * The browser reconnects on its own and sends Last-Event-ID (the ledger id of the last event),
   * so the server replays what was missed. An answer it will not retry (a 503 when the streams are
   * full, a restart) closes the source: open a new one that names the last id itself.
   */
  function connect() {
    const url = "/dashboard/api/events" + (state.lastEventId ? "?after=" + encodeURIComponent(state.lastEventId) : "");
    const source = new EventSource(url);
    source.addEventListener("open", () => {
      $("live").textContent = "live";
      $("live").classList.add("on");
      reloadSoon();
    });
    source.addEventListener("payment", (m) => {
      if (m.lastEventId) state.lastEventId = m.lastEventId;
      try {
        addLive(JSON.parse(m.data));
      } catch {
        return;
      }
      reloadSoon();
    });
    source.addEventListener("error", () => {
      $("live").textContent = "reconnecting…";
      $("live").classList.remove("on");
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
    });
  }

  // ------------------------------------------------------------------ search

  function renderRecord(r) {
    const rows = [
      ["Status", el("span", { class: r.status === "settled" ? "ok" : r.status === "failed" ? "bad" : "warn" }, r.status)],
      ["Reason", r.reason || "—"],
      ["Network", r.network],
      ["Scheme", r.scheme],
      ["Payer", el("code", {}, r.payer)],
      ["Payee", el("code", {}, r.payee)],
      ["Asset", el("code", {}, r.asset)],
      ["Amount", formatAmount(r.network, r.asset, r.amount) + " (" + r.amount + " atomic)"],
      ["Transaction", r.transaction ? safeLink(r.link, r.transaction) : "—"],
      ["Created", new Date(r.createdAt).toLocaleString()],
      ["Settled", r.settledAt ? new Date(r.settledAt).toLocaleString() : "—"],
      ["Settle attempts", String(r.attempts.length)],
      ["Key", el("code", {}, r.key)],
    ];
    const dl = el("dl", { class: "record" }, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    const attempts = r.attempts.length
      ? table(
          ["Transaction", "Signer", "Nonce", "Outcome", { label: "Gas used", num: true }, { label: "Payments in it", num: true }],
          r.attempts.map((x) => [safeLink(x.link, short(x.hash)), el("code", { title: x.signer }, short(x.signer)), x.nonce, x.outcome || "not final", x.gasUsed || "—", String(x.payments)]),
          "",
        )
      : null;
    return el("article", { class: "record", "data-key": r.key }, dl, attempts);
  }

  async function search(q) {
    const out = $("search-result");
    out.replaceChildren(el("p", { class: "muted" }, "Searching…"));
    try {
      const res = await api("/dashboard/api/search?q=" + encodeURIComponent(q));
      out.replaceChildren(
        el("p", {}, res.total === 0 ? "No payment in the ledger matches." : res.total + " payment(s) found" + (res.total > res.records.length ? "; the latest " + res.records.length + " shown" : "") + "."),
        ...res.records.map(renderRecord),
      );
    } catch (e) {
      out.replaceChildren(el("p", { class: "bad", role: "alert" }, e.message));
    }
  }

  $("search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    void search($("q").value);
  });
  $("window").addEventListener("change", () => {
    state.window = $("window").value;
    void load();
  });
  let resizeTimer;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const [id, c] of Object.entries(state.charts)) c.plot.setSize({ width: Math.max(240, $(id).clientWidth), height: 220 });
    }, 200);
  });

  connect();
  void load();
})();
