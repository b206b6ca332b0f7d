/** `tollgate dev`: a complete local x402 network, printed, running until Ctrl-C. */
import { getBase58Decoder } from "@solana/kit";
import { atomicToDecimal, type FacilitatorClient, type PaymentRequirements } from "@tollgate/core";
import { writeDevState } from "../dev-state.ts";
import { startDevStack, type DevStack, type DevStackOptions } from "../stack.ts";
import { assertPortsFree } from "../usage.ts";

/** Stable default ports, so the README's URLs are the ones you get. */
export const DEV_PORTS = { chain: 8545, solana: 8899, facilitator: 4020, api: 4021 } as const;

export interface DevOptions extends DevStackOptions {
  /** One JSON object on one line instead of the readable text. */
  json?: boolean;
  out?: (line: string) => void;
  env?: Record<string, string | undefined>;
}

export async function dev(options: DevOptions = {}): Promise<() => Promise<void>> {
  const out = options.out ?? ((l: string) => process.stdout.write(l + "\n"));
  const ports = {
    chainPort: options.chainPort ?? DEV_PORTS.chain,
    solanaPort: options.solanaPort ?? DEV_PORTS.solana,
    facilitatorPort: options.facilitatorPort ?? DEV_PORTS.facilitator,
    apiPort: options.apiPort ?? DEV_PORTS.api,
  };
  await assertPortsFree([
    { port: ports.chainPort, flag: "--chain-port", what: "local chain (anvil)" },
    { port: ports.solanaPort, flag: "--solana-port", what: "local Solana" },
    { port: ports.facilitatorPort, flag: "--facilitator-port", what: "facilitator" },
    { port: ports.apiPort, flag: "--port", what: "demo paid API" },
  ]);
  if (!options.json) out("Starting the local x402 network (anvil, local Solana, facilitator, paid API)…");
  // Payments print as they happen: the stack is built first, so the printer looks it up lazily.
  let stack: DevStack | undefined;
  const log = (line: string) => out(options.json ? JSON.stringify({ event: "payment", line }) : line);
  stack = await startDevStack({
    logLevel: "warn",
    ...options,
    ...ports,
    wrapFacilitator: (client) => paymentPrinter(options.wrapFacilitator ? options.wrapFacilitator(client) : client, () => stack, log),
  });
  const removeState = writeDevState(
    {
      pid: process.pid,
      startedAt: new Date().toISOString(),
      facilitatorUrl: stack.facilitatorUrl,
      apiUrl: stack.apiUrl,
      usdAssets: [
        { network: stack.chain.network, asset: stack.chain.usdc.address, decimals: stack.chain.usdc.decimals },
        { network: stack.solana.network, asset: stack.solana.mint, decimals: stack.solana.decimals },
      ],
    },
    options.env,
  );
  if (options.json) out(JSON.stringify(describe(stack)));
  else printBanner(stack, out);
  const close = stack.close;
  return async () => {
    removeState();
    await close();
  };
}

/** Everything a script needs to use the network, as data (the keys are public local test keys). */
export function describe(stack: DevStack) {
  const { chain, solana: sol } = stack;
  const b58 = getBase58Decoder();
  return {
    facilitatorUrl: stack.facilitatorUrl,
    dashboardUrl: `${stack.facilitatorUrl}/dashboard`,
    apiUrl: stack.apiUrl,
    paidUrl: `${stack.apiUrl}/weather`,
    evm: {
      network: chain.network,
      chainId: chain.chainId,
      rpcUrl: chain.rpcUrl,
      usdc: { address: chain.usdc.address, name: chain.usdc.name, version: chain.usdc.version, decimals: chain.usdc.decimals },
      batchSettler: chain.batchSettler.address,
      erc8004: { identityRegistry: stack.erc8004.identityRegistry, reputationRegistry: stack.erc8004.reputationRegistry, validationRegistry: stack.erc8004.validationRegistry },
      feePayer: chain.accounts.facilitator.address,
      payee: chain.accounts.payee.address,
      payers: chain.accounts.payers.map((p) => ({ address: p.address, privateKey: p.privateKey })),
    },
    solana: {
      network: sol.network,
      rpcUrl: sol.url,
      mint: sol.mint,
      decimals: sol.decimals,
      feePayer: sol.feePayer.address,
      payee: sol.payee.address,
      payer: { address: sol.payer.address, secretKey: b58.decode(sol.payer.secretKey) },
    },
  };
}

function printBanner(stack: DevStack, out: (line: string) => void): void {
  const d = describe(stack);
  out("Tollgate local x402 network is up (keys below are local test keys: never use them on a real chain)\n");
  out(`  chain        ${d.evm.rpcUrl}   network ${d.evm.network}   chain id ${d.evm.chainId}`);
  out(`  USDC         ${d.evm.usdc.address}   EIP-712 "${d.evm.usdc.name}" v${d.evm.usdc.version}, ${d.evm.usdc.decimals} decimals`);
  out(`  batch settler ${d.evm.batchSettler}`);
  out(`  ERC-8004     identity ${d.evm.erc8004.identityRegistry}   reputation ${d.evm.erc8004.reputationRegistry}`);
  out(`               validation ${d.evm.erc8004.validationRegistry}   (the public deployments' addresses)`);
  out(`  facilitator  ${d.facilitatorUrl}   (GET /supported, POST /verify, POST /settle, GET /health, /ready, /metrics)`);
  out(`               fee payer ${d.evm.feePayer}`);
  out(`  dashboard    ${d.dashboardUrl}   (live payments, volume, outcomes, search; open it in a browser)`);
  out(`  paid API     ${d.paidUrl}   ($0.01 on ${d.evm.network} or on ${d.solana.network})`);
  out(`  payee        ${d.evm.payee}`);
  for (const [i, p] of d.evm.payers.entries()) out(`  payer ${i}      ${p.address}   key ${p.privateKey}`);
  out(`\n  Solana       ${d.solana.rpcUrl}   network ${d.solana.network}   (litesvm: real SVM and SPL Token program, in process)`);
  out(`  mint         ${d.solana.mint}   USDC-like, ${d.solana.decimals} decimals, SPL Token program`);
  out(`  fee payer    ${d.solana.feePayer}   (the facilitator's; /supported extra.feePayer)`);
  out(`  payee        ${d.solana.payee}`);
  out(`  payer        ${d.solana.payer.address}`);
  out(`               key ${d.solana.payer.secretKey}`);
  out(`\nEach payer holds ${atomicToDecimal(1_000_000_000n, 6)} USDC on its chain. Pay from another terminal:`);
  out(`  TOLLGATE_PRIVATE_KEY=${d.evm.payers[0]!.privateKey} npx tollgate pay ${d.paidUrl}`);
  out(`  TOLLGATE_SOLANA_KEY=${d.solana.payer.secretKey} npx tollgate pay ${d.paidUrl} --solana-rpc ${d.solana.rpcUrl} --prefer "solana:*"`);
  out("\nPayments appear below as they are made. Ctrl-C stops everything.\n");
}

/**
 * Wraps the demo API's facilitator client: one readable line per settled payment (time, payer →
 * payee, dollars, network, transaction, milliseconds) and one per refusal (the reason).
 */
function paymentPrinter(client: FacilitatorClient, stack: () => DevStack | undefined, out: (line: string) => void): FacilitatorClient {
  const started = new WeakMap<object, number>();
  const dollars = (r: PaymentRequirements) => {
    const s = stack();
    const local = s && [s.chain.usdc.address.toLowerCase(), s.solana.mint].includes(r.network.startsWith("eip155:") ? r.asset.toLowerCase() : r.asset);
    return local ? `$${atomicToDecimal(BigInt(r.amount), 6)}` : `${r.amount} atomic units of ${r.asset}`;
  };
  const time = () => new Date().toISOString().slice(11, 19);
  return {
    supported: () => client.supported(),
    async verify(payload, requirements) {
      started.set(payload, performance.now());
      const r = await client.verify(payload, requirements);
      if (!r.isValid) out(`${time()}  refused   ${dollars(requirements)} on ${requirements.network}: ${r.invalidReason ?? "invalid"}${r.payer ? ` (payer ${r.payer})` : ""}`);
      return r;
    },
    async settle(payload, requirements) {
      const r = await client.settle(payload, requirements);
      const ms = Math.round(performance.now() - (started.get(payload) ?? performance.now()));
      if (r.success) out(`${time()}  paid      ${r.payer ?? "?"} → ${requirements.payTo}  ${dollars(requirements)}  ${requirements.network}  tx ${r.transaction}  ${ms} ms`);
      else out(`${time()}  not paid  ${dollars(requirements)} on ${requirements.network}: ${r.errorReason ?? "failed"}${r.payer ? ` (payer ${r.payer})` : ""}`);
      return r;
    },
  };
}
