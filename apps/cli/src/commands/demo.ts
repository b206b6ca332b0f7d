/**
 * `npm start`: the seven steps of x402, narrated one by one against a local network that is
 * entirely real — anvil, our token contract, our facilitator, a paid API — ending with the
 * transaction hash and on-chain balances before and after. Then the same route is paid again
 * on Solana (local litesvm endpoint, SPL token): the paid route accepts both chains, and an
 * agent holding both keys picks Solana by policy.
 */
import {
  atomicToDecimal,
  createPaymentClient,
  decodeBase64Json,
  Headers as X402Headers,
  parsePaymentRequired,
  parseSettleResponse,
  preferNetworks,
  spendingPolicy,
  type FacilitatorClient,
  type PaymentRequirements,
} from "@tollgate/core";
import { eip3009Abi, exactEvmClient } from "@tollgate/evm";
import { exactSvmClient } from "@tollgate/svm";
import { createSolanaRpc, type Address as SolanaAddress } from "@solana/kit";
import { createPublicClient, http, type Address } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { startDevStack, type DevStack } from "../stack.ts";

export interface DemoOptions {
  out?: (line: string) => void;
}

export interface ChainPayment {
  transaction: string;
  payer: { before: bigint; after: bigint };
  payee: { before: bigint; after: bigint };
  amount: bigint;
}

/** The EVM payment (top level, as before) and the Solana payment of the same route. */
export interface DemoResult extends ChainPayment {
  network: string;
  solana: ChainPayment & { network: string };
}

export async function demo(options: DemoOptions = {}): Promise<DemoResult> {
  const out = options.out ?? ((l: string) => process.stdout.write(l + "\n"));
  const bold = !options.out && process.stdout.isTTY ? (s: string) => `\x1b[1m${s}\x1b[0m` : (s: string) => s;
  const step = (n: number, title: string) => out(`\n${bold(`${n}. ${title}`)}`);
  const show = (label: string, value: unknown) => out(`   ${label.padEnd(18)} ${typeof value === "string" ? value : JSON.stringify(value)}`);

  out("Starting a local x402 network: anvil, USDC-like token, facilitator, paid API…");
  // The server's calls to the facilitator are narrated as they happen (steps 5 and 6 of the
  // EVM run; one line each in the shorter Solana run).
  let brief = false;
  const narrate = (client: FacilitatorClient): FacilitatorClient => ({
    supported: () => client.supported(),
    async verify(payload, requirements) {
      if (brief) {
        const r = await client.verify(payload, requirements);
        show("POST /verify", r.isValid ? `isValid true (payer ${r.payer})` : `isValid false: ${r.invalidReason}`);
        return r;
      }
      step(5, "The server forwards the payload to the facilitator: POST /verify");
      const r = await client.verify(payload, requirements);
      show("isValid", r.isValid);
      if (r.payer) show("payer", r.payer);
      if (r.invalidReason) show("invalidReason", r.invalidReason);
      return r;
    },
    async settle(payload, requirements) {
      if (brief) {
        const r = await client.settle(payload, requirements);
        show("POST /settle", r.success ? `success, co-signed by the fee payer and submitted` : `failed: ${r.errorReason}`);
        return r;
      }
      step(6, "The handler succeeded; the facilitator settles on-chain: POST /settle");
      out("   (signature, amount, recipient, time window, balance and nonce checked again; the facilitator pays the gas)");
      const r = await client.settle(payload, requirements);
      show("success", r.success);
      show("transaction", r.transaction);
      if (r.errorReason) show("errorReason", r.errorReason);
      return r;
    },
  });
  const stack = await startDevStack({ wrapFacilitator: narrate });
  try {
    const { chain } = stack;
    const usdc = chain.usdc;
    const rpc = createPublicClient({ transport: http(chain.rpcUrl) });
    const balance = (a: Address) => rpc.readContract({ address: usdc.address, abi: eip3009Abi, functionName: "balanceOf", args: [a] });
    const fmt = (v: bigint) => `${atomicToDecimal(v, usdc.decimals)} ${usdc.symbol}`;
    const payer = privateKeyToAccount(chain.accounts.payers[0]!.privateKey);
    const payee = chain.accounts.payee.address;
    out(`   chain       ${chain.rpcUrl} (${chain.network})`);
    out(`   token       ${usdc.address} (${usdc.name}, version ${usdc.version}, ${usdc.decimals} decimals)`);
    out(`   facilitator ${stack.facilitatorUrl}`);
    out(`   paid API    ${stack.apiUrl}/weather`);
    const before = { payer: await balance(payer.address), payee: await balance(payee) };

    const url = `${stack.apiUrl}/weather`;
    step(1, "The agent sends an ordinary HTTP request");
    show("request", `GET ${url}`);
    const first = await fetch(url);
    show("status", `${first.status} ${first.statusText}`);
    await first.body?.cancel();

    step(2, "The server answers 402 with a PaymentRequired object (PAYMENT-REQUIRED header)");
    const decoded = decodeBase64Json(first.headers.get(X402Headers.v2.required), X402Headers.v2.required);
    if (!decoded.ok) throw new Error(decoded.message);
    const parsed = parsePaymentRequired(decoded.value);
    if (!parsed.ok) throw new Error(parsed.message);
    const option = parsed.value.accepts.find((o) => o.network === chain.network) as PaymentRequirements;
    show("scheme", option.scheme);
    show("network", option.network);
    show("amount", `${option.amount} atomic units = ${fmt(BigInt(option.amount))}`);
    show("asset", option.asset);
    show("payTo", option.payTo);
    show("maxTimeoutSeconds", option.maxTimeoutSeconds);
    const others = parsed.value.accepts.filter((o) => o !== option).map((o) => o.network);
    if (others.length > 0) show("also accepted on", `${others.join(", ")} (same price; this agent pays on ${option.network})`);

    step(3, "The agent's wallet signs an EIP-3009 transferWithAuthorization (gasless for the payer)");
    const client = createPaymentClient({
      schemes: [exactEvmClient({ account: payer })],
      policy: spendingPolicy({ maxPerRequest: "$0.05", usdAssets: [{ network: chain.network, asset: usdc.address, decimals: usdc.decimals }] }),
    });
    const payment = await client.pay(parsed.value, { url });
    const auth = (payment.payload.payload as { authorization: Record<string, string> }).authorization;
    show("spending policy", "at most $0.05 per request: ok");
    show("from", auth.from);
    show("to", auth.to);
    show("value", auth.value);
    show("valid", `${new Date(Number(auth.validAfter) * 1000).toISOString()} .. ${new Date(Number(auth.validBefore) * 1000).toISOString()}`);
    show("nonce", auth.nonce);
    show("signature", `${String((payment.payload.payload as { signature: string }).signature).slice(0, 22)}…`);

    step(4, `The agent retries with the payload in the ${payment.header.name} header`);
    show("header", `${payment.header.name}: ${payment.header.value.slice(0, 40)}… (${payment.header.value.length} bytes)`);
    const paid = await fetch(url, { headers: { [payment.header.name]: payment.header.value } });
    const body = await paid.text();

    step(7, "The server answers 200 with the resource and a PAYMENT-RESPONSE receipt");
    show("status", `${paid.status} ${paid.statusText}`);
    show("body", body);
    const receiptRaw = decodeBase64Json(paid.headers.get(X402Headers.v2.response), X402Headers.v2.response);
    const receipt = receiptRaw.ok ? parseSettleResponse(receiptRaw.value) : undefined;
    if (paid.status !== 200 || !receipt?.ok || !receipt.value.success) {
      // Not released: the signed authorization was handed over and may still settle.
      throw new Error(`the paid request failed: HTTP ${paid.status} ${body}`);
    }
    payment.commit();
    show("receipt", receipt.value);
    const tx = await rpc.getTransactionReceipt({ hash: receipt.value.transaction as `0x${string}` });
    show("on-chain", `block ${tx.blockNumber}, status ${tx.status}, gas ${tx.gasUsed} paid by ${tx.from}`);

    const after = { payer: await balance(payer.address), payee: await balance(payee) };
    out("\nBalances on-chain");
    out(`   payer ${payer.address}  ${fmt(before.payer)} -> ${fmt(after.payer)}`);
    out(`   payee ${payee}  ${fmt(before.payee)} -> ${fmt(after.payee)}`);
    out(`\nDone on ${chain.network}: transaction ${receipt.value.transaction}`);
    const evmPayment: ChainPayment = {
      transaction: receipt.value.transaction,
      payer: { before: before.payer, after: after.payer },
      payee: { before: before.payee, after: after.payee },
      amount: BigInt(option.amount),
    };

    brief = true;
    const solana = await payOnSolana(stack, { out, bold, show, evmPayer: payer });
    out(`\nDone: one route, two chains — ${chain.network} ${evmPayment.transaction.slice(0, 12)}…, ${solana.network} ${solana.transaction.slice(0, 12)}…`);
    return { ...evmPayment, network: chain.network, solana };
  } finally {
    await stack.close();
  }
}

interface Narration {
  out: (line: string) => void;
  bold: (s: string) => string;
  show: (label: string, value: unknown) => void;
  evmPayer: ReturnType<typeof privateKeyToAccount>;
}

/** The same paid route, paid on Solana by an agent holding both keys whose chooser prefers Solana. */
async function payOnSolana(stack: DevStack, { out, bold, show, evmPayer }: Narration): Promise<ChainPayment & { network: string }> {
  const sol = stack.solana;
  const url = `${stack.apiUrl}/weather`;
  const rpc = createSolanaRpc(sol.url);
  // Balances through the chain's JSON-RPC, as any wallet would read them.
  const balance = async (tokenAccount: SolanaAddress) => BigInt((await rpc.getTokenAccountBalance(tokenAccount).send()).value.amount);
  const fmt = (v: bigint) => `${atomicToDecimal(v, sol.decimals)} USDC`;
  const part = (title: string) => out(`\n${bold(title)}`);

  out(`\n${bold("The same route, paid on Solana")}`);
  out(`   Solana      ${sol.url} (${sol.network}, litesvm with the real SPL Token program)`);
  out(`   mint        ${sol.mint} (${sol.decimals} decimals)`);
  out(`   fee payer   ${sol.feePayer.address} (the facilitator's)`);
  const before = { payer: await balance(sol.payer.tokenAccount), payee: await balance(sol.payee.tokenAccount) };

  part("a. The same request again: the 402 offers the same price on both chains");
  const first = await fetch(url);
  await first.body?.cancel();
  const decoded = decodeBase64Json(first.headers.get(X402Headers.v2.required), X402Headers.v2.required);
  const parsed = decoded.ok ? parsePaymentRequired(decoded.value) : undefined;
  if (first.status !== 402 || !parsed?.ok) throw new Error(`expected a 402 with PAYMENT-REQUIRED, got HTTP ${first.status}`);
  const required = parsed.value;
  for (const o of required.accepts) show(o.network, `${o.amount} of ${o.asset} to ${o.payTo}${o.extra?.feePayer ? ` (fee payer ${o.extra.feePayer})` : ""}`);

  part("b. The agent holds an EVM key and a Solana key; its chooser prefers solana:*");
  const client = createPaymentClient({
    schemes: [exactEvmClient({ account: evmPayer }), exactSvmClient({ signer: sol.payer.signer, rpc: sol.url })],
    choose: preferNetworks(["solana:*"]),
    policy: spendingPolicy({
      maxPerRequest: "$0.05",
      usdAssets: [
        { network: stack.chain.network, asset: stack.chain.usdc.address, decimals: stack.chain.usdc.decimals },
        { network: sol.network, asset: sol.mint, decimals: sol.decimals },
      ],
    }),
  });
  const payment = await client.pay(required, { url });
  const option = payment.requirements;
  show("chosen", `${option.network}: ${option.amount} atomic units = ${fmt(BigInt(option.amount))}`);
  const transaction = String((payment.payload.payload as { transaction: string }).transaction);
  show("signed", `a TransferChecked transaction (compute budget, transfer, memo), ${Buffer.from(transaction, "base64").length} bytes`);
  show("payer", `${payment.payer} signs as the token owner; the fee payer's signature is left empty`);

  part(`c. The agent retries with ${payment.header.name}; the server verifies and settles`);
  const paid = await fetch(url, { headers: { [payment.header.name]: payment.header.value } });
  const body = await paid.text();
  const receiptRaw = decodeBase64Json(paid.headers.get(X402Headers.v2.response), X402Headers.v2.response);
  const receipt = receiptRaw.ok ? parseSettleResponse(receiptRaw.value) : undefined;
  if (paid.status !== 200 || !receipt?.ok || !receipt.value.success) {
    // Not released: the signed transaction was handed over and may still settle.
    throw new Error(`the paid request on Solana failed: HTTP ${paid.status} ${body}`);
  }
  payment.commit();

  part("d. 200 with the resource and the receipt");
  show("status", `${paid.status} ${paid.statusText}`);
  show("body", body);
  show("receipt", receipt.value);
  const status = (await rpc.getSignatureStatuses([receipt.value.transaction as never]).send()).value[0];
  show("on-chain", `signature ${receipt.value.transaction}, ${status?.confirmationStatus ?? "unknown"}, ${status?.err ? "failed" : "ok"}`);

  const after = { payer: await balance(sol.payer.tokenAccount), payee: await balance(sol.payee.tokenAccount) };
  out("\nToken balances on Solana");
  out(`   payer ${sol.payer.address}  ${fmt(before.payer)} -> ${fmt(after.payer)}`);
  out(`   payee ${sol.payee.address}  ${fmt(before.payee)} -> ${fmt(after.payee)}`);
  return {
    network: option.network,
    transaction: receipt.value.transaction,
    payer: { before: before.payer, after: after.payer },
    payee: { before: before.payee, after: after.payee },
    amount: BigInt(option.amount),
  };
}
