/**
 * `exact` on Solana against litesvm (real SVM, real SPL Token program, in-process): the happy
 * path with balance checks, and every verification rule with the spec's reason and no funds moved.
 */
import { getSetComputeUnitLimitInstruction, getSetComputeUnitPriceInstruction } from "@solana-program/compute-budget";
import { getTransferSolInstruction } from "@solana-program/system";
import { findAssociatedTokenPda, getTransferCheckedInstruction, TOKEN_PROGRAM_ADDRESS } from "@solana-program/token";
import {
  AccountRole,
  address,
  appendTransactionMessageInstructions,
  createNoopSigner,
  createTransactionMessage,
  generateKeyPairSigner,
  getBase58Decoder,
  getBase64EncodedWireTransaction,
  getTransactionDecoder,
  getTransactionEncoder,
  partiallySignTransactionMessageWithSigners,
  pipe,
  setTransactionMessageFeePayer,
  setTransactionMessageLifetimeUsingBlockhash,
  type Address,
  type Blockhash,
  type Instruction,
  type TransactionSigner,
} from "@solana/kit";
import { Reason, withNetworks, NETWORKS, type PaymentPayload, type PaymentRequirements } from "@tollgate/core";
import { beforeEach, describe, expect, it } from "vitest";
import {
  exactSvmClient,
  exactSvmFacilitator,
  exactSvmServer,
  decodeBase64Transaction,
  MEMO_PROGRAM,
  setupLocalSolanaNetwork,
  type LocalSolanaNetwork,
} from "../src/index.ts";

const AMOUNT = 10_000n; // 0.01 USDC

let net: LocalSolanaNetwork;
let requirements: PaymentRequirements;
let facilitator: ReturnType<typeof exactSvmFacilitator>;

beforeEach(async () => {
  net = await setupLocalSolanaNetwork();
  requirements = {
    scheme: "exact",
    network: net.network,
    amount: AMOUNT.toString(),
    asset: net.mint,
    payTo: net.payee.address,
    maxTimeoutSeconds: 60,
    extra: { feePayer: net.feePayer.address },
  };
  facilitator = exactSvmFacilitator({ networks: [{ network: net.network, rpc: net.chain, assets: [net.mint] }], feePayer: net.feePayer.signer, pollIntervalMs: 10 });
});

const payloadOf = (transaction: string, accepted = requirements): PaymentPayload => ({ x402Version: 2, accepted, payload: { transaction } });

function snapshot() {
  return {
    payer: net.tokenBalance(net.payer.tokenAccount),
    payee: net.tokenBalance(net.payee.tokenAccount),
    feePayerTokens: net.tokenBalance(net.feePayer.tokenAccount),
    feePayerSol: net.svm.getBalance(net.feePayer.address),
  };
}

/** Both verify and settle reject with `reason`, and nothing moved on chain. */
async function expectRejected(transaction: string, reason: string, reqs = requirements) {
  const before = snapshot();
  const v = await facilitator.verify(payloadOf(transaction, reqs), reqs);
  expect(v.isValid).toBe(false);
  expect(v.invalidReason).toBe(reason);
  const s = await facilitator.settle(payloadOf(transaction, reqs), reqs);
  expect(s.success).toBe(false);
  expect(s.errorReason).toBe(reason);
  expect(s.transaction).toBe("");
  expect(snapshot()).toEqual(before);
}

/** Builds and partially signs a transaction from raw instructions, fee payer = the facilitator. */
async function craft(instructions: Instruction[], feePayer: Address = net.feePayer.address): Promise<string> {
  const message = pipe(
    createTransactionMessage({ version: 0 }),
    (m) => setTransactionMessageFeePayer(feePayer, m),
    (m) => appendTransactionMessageInstructions(instructions, m),
    (m) => setTransactionMessageLifetimeUsingBlockhash({ blockhash: net.svm.latestBlockhash() as Blockhash, lastValidBlockHeight: 1000n }, m),
  );
  return getBase64EncodedWireTransaction(await partiallySignTransactionMessageWithSigners(message));
}

const limitIx = (units = 20_000) => getSetComputeUnitLimitInstruction({ units });
const priceIx = (microLamports = 1n) => getSetComputeUnitPriceInstruction({ microLamports });
const memoIx = (text = "0123456789abcdef0123456789abcdef", accounts: Instruction["accounts"] = []): Instruction => ({
  programAddress: address(MEMO_PROGRAM),
  accounts,
  data: new TextEncoder().encode(text),
});
async function transferIx(o: { source?: Address; destination?: Address; mint?: Address; authority?: TransactionSigner; amount?: bigint } = {}) {
  const mint = o.mint ?? net.mint;
  const [payeeAta] = await findAssociatedTokenPda({ owner: net.payee.address, mint, tokenProgram: TOKEN_PROGRAM_ADDRESS });
  const [payerAta] = await findAssociatedTokenPda({ owner: net.payer.address, mint, tokenProgram: TOKEN_PROGRAM_ADDRESS });
  return getTransferCheckedInstruction({
    source: o.source ?? payerAta,
    mint,
    destination: o.destination ?? payeeAta,
    authority: o.authority ?? net.payer.signer,
    amount: o.amount ?? AMOUNT,
    decimals: 6,
  });
}

async function clientPayload(reqs = requirements): Promise<string> {
  const client = exactSvmClient({ signer: net.payer.signer, rpc: net.chain });
  const p = await client.createPayload(reqs, { x402Version: 2 });
  return p.transaction as string;
}

describe("exact on Solana (litesvm)", () => {
  it("pays: client builds, facilitator verifies and settles, tokens move exactly once", async () => {
    const tx = await clientPayload();
    const before = snapshot();

    const v = await facilitator.verify(payloadOf(tx), requirements);
    expect(v).toEqual({ isValid: true, payer: net.payer.address });
    expect(snapshot()).toEqual(before); // verify moves nothing

    const s = await facilitator.settle(payloadOf(tx), requirements);
    expect(s.success).toBe(true);
    expect(s.payer).toBe(net.payer.address);
    expect(s.network).toBe(net.network);
    expect(s.amount).toBe(AMOUNT.toString());
    expect(s.transaction).toMatch(/^[1-9A-HJ-NP-Za-km-z]{64,88}$/);

    const after = snapshot();
    expect(after.payer).toBe(before.payer - AMOUNT);
    expect(after.payee).toBe(before.payee + AMOUNT);
    expect(after.feePayerTokens).toBe(before.feePayerTokens);
    expect(after.feePayerSol).toBeLessThan(before.feePayerSol!); // the facilitator paid the fee
    expect(net.svm.getBalance(net.payer.address)).toBe(1_000_000_000n); // the payer paid no SOL
  });

  it("the client's transaction has the spec layout: limit, price, TransferChecked, memo; fee payer unsigned", async () => {
    const wire = await clientPayload();
    const decoded = decodeBase64Transaction(wire);
    expect(decoded.version).toBe(0);
    expect(decoded.feePayer).toBe(net.feePayer.address);
    expect(decoded.instructions.map((i) => i.programAddress)).toEqual([
      "ComputeBudget111111111111111111111111111111",
      "ComputeBudget111111111111111111111111111111",
      "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
      MEMO_PROGRAM,
    ]);
    expect(decoded.instructions[3]!.data).toHaveLength(32); // 16-byte nonce, hex
    const tx = decoded.transaction;
    const sigs = tx.signatures as Record<string, Uint8Array | null>;
    expect(Object.keys(sigs)).toEqual([net.feePayer.address, net.payer.address]);
    expect(sigs[net.feePayer.address]).toBeNull();
    expect(sigs[net.payer.address]).toBeInstanceOf(Uint8Array);
    const identity = await facilitator.authenticate!(payloadOf(getBase64EncodedWireTransaction(tx as never)), requirements);
    expect(identity).toMatchObject({ ok: true, payer: net.payer.address });
    expect(identity.ok && identity.key).toMatch(/^solana:localnet\|svm-message\|[0-9a-f]{64}$/);
  });

  it("uses extra.memo verbatim and rejects a different memo", async () => {
    const reqs = { ...requirements, extra: { ...requirements.extra, memo: "invoice-42" } };
    const tx = await clientPayload(reqs);
    expect((await facilitator.verify(payloadOf(tx, reqs), reqs)).isValid).toBe(true);
    await expectRejected(await craft([limitIx(), priceIx(), await transferIx(), memoIx("invoice-43")]), Reason.svmMemoMismatch, reqs);
    await expectRejected(await craft([limitIx(), priceIx(), await transferIx()]), Reason.svmMemoCount, reqs);
  });

  it("rejects a replay of a settled transaction, and concurrent double settles", async () => {
    const tx = await clientPayload();
    const first = await facilitator.settle(payloadOf(tx), requirements);
    expect(first.success).toBe(true);
    const before = snapshot();
    const again = await facilitator.settle(payloadOf(tx), requirements);
    expect(again.success).toBe(false);
    expect(again.errorReason).toBe(Reason.duplicateSettlement);
    const v = await facilitator.verify(payloadOf(tx), requirements);
    expect(v.invalidReason).toBe(Reason.duplicateSettlement);
    expect(snapshot()).toEqual(before);

    // A fresh facilitator (no in-memory cache) still refuses: the chain knows the signature.
    const other = exactSvmFacilitator({ networks: [{ network: net.network, rpc: net.chain, assets: [net.mint] }], feePayer: net.feePayer.signer });
    expect((await other.settle(payloadOf(tx), requirements)).errorReason).toBe(Reason.duplicateSettlement);

    // Concurrent copies in one process share one send and one answer (which /settle may hand the
    // success out is the facilitator ledger's decision); the money moves once.
    const tx2 = await clientPayload();
    const results = await Promise.all([facilitator.settle(payloadOf(tx2), requirements), facilitator.settle(payloadOf(tx2), requirements)]);
    // In-process litesvm may finish the first before the second is checked: then the chain answers it.
    const won = results.find((r) => r.success)!;
    expect(won).toMatchObject({ success: true });
    for (const r of results) {
      if (!r.success) expect(r).toMatchObject({ errorReason: Reason.duplicateSettlement, extensions: { "tollgate-settlement": { status: "settled", transaction: won.transaction } } });
      else expect(r).toEqual(won);
    }
    expect(snapshot().payee).toBe(before.payee + AMOUNT);
    // Later, the chain has it: refused, with the chain's verdict and the id for the ledger.
    expect(await facilitator.settle(payloadOf(tx2), requirements)).toMatchObject({
      success: false,
      errorReason: Reason.duplicateSettlement,
      transaction: "",
      extensions: { "tollgate-settlement": { status: "settled", transaction: won.transaction } },
    });
  });

  it("concurrent and quick repeated settles of one transaction send it once even when the RPC hides duplicates", async () => {
    // A real RPC accepts a duplicate submission and reports the original's success: the spec's
    // duplicate-settlement race. Model that: only this process's own record of what it sent stands in the way.
    let sends = 0;
    const hiding = {
      ...net.chain,
      async getSignatureStatus(signature: string) {
        return sends > 0 && Date.now() - lastSend < 30 ? null : net.chain.getSignatureStatus(signature); // status lags the send
      },
      async sendTransaction(wire: string) {
        sends++;
        lastSend = Date.now();
        const t = getTransactionDecoder().decode(Buffer.from(wire, "base64"));
        setTimeout(() => void net.chain.sendTransaction(wire), 30); // lands a little later; duplicates dropped silently
        return { signature: getBase58Decoder().decode(Object.values(t.signatures)[0]!) };
      },
    };
    let lastSend = 0;
    facilitator = exactSvmFacilitator({ networks: [{ network: net.network, rpc: hiding, assets: [net.mint] }], feePayer: net.feePayer.signer, pollIntervalMs: 10 });
    const before = snapshot();
    const tx = await clientPayload();
    const results = await Promise.all([1, 2, 3].map(() => facilitator.settle(payloadOf(tx), requirements)));
    expect(results.map((r) => r.success)).toEqual([true, true, true]);
    expect(new Set(results.map((r) => r.transaction)).size).toBe(1);
    // At once again, before the RPC shows the id: this process sent it, so it is not sent again.
    lastSend = Date.now();
    expect(await facilitator.settle(payloadOf(tx), requirements)).toMatchObject({ success: false, errorReason: Reason.duplicateSettlement });
    expect(sends).toBe(1);
    expect(snapshot().payee).toBe(before.payee + AMOUNT);
  });

  it("rejects instructions in the wrong order", async () => {
    await expectRejected(await craft([priceIx(), limitIx(), await transferIx(), memoIx()]), Reason.svmComputeLimitInstruction);
    await expectRejected(await craft([limitIx(), await transferIx(), priceIx(), memoIx()]), Reason.svmComputePriceInstruction);
    await expectRejected(await craft([limitIx(), priceIx(), memoIx(), await transferIx()]), Reason.svmNoTransferInstruction);
  });

  it("rejects extra instructions", async () => {
    const stranger = await generateKeyPairSigner();
    const sol = getTransferSolInstruction({ source: net.payer.signer, destination: stranger.address, amount: 1_000n });
    await expectRejected(await craft([limitIx(), priceIx(), await transferIx(), sol]), Reason.svmUnknownFourthInstruction);
    await expectRejected(await craft([limitIx(), priceIx(), await transferIx(), memoIx(), sol]), Reason.svmUnknownFifthInstruction);
    await expectRejected(await craft([limitIx(), priceIx(), await transferIx(), memoIx(), memoIx("a"), sol]), Reason.svmUnknownSixthInstruction);
    await expectRejected(
      await craft([limitIx(), priceIx(), await transferIx(), memoIx(), memoIx("a"), memoIx("b"), memoIx("c")]),
      Reason.svmInstructionsLength,
    );
    await expectRejected(await craft([limitIx(), priceIx()]), Reason.svmInstructionsLength);
  });

  it("rejects the fee payer in any instruction's accounts", async () => {
    const memo = memoIx("x", [{ address: net.feePayer.address, role: AccountRole.READONLY }]);
    await expectRejected(await craft([limitIx(), priceIx(), await transferIx(), memo]), Reason.svmFeePayerInInstructionAccounts);
  });

  it("rejects the fee payer as the transfer's authority or source (its own tokens stay put)", async () => {
    const feePayerSigner = createNoopSigner(net.feePayer.address);
    const ix = await transferIx({ source: net.feePayer.tokenAccount, authority: feePayerSigner });
    await expectRejected(await craft([limitIx(), priceIx(), ix, memoIx()]), Reason.svmFeePayerTransferringFunds);
    const ix2 = await transferIx({ source: net.feePayer.tokenAccount });
    await expectRejected(await craft([limitIx(), priceIx(), ix2, memoIx()]), Reason.svmFeePayerTransferringFunds);
  });

  it("rejects a compute unit price over the cap (spec cap and a stricter configured one)", async () => {
    await expectRejected(await craft([limitIx(), priceIx(5_000_001n), await transferIx(), memoIx()]), Reason.svmComputePriceTooHigh);
    facilitator = exactSvmFacilitator({ networks: [{ network: net.network, rpc: net.chain, assets: [net.mint] }], feePayer: net.feePayer.signer, maxComputeUnitPrice: 1_000n });
    await expectRejected(await craft([limitIx(), priceIx(1_001n), await transferIx(), memoIx()]), Reason.svmComputePriceTooHigh);
    expect(() => exactSvmFacilitator({ networks: [], feePayer: net.feePayer.signer, maxComputeUnitPrice: 6_000_000n })).toThrow(/maxComputeUnitPrice/);
  });

  it("fee drain: caps the compute unit limit and limit × price (the priority fee), not only the price; no lamport leaves the fee payer", async () => {
    // A limit far above what a transfer needs, at the smallest price.
    await expectRejected(await craft([limitIx(1_400_000), priceIx(1n), await transferIx(), memoIx()]), Reason.svmComputeLimitTooHigh);
    // Each within its own cap (400k units, 5 lamports per unit), together 2,000,000 lamports of priority fee.
    await expectRejected(await craft([limitIx(400_000), priceIx(5_000_000n), await transferIx(), memoIx()]), Reason.svmComputePriceTooHigh);
    // Just under the default total (10,000 lamports): accepted and settled, the fee payer paying that fee.
    const ok = await craft([limitIx(20_000), priceIx(499_999n), await transferIx(), memoIx()]);
    expect(await facilitator.verify(payloadOf(ok), requirements)).toMatchObject({ isValid: true });
    // A stricter configured total and limit.
    facilitator = exactSvmFacilitator({
      networks: [{ network: net.network, rpc: net.chain, assets: [net.mint] }],
      feePayer: net.feePayer.signer,
      maxPriorityFeeLamports: 100n,
      maxComputeUnitLimit: 50_000,
    });
    await expectRejected(await craft([limitIx(20_000), priceIx(5_001n), await transferIx(), memoIx()]), Reason.svmComputePriceTooHigh);
    await expectRejected(await craft([limitIx(50_001), priceIx(1n), await transferIx(), memoIx()]), Reason.svmComputeLimitTooHigh);
    expect(await facilitator.verify(payloadOf(await craft([limitIx(20_000), priceIx(5_000n), await transferIx(), memoIx()])), requirements)).toMatchObject({ isValid: true });
  });

  it("zero amount: refused before any RPC call, nothing moves", async () => {
    const zero = { ...requirements, amount: "0" };
    const calls: string[] = [];
    const counting = new Proxy(net.chain, { get: (t, k) => (typeof (t as never)[k] === "function" ? (...a: unknown[]) => (calls.push(String(k)), (t as never as Record<string, (...x: unknown[]) => unknown>)[k as string]!(...a)) : (t as never)[k]) });
    facilitator = exactSvmFacilitator({ networks: [{ network: net.network, rpc: counting, assets: [net.mint] }], feePayer: net.feePayer.signer });
    await expectRejected(await craft([limitIx(), priceIx(), await transferIx({ amount: 0n }), memoIx()], undefined), Reason.amountZero, zero);
    expect(calls).toEqual([]);
  });

  it("asset allowlist: a mint not listed is refused before decoding; without a list only the network's USDC is accepted", async () => {
    const other = await setupLocalSolanaNetwork({ svm: net.svm });
    const foreign = { ...requirements, asset: other.mint };
    await expectRejected(await craft([limitIx(), priceIx(), await transferIx({ mint: other.mint }), memoIx()]), Reason.svmAssetNotAllowed, foreign);
    // No list on a network without USDC in the table (a local validator): nothing is accepted.
    facilitator = exactSvmFacilitator({ networks: [{ network: net.network, rpc: net.chain }], feePayer: net.feePayer.signer });
    const v = await facilitator.verify(payloadOf(await clientPayload()), requirements);
    expect(v).toMatchObject({ isValid: false, invalidReason: Reason.svmAssetNotAllowed });
    expect(v.invalidMessage).toMatch(/none configured/);
  });

  it("rejects a wrong destination", async () => {
    const stranger = await generateKeyPairSigner();
    const strangerAta = await net.fundTokens(stranger.address, 0n);
    await expectRejected(await craft([limitIx(), priceIx(), await transferIx({ destination: strangerAta }), memoIx()]), Reason.svmRecipientMismatch);
    // payTo's wallet address itself is not its token account.
    await expectRejected(await craft([limitIx(), priceIx(), await transferIx({ destination: net.payee.address }), memoIx()]), Reason.svmRecipientMismatch);
  });

  it("rejects a wrong amount", async () => {
    await expectRejected(await craft([limitIx(), priceIx(), await transferIx({ amount: AMOUNT - 1n }), memoIx()]), Reason.svmAmountMismatch);
    await expectRejected(await craft([limitIx(), priceIx(), await transferIx({ amount: AMOUNT + 1n }), memoIx()]), Reason.svmAmountMismatch);
  });

  it("rejects a wrong mint", async () => {
    const other = await setupLocalSolanaNetwork({ svm: net.svm });
    await net.fundTokens(net.payee.address, 0n); // keep payee ATA of the original mint
    await expectRejected(await craft([limitIx(), priceIx(), await transferIx({ mint: other.mint }), memoIx()]), Reason.svmMintMismatch);
  });

  it("rejects a missing or invalid client signature", async () => {
    const tx = getTransactionDecoder().decode(Buffer.from(await clientPayload(), "base64"));
    const stripped = { ...tx, signatures: { ...tx.signatures, [net.payer.address]: null } };
    await expectRejected(Buffer.from(getTransactionEncoder().encode(stripped as never)).toString("base64"), Reason.svmSignature);
    const bad = new Uint8Array(tx.signatures[net.payer.address]!);
    bad[0]! ^= 1;
    const tampered = { ...tx, signatures: { ...tx.signatures, [net.payer.address]: bad } };
    await expectRejected(Buffer.from(getTransactionEncoder().encode(tampered as never)).toString("base64"), Reason.svmSignature);
  });

  it("rejects a fee payer that is not extra.feePayer or not this facilitator's", async () => {
    const stranger = await generateKeyPairSigner();
    await expectRejected(await craft([limitIx(), priceIx(), await transferIx(), memoIx()], stranger.address), Reason.svmFeePayerMismatch);
    const foreign = { ...requirements, extra: { feePayer: stranger.address } };
    await expectRejected(await clientPayload(foreign), Reason.svmFeePayerNotManaged, foreign);
    const none = { ...requirements, extra: {} };
    await expectRejected(await clientPayload(), Reason.svmMissingFeePayer, none);
  });

  it("rejects garbage, an expired blockhash and insufficient funds", async () => {
    await expectRejected("not base64!", Reason.svmTransactionUndecodable);
    await expectRejected(Buffer.from("hello").toString("base64"), Reason.svmTransactionUndecodable);

    const stale = await clientPayload();
    net.svm.expireBlockhash();
    await expectRejected(stale, Reason.svmBlockhashExpired);

    const rich = { ...requirements, amount: "2000000000" }; // more than the payer's 1,000 tokens
    await expectRejected(await clientPayload(rich), Reason.insufficientFunds, rich);
  });

  it("server: prices in the network's USDC and takes the fee payer from /supported", () => {
    const table = withNetworks(NETWORKS, [net.networkInfo]);
    const server = exactSvmServer({ networks: table });
    expect(server.parsePrice("$0.01", net.network)).toEqual({ amount: "10000", asset: net.mint });
    expect(server.parsePrice("1.5 USDC", net.network)).toEqual({ amount: "1500000", asset: net.mint });
    expect(server.parsePrice("$0.01", "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp")).toEqual({
      amount: "10000",
      asset: "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
    });
    expect(() => server.parsePrice("0.0000001", net.network)).toThrow(/decimal places/);
    expect(() => server.parsePrice("1 EURC", net.network)).toThrow(/EURC/);
    expect(() => server.parsePrice("$1", "eip155:8453")).toThrow(/not a Solana network/);

    const kind = { x402Version: 2 as const, scheme: "exact", network: net.network, extra: facilitator.kindExtra!(net.network)! };
    const { extra, ...bare } = requirements;
    expect(extra).toBeDefined();
    expect(server.enhanceRequirements!(bare, kind).extra).toEqual({ feePayer: net.feePayer.address });
    expect(facilitator.signers(net.network)).toEqual([net.feePayer.address]);
  });
});
