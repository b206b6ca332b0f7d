/**
 * The merchant agent the tests talk to: the SDK's express JSON-RPC server (A2A v1.0 with the v0.3
 * compat layer, so v0.3 clients get the spec's wire format) on a real port-0 HTTP server, an
 * image-generating executor behind the x402 paywall, priced by the server tests' stub scheme and
 * settled by their stub facilitator (packages/server/test/fixtures.ts) unless a real one is given.
 */
import { randomBytes } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import { AGENT_CARD_PATH, Role, TaskState, type AgentCard, type Message, type Part, type SendMessageRequest } from "@a2a-js/sdk";
import { Client, ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory } from "@a2a-js/sdk/client";
import { LegacyJsonRpcTransport } from "@a2a-js/sdk/compat/v0_3/client";
import { DefaultRequestHandler, InMemoryTaskStore, type AgentExecutor } from "@a2a-js/sdk/server";
import { agentCardHandler, jsonRpcHandler, UserBuilder } from "@a2a-js/sdk/server/express";
import type { FacilitatorClient, PaymentPayload, PaymentRequirements, SchemeServer, SettleResponse } from "@tollgate/core";
import { createA2aPaywall, getPayment, paidAgentCard, type A2aPaywallConfig, type RouteConfig } from "@tollgate/a2a";
import { ASSET, PAY_TO, PAYER, PENDING, stubFacilitator, stubScheme, TX, type StubFacilitator } from "../../../server/test/fixtures.ts";

export { ASSET, PAY_TO, PAYER, TX };
export { stubSchemeClient } from "../../../server/test/fixtures.ts";
export { PENDING as PENDING_SETTLE };
export const NETWORK = "eip155:84532";
export const RESOURCE_URL = "https://api.example.com/generate-image";
/** The price of the spec's example, in the stub scheme's token. */
export const PRICE: RouteConfig = {
  price: { amount: "48240000", asset: ASSET, extra: { name: "USD Coin", version: "2" } },
  network: NETWORK,
  payTo: PAY_TO,
  maxTimeoutSeconds: 600,
  description: "Generate an image",
  mimeType: "image/png",
};
/** What the executor answers once paid; a test looks for it anywhere in a refused task. */
export const imageOf = (prompt: string) => `IMAGE(${prompt})`;

export const text = (value: string): Part => ({ content: { $case: "text", value }, metadata: undefined, filename: "", mediaType: "" });

export function userMessage(prompt: string, extra: Partial<Message> = {}): SendMessageRequest {
  return {
    tenant: "",
    message: { messageId: crypto.randomUUID(), contextId: "", taskId: "", role: Role.ROLE_USER, parts: [text(prompt)], metadata: undefined, extensions: [], referenceTaskIds: [], ...extra },
    configuration: undefined,
    metadata: undefined,
  };
}

/**
 * The stub facilitator, plus what the real one's ledger does: an authorization settles once, and
 * every later /settle of it is `duplicate_settlement`.
 */
function settleOnce(stub: StubFacilitator): FacilitatorClient {
  const settled = new Set<string>();
  return {
    verify: (payload, requirements, options) => stub.verify(payload, requirements, options),
    supported: () => stub.supported(),
    async settle(payload: PaymentPayload, requirements: PaymentRequirements, options) {
      const key = JSON.stringify(payload.payload);
      if (settled.has(key)) {
        stub.settleCalls.push({ payload, requirements });
        return { success: false, errorReason: "duplicate_settlement", errorMessage: "this authorization was settled before", transaction: "", network: requirements.network, payer: PAYER };
      }
      const answer: SettleResponse = await stub.settle(payload, requirements, options);
      if (answer.success) settled.add(key);
      return answer;
    },
  };
}

/**
 * The wrapped executor: "fail" publishes a failed state, "throw" throws, "slow" takes 100 ms;
 * anything else publishes an image artifact and completes.
 */
function imageExecutor(runs: { count: number; payers: (string | undefined)[] }): AgentExecutor {
  return {
    async execute(ctx, bus) {
      runs.count++;
      runs.payers.push(getPayment(ctx)?.payer);
      const prompt = ctx.userMessage.parts.map((p) => (p.content?.$case === "text" ? p.content.value : "")).join("");
      const status = (state: TaskState, words: string) => ({
        taskId: ctx.taskId,
        contextId: ctx.contextId,
        status: { state, timestamp: new Date().toISOString(), message: { messageId: crypto.randomUUID(), contextId: ctx.contextId, taskId: ctx.taskId, role: Role.ROLE_AGENT, parts: [text(words)], metadata: undefined, extensions: [], referenceTaskIds: [] } },
        metadata: undefined,
      });
      if (prompt === "throw") throw new Error("the image model crashed");
      if (prompt === "fail") {
        bus.publish({ kind: "statusUpdate", data: status(TaskState.TASK_STATE_FAILED, "The image model is unavailable.") });
        return;
      }
      if (prompt === "slow") await new Promise((r) => setTimeout(r, 100));
      bus.publish({
        kind: "artifactUpdate",
        data: {
          taskId: ctx.taskId,
          contextId: ctx.contextId,
          artifact: { artifactId: `image-${randomBytes(4).toString("hex")}`, name: "generated-image.png", description: "", parts: [text(imageOf(prompt))], metadata: undefined, extensions: [] },
          append: false,
          lastChunk: true,
          metadata: undefined,
        },
      });
      bus.publish({ kind: "statusUpdate", data: status(TaskState.TASK_STATE_COMPLETED, "Payment successful. Your image is ready.") });
    },
    async cancelTask() {},
  };
}

/** Without the paywall (which announces the task itself), the SDK needs the task first. */
function announced(inner: AgentExecutor): AgentExecutor {
  return {
    async execute(ctx, bus) {
      if (!ctx.task) {
        const status = { state: TaskState.TASK_STATE_WORKING, timestamp: new Date().toISOString(), message: undefined };
        bus.publish({ kind: "task", data: { id: ctx.taskId, contextId: ctx.contextId, status, artifacts: [], history: [], metadata: undefined } });
      }
      await inner.execute(ctx, bus);
    },
    cancelTask: (taskId, bus) => inner.cancelTask(taskId, bus),
  };
}

export interface Merchant {
  /** The agent's base URL (the agent card is under it). */
  url: string;
  /** The JSON-RPC endpoint. */
  rpcUrl: string;
  card: AgentCard;
  facilitator: StubFacilitator;
  counters(): { runs: number; verify: number; settle: number; payers: (string | undefined)[] };
  reset(): void;
  /** An SDK client speaking A2A v0.3 (the spec's wire format) or v1.0. */
  client(version?: "0.3" | "1.0"): Promise<Client>;
  close(): Promise<void>;
}

export interface MerchantOptions {
  embedded?: boolean;
  requireActivation?: boolean;
  paywall?: Partial<A2aPaywallConfig>;
  /** A real facilitator and scheme instead of the stubs. */
  facilitator?: FacilitatorClient | string;
  schemes?: SchemeServer[];
  price?: RouteConfig;
  /** The same agent without the paywall (the baseline of bench/transports.ts). */
  unpaid?: boolean;
}

export async function startMerchant(options: MerchantOptions = {}): Promise<Merchant> {
  const stub = stubFacilitator();
  const runs = { count: 0, payers: [] as (string | undefined)[] };
  const paywall = createA2aPaywall({
    facilitator: options.facilitator ?? settleOnce(stub),
    schemes: options.schemes ?? [stubScheme],
    checkAtStart: false,
    settlementPollMs: 10,
    settlementTimeoutMs: 200,
    ...options.paywall,
  });
  const executor = options.unpaid ? announced(imageExecutor(runs)) : paywall.executor(imageExecutor(runs), {
    skills: { "generate-image": options.price ?? PRICE },
    resourceUrl: () => RESOURCE_URL,
    ...(options.embedded !== undefined ? { embedded: options.embedded } : {}),
    ...(options.requireActivation !== undefined ? { requireActivation: options.requireActivation } : {}),
  });

  const app = express();
  const server: Server = app.listen(0, "127.0.0.1");
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const rpcUrl = `${url}/a2a/jsonrpc`;
  const card: AgentCard = paidAgentCard({
    name: "Image Merchant",
    description: "Generates images for a fee, paid with x402.",
    rpcUrl,
    outputModes: ["text/plain", "image/png"],
    skills: [{ id: "generate-image", name: "Generate an image", description: "Generate an image ($48.24)", tags: ["image"] }],
  });
  const handler = new DefaultRequestHandler(card, new InMemoryTaskStore(), executor);
  app.use(`/${AGENT_CARD_PATH}`, agentCardHandler({ agentCardProvider: async () => card, legacyCompat: { enabled: true } }));
  app.use("/a2a/jsonrpc", jsonRpcHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication, legacyCompat: { enabled: true } }));

  return {
    url,
    rpcUrl,
    card,
    facilitator: stub,
    counters: () => ({ runs: runs.count, verify: stub.verifyCalls.length, settle: stub.settleCalls.length, payers: [...runs.payers] }),
    reset() {
      stub.reset();
      runs.count = 0;
      runs.payers = [];
    },
    async client(version = "0.3") {
      if (version === "0.3") return new Client(new LegacyJsonRpcTransport({ endpoint: rpcUrl }), card);
      const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, { transports: [new JsonRpcTransportFactory({ legacyCompat: { enabled: true } })] }));
      return factory.createFromUrl(url);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A JSON-RPC call as a v0.3 client sends it, raw: the response body and headers as they came. */
export async function rpc(merchant: Merchant, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: any }> {
  const res = await fetch(merchant.rpcUrl, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, json: await res.json() };
}
