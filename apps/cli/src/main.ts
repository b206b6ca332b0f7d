#!/usr/bin/env node
/**
 * The `tollgate` command. Every subcommand is a plain function (commands/*) so tests and
 * other programs can run them without a shell.
 */
import { parseArgs } from "node:util";
import { demo } from "./commands/demo.ts";
import { dev } from "./commands/dev.ts";
import { facilitator } from "./commands/facilitator.ts";
import { pay } from "./commands/pay.ts";

const HELP = `tollgate — x402 payments over HTTP 402

Usage:
  tollgate demo                      the seven steps of x402, narrated, on a local chain (npm start)
  tollgate dev                       a local x402 network: anvil + local Solana, tokens, facilitator, paid API
  tollgate facilitator [options]     run a facilitator
      --config FILE                  JSON config (see README); env and flags override it
      --network ID --rpc-url URL     serve one EVM network, e.g. eip155:84532
      --asset ADDR:NAME:VERSION:DEC  allow one asset (repeatable); default: any EIP-3009 token
      --solana-network ID --solana-rpc-url URL   also serve one Solana network (same process)
      --port N --host H              listen address (default 127.0.0.1:4020)
      --database-url URL             PostgreSQL ledger (several instances); default embedded PGlite
      --data-dir DIR                 PGlite data directory (default in memory)
      keys: FACILITATOR_PRIVATE_KEY (EVM) and SOLANA_FEE_PAYER_KEY (Solana: base58 or a
            solana-keygen JSON array), from the env or the config file
  tollgate pay URL [options]         pay for URL as an agent; prints the body and the receipt
      -X, --method M  -d, --data BODY  -H, --header "Name: value"
      --max "$0.10"                  refuse to pay more than this per request (default $0.10)
      --usd-asset NET/ADDR:DEC       count another asset as dollars (e.g. a local token)
      --keystore FILE                encrypted keystore (password in TOLLGATE_KEYSTORE_PASSWORD)
      --solana-rpc URL               Solana JSON-RPC (default: the public cluster RPCs)
      --prefer PATTERN               pay on these networks first, e.g. "solana:*" (repeatable)
      keys: TOLLGATE_PRIVATE_KEY (EVM, env) unless --keystore; TOLLGATE_SOLANA_KEY (Solana,
            base58 or a solana-keygen JSON array); with both, the agent can pay on either
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "demo":
      await demo();
      return 0;
    case "dev": {
      const { values } = parseArgs({ args: rest, options: { port: { type: "string" } } });
      const stop = await dev(values.port ? { apiPort: Number(values.port) } : {});
      await waitForSignal();
      await stop();
      return 0;
    }
    case "facilitator": {
      const { values } = parseArgs({
        args: rest,
        options: {
          config: { type: "string" },
          port: { type: "string" },
          host: { type: "string" },
          network: { type: "string" },
          "rpc-url": { type: "string" },
          asset: { type: "string", multiple: true },
          "solana-network": { type: "string" },
          "solana-rpc-url": { type: "string" },
          "database-url": { type: "string" },
          "data-dir": { type: "string" },
        },
      });
      const stop = await facilitator({
        ...(values.config ? { config: values.config } : {}),
        ...(values.port ? { port: values.port } : {}),
        ...(values.host ? { host: values.host } : {}),
        ...(values.network ? { network: values.network } : {}),
        ...(values["rpc-url"] ? { rpcUrl: values["rpc-url"] } : {}),
        ...(values.asset ? { asset: values.asset } : {}),
        ...(values["solana-network"] ? { solanaNetwork: values["solana-network"] } : {}),
        ...(values["solana-rpc-url"] ? { solanaRpcUrl: values["solana-rpc-url"] } : {}),
        ...(values["database-url"] ? { databaseUrl: values["database-url"] } : {}),
        ...(values["data-dir"] ? { dataDir: values["data-dir"] } : {}),
      });
      await waitForSignal();
      await stop();
      return 0;
    }
    case "pay": {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          method: { type: "string", short: "X" },
          data: { type: "string", short: "d" },
          header: { type: "string", short: "H", multiple: true },
          max: { type: "string" },
          "usd-asset": { type: "string", multiple: true },
          keystore: { type: "string" },
          "solana-rpc": { type: "string" },
          prefer: { type: "string", multiple: true },
        },
      });
      const url = positionals[0];
      if (!url || positionals.length > 1) throw new UsageError("pay takes exactly one URL");
      return pay({
        url,
        ...(values.method ? { method: values.method } : {}),
        ...(values.data !== undefined ? { body: values.data } : {}),
        ...(values.header ? { headers: values.header } : {}),
        ...(values.max ? { max: values.max } : {}),
        ...(values["usd-asset"] ? { usdAssets: values["usd-asset"] } : {}),
        ...(values.keystore ? { keystore: values.keystore } : {}),
        ...(values["solana-rpc"] ? { solanaRpc: values["solana-rpc"] } : {}),
        ...(values.prefer ? { prefer: values.prefer } : {}),
      });
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(HELP);
      return command === undefined ? 1 : 0;
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

class UsageError extends Error {}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => resolve();
    process.once("SIGINT", done);
    process.once("SIGTERM", done);
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`tollgate: ${message}\n`);
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) process.stderr.write("run `tollgate help` for usage\n");
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
