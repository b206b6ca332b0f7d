// The paywall page's Solana transaction (src/paywall-browser/solana.ts, written by hand for the
// bundle) is byte for byte what @tollgate/svm's Node client builds: same accounts in the same
// order, same instructions, same memo, so the same key's signature gives the same payload JSON.
// And the server side: the chain data it reads for the page (paywall-solana.ts) lands in the page.
import { afterEach, describe, expect, it, vi } from "vitest";
import { findAssociatedTokenPda } from "@solana-program/token";
import {
  address,
  createKeyPairSignerFromPrivateKeyBytes,
  getTransactionDecoder,
  getTransactionEncoder,
  isOffCurveAddress,
  partiallySignTransaction,
  type KeyPairSigner,
} from "@solana/kit";
import type { PaymentRequirements } from "@tollgate/core";
import { exactSvmClient, type SolanaChain } from "@tollgate/svm";
import * as svmConstants from "../../svm/src/constants.ts";
import * as browser from "../src/paywall-browser/solana.ts";
import { paywallSolanaViews } from "../src/paywall-solana.ts";
import { renderPaywallPage } from "../src/paywall-page.ts";
import { PAYWALL_DATA_ID, type PaywallPageData } from "../src/paywall-data.ts";

const BLOCKHASH = "4vJ9JU1bJJE96FWSJKvHsmmFADCg4gpZQff4P3bkLKi";
const FEE_PAYER = "FaC1L1tAToRwXqGcbo5Vf4ZJfyS2Ma3K2e7xBGmD6xFk";
const PAY_TO = "2wmVCSfPxGPjrnMMn7rchp4uaeoTqN39mXFC2zhPdri9";
const USDC_DEVNET = "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU";
const requirements: PaymentRequirements = {
  scheme: "exact",
  network: "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
  amount: "10000",
  asset: USDC_DEVNET,
  payTo: PAY_TO,
  maxTimeoutSeconds: 60,
  extra: { feePayer: FEE_PAYER },
};

function mintAccount(owner: string, decimals: number) {
  const data = new Uint8Array(82);
  data[44] = decimals;
  return { owner, lamports: 1_000_000n, data, executable: false };
}

/** A chain that answers what the Node client reads: the mint and a fixed blockhash. */
function stubChain(owner: string, decimals: number): SolanaChain {
  return {
    getLatestBlockhash: async () => ({ blockhash: BLOCKHASH, lastValidBlockHeight: 1000n }),
    getAccountInfo: async (a) => (a === requirements.asset ? mintAccount(owner, decimals) : null),
    simulateTransaction: async () => ({ err: null, logs: [] }),
    sendTransaction: async () => ({ error: { code: "Unused", message: "unused" } }),
    getSignatureStatus: async () => null,
  };
}

async function payer(): Promise<KeyPairSigner> {
  return createKeyPairSignerFromPrivateKeyBytes(new Uint8Array(32).fill(7));
}

/** What a wallet does with `solana:signTransaction`: decode, add its signature, encode. */
async function walletSign(signer: KeyPairSigner, wire: Uint8Array): Promise<Uint8Array> {
  const tx = getTransactionDecoder().decode(wire);
  return new Uint8Array(getTransactionEncoder().encode(await partiallySignTransaction([signer.keyPair], tx)));
}

afterEach(() => vi.restoreAllMocks());

describe("paywall wallet script: the Solana payment equals the Node client's", () => {
  it("uses the svm package's programs and defaults", () => {
    expect([browser.TOKEN_PROGRAM, browser.TOKEN_2022_PROGRAM, browser.COMPUTE_BUDGET_PROGRAM, browser.MEMO_PROGRAM]).toEqual([
      svmConstants.TOKEN_PROGRAM,
      svmConstants.TOKEN_2022_PROGRAM,
      svmConstants.COMPUTE_BUDGET_PROGRAM,
      svmConstants.MEMO_PROGRAM,
    ]);
    expect(browser.COMPUTE_UNIT_LIMIT).toBe(svmConstants.DEFAULT_COMPUTE_UNIT_LIMIT);
    expect(browser.COMPUTE_UNIT_PRICE_MICROLAMPORTS).toBe(svmConstants.DEFAULT_COMPUTE_UNIT_PRICE_MICROLAMPORTS);
    expect(browser.MAX_MEMO_BYTES).toBe(svmConstants.MAX_MEMO_BYTES);
  });

  it("derives associated token accounts and the curve check as kit does", async () => {
    for (let i = 0; i < 24; i++) {
      const owner = browser.base58Encode(crypto.getRandomValues(new Uint8Array(32)));
      for (const program of [browser.TOKEN_PROGRAM, browser.TOKEN_2022_PROGRAM]) {
        const [kit] = await findAssociatedTokenPda({ owner: address(owner), mint: address(USDC_DEVNET), tokenProgram: address(program) });
        const ours = browser.base58Encode(browser.associatedTokenAddress(browser.base58Decode(owner), browser.base58Decode(USDC_DEVNET), browser.base58Decode(program)));
        expect(ours).toBe(kit);
      }
      // A random 32 bytes is on the curve about half the time: both answers must agree.
      expect(!browser.isOnCurve(browser.base58Decode(owner))).toBe(isOffCurveAddress(address(owner)));
    }
    expect(browser.base58Encode(browser.base58Decode("11111111111111111111111111111111"))).toBe("11111111111111111111111111111111");
  });

  for (const [name, program, memo] of [
    ["SPL Token, random memo nonce", svmConstants.TOKEN_PROGRAM, undefined],
    ["Token-2022, the seller's memo", svmConstants.TOKEN_2022_PROGRAM, "order 42 ☕"],
  ] as const) {
    it(`${name}: same transaction bytes, same signed payload`, async () => {
      const signer = await payer();
      const r: PaymentRequirements = { ...requirements, extra: { ...requirements.extra, ...(memo ? { memo } : {}) } };
      // Both clients draw the 16-byte memo nonce from crypto.getRandomValues: make it the same draw.
      vi.spyOn(globalThis.crypto, "getRandomValues").mockImplementation(((a: Uint8Array) => a.fill(0x5a)) as typeof crypto.getRandomValues);
      const node = await exactSvmClient({ signer, rpc: stubChain(program, 6) }).createPayload(r, {} as never);
      const unsigned = browser.unsignedSolanaPayment(r, signer.address, { blockhash: BLOCKHASH, decimals: 6, tokenProgram: program });
      const payload = browser.solanaPayload(await walletSign(signer, unsigned.transaction), signer.address);
      expect(payload).toEqual(node);
      expect(JSON.stringify(payload)).toBe(JSON.stringify(node));
      // The unsigned wire transaction has one empty slot per signer: fee payer first, payer second.
      expect(unsigned.transaction[0]).toBe(2);
      expect(unsigned.transaction.subarray(1, 129).every((b) => b === 0)).toBe(true);
    });
  }

  it("refuses what it cannot pay, naming the field; and a transaction the wallet did not sign", async () => {
    const signer = await payer();
    const chain = { blockhash: BLOCKHASH, decimals: 6, tokenProgram: browser.TOKEN_PROGRAM };
    expect(() => browser.unsignedSolanaPayment({ ...requirements, extra: {} }, signer.address, chain)).toThrow(/requirements.extra.feePayer/);
    expect(() => browser.unsignedSolanaPayment({ ...requirements, payTo: "0xabc" }, signer.address, chain)).toThrow(/requirements.payTo/);
    expect(() => browser.unsignedSolanaPayment({ ...requirements, amount: "18446744073709551616" }, signer.address, chain)).toThrow(/requirements.amount/);
    expect(() => browser.unsignedSolanaPayment(requirements, signer.address, { ...chain, tokenProgram: FEE_PAYER })).toThrow(/Token-2022/);
    expect(() => browser.unsignedSolanaPayment({ ...requirements, extra: { ...requirements.extra, memo: "x".repeat(257) } }, signer.address, chain)).toThrow(/extra.memo/);
    const unsigned = browser.unsignedSolanaPayment(requirements, signer.address, chain);
    expect(() => browser.solanaPayload(unsigned.transaction, signer.address)).toThrow(/without its signature/);
    expect(() => browser.solanaPayload(new Uint8Array(3), signer.address)).toThrow(/no signed transaction/);
  });

  it("wallet-standard chain names for the public clusters", () => {
    expect(browser.walletChain("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp")).toBe("solana:mainnet");
    expect(browser.walletChain("solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1")).toBe("solana:devnet");
    expect(browser.walletChain("solana:localnet")).toBe("solana:localnet");
  });
});

describe("paywall page: Solana chain data read by the server", () => {
  const evm: PaymentRequirements = { scheme: "exact", network: "eip155:84532", amount: "1", asset: "0x036cbd53842c5426634e7929541ec2318f3dcf7e", payTo: "0x209693bc6afc0c5328ba36faf03c514ef312287c", maxTimeoutSeconds: 60 };

  it("reads blockhash, decimals and token program per Solana offer, and puts them in the page's data", async () => {
    const chain = stubChain(svmConstants.TOKEN_PROGRAM, 6);
    const views = await paywallSolanaViews([evm, requirements], { [requirements.network]: chain });
    expect(views).toEqual([undefined, { blockhash: BLOCKHASH, decimals: 6, tokenProgram: svmConstants.TOKEN_PROGRAM }]);
    const html = renderPaywallPage({ url: "https://a.example/r" }, [{ requirements: evm, display: "$0.000001" }, { requirements, display: "$0.01", solana: views[1]! }], "", {}, { x402Version: 2, error: "", resource: { url: "https://a.example/r" }, accepts: [evm, requirements] });
    const island = new RegExp(`<script type="application/json" id="${PAYWALL_DATA_ID}">(.*?)</script>`).exec(html)![1]!;
    const data = JSON.parse(island) as PaywallPageData;
    expect(data.offers[1]!.solana).toEqual(views[1]);
    expect(data.offers[0]!.solana).toBeUndefined();
  });

  it("no chain configured, a mint of another program, or a failing RPC: no data (the page says: use an x402 client)", async () => {
    expect(await paywallSolanaViews([requirements], undefined)).toEqual([undefined]);
    expect(await paywallSolanaViews([requirements], { "solana:other": stubChain(svmConstants.TOKEN_PROGRAM, 6) })).toEqual([undefined]);
    expect(await paywallSolanaViews([requirements], { [requirements.network]: stubChain(FEE_PAYER, 6) })).toEqual([undefined]);
    const failing = { ...stubChain(svmConstants.TOKEN_PROGRAM, 6), getLatestBlockhash: async () => Promise.reject(new Error("rpc down")) };
    expect(await paywallSolanaViews([requirements], { [requirements.network]: failing })).toEqual([undefined]);
  });
});
