#!/usr/bin/env node
// The outside-the-repository check (run by .ci/run after the tests): what a stranger gets from
// `npm install`. It builds and packs every workspace, installs the tarballs into a new project in
// a temporary folder with plain npm, then, with plain node and no TypeScript loader:
//   1. starts `tollgate dev` from the packed CLI (its own anvil, local Solana, facilitator);
//   2. runs an ESM program that serves a paid route with @tollgate/hono and pays it with
//      @tollgate/fetch, checking the receipt and the on-chain balances;
//      then one that serves a paid MCP tool with @tollgate/mcp and pays it with its client;
//      then one that serves a paid A2A agent with @tollgate/a2a and pays it with its client agent;
//   3. requires @tollgate/core from CommonJS (Node >= 20.19 loads ESM through require);
//   4. type-checks a strict NodeNext TypeScript consumer against the shipped .d.ts (skipLibCheck off),
//      and an AI SDK agent using @tollgate/ai's tools (skipLibCheck on: the `ai` SDK's own
//      declarations do not pass a lib check under these options).
// Plain JavaScript on purpose: nothing here may depend on the repository's dev tooling.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const work = mkdtempSync(join(tmpdir(), "tollgate-pack-"));
const keep = process.argv.includes("--keep");
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const step = (m) => console.log(`pack-check [${elapsed()}] ${m}`);
const npm = (args, cwd) => execFileSync("npm", args, { cwd, stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" });

/** The first stdout line of `child` that parses as a JSON object with `facilitatorUrl`. */
function firstJsonLine(child, timeoutMs) {
  return new Promise((resolve, reject) => {
    let buffer = "";
    const timer = setTimeout(() => reject(new Error(`tollgate dev printed no JSON within ${timeoutMs} ms`)), timeoutMs);
    child.once("exit", (code) => reject(new Error(`tollgate dev exited (${code}) before it was up`)));
    child.stdout.on("data", (chunk) => {
      buffer += chunk;
      for (let i; (i = buffer.indexOf("\n")) >= 0; ) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        try {
          const value = JSON.parse(line);
          if (value && value.facilitatorUrl) {
            clearTimeout(timer);
            resolve(value);
          }
        } catch {
          // not the JSON line
        }
      }
    });
  });
}

const PAID_PROGRAM = `// A consumer's program: plain node, the installed packages only.
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { paymentMiddleware } from "@tollgate/hono";
import { exactEvmClient, exactEvmServer } from "@tollgate/evm";
import { getPaymentReceipt, spendingPolicy, wrapFetch } from "@tollgate/fetch";
import { createPublicClient, http, erc20Abi } from "viem";
import { privateKeyToAccount } from "viem/accounts";

const net = JSON.parse(process.env.TOLLGATE_DEV);
const { usdc } = net.evm;
const app = new Hono();
app.use(paymentMiddleware({
  facilitator: net.facilitatorUrl,
  schemes: [exactEvmServer({ assets: [{ network: net.evm.network, address: usdc.address, decimals: usdc.decimals, name: usdc.name, version: usdc.version, symbol: "USDC" }] })],
  routes: { "GET /report": { price: "$0.02", network: net.evm.network, payTo: net.evm.payee } },
}));
app.get("/report", (c) => c.json({ report: "all systems nominal" }));
const server = await new Promise((resolve) => { const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(s)); });
const url = \`http://127.0.0.1:\${server.address().port}/report\`;

const chain = createPublicClient({ transport: http(net.evm.rpcUrl) });
const balance = (who) => chain.readContract({ address: usdc.address, abi: erc20Abi, functionName: "balanceOf", args: [who] });
const before = await balance(net.evm.payee);
const unpaid = await fetch(url);
if (unpaid.status !== 402 || !unpaid.headers.get("payment-required")) throw new Error(\`expected a 402 with PAYMENT-REQUIRED, got \${unpaid.status}\`);

const account = privateKeyToAccount(net.evm.payers[0].privateKey);
const policy = spendingPolicy({ maxPerRequest: "$0.05", usdAssets: [{ network: net.evm.network, asset: usdc.address, decimals: usdc.decimals }] });
const paidFetch = wrapFetch(fetch, { schemes: [exactEvmClient({ account })], policy });
const res = await paidFetch(url);
const body = await res.json();
const receipt = getPaymentReceipt(res)?.receipt;
const after = await balance(net.evm.payee);
server.close();
if (res.status !== 200 || body.report !== "all systems nominal") throw new Error(\`paid request: HTTP \${res.status} \${JSON.stringify(body)}\`);
if (!receipt?.success || !/^0x[0-9a-f]{64}$/.test(receipt.transaction)) throw new Error(\`no receipt: \${JSON.stringify(receipt)}\`);
if (after - before !== 20000n) throw new Error(\`payee received \${after - before}, expected 20000\`);
console.log(\`paid $0.02 with plain node: tx \${receipt.transaction}\`);
`;

const MCP_PROGRAM = `// A consumer's paid MCP tool: plain node, the installed packages only (server and paying client in one process).
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { createMcpPaywall, getPaymentReceipt, spendingPolicy, wrapMcpClient } from "@tollgate/mcp";
import { exactEvmClient, exactEvmServer } from "@tollgate/evm";
import { privateKeyToAccount } from "viem/accounts";

const net = JSON.parse(process.env.TOLLGATE_DEV);
const { usdc } = net.evm;
const paywall = createMcpPaywall({
  facilitator: net.facilitatorUrl,
  schemes: [exactEvmServer({ assets: [{ network: net.evm.network, address: usdc.address, decimals: usdc.decimals, name: usdc.name, version: usdc.version, symbol: "USDC" }] })],
});
const server = new McpServer({ name: "paid-tools", version: "1.0.0" });
paywall.tool("forecast", { price: "$0.03", network: net.evm.network, payTo: net.evm.payee, description: "Tomorrow's weather" }, () => ({ content: [{ type: "text", text: "sunny" }] })).register(server);
const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
await server.connect(serverSide);
const client = new Client({ name: "agent", version: "1.0.0" });
await client.connect(clientSide);

const unpaid = await client.callTool({ name: "forecast" });
if (!unpaid.isError || unpaid.structuredContent?.resource?.url !== "mcp://tool/forecast") throw new Error(\`expected the payment-required result, got \${JSON.stringify(unpaid)}\`);
const account = privateKeyToAccount(net.evm.payers[2].privateKey);
const policy = spendingPolicy({ maxPerRequest: "$0.05", usdAssets: [{ network: net.evm.network, asset: usdc.address, decimals: usdc.decimals }] });
const result = await wrapMcpClient(client, { schemes: [exactEvmClient({ account })], policy }).callTool({ name: "forecast" });
const receipt = getPaymentReceipt(result)?.receipt;
await client.close();
if (result.content[0]?.text !== "sunny" || !receipt?.success || !/^0x[0-9a-f]{64}$/.test(receipt.transaction)) throw new Error(\`paid tool call: \${JSON.stringify(result)}\`);
console.log(\`paid an MCP tool $0.03 with plain node: tx \${receipt.transaction}\`);
`;

const A2A_PROGRAM = `// A consumer's paid A2A agent: plain node, the installed packages only (merchant on a real port and paying client agent in one process).
import express from "express";
import { AGENT_CARD_PATH, Role, TaskState } from "@a2a-js/sdk";
import { DefaultRequestHandler, InMemoryTaskStore } from "@a2a-js/sdk/server";
import { agentCardHandler, jsonRpcHandler, UserBuilder } from "@a2a-js/sdk/server/express";
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory } from "@a2a-js/sdk/client";
import { createA2aPaywall, getPaymentReceipt, readReceipts, spendingPolicy, wrapA2aClient, x402AgentExtensions } from "@tollgate/a2a";
import { exactEvmClient, exactEvmServer } from "@tollgate/evm";
import { privateKeyToAccount } from "viem/accounts";

const net = JSON.parse(process.env.TOLLGATE_DEV);
const { usdc } = net.evm;
const text = (value) => ({ content: { $case: "text", value }, metadata: undefined, filename: "", mediaType: "" });
const forecaster = {
  async execute(ctx, bus) {
    bus.publish({ kind: "artifactUpdate", data: { taskId: ctx.taskId, contextId: ctx.contextId, artifact: { artifactId: "f", name: "forecast", description: "", parts: [text("sunny")], metadata: undefined, extensions: [] }, append: false, lastChunk: true, metadata: undefined } });
    bus.publish({ kind: "statusUpdate", data: { taskId: ctx.taskId, contextId: ctx.contextId, metadata: undefined, status: { state: TaskState.TASK_STATE_COMPLETED, timestamp: new Date().toISOString(), message: undefined } } });
  },
  async cancelTask() {},
};
const paywall = createA2aPaywall({
  facilitator: net.facilitatorUrl,
  schemes: [exactEvmServer({ assets: [{ network: net.evm.network, address: usdc.address, decimals: usdc.decimals, name: usdc.name, version: usdc.version, symbol: "USDC" }] })],
});
const executor = paywall.executor(forecaster, { skills: { forecast: { price: "$0.04", network: net.evm.network, payTo: net.evm.payee, description: "Tomorrow's weather" } } });
const app = express();
const server = app.listen(0, "127.0.0.1");
await new Promise((resolve) => server.once("listening", resolve));
const base = \`http://127.0.0.1:\${server.address().port}\`;
const card = {
  name: "Weather", description: "Paid forecasts", version: "1.0.0", provider: undefined,
  capabilities: { streaming: false, pushNotifications: false, extensions: x402AgentExtensions() },
  supportedInterfaces: [{ url: \`\${base}/a2a\`, protocolBinding: "JSONRPC", protocolVersion: "1.0", tenant: "" }, { url: \`\${base}/a2a\`, protocolBinding: "JSONRPC", protocolVersion: "0.3", tenant: "" }],
  securitySchemes: {}, securityRequirements: [], defaultInputModes: ["text/plain"], defaultOutputModes: ["text/plain"],
  skills: [{ id: "forecast", name: "Forecast", description: "Tomorrow's weather", tags: [], examples: [], inputModes: [], outputModes: [], securityRequirements: [] }], signatures: [],
};
const handler = new DefaultRequestHandler(card, new InMemoryTaskStore(), executor);
app.use(\`/\${AGENT_CARD_PATH}\`, agentCardHandler({ agentCardProvider: async () => card, legacyCompat: { enabled: true } }));
app.use("/a2a", jsonRpcHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication, legacyCompat: { enabled: true } }));

const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, { transports: [new JsonRpcTransportFactory({ legacyCompat: { enabled: true } })] }));
const client = await factory.createFromUrl(base);
const account = privateKeyToAccount(net.evm.payers[2].privateKey);
const policy = spendingPolicy({ maxPerRequest: "$0.05", usdAssets: [{ network: net.evm.network, asset: usdc.address, decimals: usdc.decimals }] });
const message = { messageId: crypto.randomUUID(), contextId: "", taskId: "", role: Role.ROLE_USER, parts: [text("Paris")], metadata: undefined, extensions: [], referenceTaskIds: [] };
const task = await wrapA2aClient(client, { schemes: [exactEvmClient({ account })], policy }).sendMessage({ tenant: "", message, configuration: undefined, metadata: undefined });
server.closeAllConnections();
server.close();
const receipt = getPaymentReceipt(task)?.receipt;
if (task.status?.state !== TaskState.TASK_STATE_COMPLETED || task.artifacts[0]?.parts[0]?.content?.value !== "sunny" || !receipt?.success || readReceipts(task)[0]?.transaction !== receipt.transaction) throw new Error(\`paid task: \${JSON.stringify(task)}\`);
console.log(\`paid an A2A agent $0.04 with plain node: tx \${receipt.transaction}\`);
`;

const TSCONFIG = {
  compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, skipLibCheck: false, exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true, types: ["node"] },
  files: ["consumer.ts"],
};

// The `ai` SDK's .d.ts fail a lib check (exactOptionalPropertyTypes, and an untyped `json-schema`
// import), so this consumer is checked with skipLibCheck on; its own code is as strict as the other.
const AI_TSCONFIG = { ...TSCONFIG, compilerOptions: { ...TSCONFIG.compilerOptions, skipLibCheck: true }, files: ["ai-consumer.ts"] };

const AI_CONSUMER = `// A strict NodeNext TypeScript agent: @tollgate/ai's tools in the AI SDK's generateText.
import { generateText, stepCountIs, type LanguageModel, type ToolSet } from "ai";
import { paidFetchTool, paidMcpTools, spendingPolicy, type PaidFetchResult } from "@tollgate/ai";
import { exactEvmClient } from "@tollgate/evm";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { privateKeyToAccount } from "viem/accounts";

const account = privateKeyToAccount("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
const policy = spendingPolicy({ maxPerRequest: "$0.05", budget: "$1" });
const paidFetch = paidFetchTool({ schemes: [exactEvmClient({ account })], policy }, { maxBodyChars: 4096 });
const agent = async (model: LanguageModel, mcp: Client): Promise<string> => {
  const tools: ToolSet = { paidFetch, ...(await paidMcpTools(mcp, { schemes: [exactEvmClient({ account })], policy })) };
  const result = await generateText({ model, tools, stopWhen: stepCountIs(5), prompt: "go" });
  const first = result.steps[0]?.toolResults[0]?.output as PaidFetchResult | undefined;
  return first?.outcome === "refused" ? first.message : result.text;
};
export { agent };
`;

const TS_CONSUMER = `// A strict NodeNext TypeScript consumer: every package's main API, type-checked against the shipped .d.ts.
import { parseMoney, spendingPolicy, createFacilitator, type PaymentRequirements, type SettleResponse } from "@tollgate/core";
import { exactEvmClient, exactEvmServer, exactEvmFacilitator } from "@tollgate/evm";
import { exactSvmServer } from "@tollgate/svm";
import { createPaywall, type PaywallConfig } from "@tollgate/server";
import { paymentMiddleware as honoPaywall } from "@tollgate/hono";
import { paymentMiddleware as expressPaywall } from "@tollgate/express";
import { wrapFetch, getPaymentReceipt } from "@tollgate/fetch";
import { paymentMiddleware as fastifyPaywall, paymentRoute as fastifyRoute, getPayment as fastifyPayment } from "@tollgate/fastify";
import { withPayment, withPaywall, paymentProxy, getPayment } from "@tollgate/next";
import { wrapAxios, getPaymentReceipt as axiosReceipt, PaymentFailedError } from "@tollgate/axios";
import Fastify from "fastify";
import axios, { type AxiosResponse } from "axios";
import { createMcpPaywall, wrapMcpClient, getPaymentReceipt as mcpReceipt } from "@tollgate/mcp";
import { createA2aPaywall, wrapA2aClient, getPaymentReceipt as a2aReceipt, readReceipts, x402AgentExtensions } from "@tollgate/a2a";
import type { AgentExecutor } from "@a2a-js/sdk/server";
import type { Client as A2aClient } from "@a2a-js/sdk/client";
import type { SendMessageRequest, Task } from "@a2a-js/sdk";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { startLocalNetwork } from "@tollgate/devnet";
import { startFacilitator, loadConfig } from "@tollgate/facilitator";
import { buildRegistrationFile, registrationFileHandler, verifyPaymentProof, type PaymentProofVerdict, type RegistrationFile } from "@tollgate/erc8004";
import { privateKeyToAccount } from "viem/accounts";

const price: string = parseMoney("$0.01").decimal;
const config: PaywallConfig = {
  facilitator: "http://127.0.0.1:4020",
  schemes: [exactEvmServer(), exactSvmServer()],
  routes: { "GET /x": { price: "$0.01", network: "eip155:8453", payTo: "0x0000000000000000000000000000000000000001" } },
};
const paywall = createPaywall(config);
const hono = honoPaywall(config);
const express = expressPaywall(config);
const account = privateKeyToAccount("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");
const paid = wrapFetch(fetch, { schemes: [exactEvmClient({ account })], policy: spendingPolicy({ maxPerRequest: "$0.05" }) });
const receipt = (r: Response): SettleResponse | undefined => getPaymentReceipt(r)?.receipt;
const requirements: PaymentRequirements | undefined = undefined;
const route = { price: "$0.01", network: "eip155:8453", payTo: "0x0000000000000000000000000000000000000001" } as const;
const fastify = Fastify();
void fastify.register(fastifyPaywall(paywall));
fastify.get("/r", fastifyRoute(paywall, route), async (request) => ({ payer: fastifyPayment(request)?.payer ?? null }));
const GET = withPayment(async (request: Request, context: { params: Promise<{ id: string }> }) => Response.json({ id: (await context.params).id, payer: getPayment(request)?.payer }), route, paywall);
const catchAll = withPaywall((request: Request) => new Response(request.url), config);
const proxy = (): ((request: Request) => Promise<Response | undefined>) => paymentProxy({ ...config, routes: { "GET /x": { ...route, settle: "before" } } });
const api = wrapAxios(axios.create(), { schemes: [exactEvmClient({ account })] });
const axiosPaid = (r: AxiosResponse): string | undefined => axiosReceipt(r)?.receipt?.transaction;
const failed = (e: unknown): number | undefined => (e instanceof PaymentFailedError ? (e.response as AxiosResponse | undefined)?.status : undefined);
export { price, paywall, hono, express, paid, receipt, requirements, startLocalNetwork, startFacilitator, loadConfig, createFacilitator, exactEvmFacilitator, fastify, GET, catchAll, proxy, api, axiosPaid, failed };
const mcpServer = new McpServer({ name: "paid-tools", version: "1.0.0" });
createMcpPaywall(config).tool("forecast", { ...route, description: "d" }, (extra) => ({ content: [{ type: "text", text: extra.payment.payer ?? "" }] })).register(mcpServer);
const mcpPaid = wrapMcpClient(new Client({ name: "agent", version: "1.0.0" }), { schemes: [exactEvmClient({ account })] });
const mcpTx = async (): Promise<string | undefined> => mcpReceipt(await mcpPaid.callTool({ name: "forecast" }))?.receipt?.transaction;
export { mcpServer, mcpTx };
const a2aExecutor = (inner: AgentExecutor): AgentExecutor => createA2aPaywall(config).executor(inner, { skills: { forecast: { ...route, description: "d" } } });
const a2aExtensions = x402AgentExtensions();
const a2aTx = async (client: A2aClient, params: SendMessageRequest): Promise<string | undefined> => {
  const task = (await wrapA2aClient(client, { schemes: [exactEvmClient({ account })] }).sendMessage(params)) as Task;
  return a2aReceipt(task)?.receipt?.transaction ?? readReceipts(task)[0]?.transaction;
};
export { a2aExecutor, a2aExtensions, a2aTx };
const agentFile: RegistrationFile = buildRegistrationFile({ name: "a", description: "d", services: [{ name: "MCP", endpoint: "https://x/mcp" }], registrations: [{ agentId: 1n, chainId: 8453 }] });
const wellKnown: (request: Request) => Response = registrationFileHandler(agentFile);
const proven = (c: Parameters<typeof verifyPaymentProof>[0]): Promise<PaymentProofVerdict> => verifyPaymentProof(c, { fromAddress: "0x0000000000000000000000000000000000000001", toAddress: "0x0000000000000000000000000000000000000002", chainId: "8453", txHash: "0x0000000000000000000000000000000000000000000000000000000000000001" }, { asset: "0x0000000000000000000000000000000000000003" });
export { wellKnown, proven };
`;

const PAYWALL_PAGE_PROGRAM = `// The paywall page from the installed @tollgate/server: its wallet script is inlined and allowed by the page's CSP hash.
import { createHash } from "node:crypto";
import { renderPaywallPage } from "@tollgate/server";
const required = { x402Version: 2, error: "", resource: { url: "https://shop.example/report" }, accepts: [] };
const html = renderPaywallPage(required.resource, [], "", {}, required);
const script = /<script>([\\s\\S]*?)<\\/script>/.exec(html)?.[1];
if (!script || script.length < 10000) throw new Error("the paywall page has no inlined wallet script");
const hash = createHash("sha256").update(script, "utf8").digest("base64");
if (!html.includes("script-src &#39;sha256-" + hash + "&#39;")) throw new Error("the page's CSP does not allow its script");
console.log("@tollgate/server inlines its " + script.length + "-byte paywall wallet script, allowed by the page's CSP hash");
`;

let dev;
try {
  step("building the packages (npm run build)");
  execFileSync("npm", ["run", "build", "--silent"], { cwd: root, stdio: "inherit" });

  step("packing every workspace");
  const tarballs = join(work, "tarballs");
  mkdirSync(tarballs);
  npm(["pack", "--workspaces", "--pack-destination", tarballs, "--silent"], root);
  const files = readdirSync(tarballs).filter((f) => f.endsWith(".tgz")).map((f) => join(tarballs, f));
  if (files.length < 18) throw new Error(`expected 18 tarballs, got ${files.length}: ${files.join(", ")}`);
  for (const f of files) {
    const listing = execFileSync("tar", ["-tzf", f], { encoding: "utf8" });
    if (/\/(test|src)\//.test(listing)) throw new Error(`${f} ships tests or sources:\n${listing}`);
  }

  step("linting what is published (publint, and arethetypeswrong for ESM with types)");
  const tool = (name) => join(root, "node_modules", ".bin", name);
  for (const f of files) {
    execFileSync(tool("publint"), [f, "--strict"], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
    // ESM only (Node >= 20.19 require()s ESM, which the tool cannot model): its CommonJS columns are ignored.
    if (!/tollgate-0/.test(f)) execFileSync(tool("attw"), [f, "--profile", "esm-only", "--format", "table-flipped"], { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  }

  step("installing the tarballs into a new project with plain npm");
  const app = join(work, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "tollgate-consumer", private: true, type: "module" }, null, 2));
  npm(["install", "--no-audit", "--no-fund", "--loglevel=error", ...files, "@hono/node-server@^2", "hono@^4", "viem@^2", "typescript@~5.9.0", "@types/node@^20"], app);

  step("starting `tollgate dev --json` from the packed CLI");
  const bin = join(app, "node_modules", ".bin", "tollgate");
  execFileSync(bin, ["--version"], { cwd: app, stdio: "inherit" });
  const env = { ...process.env, XDG_CONFIG_HOME: join(work, "config") };
  dev = spawn(bin, ["dev", "--json", "--chain-port", "0", "--solana-port", "0", "--facilitator-port", "0", "--port", "0"], { cwd: app, env, stdio: ["ignore", "pipe", "inherit"] });
  const network = await firstJsonLine(dev, 120_000);

  step(`paying a route served by @tollgate/hono with @tollgate/fetch (plain node, facilitator ${network.facilitatorUrl})`);
  writeFileSync(join(app, "paid.mjs"), PAID_PROGRAM);
  execFileSync(process.execPath, ["paid.mjs"], { cwd: app, stdio: "inherit", env: { ...env, TOLLGATE_DEV: JSON.stringify(network) }, timeout: 120_000 });

  step("paying an MCP tool served with @tollgate/mcp, from @tollgate/mcp's client (plain node)");
  writeFileSync(join(app, "mcp.mjs"), MCP_PROGRAM);
  execFileSync(process.execPath, ["mcp.mjs"], { cwd: app, stdio: "inherit", env: { ...env, TOLLGATE_DEV: JSON.stringify(network) }, timeout: 120_000 });

  step("paying an A2A agent served with @tollgate/a2a, from @tollgate/a2a's client (plain node)");
  writeFileSync(join(app, "a2a.mjs"), A2A_PROGRAM);
  execFileSync(process.execPath, ["a2a.mjs"], { cwd: app, stdio: "inherit", env: { ...env, TOLLGATE_DEV: JSON.stringify(network) }, timeout: 120_000 });

  step("the packed CLI pays the dev network's API (the local token counts as dollars without flags)");
  const paid = JSON.parse(execFileSync(bin, ["pay", network.paidUrl, "--json"], { cwd: app, env: { ...env, TOLLGATE_PRIVATE_KEY: network.evm.payers[1].privateKey }, encoding: "utf8", timeout: 120_000 }));
  if (!paid.ok || paid.amountUsd !== "0.01" || !/^0x[0-9a-f]{64}$/.test(paid.receipt?.transaction ?? "")) throw new Error(`tollgate pay --json: ${JSON.stringify(paid)}`);

  step("the Fastify, Next.js, axios, AI SDK and ERC-8004 packages load with plain node");
  writeFileSync(join(app, "adapters.mjs"), `for (const [name, fn] of [["@tollgate/fastify", "paymentMiddleware"], ["@tollgate/next", "withPayment"], ["@tollgate/axios", "wrapAxios"], ["@tollgate/ai", "paidFetchTool"], ["@tollgate/erc8004", "deployErc8004"]]) { const m = await import(name); if (typeof m[fn] !== "function") throw new Error(name + " has no " + fn); } console.log("@tollgate/fastify, @tollgate/next, @tollgate/axios, @tollgate/ai, @tollgate/erc8004 load");\n`);
  execFileSync(process.execPath, ["adapters.mjs"], { cwd: app, stdio: "inherit" });

  step("the paywall page of the packed @tollgate/server carries its wallet script (plain node)");
  writeFileSync(join(app, "paywall-page.mjs"), PAYWALL_PAGE_PROGRAM);
  execFileSync(process.execPath, ["paywall-page.mjs"], { cwd: app, stdio: "inherit" });

  step("require() from CommonJS");
  writeFileSync(join(app, "cjs.cjs"), `const core = require("@tollgate/core"); if (core.parseMoney("$0.01").decimal !== "0.01") throw new Error("parseMoney"); console.log("require(@tollgate/core) ok");\n`);
  execFileSync(process.execPath, ["cjs.cjs"], { cwd: app, stdio: "inherit" });

  step("type-checking a strict NodeNext TypeScript consumer against the shipped .d.ts");
  writeFileSync(join(app, "tsconfig.json"), JSON.stringify(TSCONFIG, null, 2));
  writeFileSync(join(app, "consumer.ts"), TS_CONSUMER);
  execFileSync(join(app, "node_modules", ".bin", "tsc"), ["-p", "."], { cwd: app, stdio: "inherit" });

  step("type-checking an AI SDK agent that uses @tollgate/ai (strict NodeNext)");
  writeFileSync(join(app, "tsconfig.ai.json"), JSON.stringify(AI_TSCONFIG, null, 2));
  writeFileSync(join(app, "ai-consumer.ts"), AI_CONSUMER);
  execFileSync(join(app, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.ai.json"], { cwd: app, stdio: "inherit" });

  step("all good");
} catch (e) {
  console.error(`pack-check FAILED after ${elapsed()}: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
} finally {
  if (dev && dev.exitCode === null) {
    dev.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 3_000).unref() && dev.once("exit", r));
    if (dev.exitCode === null) dev.kill("SIGKILL");
  }
  if (!keep) rmSync(work, { recursive: true, force: true });
  else console.log(`kept ${work}`);
}

