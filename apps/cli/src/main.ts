#!/usr/bin/env node
/**
 * The `tollgate` command. Every subcommand is a plain function (commands/*) so tests and
 * other programs can run them without a shell; this file only parses arguments.
 *
 * Commands are imported when run, so `--help` and `--version` answer without loading the stack.
 *
 * Exit codes: 0 success; 1 the command failed (a payment refused or failed, a server error);
 * 2 usage error (unknown command or flag, a malformed value), before anything started.
 */
import { readFileSync } from "node:fs";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError, parsePort } from "./usage.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

interface Command {
  summary: string;
  usage: string;
  options: Options;
  positionals?: boolean;
  run(values: Values, positionals: string[]): Promise<number>;
}

const str = (v: unknown) => (typeof v === "string" ? v : undefined);
const list = (v: unknown) => (Array.isArray(v) ? (v as string[]) : undefined);

const COMMANDS: Record<string, Command> = {
  demo: {
    summary: "the seven steps of x402, narrated, on a local chain (npm start)",
    usage: `tollgate demo [agents|network|upto|channel]

tollgate demo
  Starts a local network (anvil, a USDC-like token, a facilitator, a paid API), pays one request
  step by step with every message shown, then pays the same route on a local Solana.
tollgate demo agents
  Agents pay agents: specialist services over HTTP, MCP and A2A list themselves in the
  facilitator's discovery catalog; a generalist agent with a budget finds them, is refused the
  one over its budget before signing anything, pays the others, answers, and shows each payment.
tollgate demo network
  Many facilitators, one network: three facilitators register as ERC-8004 agents; a server uses
  all of them; one is stopped mid-run and payments go on; every payment is checked on chain
  (settled once), feedback carries the settlement as proof, and reputations are printed.
tollgate demo upto
  Pay at most X (the upto scheme): the agent signs a $0.05 maximum, the API charges per word
  after it ran (less than signed, on-chain balances shown), a zero charge sends no transaction,
  and a settlement above the signed maximum is refused.
tollgate demo channel
  Use first, pay later (batch-settlement): one deposit opens a channel, a hundred requests are
  paid with vouchers checked off-chain, one claim and one settle move the money; balances and
  the number of on-chain transactions are printed.
tollgate demo mandate
  AP2 mandates: a user issues a mandate (at most $0.05 per call, $0.20 a day, two services); the
  agent pays both inside it (each on-chain nonce is the mandate chain's hash), a payment to a third
  payee is refused before signing, and a server requiring mandates refuses a payment without one.
All end by themselves.`,
    options: {},
    positionals: true,
    async run(_values, positionals) {
      const which = positionals[0];
      if (which === "channel" && positionals.length === 1) {
        const { demoChannel } = await import("./commands/demo-channel.ts");
        await demoChannel();
        return 0;
      }
      if (which === "mandate" && positionals.length === 1) {
        const { demoMandate } = await import("./commands/demo-mandate.ts");
        await demoMandate();
        return 0;
      }
      if (which === "upto" && positionals.length === 1) {
        const { demoUpto } = await import("./commands/demo-upto.ts");
        await demoUpto();
        return 0;
      }
      if (positionals.length > 1 || (which !== undefined && which !== "agents" && which !== "network")) throw new UsageError(`demo: unknown demo ${JSON.stringify(positionals.join(" "))} (try \`tollgate demo\`, \`tollgate demo agents\` or \`tollgate demo network\`)`);
      if (which === "network") {
        const { demoNetwork } = await import("./commands/demo-network.ts");
        await demoNetwork();
        return 0;
      }
      if (which === "agents") {
        const { demoAgents } = await import("./commands/demo-agents.ts");
        await demoAgents();
        return 0;
      }
      const { demo } = await import("./commands/demo.ts");
      await demo();
      return 0;
    },
  },
  dev: {
    summary: "a local x402 network: anvil + local Solana, tokens, facilitator, paid API",
    usage: `tollgate dev [options]

Runs until Ctrl-C. Default ports (each changeable; 0 picks a free one):
  --chain-port N         anvil JSON-RPC                      (default 8545)
  --solana-port N        local Solana JSON-RPC (litesvm)     (default 8899)
  --facilitator-port N   facilitator                         (default 4020)
  --port N               the demo paid API                   (default 4021)
  --json                 print one JSON object (URLs, addresses, local test keys) instead of text`,
    options: {
      port: { type: "string" },
      "chain-port": { type: "string" },
      "solana-port": { type: "string" },
      "facilitator-port": { type: "string" },
      json: { type: "boolean" },
    },
    async run(values) {
      const ports = {
        apiPort: parsePort(str(values.port), "--port", 4021),
        chainPort: parsePort(str(values["chain-port"]), "--chain-port", 8545),
        solanaPort: parsePort(str(values["solana-port"]), "--solana-port", 8899),
        facilitatorPort: parsePort(str(values["facilitator-port"]), "--facilitator-port", 4020),
      };
      const { dev } = await import("./commands/dev.ts");
      const stop = await dev({ ...ports, json: values.json === true });
      await waitForSignal();
      await stop();
      return 0;
    },
  },
  facilitator: {
    summary: "run a facilitator (verify and settle payments, pay the gas)",
    usage: `tollgate facilitator [options]

  --config FILE                  JSON config (see README); env and flags override it
  --network ID --rpc-url URL     serve one EVM network, e.g. eip155:84532
  --asset ADDR:NAME:VERSION:DEC  allow one asset (repeatable); default: the network's USDC
  --solana-network ID --solana-rpc-url URL   also serve one Solana network (same process)
  --port N --host H              listen address (default 127.0.0.1:4020)
  --database-url URL             PostgreSQL ledger (several instances); default embedded PGlite
  --data-dir DIR                 PGlite data directory (default in memory)
  --register                     once listening, register this node as an ERC-8004 agent on the
                                 first EVM network (service "x402-facilitator", its fee payer bound
                                 as the agent's verified wallet); owner: FACILITATOR_OPERATOR_KEY,
                                 else the fee payer
  --public-url URL               the endpoint registered (default: the listen address)
  --registry ADDR                identity registry (default: the public deployment's address)
Keys: FACILITATOR_PRIVATE_KEY (EVM) and SOLANA_FEE_PAYER_KEY (Solana: base58 or a solana-keygen
JSON array), from the environment or the config file; never from a flag.`,
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
      register: { type: "boolean" },
      "public-url": { type: "string" },
      registry: { type: "string" },
    },
    async run(values) {
      const port = str(values.port);
      if (port !== undefined) parsePort(port, "--port", 4020);
      const { facilitator } = await import("./commands/facilitator.ts");
      const stop = await facilitator({
        ...(str(values.config) ? { config: str(values.config)! } : {}),
        ...(port !== undefined ? { port } : {}),
        ...(str(values.host) ? { host: str(values.host)! } : {}),
        ...(str(values.network) ? { network: str(values.network)! } : {}),
        ...(str(values["rpc-url"]) ? { rpcUrl: str(values["rpc-url"])! } : {}),
        ...(list(values.asset) ? { asset: list(values.asset)! } : {}),
        ...(str(values["solana-network"]) ? { solanaNetwork: str(values["solana-network"])! } : {}),
        ...(str(values["solana-rpc-url"]) ? { solanaRpcUrl: str(values["solana-rpc-url"])! } : {}),
        ...(str(values["database-url"]) ? { databaseUrl: str(values["database-url"])! } : {}),
        ...(str(values["data-dir"]) ? { dataDir: str(values["data-dir"])! } : {}),
        ...(values.register === true ? { register: true } : {}),
        ...(str(values["public-url"]) ? { publicUrl: str(values["public-url"])! } : {}),
        ...(str(values.registry) ? { registry: str(values.registry)! } : {}),
      });
      await waitForSignal();
      await stop();
      return 0;
    },
  },
  pay: {
    summary: "pay for a URL as an agent; prints the body and the receipt",
    usage: `tollgate pay URL [options]

  -X, --method M  -d, --data BODY  -H, --header "Name: value" (repeatable)
  --max "$0.10"                  refuse to pay more than this per request (default $0.10)
  --usd-asset NET/ADDR:DEC       count another asset as dollars (a running \`tollgate dev\`'s
                                 tokens count without it)
  --keystore FILE                encrypted keystore (password in TOLLGATE_KEYSTORE_PASSWORD)
  --solana-rpc URL               Solana JSON-RPC (default: the public cluster RPCs)
  --prefer PATTERN               pay on these networks first, e.g. "solana:*" (repeatable)
  --timeout SECONDS              give up after this long (default 120)
  --budget "$5/day"              a budget kept across runs (per payer, under ~/.config/tollgate;
                                 periods hour, day, week, month, or none for a total); safe
                                 when several runs spend from it at once
  --mandate ID                   pay under an AP2 mandate (\`tollgate mandate issue\`): refused
                                 before signing outside it (on a terminal you are asked to
                                 approve instead); the payment carries the mandate chain
  --json                         print one JSON object (status, body, receipt, amount, network,
                                 payer) and nothing else on stdout
Keys: --keystore FILE, else TOLLGATE_PRIVATE_KEY (EVM, env), else the wallet of \`tollgate wallet new\`;
TOLLGATE_SOLANA_KEY (Solana, base58 or a solana-keygen JSON array); with both, the agent can pay on either.
Exit codes: 0 paid (or free) and HTTP 2xx; 1 refused, failed, or a non-2xx answer; 2 usage error.`,
    positionals: true,
    options: {
      method: { type: "string", short: "X" },
      data: { type: "string", short: "d" },
      header: { type: "string", short: "H", multiple: true },
      max: { type: "string" },
      "usd-asset": { type: "string", multiple: true },
      keystore: { type: "string" },
      "solana-rpc": { type: "string" },
      prefer: { type: "string", multiple: true },
      timeout: { type: "string" },
      budget: { type: "string" },
      mandate: { type: "string" },
      json: { type: "boolean" },
    },
    async run(values, positionals) {
      const url = positionals[0];
      if (!url || positionals.length > 1) throw new UsageError("pay takes exactly one URL");
      const timeout = str(values.timeout);
      let timeoutMs: number | undefined;
      if (timeout !== undefined) {
        const s = Number(timeout);
        if (!Number.isFinite(s) || s <= 0) throw new UsageError(`--timeout: expected a positive number of seconds, got ${JSON.stringify(timeout)}`);
        timeoutMs = Math.round(s * 1000);
      }
      const { pay } = await import("./commands/pay.ts");
      return pay({
        url,
        ...(str(values.method) ? { method: str(values.method)! } : {}),
        ...(str(values.data) !== undefined ? { body: str(values.data)! } : {}),
        ...(list(values.header) ? { headers: list(values.header)! } : {}),
        ...(str(values.max) ? { max: str(values.max)! } : {}),
        ...(list(values["usd-asset"]) ? { usdAssets: list(values["usd-asset"])! } : {}),
        ...(str(values.keystore) ? { keystore: str(values.keystore)! } : {}),
        ...(str(values["solana-rpc"]) ? { solanaRpc: str(values["solana-rpc"])! } : {}),
        ...(list(values.prefer) ? { prefer: list(values.prefer)! } : {}),
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        ...(str(values.budget) ? { budget: str(values.budget)! } : {}),
        ...(str(values.mandate) ? { mandate: str(values.mandate)! } : {}),
        json: values.json === true,
      });
    },
  },
  mandate: {
    summary: "AP2 payment mandates for an agent: issue, show, revoke",
    usage: `tollgate mandate issue | show ID | revoke ID [options]

  issue --payee ADDR [--payee ADDR…] --network CAIP2 [--asset ADDR[:DECIMALS]]
        [--max '$0.05'] [--budget '$0.20/day'] [--recurrence DAILY[:N]] [--expires 24h]
                                 sign an open Payment Mandate (user key) for the agent key
  show ID                        constraints, status, and what the budget store counts this period
  revoke ID                      add it to the published status list (mandates/status.json)
  --json                         one JSON object on stdout
Keys: mandate-user.json and mandate-agent.json (ES256, encrypted) under ~/.config/tollgate, made on
first use; password from TOLLGATE_KEYSTORE_PASSWORD or a hidden prompt. Pay under one with
\`tollgate pay URL --mandate ID\`.`,
    positionals: true,
    options: {
      payee: { type: "string", multiple: true },
      network: { type: "string" },
      asset: { type: "string" },
      max: { type: "string" },
      budget: { type: "string" },
      recurrence: { type: "string" },
      expires: { type: "string" },
      json: { type: "boolean" },
    },
    async run(values, positionals) {
      const [action, id] = positionals;
      if (action !== "issue" && action !== "show" && action !== "revoke") throw new UsageError("mandate takes an action: issue, show ID or revoke ID");
      if (positionals.length > (action === "issue" ? 1 : 2)) throw new UsageError(`mandate ${action}: too many arguments`);
      const { mandate } = await import("./commands/mandate.ts");
      return mandate({
        action,
        ...(id ? { id } : {}),
        ...(list(values.payee) ? { payees: list(values.payee)! } : {}),
        ...(str(values.network) ? { network: str(values.network)! } : {}),
        ...(str(values.asset) ? { asset: str(values.asset)! } : {}),
        ...(str(values.max) ? { max: str(values.max)! } : {}),
        ...(str(values.budget) ? { budget: str(values.budget)! } : {}),
        ...(str(values.recurrence) ? { recurrence: str(values.recurrence)! } : {}),
        ...(str(values.expires) ? { expires: str(values.expires)! } : {}),
        json: values.json === true,
      });
    },
  },
  wallet: {
    summary: "an agent's key in an encrypted keystore: new, import, address, balance",
    usage: `tollgate wallet new | import | address | balance [options]

  new                            create a key, encrypted (scrypt) in the keystore
  import                         encrypt an existing key (TOLLGATE_PRIVATE_KEY, or typed hidden)
  address                        print the keystore's address (no password needed)
  balance --rpc-url URL          native and USDC balance (--asset ADDR for another token)
  --keystore FILE                default ~/.config/tollgate/wallet.json (used by \`tollgate pay\`)
  --force                        replace an existing keystore
The password comes from TOLLGATE_KEYSTORE_PASSWORD, or a hidden prompt on a terminal.`,
    positionals: true,
    options: {
      keystore: { type: "string" },
      "rpc-url": { type: "string" },
      network: { type: "string" },
      asset: { type: "string" },
      force: { type: "boolean" },
    },
    async run(values, positionals) {
      const action = positionals[0];
      if (!action || positionals.length > 1) throw new UsageError("wallet takes one action: new, import, address or balance");
      if (!["new", "import", "address", "balance"].includes(action)) throw new UsageError(`wallet: unknown action ${JSON.stringify(action)} (new, import, address, balance)`);
      const { wallet } = await import("./commands/wallet.ts");
      return wallet({
        action,
        ...(str(values.keystore) ? { keystore: str(values.keystore)! } : {}),
        ...(str(values["rpc-url"]) ? { rpcUrl: str(values["rpc-url"])! } : {}),
        ...(str(values.network) ? { network: str(values.network)! } : {}),
        ...(str(values.asset) ? { asset: str(values.asset)! } : {}),
        force: values.force === true,
      });
    },
  },
};

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  tollgate ${name.padEnd(width)}   ${c.summary}`);
  return `tollgate ${version()} — x402 payments over HTTP 402

Usage:
${lines.join("\n")}
  tollgate ${"help".padEnd(width)}   this text; \`tollgate <command> --help\` for a command's options
  tollgate ${"--version".padEnd(width)}   the version
`;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(help());
    return 2;
  }
  if (name === "help" || name === "--help" || name === "-h") {
    const topic = rest[0] && COMMANDS[rest[0]];
    process.stdout.write(topic ? `${topic.usage}\n` : help());
    return 0;
  }
  if (name === "--version" || name === "-v" || name === "version") {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(`${command.usage}\n`);
    return 0;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: command.options, allowPositionals: command.positionals ?? false, strict: true });
  } catch (e) {
    throw new UsageError(`${name}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return command.run(parsed.values as Values, parsed.positionals);
}

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
    if (e instanceof UsageError) process.stderr.write("run `tollgate help` for usage\n");
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
