/** `tollgate dev`: a complete local x402 network, printed, running until Ctrl-C. */
import { getBase58Decoder } from "@solana/kit";
import { atomicToDecimal } from "@tollgate/core";
import { startDevStack, type DevStackOptions } from "../stack.ts";

export async function dev(options: DevStackOptions & { out?: (line: string) => void } = {}): Promise<() => Promise<void>> {
  const out = options.out ?? ((l: string) => process.stdout.write(l + "\n"));
  const stack = await startDevStack({ logLevel: "info", ...options });
  const { chain } = stack;
  const a = chain.accounts;
  out("Tollgate local x402 network is up (keys below are local test keys: never use them on a real chain)\n");
  out(`  chain        ${chain.rpcUrl}   network ${chain.network}   chain id ${chain.chainId}`);
  out(`  USDC         ${chain.usdc.address}   EIP-712 "${chain.usdc.name}" v${chain.usdc.version}, ${chain.usdc.decimals} decimals`);
  out(`  batch settler ${chain.batchSettler.address}`);
  out(`  facilitator  ${stack.facilitatorUrl}   (GET /supported, POST /verify, POST /settle, GET /health, /ready, /metrics)`);
  out(`               fee payer ${a.facilitator.address}`);
  out(`  paid API     ${stack.apiUrl}/weather   ($0.01 on ${chain.network} or on ${stack.solana.network})`);
  out(`  payee        ${a.payee.address}`);
  for (const [i, p] of a.payers.entries()) {
    out(`  payer ${i}      ${p.address}   key ${p.privateKey}`);
  }
  const sol = stack.solana;
  const b58 = getBase58Decoder();
  out(`\n  Solana       ${sol.url}   network ${sol.network}   (litesvm: real SVM and SPL Token program, in process)`);
  out(`  mint         ${sol.mint}   USDC-like, ${sol.decimals} decimals, SPL Token program`);
  out(`  fee payer    ${sol.feePayer.address}   (the facilitator's; /supported extra.feePayer)`);
  out(`  payee        ${sol.payee.address}   token account ${sol.payee.tokenAccount}`);
  out(`  payer        ${sol.payer.address}   token account ${sol.payer.tokenAccount}`);
  out(`               key ${b58.decode(sol.payer.secretKey)}`);
  out(`\nEach payer holds ${atomicToDecimal(1_000_000_000n, 6)} USDC on its chain. Pay from another terminal:`);
  out(`  TOLLGATE_PRIVATE_KEY=${a.payers[0]!.privateKey} npx tollgate pay ${stack.apiUrl}/weather --usd-asset ${chain.network}/${chain.usdc.address}:6`);
  out(`  TOLLGATE_SOLANA_KEY=${b58.decode(sol.payer.secretKey)} npx tollgate pay ${stack.apiUrl}/weather --solana-rpc ${sol.url} --prefer "solana:*" --usd-asset ${sol.network}/${sol.mint}:6`);
  out("\nCtrl-C stops everything.");
  return stack.close;
}
