// ERC-8004 end to end on a real anvil: our registries installed at the public addresses, every
// action against them (including the refusals), registration files served and parsed, and
// feedback weighed by payment proofs checked against real token transfers on the devnet.
import { startLocalNetwork, type RunningLocalNetwork } from "@tollgate/devnet";
import { eip3009Abi, loadArtifact, transferWithAuthorizationTypes } from "@tollgate/evm";
import {
  createPublicClient,
  createWalletClient,
  defineChain,
  erc20Abi,
  getAddress,
  http,
  keccak256,
  toBytes,
  type Address,
  type Chain,
  type Hex,
  type PrivateKeyAccount,
  type PublicClient,
} from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileSolidity } from "../../evm/src/contracts/compile.ts";
import {
  ERC8004_MAINNET_ADDRESSES,
  agentWalletTypedData,
  appendResponse,
  buildFeedbackFile,
  buildRegistrationFile,
  deployErc8004,
  feedbackFileHash,
  fromJsonDataUri,
  getAgentMetadata,
  getAgentWallet,
  getClients,
  getReputationSummary,
  getValidationStatus,
  giveFeedback,
  parseFeedbackFile,
  parseRegistrationFile,
  readAgent,
  readFeedback,
  registerAgent,
  registrationFileHandler,
  registrationMatches,
  requestValidation,
  respondValidation,
  reputationRegistryAbi,
  revokeFeedback,
  setAgentMetadata,
  setAgentUri,
  setAgentWallet,
  signWalletProof,
  summarizeProvenFeedback,
  toJsonDataUri,
  unsetAgentWallet,
  validationRegistryAbi,
  verifyPaymentProof,
  identityRegistryAbi,
  type Erc8004Clients,
  type FeedbackFile,
  type PaymentProof,
  type WriteResult,
} from "../src/index.ts";

const REG = ERC8004_MAINNET_ADDRESSES;

let net: RunningLocalNetwork;
let chain: Chain;
let publicClient: PublicClient;
let owner: PrivateKeyAccount; // the agent's owner (the devnet payee: it also receives payments)
let validator: PrivateKeyAccount;
let payers: PrivateKeyAccount[];

function clientsOf(account: PrivateKeyAccount): Erc8004Clients {
  return { publicClient, walletClient: createWalletClient({ account, chain, transport: http(net.rpcUrl), pollingInterval: 50 }) };
}

/** Narrows a write result to success, failing the test with the refusal otherwise. */
function ok<T extends object>(result: WriteResult<T>) {
  if (!result.ok) throw new Error(`expected success, got ${result.reason} ${result.detail ?? ""}`);
  return result;
}

function refusal(result: WriteResult<object>): string {
  if (result.ok) throw new Error(`expected a refusal, but transaction ${result.txHash} succeeded`);
  return result.reason;
}

async function latestTimestamp(): Promise<bigint> {
  return (await publicClient.getBlock({ blockTag: "latest" })).timestamp;
}

beforeAll(async () => {
  net = await startLocalNetwork({ payers: 3 });
  chain = defineChain({
    id: net.chainId,
    name: "erc8004-test",
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [net.rpcUrl] } },
  });
  publicClient = createPublicClient({ chain, transport: http(net.rpcUrl), pollingInterval: 50 });
  owner = privateKeyToAccount(net.accounts.payee.privateKey);
  validator = privateKeyToAccount(net.accounts.facilitator.privateKey);
  payers = net.accounts.payers.map((p) => privateKeyToAccount(p.privateKey));
});

afterAll(async () => {
  await net?.stop();
});

describe("deployErc8004", () => {
  it("installs our runtime code at the public addresses and binds the registries", async () => {
    const deployed = await deployErc8004({ rpcUrl: net.rpcUrl });
    expect(deployed).toEqual({ chainId: net.chainId, ...REG });
    const artifacts = {
      identityRegistry: "AgentIdentityRegistry",
      reputationRegistry: "AgentReputationRegistry",
      validationRegistry: "AgentValidationRegistry",
    } as const;
    for (const key of Object.keys(artifacts) as (keyof typeof artifacts)[]) {
      const code = await publicClient.getCode({ address: REG[key] });
      expect(code?.toLowerCase()).toBe(loadArtifact(artifacts[key]).deployedBytecode.toLowerCase());
    }
    for (const [address, abi] of [
      [REG.reputationRegistry, reputationRegistryAbi],
      [REG.validationRegistry, validationRegistryAbi],
    ] as const) {
      expect(await publicClient.readContract({ address, abi, functionName: "getIdentityRegistry" })).toBe(REG.identityRegistry);
    }
    expect(await publicClient.readContract({ address: REG.identityRegistry, abi: identityRegistryAbi, functionName: "name" })).toBe("AgentIdentity");
    expect(await publicClient.readContract({ address: REG.identityRegistry, abi: identityRegistryAbi, functionName: "getVersion" })).toBe("2.0.0");
  });

  it("refuses a second initialize", async () => {
    const attacker = clientsOf(payers[0]!);
    const result = await attacker.publicClient
      .simulateContract({ account: payers[0]!, address: REG.reputationRegistry, abi: reputationRegistryAbi, functionName: "initialize", args: [payers[0]!.address] })
      .then(() => "accepted", (e: Error) => e.message);
    expect(result).toContain("AlreadyInitialized");
  });
});

describe("identity registry", () => {
  let agentId: bigint;

  it("registers an agent and reads back owner, uri, wallet and metadata", async () => {
    const reg = ok(await registerAgent(clientsOf(owner), { uri: "https://agent.example/agent.json", metadata: { role: "weather", raw: { hex: "0x00ff" } } }));
    agentId = reg.agentId;
    expect(agentId).toBe(0n); // ids start at 0, as in the reference
    const agent = await readAgent(publicClient, { agentId });
    expect(agent).toEqual({ found: true, agentId, owner: owner.address, uri: "https://agent.example/agent.json", wallet: owner.address });
    expect(await getAgentMetadata(publicClient, { agentId, key: "role" })).toEqual({ hex: "0x77656174686572", text: "weather" });
    expect((await getAgentMetadata(publicClient, { agentId, key: "raw" })).hex).toBe("0x00ff");
    expect((await getAgentMetadata(publicClient, { agentId, key: "agentWallet" })).hex).toBe(owner.address.toLowerCase());
    expect(await readAgent(publicClient, { agentId: 999n })).toEqual({ found: false, agentId: 999n });

    // Running the installer again keeps the state.
    await deployErc8004({ rpcUrl: net.rpcUrl });
    expect((await readAgent(publicClient, { agentId })).found).toBe(true);
  });

  it("updates uri and metadata for the owner only, and never the reserved agentWallet key", async () => {
    ok(await setAgentUri(clientsOf(owner), { agentId, uri: "ipfs://bafy-new" }));
    const agent = await readAgent(publicClient, { agentId });
    expect(agent.found && agent.uri).toBe("ipfs://bafy-new");
    ok(await setAgentMetadata(clientsOf(owner), { agentId, key: "role", value: "forecast" }));
    expect((await getAgentMetadata(publicClient, { agentId, key: "role" })).text).toBe("forecast");

    expect(refusal(await setAgentUri(clientsOf(payers[0]!), { agentId, uri: "https://evil" }))).toBe("NotAgentManager");
    expect(refusal(await setAgentMetadata(clientsOf(payers[0]!), { agentId, key: "role", value: "x" }))).toBe("NotAgentManager");
    expect(refusal(await setAgentMetadata(clientsOf(owner), { agentId, key: "agentWallet", value: { hex: payers[0]!.address } }))).toBe("ReservedMetadataKey");
    expect(refusal(await registerAgent(clientsOf(owner), { uri: "x", metadata: { agentWallet: "y" } }))).toBe("ReservedMetadataKey");
  });

  it("sets the agent wallet with the new wallet's EIP-712 proof, and refuses bad proofs", async () => {
    const newWallet = privateKeyToAccount(generatePrivateKey());
    const set = ok(await setAgentWallet(clientsOf(owner), { agentId, newWallet }));
    expect(set.wallet).toBe(newWallet.address);
    expect(await getAgentWallet(publicClient, { agentId })).toBe(newWallet.address);

    // Signed by someone else than the wallet it names.
    const other = privateKeyToAccount(generatePrivateKey());
    const intruder = await signWalletProof(publicClient, privateKeyToAccount(generatePrivateKey()), agentId, REG.identityRegistry);
    expect(refusal(await setAgentWallet(clientsOf(owner), { agentId, newWallet: { ...intruder, address: other.address } }))).toBe("WalletProofInvalid");
    // Expired, and valid for too long.
    const now = await latestTimestamp();
    expect(refusal(await setAgentWallet(clientsOf(owner), { agentId, newWallet: other, deadline: now - 1n }))).toBe("WalletProofExpired");
    expect(refusal(await setAgentWallet(clientsOf(owner), { agentId, newWallet: other, deadline: now + 3_600n }))).toBe("WalletProofDeadlineTooFar");
    // A valid proof, but sent by someone who does not manage the agent.
    expect(refusal(await setAgentWallet(clientsOf(payers[0]!), { agentId, newWallet: other }))).toBe("NotAgentManager");
    expect(await getAgentWallet(publicClient, { agentId })).toBe(newWallet.address);
  });

  it("accepts an ERC-1271 contract wallet's approval, and refuses its refusal", async () => {
    const { KeyedWallet } = compileSolidity({ "KeyedWallet.sol": readFileSync(new URL("./contracts/KeyedWallet.sol", import.meta.url), "utf8") });
    const key = privateKeyToAccount(generatePrivateKey());
    const deployer = createWalletClient({ account: owner, chain, transport: http(net.rpcUrl) });
    const deployHash = await deployer.deployContract({ abi: KeyedWallet!.abi, bytecode: KeyedWallet!.bytecode, args: [key.address] });
    const contractWallet = getAddress((await publicClient.waitForTransactionReceipt({ hash: deployHash })).contractAddress!);

    const deadline = (await latestTimestamp()) + 120n;
    const fields = { chainId: net.chainId, registry: REG.identityRegistry, agentId, newWallet: contractWallet, owner: owner.address, deadline };
    const stranger = privateKeyToAccount(generatePrivateKey());
    const refused = await setAgentWallet(clientsOf(owner), { agentId, newWallet: { address: contractWallet, deadline, signature: await stranger.signTypedData(agentWalletTypedData(fields)) } });
    expect(refusal(refused)).toBe("WalletProofInvalid");

    const signature = await key.signTypedData(agentWalletTypedData(fields));
    ok(await setAgentWallet(clientsOf(owner), { agentId, newWallet: { address: contractWallet, deadline, signature } }));
    expect(await getAgentWallet(publicClient, { agentId })).toBe(contractWallet);

    ok(await unsetAgentWallet(clientsOf(owner), { agentId }));
    expect(await getAgentWallet(publicClient, { agentId })).toBeUndefined();
  });

  it("clears the verified wallet when the agent changes hands", async () => {
    const second = ok(await registerAgent(clientsOf(payers[0]!), {}));
    expect(second.agentId).toBe(agentId + 1n);
    expect(await readAgent(publicClient, { agentId: second.agentId })).toMatchObject({ found: true, uri: "", wallet: payers[0]!.address });
    const wallet = createWalletClient({ account: payers[0]!, chain, transport: http(net.rpcUrl) });
    const hash = await wallet.writeContract({ address: REG.identityRegistry, abi: identityRegistryAbi, functionName: "transferFrom", args: [payers[0]!.address, payers[1]!.address, second.agentId] });
    expect((await publicClient.waitForTransactionReceipt({ hash })).status).toBe("success");
    expect(await readAgent(publicClient, { agentId: second.agentId })).toMatchObject({ found: true, owner: payers[1]!.address, wallet: undefined });
  });
});

describe("reputation registry", () => {
  let agentId: bigint;

  beforeAll(async () => {
    agentId = ok(await registerAgent(clientsOf(owner), { uri: "https://agent.example/rep.json" })).agentId;
  });

  it("records, reads, summarizes and revokes feedback", async () => {
    const [alice, bob] = [payers[0]!, payers[1]!];
    const a = ok(await giveFeedback(clientsOf(alice), { agentId, value: "87.5", tag1: "quality", endpoint: "https://agent.example/a2a" }));
    expect(a.feedbackIndex).toBe(1n);
    const b = ok(await giveFeedback(clientsOf(bob), { agentId, value: 90n, tag1: "quality", tag2: "speed" }));
    expect(b.feedbackIndex).toBe(1n);
    const a2 = ok(await giveFeedback(clientsOf(alice), { agentId, value: "-3", tag1: "uptime" }));
    expect(a2.feedbackIndex).toBe(2n);

    expect(await readFeedback(publicClient, { agentId, clientAddress: alice.address, feedbackIndex: 1n })).toEqual({
      found: true, value: 875n, valueDecimals: 1, decimal: "87.5", tag1: "quality", tag2: "", isRevoked: false,
    });
    expect(await readFeedback(publicClient, { agentId, clientAddress: alice.address, feedbackIndex: 3n })).toEqual({ found: false });
    expect(await getClients(publicClient, { agentId })).toEqual([alice.address, bob.address]);

    // quality: (87.5 + 90) / 2 = 88.75, expressed at the most common decimals (tie 0 vs 1 -> 0).
    expect(await getReputationSummary(publicClient, { agentId, clientAddresses: [alice.address, bob.address], tag1: "quality" })).toEqual({
      count: 2n, value: 88n, valueDecimals: 0, decimal: "88",
    });
    // everything from alice: (87.5 - 3) / 2 = 42.25 -> tie again -> 0 decimals: 42
    expect(await getReputationSummary(publicClient, { agentId, clientAddresses: [alice.address] })).toMatchObject({ count: 2n, value: 42n });
    await expect(getReputationSummary(publicClient, { agentId, clientAddresses: [] })).rejects.toThrow(/must not be empty/);

    ok(await appendResponse(clientsOf(owner), { agentId, clientAddress: bob.address, feedbackIndex: 1n, responseUri: "ipfs://refund-proof" }));
    const responses = await publicClient.readContract({ address: REG.reputationRegistry, abi: reputationRegistryAbi, functionName: "getResponseCount", args: [agentId, bob.address, 1n, []] });
    expect(responses).toBe(1n);

    ok(await revokeFeedback(clientsOf(bob), { agentId, feedbackIndex: 1n }));
    expect(await readFeedback(publicClient, { agentId, clientAddress: bob.address, feedbackIndex: 1n })).toMatchObject({ found: true, isRevoked: true });
    expect(await getReputationSummary(publicClient, { agentId, clientAddresses: [alice.address, bob.address], tag1: "quality" })).toEqual({
      count: 1n, value: 875n, valueDecimals: 1, decimal: "87.5",
    });
    expect(refusal(await revokeFeedback(clientsOf(bob), { agentId, feedbackIndex: 1n }))).toBe("FeedbackAlreadyRevoked");
    expect(refusal(await revokeFeedback(clientsOf(bob), { agentId, feedbackIndex: 7n }))).toBe("NoSuchFeedback");
  });

  it("refuses feedback from the agent's own owner or operator, for unknown agents, and out of range", async () => {
    expect(refusal(await giveFeedback(clientsOf(owner), { agentId, value: "100" }))).toBe("SelfFeedback");
    const operator = payers[2]!;
    const wallet = createWalletClient({ account: owner, chain, transport: http(net.rpcUrl) });
    const hash = await wallet.writeContract({ address: REG.identityRegistry, abi: identityRegistryAbi, functionName: "setApprovalForAll", args: [operator.address, true] });
    await publicClient.waitForTransactionReceipt({ hash });
    expect(refusal(await giveFeedback(clientsOf(operator), { agentId, value: "100" }))).toBe("SelfFeedback");
    const undo = await wallet.writeContract({ address: REG.identityRegistry, abi: identityRegistryAbi, functionName: "setApprovalForAll", args: [operator.address, false] });
    await publicClient.waitForTransactionReceipt({ hash: undo });

    expect(refusal(await giveFeedback(clientsOf(payers[0]!), { agentId: 12_345n, value: "1" }))).toBe("ERC721NonexistentToken");
    expect(refusal(await giveFeedback(clientsOf(payers[0]!), { agentId, value: 1n, valueDecimals: 19 }))).toBe("DecimalsOutOfRange");
    expect(refusal(await giveFeedback(clientsOf(payers[0]!), { agentId, value: 10n ** 38n + 1n }))).toBe("ValueOutOfRange");
  });
});

describe("validation registry", () => {
  it("request -> response -> status, with the refusals", async () => {
    const agentId = ok(await registerAgent(clientsOf(owner), { uri: "https://agent.example/val.json" })).agentId;
    const req = ok(await requestValidation(clientsOf(owner), { agentId, validator: validator.address, requestUri: "ipfs://job-17" }));
    expect(req.requestHash).toBe(keccak256(toBytes("ipfs://job-17")));

    const pending = await getValidationStatus(publicClient, { requestHash: req.requestHash });
    expect(pending).toMatchObject({ found: true, validator: validator.address, agentId, response: 0, tag: "" });

    expect(refusal(await requestValidation(clientsOf(owner), { agentId, validator: validator.address, requestUri: "ipfs://job-17" }))).toBe("RequestExists");
    expect(refusal(await requestValidation(clientsOf(payers[0]!), { agentId, validator: validator.address, requestUri: "ipfs://other" }))).toBe("NotAgentManager");
    expect(refusal(await respondValidation(clientsOf(payers[0]!), { requestHash: req.requestHash, response: 100 }))).toBe("NotTheValidator");
    expect(refusal(await respondValidation(clientsOf(validator), { requestHash: req.requestHash, response: 101 }))).toBe("ResponseOutOfRange");

    ok(await respondValidation(clientsOf(validator), { requestHash: req.requestHash, response: 95, responseUri: "ipfs://report", tag: "zkml" }));
    const done = await getValidationStatus(publicClient, { requestHash: req.requestHash });
    expect(done).toMatchObject({ found: true, response: 95, tag: "zkml", agentId });
    expect(done.found && done.lastUpdate).toBeGreaterThanOrEqual(pending.found ? pending.lastUpdate : 0n);

    const [count, avg] = await publicClient.readContract({ address: REG.validationRegistry, abi: validationRegistryAbi, functionName: "getSummary", args: [agentId, [], ""] });
    expect([count, avg]).toEqual([1n, 95]);
    expect(await publicClient.readContract({ address: REG.validationRegistry, abi: validationRegistryAbi, functionName: "getAgentValidations", args: [agentId] })).toEqual([req.requestHash]);
    expect(await publicClient.readContract({ address: REG.validationRegistry, abi: validationRegistryAbi, functionName: "getValidatorRequests", args: [validator.address] })).toContain(req.requestHash);

    const unknown = keccak256(toBytes("never requested"));
    expect(await getValidationStatus(publicClient, { requestHash: unknown })).toEqual({ found: false, requestHash: unknown });
  });
});

describe("registration file", () => {
  it("build -> serve -> parse round trip, and on-chain as a data: URI", async () => {
    const agentId = ok(await registerAgent(clientsOf(owner), {})).agentId;
    const file = buildRegistrationFile({
      name: "weather-agent",
      description: "Forecasts, paid per call over x402.",
      image: "https://agent.example/logo.png",
      services: [
        { name: "A2A", endpoint: "https://agent.example/.well-known/agent-card.json", version: "0.3.0" },
        { name: "MCP", endpoint: "https://agent.example/mcp", version: "2025-06-18" },
        { name: "web", endpoint: "https://agent.example/" },
      ],
      x402Support: true,
      registrations: [{ agentId, chainId: net.chainId, identityRegistry: REG.identityRegistry }],
      supportedTrust: ["reputation"],
    });
    expect(file.type).toBe("https://eips.ethereum.org/EIPS/eip-8004#registration-v1");
    expect(file.registrations).toEqual([{ agentId: Number(agentId), agentRegistry: `eip155:${net.chainId}:${REG.identityRegistry}` }]);
    expect(file.active).toBe(true);

    const handler = registrationFileHandler(file, { maxAgeSeconds: 60 });
    const res = handler(new Request("https://agent.example/.well-known/agent-registration.json"));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.headers.get("cache-control")).toBe("public, max-age=60");
    const served = parseRegistrationFile(await res.text());
    expect(served).toEqual({ ok: true, file });
    expect(handler(new Request("https://agent.example/other.json")).status).toBe(404);
    expect(handler(new Request("https://agent.example/.well-known/agent-registration.json", { method: "POST", body: "{}" })).status).toBe(405);

    // The same file as the agent's on-chain URI, read back and matched to the agent.
    ok(await setAgentUri(clientsOf(owner), { agentId, uri: toJsonDataUri(file) }));
    const agent = await readAgent(publicClient, { agentId });
    if (!agent.found) throw new Error("agent vanished");
    const back = parseRegistrationFile(fromJsonDataUri(agent.uri));
    if (!back.ok) throw new Error(`${back.field}: ${back.reason}`);
    expect(registrationMatches(back.file, agentId, `eip155:${net.chainId}:${REG.identityRegistry}`)).toBe(true);
    expect(registrationMatches(back.file, agentId + 1n, `eip155:${net.chainId}:${REG.identityRegistry}`)).toBe(false);
  });

  it("names the offending field of a bad file", () => {
    const good = buildRegistrationFile({ name: "a", description: "b", services: [{ name: "MCP", endpoint: "https://x/mcp" }], registrations: [{ agentId: 1n, chainId: 1 }] });
    const without = <K extends string>(o: Record<string, unknown>, k: K) => Object.fromEntries(Object.entries(o).filter(([key]) => key !== k));
    expect(parseRegistrationFile({ ...good, services: [{ name: "MCP" }] })).toMatchObject({ ok: false, field: "services.0.endpoint" });
    expect(parseRegistrationFile({ ...good, type: "something-else" })).toMatchObject({ ok: false, field: "type" });
    expect(parseRegistrationFile({ ...good, registrations: [{ agentId: 1, agentRegistry: "eip155:1:not-an-address" }] })).toMatchObject({ ok: false, field: "registrations.0.agentRegistry" });
    expect(parseRegistrationFile(without(good, "x402Support"))).toMatchObject({ ok: false, field: "x402Support" });
    expect(parseRegistrationFile("{not json")).toMatchObject({ ok: false, field: "(root)" });
    expect(() => buildRegistrationFile({ name: "", description: "", services: [], registrations: [] })).toThrow(/name/);
  });
});

describe("proof of payment", () => {
  let payer: PrivateKeyAccount;
  let agentId: bigint;
  let paid: PaymentProof;
  let authorized: PaymentProof;
  const AMOUNT = 1_500_000n; // 1.50 USDC

  beforeAll(async () => {
    payer = payers[2]!;
    agentId = ok(await registerAgent(clientsOf(owner), { uri: "https://agent.example/paid.json" })).agentId;
    const wallet = createWalletClient({ account: payer, chain, transport: http(net.rpcUrl) });
    // A plain ERC-20 transfer to the agent (its wallet is the owner, the devnet payee).
    const hash = await wallet.writeContract({ address: net.usdc.address, abi: erc20Abi, functionName: "transfer", args: [owner.address, AMOUNT] });
    expect((await publicClient.waitForTransactionReceipt({ hash })).status).toBe("success");
    paid = { fromAddress: payer.address, toAddress: owner.address, chainId: String(net.chainId), txHash: hash };

    // An x402-style EIP-3009 transferWithAuthorization, submitted by someone else (the facilitator).
    const now = await latestTimestamp();
    const auth = { from: payer.address, to: owner.address, value: 250_000n, validAfter: 0n, validBefore: now + 600n, nonce: keccak256(toBytes("proof-nonce-1")) };
    const signature = await payer.signTypedData({
      domain: { name: net.usdc.name, version: net.usdc.version, chainId: net.chainId, verifyingContract: net.usdc.address },
      types: transferWithAuthorizationTypes,
      primaryType: "TransferWithAuthorization",
      message: auth,
    });
    const relayer = createWalletClient({ account: validator, chain, transport: http(net.rpcUrl) });
    const authHash = await relayer.writeContract({
      address: net.usdc.address,
      abi: eip3009Abi,
      functionName: "transferWithAuthorization",
      args: [auth.from, auth.to, auth.value, auth.validAfter, auth.validBefore, auth.nonce, signature],
    });
    expect((await publicClient.waitForTransactionReceipt({ hash: authHash })).status).toBe("success");
    authorized = { ...paid, txHash: authHash };
  });

  it("accepts a real transfer and refuses a wrong from, to, tx hash, chain or asset", async () => {
    const asset = net.usdc.address;
    expect(await verifyPaymentProof(publicClient, paid, { asset })).toMatchObject({ ok: true, amount: AMOUNT });
    expect(await verifyPaymentProof(publicClient, paid, { asset, minAmount: AMOUNT + 1n })).toMatchObject({ ok: false, reason: expect.stringMatching(/less than/) });

    const stranger = privateKeyToAccount(generatePrivateKey()).address;
    expect(await verifyPaymentProof(publicClient, { ...paid, fromAddress: stranger }, { asset })).toMatchObject({ ok: false, reason: expect.stringMatching(/moves no/) });
    expect(await verifyPaymentProof(publicClient, { ...paid, toAddress: stranger }, { asset })).toMatchObject({ ok: false, reason: expect.stringMatching(/moves no/) });
    const missing = keccak256(toBytes("no such transaction"));
    expect(await verifyPaymentProof(publicClient, { ...paid, txHash: missing }, { asset })).toMatchObject({ ok: false, reason: expect.stringMatching(/not found/) });
    expect(await verifyPaymentProof(publicClient, { ...paid, chainId: "8453" }, { asset })).toMatchObject({ ok: false, reason: expect.stringMatching(/chain 8453/) });
    expect(await verifyPaymentProof(publicClient, paid, { asset: REG.identityRegistry })).toMatchObject({ ok: false });
    expect(await verifyPaymentProof(publicClient, { ...paid, txHash: "0x1234" as Hex }, { asset })).toMatchObject({ ok: false, reason: expect.stringMatching(/malformed/) });
  });

  it("recognises an EIP-3009 authorization when one is required", async () => {
    const asset = net.usdc.address;
    const verdict = await verifyPaymentProof(publicClient, authorized, { asset, requireAuthorization: true });
    expect(verdict).toMatchObject({ ok: true, amount: 250_000n, authorizationNonce: keccak256(toBytes("proof-nonce-1")) });
    expect(await verifyPaymentProof(publicClient, paid, { asset, requireAuthorization: true })).toMatchObject({ ok: false, reason: expect.stringMatching(/EIP-3009/) });
  });

  it("summarizes only proven feedback (read back from the on-chain feedbackURI)", async () => {
    const base = { chainId: net.chainId, identityRegistry: REG.identityRegistry, agentId, valueDecimals: 0 };
    const proven = buildFeedbackFile({ ...base, clientAddress: payer.address, value: 90n, tag1: "quality", proofOfPayment: paid });
    const unpaid = buildFeedbackFile({ ...base, clientAddress: payers[0]!.address, value: 10n });
    const borrowed = buildFeedbackFile({ ...base, clientAddress: payers[1]!.address, value: 10n, proofOfPayment: paid }); // someone else's payment
    const replayed = buildFeedbackFile({ ...base, clientAddress: payer.address, value: 0n, proofOfPayment: paid }); // same tx twice

    // Post them on-chain with the file as a data: URI and its hash, then read them back from the events.
    const posted: [PrivateKeyAccount, FeedbackFile][] = [[payer, proven], [payers[0]!, unpaid], [payers[1]!, borrowed], [payer, replayed]];
    for (const [who, file] of posted) {
      ok(await giveFeedback(clientsOf(who), { agentId, value: BigInt(file.value), tag1: file.tag1 ?? "", feedbackUri: toJsonDataUri(file), feedbackHash: feedbackFileHash(file) }));
    }
    const events = await publicClient.getContractEvents({ address: REG.reputationRegistry, abi: reputationRegistryAbi, eventName: "NewFeedback", args: { agentId }, fromBlock: 0n });
    expect(events).toHaveLength(4);
    const files = events.map((e) => {
      const parsed = parseFeedbackFile(fromJsonDataUri(e.args.feedbackURI!));
      if (!parsed.ok) throw new Error(`${parsed.field}: ${parsed.reason}`);
      expect(feedbackFileHash(parsed.file)).toBe(e.args.feedbackHash);
      return parsed.file;
    });

    const summary = await summarizeProvenFeedback(publicClient, files, { asset: net.usdc.address, payTo: owner.address });
    expect(summary).toMatchObject({ proven: 1, unproven: 3, value: 90n, valueDecimals: 0, decimal: "90" });
    expect(summary.rejected.map((r) => r.index)).toEqual([1, 2, 3]);
    expect(summary.rejected[0]!.reason).toBe("no proofOfPayment");
    expect(summary.rejected[1]!.reason).toMatch(/someone other than the client/);
    expect(summary.rejected[2]!.reason).toMatch(/already backs/);

    // The on-chain average of the same four would have been dragged down to 27.5.
    const onChain = await getReputationSummary(publicClient, { agentId, clientAddresses: [payer.address, payers[0]!.address, payers[1]!.address] });
    expect(onChain).toMatchObject({ count: 4n, value: 27n });
    // Opting in to half weight for unproven feedback: (90*2 + 10 + 10 + 0) / (2 + 3) = 40.
    expect(await summarizeProvenFeedback(publicClient, files, { asset: net.usdc.address, unprovenWeight: { numerator: 1n, denominator: 2n } })).toMatchObject({ value: 40n });
    // Paid to someone other than the agent: nothing counts.
    const elsewhere = await summarizeProvenFeedback(publicClient, files, { asset: net.usdc.address, payTo: payers[0]!.address as Address });
    expect(elsewhere).toMatchObject({ proven: 0, value: 0n, decimal: "0" });
  });
});
