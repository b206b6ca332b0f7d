// The paywall page's wallet script (bundled by packages/server/scripts/build-paywall.ts into
// ../paywall-bundle.ts and inlined in the page). It reads the PaymentRequired the page carries,
// finds the browser's wallets, gets the wallet onto the right chain, checks the balance, has the
// wallet sign the `exact` payment, retries this same URL with PAYMENT-SIGNATURE, and shows what
// was bought with a link to the transaction. Requests go only to this page's origin and the wallet.
import type { PaymentRequirements, SettleResponse } from "@tollgate/core";
import { PAYWALL_DATA_ID, PAYWALL_PANEL_ID, type PaywallOfferView, type PaywallPageData } from "../paywall-data.ts";
import { PAYMENT_REQUIRED, PAYMENT_RESPONSE, PAYMENT_SIGNATURE } from "./constants.ts";
import { renderContent } from "./content.ts";
import { el, externalLink } from "./dom.ts";
import { decodeBase64Json, encodeBase64Json } from "./encode.ts";
import {
  EIP2612_GAS_SPONSORING,
  PERMIT2_ADDRESS,
  allowanceData,
  balanceOfData,
  noncesData,
  paymentPayload,
  payableChainId,
  uint256Result,
  unsignedPayment,
  unsignedSponsoringPermit,
  wantsPermit2,
} from "./evm.ts";
import { solanaPayload, unsignedSolanaPayment, walletChain } from "./solana.ts";
import { buildPanel, formatUnits, shortAddress, type Panel } from "./ui.ts";
import {
  UNRECOGNIZED_CHAIN,
  USER_REJECTED,
  canPaySolana,
  connectSolana,
  discoverEvmWallets,
  discoverSolanaWallets,
  errorCode,
  injectedWallet,
  signSolanaTransaction,
  type EvmWallet,
  type StandardAccount,
  type StandardWallet,
} from "./wallets.ts";

interface Payable {
  requirements: PaymentRequirements;
  view: PaywallOfferView;
  family: "evm" | "solana";
  /** EVM offers. */
  chainId: number;
}

/** A blockhash older than this is replaced by a fresh page's before signing (it lives ~60-90 s). */
const SOLANA_DATA_MAX_AGE_MS = 30_000;

/** Thrown to stop the flow after the panel already says why. */
class Stop extends Error {}

function start(): void {
  const root = document.getElementById(PAYWALL_PANEL_ID);
  const island = document.getElementById(PAYWALL_DATA_ID);
  if (!root || !island) return;
  let data: PaywallPageData;
  try {
    data = JSON.parse(island.textContent ?? "") as PaywallPageData;
  } catch {
    return;
  }
  const panel = buildPanel(root);
  // The 402's error line speaks to x402 clients ("PAYMENT-SIGNATURE header is required"); the panel speaks to people.
  const serverError = document.getElementById("tg-server-error");
  if (serverError) serverError.hidden = true;
  const payables: Payable[] = [];
  data.required.accepts.forEach((requirements, i) => {
    const view = data.offers[i];
    if (!view) return;
    if (requirements.scheme === "exact" && requirements.network.startsWith("solana:")) {
      // Payable when the server read the chain data for the page (paywall-solana.ts).
      if (view.solana) payables.push({ requirements, view, family: "solana", chainId: 0 });
      return;
    }
    try {
      payables.push({ requirements, view, family: "evm", chainId: payableChainId(requirements) });
    } catch {
      // not an `exact` offer the page can sign (another scheme): the table still shows it
    }
  });
  if (data.required.accepts.some((r, i) => r.network.startsWith("solana:") && !data.offers[i]?.solana)) {
    panel.note.textContent = "The Solana option cannot be paid from this page (the server provides no Solana chain data for it): use an x402 client for it.";
  }
  if (payables.length === 0) {
    panel.set("no-wallet", "None of the payment options can be paid from a browser wallet on this page. Use an x402 client.", "error");
    return;
  }
  const session = new Session(panel, data, payables);
  session.discover();
}

class Session {
  private wallet: EvmWallet | undefined;
  /** A connected Solana wallet (wallet standard) and its account. */
  private sol: { wallet: StandardWallet; account: StandardAccount } | undefined;
  private account: string | undefined;
  private evmWallets: EvmWallet[] = [];
  private solanaWallets: StandardWallet[] = [];
  /** When the Solana chain data in `data` was read (page load, or the last refresh). */
  private solanaDataAt = Date.now();
  private chosen = 0;
  private busy = false;
  /** A payment the server is still settling: retried as it is, never signed again. */
  private pendingHeader: string | undefined;

  constructor(
    private readonly panel: Panel,
    private readonly data: PaywallPageData,
    private readonly payables: Payable[],
  ) {
    this.renderOptions();
    panel.payButton.addEventListener("click", () => void this.pay());
  }

  private get offer(): Payable {
    return this.payables[this.chosen]!;
  }

  discover(): void {
    this.panel.set("discovering", "Looking for wallets in this browser…");
    const evm = this.payables.some((p) => p.family === "evm");
    if (evm) {
      discoverEvmWallets((wallets) => {
        this.evmWallets = wallets;
        this.renderWallets();
      });
    }
    if (this.payables.some((p) => p.family === "solana")) {
      discoverSolanaWallets((wallets) => {
        this.solanaWallets = wallets.filter(canPaySolana);
        this.renderWallets();
      });
    }
    // Wallets answer the request synchronously or soon after; a legacy one never announces.
    setTimeout(() => {
      if (this.evmWallets.length > 0 || this.solanaWallets.length > 0) return;
      const injected = evm ? injectedWallet() : undefined;
      if (injected) {
        this.evmWallets = [injected];
        this.renderWallets();
      } else {
        const networks = [...new Set(this.payables.map((p) => p.view.networkName))].join(" or ");
        this.panel.set("no-wallet", `No wallet found in this browser. Install or enable a wallet that supports ${networks}, then reload this page.`, "error");
      }
    }, 400);
  }

  private renderOptions(): void {
    if (this.payables.length < 2) return;
    const legend = el("legend", {}, "Payment option");
    const radios = this.payables.map((p, i) => {
      const input = el("input", { type: "radio", name: "tg-option", id: `tg-option-${i}`, value: String(i), checked: i === 0 });
      input.addEventListener("change", () => {
        this.chosen = i;
        this.pendingHeader = undefined;
        this.updatePayLabel();
      });
      return el("div", {}, input, " ", el("label", { for: `tg-option-${i}` }, `${p.view.display} on ${p.view.networkName}`));
    });
    this.panel.options.replaceChildren(el("fieldset", {}, legend, ...radios));
  }

  private renderWallets(): void {
    const button = (name: string, icon: string | undefined, id: string, connect: () => Promise<void>) => {
      const shown = icon && /^data:image\/(png|svg\+xml|webp|gif|jpeg);/i.test(icon) ? icon : undefined;
      const b = el("button", { type: "button", class: "secondary", "data-wallet": id }, shown ? el("img", { src: shown, alt: "" }) : undefined, `Connect ${name}`);
      b.addEventListener("click", () => void connect());
      return b;
    };
    const evm = this.evmWallets.map((w) => button(w.name, w.icon, w.id, () => this.connect(w)));
    // A wallet in both lists (one extension, two chains) gets a button per chain family.
    const both = this.evmWallets.length > 0 && this.solanaWallets.length > 0;
    const solana = this.solanaWallets.map((w, i) => button(both ? `${w.name.slice(0, 60)} (Solana)` : w.name.slice(0, 60), w.icon, `solana-${i}`, () => this.connectSolana(w)));
    const all = [...evm, ...solana];
    this.panel.wallets.replaceChildren(...all);
    if (!this.wallet && !this.sol && all.length > 0) this.panel.set("choose-wallet", all.length === 1 ? `${all[0]!.textContent ?? "Connect the wallet"} to pay.` : "Choose the wallet to pay with.");
  }

  /** Selects the first offer of `family` (the wallet just connected pays it). */
  private chooseFamily(family: Payable["family"]): void {
    if (this.offer.family === family) return;
    const i = this.payables.findIndex((p) => p.family === family);
    if (i < 0) return;
    this.chosen = i;
    this.pendingHeader = undefined;
    const radio = document.getElementById(`tg-option-${i}`) as HTMLInputElement | null;
    if (radio) radio.checked = true;
  }

  private async connectSolana(wallet: StandardWallet): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      this.panel.set("connecting", `Asking ${wallet.name} for an account…`);
      let account: StandardAccount | undefined;
      try {
        account = await connectSolana(wallet);
      } catch (e) {
        if (isRejection(e)) throw this.fail("rejected", "You declined to connect the wallet. Nothing was charged.");
        throw e;
      }
      if (!account) throw this.fail("error", `${wallet.name} returned no account that can sign Solana transactions.`);
      this.sol = { wallet, account };
      this.account = account.address;
      this.chooseFamily("solana");
      this.panel.account.hidden = false;
      this.panel.account.replaceChildren("Paying from ", el("code", { title: account.address }, shortAddress(account.address)), ` (${wallet.name.slice(0, 60)})`);
      this.panel.wallets.hidden = true;
      this.updatePayLabel();
      this.panel.payButton.hidden = false;
      const o = this.offer;
      this.panel.set("ready", `Ready: paying ${o.view.display} on ${o.view.networkName} to ${o.requirements.payTo}. The network fee is paid by the payment service.`, "ok");
      this.panel.payButton.focus();
    } catch (e) {
      this.report(e);
    } finally {
      this.busy = false;
    }
  }

  private async connect(wallet: EvmWallet): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      this.panel.set("connecting", `Asking ${wallet.name} for an account…`);
      const accounts = await this.request(wallet, "eth_requestAccounts", [], "You declined to connect the wallet. Nothing was charged.");
      const first = Array.isArray(accounts) ? accounts[0] : undefined;
      if (typeof first !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(first)) throw this.fail("error", `${wallet.name} returned no account.`);
      this.wallet = wallet;
      this.account = first;
      this.chooseFamily("evm");
      wallet.provider.on?.("accountsChanged", (a: unknown) => {
        this.account = Array.isArray(a) && typeof a[0] === "string" ? a[0] : undefined;
        this.pendingHeader = undefined;
        this.showAccount();
        // Disconnected in the wallet: back to choosing one.
        this.panel.wallets.hidden = Boolean(this.account);
        this.panel.payButton.hidden = !this.account;
      });
      this.showAccount();
      // The account line names the wallet from here on; reload the page to pick another one.
      this.panel.wallets.hidden = true;
      this.updatePayLabel();
      this.panel.payButton.hidden = false;
      await this.prepare();
      this.panel.payButton.focus();
    } catch (e) {
      this.report(e);
    } finally {
      this.busy = false;
    }
  }

  private showAccount(): void {
    this.panel.account.hidden = !this.account;
    this.panel.account.replaceChildren("Paying from ", el("code", { title: this.account ?? "" }, this.account ? shortAddress(this.account) : ""), this.wallet ? ` (${this.wallet.name})` : "");
  }

  private updatePayLabel(): void {
    const o = this.offer;
    this.panel.payButton.textContent = `Pay ${o.view.display} on ${o.view.networkName}`;
  }

  /** The wallet is on the offer's chain and holds enough; otherwise the panel says why and this throws Stop. */
  private async prepare(): Promise<void> {
    const wallet = this.wallet!;
    const o = this.offer;
    await this.ensureChain(wallet, o);
    this.panel.set("checking-balance", "Checking your balance…");
    const balance = uint256Result(await this.request(wallet, "eth_call", [{ to: o.requirements.asset, data: balanceOfData(this.account!) }, "latest"]));
    const amount = BigInt(o.requirements.amount);
    if (balance < amount) {
      throw this.fail("insufficient-balance", `Insufficient balance: this costs ${o.view.display} and ${shortAddress(this.account!)} holds ${this.units(balance, o)} on ${o.view.networkName}. Nothing was charged.`);
    }
    this.panel.set("ready", `Ready: ${this.units(balance, o)} available. Paying ${o.view.display} on ${o.view.networkName} to ${o.requirements.payTo}.`, "ok");
  }

  private units(amount: bigint, o: Payable): string {
    return o.view.token ? `${formatUnits(amount, o.view.token.decimals)} ${o.view.token.symbol}` : `${amount} atomic units`;
  }

  private async ensureChain(wallet: EvmWallet, o: Payable): Promise<void> {
    const chainHex = `0x${o.chainId.toString(16)}`;
    const current = async () => Number.parseInt(String(await this.request(wallet, "eth_chainId", [])), 16);
    if ((await current()) === o.chainId) return;
    const wrong = `Your wallet is on another network. Switch it to ${o.view.networkName} (chain id ${o.chainId}), then press pay again. Nothing was charged.`;
    this.panel.set("switching-chain", `Asking ${wallet.name} to switch to ${o.view.networkName}…`);
    try {
      await wallet.provider.request({ method: "wallet_switchEthereumChain", params: [{ chainId: chainHex }] });
    } catch (e) {
      if (errorCode(e) !== UNRECOGNIZED_CHAIN || !o.view.addChain) throw this.fail("wrong-chain", wrong);
      try {
        await wallet.provider.request({ method: "wallet_addEthereumChain", params: [{ chainId: chainHex, ...o.view.addChain }] });
      } catch {
        throw this.fail("wrong-chain", wrong);
      }
    }
    if ((await current()) !== o.chainId) throw this.fail("wrong-chain", wrong);
  }

  private async pay(): Promise<void> {
    if (this.busy || (!this.wallet && !this.sol) || !this.account) return;
    this.busy = true;
    this.panel.payButton.disabled = true;
    try {
      const family = this.sol ? "solana" : "evm";
      if (this.offer.family !== family) {
        throw this.fail("wrong-wallet", `The connected wallet cannot pay ${this.offer.view.networkName}. Choose an option on ${family === "solana" ? "Solana" : "an EVM network"}, or reload the page and connect another wallet. Nothing was charged.`);
      }
      const header = this.pendingHeader ?? (family === "solana" ? await this.signSolana() : await this.sign());
      this.panel.set("paying", "Paying and fetching the content…");
      const res = await fetch(location.href, {
        headers: { [PAYMENT_SIGNATURE]: header, Accept: "text/html,application/json;q=0.9,*/*;q=0.8" },
        cache: "no-store",
        credentials: "same-origin",
      });
      await this.answer(res, header);
    } catch (e) {
      this.report(e);
    } finally {
      this.busy = false;
      this.panel.payButton.disabled = false;
    }
  }

  /** Prepares, then has the wallet sign; the PAYMENT-SIGNATURE header value. */
  private async sign(): Promise<string> {
    await this.prepare();
    const wallet = this.wallet!;
    const o = this.offer;
    const now = Math.floor(Date.now() / 1000);
    const unsigned = unsignedPayment(o.requirements, this.account!, { now });
    let signedExtensions;
    if (wantsPermit2(o.requirements)) signedExtensions = await this.permit2Allowance(wallet, o, String(unsigned.typedData.message.deadline));
    this.panel.set("signing", `Confirm the payment of ${o.view.display} in ${wallet.name}.`);
    const rejected = "You rejected the signature in your wallet. Nothing was charged.";
    const signature = await this.request(wallet, "eth_signTypedData_v4", [this.account, JSON.stringify(unsigned.typedData)], rejected);
    if (typeof signature !== "string" || !/^0x([0-9a-fA-F]{2})+$/.test(signature)) throw this.fail("error", `${wallet.name} returned no signature.`);
    return encodeBase64Json(paymentPayload(this.data.required, o.requirements, unsigned.payload(signature), signedExtensions));
  }

  /** Has the Solana wallet sign the transfer (partially: the facilitator adds the fee payer's signature); the header value. */
  private async signSolana(): Promise<string> {
    const { wallet, account } = this.sol!;
    const o = this.offer;
    const chain = await this.freshSolanaData(o);
    const unsigned = unsignedSolanaPayment(o.requirements, account.address, chain);
    this.panel.set("signing", `Confirm the payment of ${o.view.display} in ${wallet.name.slice(0, 60)}.`);
    let signed: Uint8Array | undefined;
    try {
      signed = await signSolanaTransaction(wallet, account, unsigned.transaction, walletChain(o.requirements.network));
    } catch (e) {
      if (isRejection(e)) throw this.fail("rejected", "You rejected the signature in your wallet. Nothing was charged.");
      throw e;
    }
    if (!signed) throw this.fail("error", `${wallet.name.slice(0, 60)} returned no signed transaction.`);
    return encodeBase64Json(paymentPayload(this.data.required, o.requirements, solanaPayload(signed, account.address)));
  }

  /**
   * The offer's Solana chain data, young enough to sign with: an old blockhash is replaced by the
   * one in a fresh copy of this page, fetched from its own URL (the page reaches no RPC).
   */
  private async freshSolanaData(o: Payable) {
    if (Date.now() - this.solanaDataAt < SOLANA_DATA_MAX_AGE_MS) return o.view.solana!;
    this.panel.set("signing", "Getting a recent blockhash from the server…");
    const res = await fetch(location.href, { headers: { Accept: "text/html" }, cache: "no-store", credentials: "same-origin" });
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    let fresh: PaywallPageData | undefined;
    try {
      fresh = JSON.parse(doc.getElementById(PAYWALL_DATA_ID)?.textContent ?? "") as PaywallPageData;
    } catch {
      fresh = undefined;
    }
    const r = o.requirements;
    const i = fresh?.required.accepts.findIndex((x) => x.network === r.network && x.asset === r.asset && x.payTo === r.payTo && x.amount === r.amount) ?? -1;
    const solana = i >= 0 ? fresh?.offers[i]?.solana : undefined;
    if (!solana) throw this.fail("error", "The server did not provide a recent Solana blockhash for this payment. Reload the page and try again. Nothing was charged.");
    o.view.solana = solana;
    this.solanaDataAt = Date.now();
    return solana;
  }

  /** Permit2 needs the token approved to it; without approval the server may take a signed EIP-2612 permit instead. */
  private async permit2Allowance(wallet: EvmWallet, o: Payable, deadline: string) {
    const owner = this.account!;
    const allowance = uint256Result(await this.request(wallet, "eth_call", [{ to: o.requirements.asset, data: allowanceData(owner, PERMIT2_ADDRESS) }, "latest"]));
    if (allowance >= BigInt(o.requirements.amount)) return undefined;
    if (this.data.required.extensions?.[EIP2612_GAS_SPONSORING] === undefined) {
      throw this.fail("allowance-required", `This token is paid through Permit2, and ${shortAddress(owner)} has not approved Permit2 (${PERMIT2_ADDRESS}) for it. Approve it in your wallet, then press pay again. Nothing was charged.`);
    }
    const tokenNonce = uint256Result(await this.request(wallet, "eth_call", [{ to: o.requirements.asset, data: noncesData(owner) }, "latest"]));
    const permit = unsignedSponsoringPermit(o.requirements, owner, tokenNonce, deadline);
    this.panel.set("signing", `Confirm the token permit for Permit2 in ${wallet.name} (first payment with this token).`);
    const signature = await this.request(wallet, "eth_signTypedData_v4", [owner, JSON.stringify(permit.typedData)], "You rejected the permit in your wallet. Nothing was charged.");
    if (typeof signature !== "string") throw this.fail("error", `${wallet.name} returned no signature.`);
    return permit.extension(signature);
  }

  private async answer(res: Response, header: string): Promise<void> {
    const settlement = decodeBase64Json(res.headers.get(PAYMENT_RESPONSE)) as Partial<SettleResponse> | undefined;
    if (res.ok) {
      this.pendingHeader = undefined;
      await this.showPaid(res, settlement);
      return;
    }
    // 412: the spec's answer for a missing Permit2 allowance (permit2_allowance_required); same header as a 402.
    if (res.status === 402 || res.status === 412) {
      const required = decodeBase64Json(res.headers.get(PAYMENT_REQUIRED)) as { error?: unknown } | undefined;
      const reason = typeof required?.error === "string" ? required.error : typeof settlement?.errorReason === "string" ? settlement.errorReason : "the payment was refused";
      if (/^settlement_pending\b/.test(reason)) {
        this.pendingHeader = header;
        throw this.fail("settlement-pending", `The payment is still being settled. Press pay again in a moment: the same payment is sent again, never a second one.`);
      }
      throw this.fail("settlement-failed", `The payment did not go through (${reason}). Nothing was charged.`);
    }
    // A 5xx after the payment was sent (e.g. the settlement's outcome is unknown): do not claim nothing moved.
    if (res.status >= 500) throw this.fail("error", `The server answered HTTP ${res.status}: the payment's outcome is unknown. Check your wallet's history before paying again.`);
    throw this.fail("error", `The server answered HTTP ${res.status}. Nothing was charged; try again later.`);
  }

  private async showPaid(res: Response, settlement: Partial<SettleResponse> | undefined): Promise<void> {
    const o = this.offer;
    const tx = typeof settlement?.transaction === "string" && settlement.transaction !== "" ? settlement.transaction : undefined;
    const heading = el("h2", { id: "tg-result-title", tabindex: "-1" }, "Paid: your content");
    const txLine = tx
      ? el("p", { id: "tg-transaction" }, "Transaction: ", o.view.explorer && /^[0-9A-Za-z]+$/.test(tx) ? externalLink(`${o.view.explorer.prefix}${tx}${o.view.explorer.suffix}`, tx) : el("code", {}, tx))
      : el("p", {}, "The server did not report a transaction.");
    this.panel.result.replaceChildren(heading, txLine, await renderContent(res, location.href));
    this.panel.result.hidden = false;
    this.panel.payButton.hidden = true;
    this.panel.wallets.hidden = true;
    this.panel.set("paid", `Paid ${o.view.display} on ${o.view.networkName}.`, "ok");
    markPaid();
    heading.focus();
  }

  /** A wallet request; a 4001 (user rejected) becomes the `rejected` state with `rejectedMessage`. */
  private async request(wallet: EvmWallet, method: string, params: unknown[], rejectedMessage = "You rejected the request in your wallet. Nothing was charged."): Promise<unknown> {
    try {
      return await wallet.provider.request({ method, params });
    } catch (e) {
      if (errorCode(e) === USER_REJECTED) throw this.fail("rejected", rejectedMessage);
      throw e;
    }
  }

  private fail(state: Parameters<Panel["set"]>[0], message: string): Stop {
    this.panel.set(state, message, "error", true);
    return new Stop(message);
  }

  private report(e: unknown): void {
    if (e instanceof Stop) return;
    const message = e instanceof Error ? e.message : typeof (e as { message?: unknown })?.message === "string" ? String((e as { message: string }).message) : String(e);
    this.panel.set("error", `Something went wrong: ${message.slice(0, 300)}. Nothing was charged.`, "error", true);
  }
}

/** The page heading and tab title stop saying "Payment required" (the server wrote the paid wording). */
function markPaid(): void {
  const h1 = document.getElementById("tg-title");
  const paid = h1?.dataset.paidTitle;
  if (!h1 || !paid) return;
  h1.textContent = paid;
  document.title = paid;
}

/** A wallet-standard wallet's "user rejected": EIP-1193's 4001 where it keeps it, else its wording. */
function isRejection(e: unknown): boolean {
  if (errorCode(e) === USER_REJECTED) return true;
  const message = (e as { message?: unknown } | null)?.message;
  return typeof message === "string" && /reject|declin|denied|cancel/i.test(message);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
