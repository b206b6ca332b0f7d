/**
 * The generalist agent of `tollgate demo agents`: given a task, it finds specialists it has
 * never seen in a facilitator's catalog, picks one per need, and pays each per call over the
 * service's own transport (HTTP, MCP, A2A) under one spending policy its user set. What it
 * would pay is checked by the policy before anything is signed.
 *
 * Calling a discovered service uses only what the catalog says: the resource URL, the
 * transport (bazaar `input.type`, and the "a2a" tag for an agent), the declared example input.
 */
import { Client as A2aClient, ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory } from "@a2a-js/sdk/client";
import { Role, type Task } from "@a2a-js/sdk";
import { Client as McpClient } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { DiscoveredResource, PaymentClient, SettleResponse } from "@tollgate/core";
import { getPaymentReceipt as a2aReceipt, wrapA2aClient } from "@tollgate/a2a";
import { getPaymentReceipt as fetchReceipt, wrapFetch } from "@tollgate/fetch";
import { getPaymentReceipt as mcpReceipt, wrapMcpClient } from "@tollgate/mcp";

export interface PaidCall {
  service: string;
  transport: "HTTP" | "MCP" | "A2A";
  /** The answer's data (parsed JSON). */
  data: unknown;
  receipt: SettleResponse | undefined;
}

/** What the catalog says about one service, read for calling it. */
export interface Offer {
  item: DiscoveredResource;
  name: string;
  transport: "HTTP" | "MCP" | "A2A";
  tags: string[];
  /** The declared example input: query parameters, tool arguments, or body. */
  example: Record<string, unknown>;
  toolName?: string;
}

export function readOffer(item: DiscoveredResource): Offer {
  const bazaar = (item.extensions?.bazaar ?? {}) as { info?: { input?: Record<string, unknown> } };
  const input = bazaar.info?.input ?? {};
  const tags = item.tags ?? [];
  const transport = input.type === "mcp" || item.type === "mcp" ? "MCP" : tags.includes("a2a") ? "A2A" : "HTTP";
  const example = (transport === "MCP" ? input.example : transport === "A2A" ? input.body : input.queryParams) as Record<string, unknown> | undefined;
  return {
    item,
    name: item.serviceName ?? item.resource,
    transport,
    tags,
    example: example ?? {},
    ...(typeof input.toolName === "string" ? { toolName: input.toolName } : {}),
  };
}

/** Calls a discovered service, paying it through `payments` (one policy for every transport). */
export async function callOffer(offer: Offer, payments: PaymentClient, input: Record<string, unknown>): Promise<PaidCall> {
  if (offer.transport === "MCP") return callMcp(offer, payments, input);
  if (offer.transport === "A2A") return callA2a(offer, payments, input);
  return callHttp(offer, payments, input);
}

async function callHttp(offer: Offer, payments: PaymentClient, input: Record<string, unknown>): Promise<PaidCall> {
  const url = new URL(offer.item.resource);
  for (const [k, v] of Object.entries(input)) url.searchParams.set(k, String(v));
  const paying = wrapFetch(fetch, { client: payments });
  const res = await paying(url);
  if (!res.ok) throw new Error(`${offer.name}: HTTP ${res.status}`);
  return { service: offer.name, transport: "HTTP", data: await res.json(), receipt: fetchReceipt(res)?.receipt };
}

async function callMcp(offer: Offer, payments: PaymentClient, input: Record<string, unknown>): Promise<PaidCall> {
  if (!offer.toolName) throw new Error(`${offer.name}: the catalog names no tool`);
  const client = new McpClient({ name: "generalist-agent", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(offer.item.resource)));
  try {
    const result = (await wrapMcpClient(client, { client: payments }).callTool({ name: offer.toolName, arguments: input })) as CallToolResult;
    if (result.isError) throw new Error(`${offer.name}: ${JSON.stringify(result.content).slice(0, 200)}`);
    return { service: offer.name, transport: "MCP", data: result.structuredContent, receipt: mcpReceipt(result)?.receipt };
  } finally {
    await client.close();
  }
}

async function callA2a(offer: Offer, payments: PaymentClient, input: Record<string, unknown>): Promise<PaidCall> {
  const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, { transports: [new JsonRpcTransportFactory({ legacyCompat: { enabled: true } })] }));
  const client: A2aClient = await factory.createFromUrl(offer.item.resource);
  const text = JSON.stringify(input);
  const task = (await wrapA2aClient(client, { client: payments }).sendMessage({
    tenant: "",
    message: { messageId: crypto.randomUUID(), contextId: "", taskId: "", role: Role.ROLE_USER, parts: [{ content: { $case: "text", value: text }, metadata: undefined, filename: "", mediaType: "" }], metadata: undefined, extensions: [], referenceTaskIds: [] },
    configuration: undefined,
    metadata: undefined,
  })) as Task;
  const part = task.artifacts?.[0]?.parts?.[0]?.content;
  const answer = part?.$case === "text" ? part.value : "";
  return { service: offer.name, transport: "A2A", data: JSON.parse(answer) as unknown, receipt: a2aReceipt(task)?.receipt };
}
