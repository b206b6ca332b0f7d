// erc20ApprovalGasSponsoring (x402 specs/extensions/erc20_gas_sponsoring.md) on one anvil chain,
// for the devnet's plain ERC-20 (no EIP-3009): our client signs the payer's approve(Permit2) when
// the payer has no allowance and no ETH; the facilitator's check (readErc20ApprovalClaim +
// judgeErc20Approval) holds the signed transaction to every field and simulates approve + settle
// BEFORE anything is spent; every refusal leaves the fee payer's and the payer's balances untouched.
// The sequence the check plans (fund exactly `funding` from a sponsor key, broadcast the approve,
// settle) is carried out by withErc20ApprovalSponsoring around the exact scheme; a retry resumes
// its stored row and never funds twice, also after a funding that was not mined in time.
// The service face (ledger, /supported, paywall) is apps/facilitator/test/erc20-approval.anvil.test.ts.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createPublicClient,
  createWalletClient,
  encodeFunctionData,
  erc20Abi,
  http,
  maxUint256,
  parseGwei,
  parseTransaction,
  type Address,
  type Hex,
  type PublicClient,
  type TransactionSerializableEIP1559,
} from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";
import { foundry } from "viem/chains";
import type { PaymentPayload, PaymentRequirements, SchemeFacilitator } from "@tollgate/core";
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import {
  APPROVE_GAS_LIMIT,
  EIP2612_GAS_SPONSORING,
  ERC20_APPROVAL_GAS_SPONSORING,
  EXACT_PERMIT2_PROXY_ADDRESS,
  Erc20ApprovalReason,
  PERMIT2_ADDRESS,
  encodePermit2Settle,
  erc20PermitAbi,
  exactEvmClient,
  exactEvmFacilitator,
  judgeErc20Approval,
  memorySponsorStore,
  readErc20ApprovalClaim,
  recoverSponsoredApprovals,
  type ApprovalSponsorOptions,
  SponsorReason,
  withErc20ApprovalSponsoring,
  type ApprovalPlan,
  type ApprovalSponsoringPolicy,
  type Erc20ApprovalSponsoringInfo,
  type ExactPermit2Payload,
} from "@tollgate/evm";
import { toClientEvmSigner } from "@x402/evm";
import { ExactEvmScheme as OfficialExactClient } from "@x402/evm/exact/client";

const PRICE = "2500";
const POLICY: ApprovalSponsoringPolicy = { maxGas: 100_000n, maxFeePerGas: parseGwei("50") };
/** What a 402 advertises (the client only looks for the key). */
const ADVERTISED = { [ERC20_APPROVAL_GAS_SPONSORING]: { info: { description: "The facilitator accepts a raw signed approval transaction and will sponsor the gas fees.", version: "1" } } };

let net: RunningLocalNetwork;
let chain: PublicClient;
let facilitator: SchemeFacilitator;
let feePayer: PrivateKeyAccount;
let sponsor: PrivateKeyAccount;

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 1 });
  chain = createPublicClient({ transport: http(net.rpcUrl), pollingInterval: 20 }) as PublicClient;
  feePayer = privateKeyToAccount(net.accounts.facilitator.privateKey);
  facilitator = exactEvmFacilitator({
    networks: [{ network: net.network, rpcUrl: net.rpcUrl, assets: [net.plainToken, net.usdc] }],
    signer: feePayer,
    receiptTimeoutMs: 10_000,
    pollingIntervalMs: 50,
  });
  sponsor = privateKeyToAccount(generatePrivateKey());
  await chain.request({ method: "anvil_setBalance", params: [sponsor.address, "0xde0b6b3a7640000"] } as never);
});

/** The exact scheme with erc20ApprovalGasSponsoring honoured (its own in-memory store unless given). */
function sponsorOptions(opts: { store?: ReturnType<typeof memorySponsorStore>; receiptTimeoutMs?: number } = {}): ApprovalSponsorOptions {
  return {
    sponsor,
    networks: [{ network: net.network, chainId: net.chainId, client: chain }],
    policy: POLICY,
    limits: { perPayerMax: 3, perPayerWindowMs: 3_600_000 },
    store: opts.store ?? memorySponsorStore(),
    receiptTimeoutMs: opts.receiptTimeoutMs ?? 10_000,
  };
}
const sponsored = (opts: Parameters<typeof sponsorOptions>[0] = {}): SchemeFacilitator => withErc20ApprovalSponsoring(facilitator, sponsorOptions(opts));

afterAll(async () => {
  await net?.stop();
});

const tokens = (who: Address) => chain.readContract({ address: net.plainToken.address, abi: erc20Abi, functionName: "balanceOf", args: [who] });
const eth = (who: Address) => chain.getBalance({ address: who });

function requirements(): PaymentRequirements {
  return {
    scheme: "exact",
    network: net.network,
    amount: PRICE,
    asset: net.plainToken.address,
    payTo: net.accounts.payee.address,
    maxTimeoutSeconds: 120,
    extra: { name: net.plainToken.name, version: "1", assetTransferMethod: "permit2" },
  };
}

/** A fresh payer holding 10_000 of the plain token, no ETH, no Permit2 allowance. */
async function freshPayer(): Promise<PrivateKeyAccount> {
  const payer = privateKeyToAccount(generatePrivateKey());
  const funder = createWalletClient({ account: privateKeyToAccount(net.accounts.payers[0]!.privateKey), chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
  await chain.waitForTransactionReceipt({ hash: await funder.writeContract({ address: net.plainToken.address, abi: erc20Abi, functionName: "transfer", args: [payer.address, 10_000n] }) });
  return payer;
}

/** Our client's payment for `payer`, with the extensions the 402 advertised. */
async function ourPayment(payer: PrivateKeyAccount, advertised: Record<string, unknown> = ADVERTISED): Promise<PaymentPayload> {
  const client = exactEvmClient({ account: payer, chainReader: () => chain });
  const req = requirements();
  const context = { x402Version: 2 as const, extensions: advertised };
  const payload = await client.createPayload(req, context);
  const extensions = await client.payloadExtensions?.(req, payload, context);
  return { x402Version: 2, accepted: req, payload, ...(extensions ? { extensions } : {}) };
}

const show = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x));

function infoOf(p: PaymentPayload): Erc20ApprovalSponsoringInfo {
  return (p.extensions?.[ERC20_APPROVAL_GAS_SPONSORING] as { info: Erc20ApprovalSponsoringInfo }).info;
}

/** The facilitator's whole pre-spend check: off-chain fields, then the chain and the simulation. */
async function check(p: PaymentPayload, policy = POLICY) {
  const auth = (p.payload as unknown as ExactPermit2Payload).permit2Authorization;
  const expected = { payer: auth.from, asset: net.plainToken.address, chainId: net.chainId, charge: BigInt(PRICE) };
  const claim = await readErc20ApprovalClaim(p, expected, policy);
  if (claim === undefined || "ok" in claim) return claim;
  const data = encodePermit2Settle(auth, (p.payload as unknown as ExactPermit2Payload).signature);
  return judgeErc20Approval({ client: chain }, claim, { from: feePayer.address, to: EXACT_PERMIT2_PROXY_ADDRESS, data }, policy);
}

/** The payment with its signed approve replaced by one signed from `tx` (by `signer`, default the payer). */
async function withApprove(p: PaymentPayload, payer: PrivateKeyAccount, change: Partial<TransactionSerializableEIP1559>, signer: PrivateKeyAccount = payer): Promise<PaymentPayload> {
  const nonce = await chain.getTransactionCount({ address: payer.address });
  const base: TransactionSerializableEIP1559 = {
    type: "eip1559",
    chainId: net.chainId,
    to: net.plainToken.address,
    data: encodeFunctionData({ abi: erc20PermitAbi, functionName: "approve", args: [PERMIT2_ADDRESS, maxUint256] }),
    gas: APPROVE_GAS_LIMIT,
    nonce,
    maxFeePerGas: parseGwei("2"),
    maxPriorityFeePerGas: parseGwei("1"),
  };
  const signedTransaction = await signer.signTransaction({ ...base, ...change } as TransactionSerializableEIP1559);
  return { ...p, extensions: { [ERC20_APPROVAL_GAS_SPONSORING]: { info: { ...infoOf(p), signedTransaction } } } };
}

/** The facilitator carries out the plan: funds exactly `funding` from the sponsor, broadcasts the approve, waits, settles. */
async function execute(plan: ApprovalPlan, payment: PaymentPayload, scheme = sponsored()) {
  const [before, nonce] = [await eth(sponsor.address), await chain.getTransactionCount({ address: sponsor.address })];
  const settled = await scheme.settle(payment, requirements());
  // One funding transfer of exactly plan.funding (plus its own gas), and the payer's approve mined.
  expect(await chain.getTransactionCount({ address: sponsor.address })).toBe(nonce + (plan.funding > 0n ? 1 : 0));
  if (plan.funding > 0n) expect(before - (await eth(sponsor.address))).toBeGreaterThanOrEqual(plan.funding);
  expect((await chain.getTransactionReceipt({ hash: plan.hash })).status).toBe("success");
  return settled;
}

describe("our client", () => {
  it("signs approve(Permit2, max) for a payer with no allowance and no ETH, only when advertised, and prefers an EIP-2612 permit where both are", async () => {
    const payer = await freshPayer();
    const payment = await ourPayment(payer);
    const info = infoOf(payment);
    expect(info).toMatchObject({ from: payer.address, asset: net.plainToken.address, spender: PERMIT2_ADDRESS, amount: maxUint256.toString(), version: "1" });
    // The signed transaction is what the client chose: EIP-1559 on this chain, the payer's next nonce, 70k gas.
    const tx = parseTransaction(info.signedTransaction);
    expect(tx).toMatchObject({ type: "eip1559", chainId: net.chainId, to: net.plainToken.address.toLowerCase(), nonce: 0, gas: APPROVE_GAS_LIMIT });
    // Not advertised: nothing added. Advertised together with eip2612 for a token that has
    // EIP-2612 (the devnet's plain token does): the gasless permit wins, no funding needed.
    expect((await ourPayment(payer, {})).extensions).toBeUndefined();
    const both = await ourPayment(payer, { ...ADVERTISED, [EIP2612_GAS_SPONSORING]: { info: {} } });
    expect(Object.keys(both.extensions ?? {})).toEqual([EIP2612_GAS_SPONSORING]);
  });

  it("adds nothing for a payer who holds ETH for the approve", async () => {
    const payer = await freshPayer();
    const wallet = createWalletClient({ account: feePayer, chain: { ...foundry, id: net.chainId }, transport: http(net.rpcUrl) });
    await chain.waitForTransactionReceipt({ hash: await wallet.sendTransaction({ to: payer.address, value: 10n ** 17n }) });
    expect((await ourPayment(payer)).extensions).toBeUndefined();
  });
});

describe("the facilitator's check, then the planned sequence", () => {
  it("a payer with zero ETH and zero allowance pays: funded exactly gas × maxFeePerGas, approve broadcast, settled once", async () => {
    const payer = await freshPayer();
    const payee = net.accounts.payee.address;
    const payment = await ourPayment(payer);
    const [payeeBefore, feePayerBefore] = [await tokens(payee), await eth(feePayer.address)];
    const plan = await check(payment);
    expect(plan && "funding" in plan, show(plan)).toBe(true);
    const p = plan as ApprovalPlan;
    expect(p.funding).toBe(p.gas * p.maxFeePerGas);
    // The bare exact scheme tells the payer to approve (412 at a paywall); with sponsoring, verify honours the signed approve.
    expect(await facilitator.verify(payment, requirements())).toMatchObject({ isValid: false, invalidReason: "permit2_allowance_required" });
    expect(await sponsored().verify(payment, requirements())).toMatchObject({ isValid: true, payer: payer.address });
    // Checking spent nothing.
    expect(await eth(feePayer.address)).toBe(feePayerBefore);
    expect(await eth(payer.address)).toBe(0n);
    const scheme = sponsored();
    const settled = await execute(p, payment, scheme);
    expect(settled, JSON.stringify(settled)).toMatchObject({ success: true, payer: payer.address });
    // The same payment settled again through the same scheme (no service ledger in front): its row
    // says approved, no second funding; the Permit2 nonce is spent, so nothing moves either.
    const [sponsorEth, sponsorNonce] = [await eth(sponsor.address), await chain.getTransactionCount({ address: sponsor.address })];
    expect(await scheme.settle(payment, requirements())).toMatchObject({ success: false });
    expect(await eth(sponsor.address)).toBe(sponsorEth);
    expect(await chain.getTransactionCount({ address: sponsor.address })).toBe(sponsorNonce);
    expect(await tokens(payer.address)).toBe(10_000n - BigInt(PRICE));
    expect(await tokens(payee)).toBe(payeeBefore + BigInt(PRICE));
    // The payer keeps only the unspent part of the funding; the approval is in place.
    expect(await eth(payer.address)).toBeLessThan(p.funding);
    expect(await chain.readContract({ address: net.plainToken.address, abi: erc20Abi, functionName: "allowance", args: [payer.address, PERMIT2_ADDRESS] })).toBe(maxUint256);
    // Replayed: the approve's nonce is spent, so the check refuses before any funding.
    const again = await check(payment);
    expect(again).toMatchObject({ ok: false, reason: Erc20ApprovalReason.nonceMismatch });
  });

  it("a funding not mined in time fails the settlement as pending; the retry resumes the same row and funds once", async () => {
    const payer = await freshPayer();
    const payment = await ourPayment(payer);
    const other = await ourPayment(payer);
    const store = memorySponsorStore();
    const [before, nonce] = [await eth(sponsor.address), await chain.getTransactionCount({ address: sponsor.address })];
    await chain.request({ method: "evm_setAutomine", params: [false] } as never);
    let first, second;
    try {
      first = await sponsored({ store, receiptTimeoutMs: 300 }).settle(payment, requirements());
      // While that funding is outstanding, another payment of the same payer gets none.
      second = await sponsored({ store, receiptTimeoutMs: 300 }).settle(other, requirements());
    } finally {
      await chain.request({ method: "evm_setAutomine", params: [true] } as never);
    }
    expect(first).toMatchObject({ success: false, errorReason: SponsorReason.approvePending });
    expect(second).toMatchObject({ success: false, errorReason: SponsorReason.payerOutstanding });
    expect(await chain.getTransactionCount({ address: sponsor.address, blockTag: "pending" })).toBe(nonce + 1);
    await chain.request({ method: "evm_mine", params: [] } as never);
    // The background look (as after a restart) finishes the open row: funding mined, approve sent and mined.
    expect(await store.open(net.network)).toHaveLength(1);
    expect(await recoverSponsoredApprovals(sponsorOptions({ store }))).toBe(1);
    expect(await store.open(net.network)).toHaveLength(0);
    expect(await chain.readContract({ address: net.plainToken.address, abi: erc20Abi, functionName: "allowance", args: [payer.address, PERMIT2_ADDRESS] })).toBe(maxUint256);
    const settled = await sponsored({ store }).settle(payment, requirements());
    expect(settled, JSON.stringify(settled)).toMatchObject({ success: true });
    expect(await chain.getTransactionCount({ address: sponsor.address })).toBe(nonce + 1);
    expect(before - (await eth(sponsor.address))).toBeLessThanOrEqual(POLICY.maxGas! * POLICY.maxFeePerGas + 21_000n * parseGwei("50"));
    expect(await tokens(payer.address)).toBe(10_000n - BigInt(PRICE));
  });

  it("refuses malformed, over-gas, over-fee, wrong-target, wrong-spender, wrong-chain, valued, foreign-signed, stale-nonce approvals before any funding", async () => {
    const payer = await freshPayer();
    const payment = await ourPayment(payer);
    const stranger = privateKeyToAccount(generatePrivateKey());
    const approve = (spender: Address, amount: bigint) => encodeFunctionData({ abi: erc20PermitAbi, functionName: "approve", args: [spender, amount] });
    const cases: [string, Promise<PaymentPayload>][] = [
      [Erc20ApprovalReason.gasOverPolicy, withApprove(payment, payer, { gas: 500_000n })],
      [Erc20ApprovalReason.feeOutOfRange, withApprove(payment, payer, { maxFeePerGas: parseGwei("500"), maxPriorityFeePerGas: parseGwei("1") })],
      [Erc20ApprovalReason.wrongTarget, withApprove(payment, payer, { to: net.usdc.address })],
      [Erc20ApprovalReason.wrongSpender, withApprove(payment, payer, { data: approve(stranger.address, maxUint256) })],
      [Erc20ApprovalReason.wrongSelector, withApprove(payment, payer, { data: encodeFunctionData({ abi: erc20Abi, functionName: "transfer", args: [stranger.address, 1n] }) })],
      [Erc20ApprovalReason.invalidCalldata, withApprove(payment, payer, { data: `${approve(PERMIT2_ADDRESS, maxUint256)}00` as Hex })],
      [Erc20ApprovalReason.invalidFields, withApprove(payment, payer, { chainId: net.chainId + 1 })],
      [Erc20ApprovalReason.invalidFields, withApprove(payment, payer, { value: 1n })],
      [Erc20ApprovalReason.signerMismatch, withApprove(payment, payer, {}, stranger)],
      [Erc20ApprovalReason.nonceMismatch, withApprove(payment, payer, { nonce: 1 })],
      [Erc20ApprovalReason.feeOutOfRange, withApprove(payment, payer, { maxFeePerGas: 1n, maxPriorityFeePerGas: 1n })],
      [Erc20ApprovalReason.parseFailed, Promise.resolve({ ...payment, extensions: { [ERC20_APPROVAL_GAS_SPONSORING]: { info: { ...infoOf(payment), signedTransaction: "0xdeadbeef" } } } })],
      [Erc20ApprovalReason.invalidFormat, Promise.resolve({ ...payment, extensions: { [ERC20_APPROVAL_GAS_SPONSORING]: { info: { ...infoOf(payment), amount: "lots" } } } })],
      [Erc20ApprovalReason.spenderNotPermit2, Promise.resolve({ ...payment, extensions: { [ERC20_APPROVAL_GAS_SPONSORING]: { info: { ...infoOf(payment), spender: stranger.address } } } })],
      [Erc20ApprovalReason.amountTooLow, Promise.resolve({ ...payment, extensions: { [ERC20_APPROVAL_GAS_SPONSORING]: { info: { ...infoOf(payment), amount: "1" } } } })],
    ];
    const feePayerBefore = await eth(feePayer.address);
    for (const [reason, made] of cases) {
      const verdict = await check(await made);
      expect(verdict, reason).toMatchObject({ ok: false, reason });
      expect((verdict as { message: string }).message).toMatch(/^paymentPayload\.extensions\.erc20ApprovalGasSponsoring\.info/);
    }
    // A funding cap below what the approve may cost is refused too.
    expect(await check(payment, { ...POLICY, maxFunding: 1n })).toMatchObject({ ok: false, reason: Erc20ApprovalReason.fundingOverPolicy });
    // A payment whose settle would fail after the approve (payer holds too little) fails the simulation.
    const poor = privateKeyToAccount(generatePrivateKey());
    const poorPayment = await ourPayment(poor);
    expect(await check(poorPayment)).toMatchObject({ ok: false, reason: Erc20ApprovalReason.simulationFailed });
    expect(await eth(feePayer.address)).toBe(feePayerBefore);
    expect(await eth(payer.address)).toBe(0n);
    expect(await tokens(payer.address)).toBe(10_000n);
  });
});

describe("interop", () => {
  it("the official @x402/evm client's signed approval passes our check, and the planned sequence settles it", async () => {
    const payer = await freshPayer();
    const signer = toClientEvmSigner(payer, chain as never);
    const req = requirements();
    const created = (await new OfficialExactClient(signer).createPaymentPayload(2, req as never, { extensions: ADVERTISED } as never)) as {
      payload: Record<string, unknown>;
      extensions?: Record<string, unknown>;
    };
    expect(created.extensions?.[ERC20_APPROVAL_GAS_SPONSORING]).toBeDefined();
    const payment: PaymentPayload = { x402Version: 2, accepted: req, payload: created.payload, extensions: created.extensions! };
    const plan = await check(payment);
    expect(plan && "funding" in plan, show(plan)).toBe(true);
    const settled = await execute(plan as ApprovalPlan, payment);
    expect(settled, JSON.stringify(settled)).toMatchObject({ success: true });
    expect(await tokens(payer.address)).toBe(10_000n - BigInt(PRICE));
  });
});
