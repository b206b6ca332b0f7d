// The pay panel: one live status region (role=status, polite) that says what is happening and
// what went wrong, the wallet buttons, the pay button and the result. `data-state` on the panel
// names the state (no-wallet, wrong-chain, insufficient-balance, rejected, settlement-failed,
// paid, …) for people who style the page and for the browser tests.
import { el } from "./dom.ts";

export type PanelState =
  | "discovering"
  | "no-wallet"
  | "choose-wallet"
  | "connecting"
  | "switching-chain"
  | "wrong-chain"
  | "wrong-wallet"
  | "checking-balance"
  | "insufficient-balance"
  | "allowance-required"
  | "ready"
  | "signing"
  | "rejected"
  | "paying"
  | "settlement-failed"
  | "settlement-pending"
  | "paid"
  | "error";

export interface Panel {
  root: HTMLElement;
  options: HTMLElement;
  wallets: HTMLElement;
  account: HTMLElement;
  payButton: HTMLButtonElement;
  status: HTMLElement;
  result: HTMLElement;
  note: HTMLElement;
  set(state: PanelState, message: string, tone?: "info" | "error" | "ok", focus?: boolean): void;
}

export function buildPanel(root: HTMLElement): Panel {
  const options = el("div");
  const wallets = el("div", { class: "wallets", role: "group", "aria-label": "Wallets in this browser" });
  const account = el("p", { hidden: true });
  const payButton = el("button", { type: "button", id: "tg-pay-button", hidden: true }, "Pay");
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", "aria-atomic": "true", tabindex: "-1", id: "tg-status" });
  const result = el("section", { id: "tg-result", hidden: true, "aria-labelledby": "tg-result-title" });
  const note = el("p", { class: "muted" });
  root.replaceChildren(el("h2", { id: "tg-pay-title" }, "Pay with a browser wallet"), options, wallets, account, payButton, status, result, note);
  root.hidden = false;
  const set: Panel["set"] = (state, message, tone = "info", focus = false) => {
    root.dataset.state = state;
    status.dataset.tone = tone;
    status.textContent = message;
    // Errors take the focus, so a keyboard or screen-reader user lands on what went wrong.
    if (focus) status.focus();
  };
  return { root, options, wallets, account, payButton, status, result, note, set };
}

/** `amount` atomic units as a decimal string with `decimals` places, trailing zeros dropped. */
export function formatUnits(amount: bigint, decimals: number): string {
  const negative = amount < 0n;
  const abs = negative ? -amount : amount;
  const base = 10n ** BigInt(decimals);
  const whole = abs / base;
  const fraction = (abs % base).toString().padStart(decimals, "0").replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
}

export function shortAddress(address: string): string {
  return `${address.slice(0, 6)}…${address.slice(-4)}`;
}
