// Conformance with x402 specs/transports-v2/mcp.md: the JSON-RPC messages on the wire, read off
// the client's transport, against the spec's example messages (fixtures/spec-examples.ts, copied
// verbatim). The demo prices its tool exactly as the examples do (same network, asset, amount,
// payTo, timeout, extra), so every field is compared as written, except values that are fresh
// per payment (signature, nonce, times, transaction hash) and the additions named below.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PaymentFailedError, spendingPolicy, wrapMcpClient } from "@tollgate/mcp";
import { createDemo, NETWORK, stubSchemeClient, TX, type Demo } from "./support/demo.ts";
import { paidToolCallRequest, paymentRequiredResponse, settledResponse, settlementFailedResponse } from "./fixtures/spec-examples.ts";

interface Wire {
  sent: JSONRPCMessage[];
  received: JSONRPCMessage[];
}

let demo: Demo;
let client: Client;
let wire: Wire;

/** Records every message the client sends and receives, as JSON (what a byte stream would carry). */
function tap(transport: InMemoryTransport): Wire {
  const w: Wire = { sent: [], received: [] };
  const send = transport.send.bind(transport);
  transport.send = async (message, options) => {
    w.sent.push(JSON.parse(JSON.stringify(message)) as JSONRPCMessage);
    return send(message, options);
  };
  const onmessage = transport.onmessage;
  transport.onmessage = (message, extra) => {
    w.received.push(JSON.parse(JSON.stringify(message)) as JSONRPCMessage);
    onmessage?.(message, extra);
  };
  return w;
}

beforeEach(async () => {
  demo = createDemo();
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await demo.createServer().connect(serverSide);
  client = new Client({ name: "spec-agent", version: "0.0.0" });
  await client.connect(clientSide);
  wire = tap(clientSide);
});

afterEach(async () => {
  await client.close();
});

const toolCalls = () => wire.sent.filter((m) => "method" in m && m.method === "tools/call") as Array<JSONRPCMessage & { id: number; params: Record<string, unknown> }>;
const responseTo = (id: number) => wire.received.find((m) => "id" in m && m.id === id && "result" in m) as { jsonrpc: string; id: number; result: Record<string, unknown> } | undefined;
const paying = () => wrapMcpClient(client, { schemes: [stubSchemeClient()], policy: spendingPolicy({ maxPerRequest: "$0.05", networks: [NETWORK] }) });

/** The payment-identifier extension every 402 of ours advertises (optional for clients): the one field the examples do not have. */
const advertisement = { "payment-identifier": expect.objectContaining({ info: { required: false } }) };

describe("x402 MCP transport, against the spec's example messages", () => {
  it("Payment Required Signaling: isError, the PaymentRequired in structuredContent and as JSON in content[0].text", async () => {
    await client.callTool({ name: "financial_analysis", arguments: { ticker: "AAPL", analysis_type: "deep" } });
    const [request] = toolCalls();
    const response = responseTo(request!.id)!;
    const spec = paymentRequiredResponse;

    expect(response.jsonrpc).toBe(spec.jsonrpc);
    expect(Object.keys(response.result).sort()).toEqual(Object.keys(spec.result).sort());
    expect(response.result.isError).toBe(true);
    expect(response.result.structuredContent).toEqual({ ...spec.result.structuredContent, extensions: advertisement });
    // content[0].text is JSON.stringify(structuredContent): byte for byte the spec's text, then our extensions.
    const content = response.result.content as Array<{ type: string; text: string }>;
    expect(content).toHaveLength(1);
    expect(content[0]!.type).toBe("text");
    expect(JSON.parse(content[0]!.text)).toEqual(response.result.structuredContent);
    expect(content[0]!.text.startsWith(`${spec.result.content[0].text.slice(0, -1)},"extensions":`)).toBe(true);
    expect(demo.counters()).toMatchObject({ runs: {}, verify: 0 });
  });

  it("Payment Payload Transmission: the retry carries the PaymentPayload in params._meta[\"x402/payment\"]", async () => {
    await paying().callTool({ name: "financial_analysis", arguments: { ticker: "AAPL", analysis_type: "deep" } });
    const calls = toolCalls();
    expect(calls).toHaveLength(2);
    const spec = paidToolCallRequest;
    const paid = calls[1]! as unknown as typeof spec & { params: { _meta: { "x402/payment": Record<string, unknown> } } };

    expect(paid.jsonrpc).toBe(spec.jsonrpc);
    expect(paid.method).toBe(spec.method);
    expect(paid.params.name).toBe(spec.params.name);
    expect(paid.params.arguments).toEqual(spec.params.arguments);
    expect(Object.keys(paid.params).sort()).toEqual(Object.keys(spec.params).sort());
    expect(Object.keys(paid.params._meta)).toEqual(["x402/payment"]);

    const payment = paid.params._meta["x402/payment"] as Record<string, unknown>;
    const specPayment = spec.params._meta["x402/payment"];
    expect(payment.x402Version).toBe(specPayment.x402Version);
    expect(payment.resource).toEqual(specPayment.resource);
    expect(payment.accepted).toEqual(specPayment.accepted);
    // The client echoes the server's extensions (here the payment-identifier advertisement): the one key beyond the example's.
    expect(Object.keys(payment).sort()).toEqual([...Object.keys(specPayment), "extensions"].sort());
    const inner = payment.payload as { signature: string; authorization: Record<string, string> };
    expect(Object.keys(inner).sort()).toEqual(Object.keys(specPayment.payload).sort());
    expect(Object.keys(inner.authorization).sort()).toEqual(Object.keys(specPayment.payload.authorization).sort());
    const { validAfter: _a, validBefore: _b, nonce: _n, ...fixed } = specPayment.payload.authorization;
    expect(inner.authorization).toMatchObject(fixed);
    expect(inner.signature).toMatch(/^0x[0-9a-f]{130}$/);
  });

  it("Successful Settlement: the tool's result with the SettlementResponse in result._meta[\"x402/payment-response\"]", async () => {
    await paying().callTool({ name: "financial_analysis", arguments: { ticker: "AAPL", analysis_type: "deep" } });
    const response = responseTo(toolCalls()[1]!.id)!;
    const spec = settledResponse;
    expect(response.jsonrpc).toBe(spec.jsonrpc);
    // Field for field the spec's result; only the transaction hash is this settlement's own.
    expect(response.result).toEqual({ ...spec.result, _meta: { "x402/payment-response": { ...spec.result._meta["x402/payment-response"], transaction: TX } } });
  });

  it("Settlement Failure: the payment-required shape again, no tool output, the failed settlement in _meta", async () => {
    demo.control({ settle: "fail" });
    const error = await paying()
      .callTool({ name: "financial_analysis", arguments: { ticker: "AAPL", analysis_type: "deep" } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PaymentFailedError);
    const response = responseTo(toolCalls()[1]!.id)!;
    const spec = settlementFailedResponse;
    const structured = response.result.structuredContent as Record<string, unknown>;

    expect(response.result.isError).toBe(true);
    // The spec's example error is prose; ours is the reason code and the facilitator's message.
    expect(structured).toEqual({ ...spec.result.structuredContent, error: "transaction_failed: execution reverted", extensions: advertisement });
    const content = response.result.content as Array<{ type: string; text: string }>;
    expect(content).toEqual([{ type: "text", text: JSON.stringify(structured) }]);
    expect(JSON.stringify(response)).not.toContain("Financial analysis");
    // Beyond the example: the settle response (failed) rides in _meta, never inside the PaymentRequired.
    expect(Object.keys(response.result).sort()).toEqual([...Object.keys(spec.result), "_meta"].sort());
    expect(response.result._meta).toEqual({ "x402/payment-response": expect.objectContaining({ success: false, errorReason: "transaction_failed", network: NETWORK }) });
  });
});
