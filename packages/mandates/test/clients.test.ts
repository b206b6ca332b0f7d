// The MCP client takes a mandate the same way wrapFetch does (an authorizer in its payment client
// options): a paid tool inside the mandate is paid with the chain bound to the nonce; one outside it
// is refused before the scheme signs anything.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { PaymentPayload, PaymentRequirements, SchemeClient } from "@tollgate/core";
import { getPaymentReceipt, wrapMcpClient } from "@tollgate/mcp";
import { keccak256, toBytes } from "viem";
import { afterAll, describe, expect, it, vi } from "vitest";
import { PAY_TO, PAYER } from "../../server/test/fixtures.ts";
import { createDemo, NETWORK } from "../../mcp/test/support/demo.ts";
import { issueOpenMandate, mandateWallet, MandateRefusedError } from "../src/index.ts";
import { testKeys } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "tollgate-mandate-clients-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Signs (pretend) an EIP-3009 authorization with the nonce it is given. */
function nonceHonouringScheme() {
  const createPayload = vi.fn(async (r: PaymentRequirements, ctx: { nonce?: string }) => {
    const now = Math.floor(Date.now() / 1000);
    return { signature: `0x${"2d".repeat(65)}`, authorization: { from: PAYER, to: r.payTo, value: r.amount, validAfter: String(now - 600), validBefore: String(now + r.maxTimeoutSeconds), nonce: ctx.nonce! } };
  });
  const scheme: SchemeClient = { scheme: "exact", networks: ["eip155:*"], payer: () => PAYER, createPayload };
  return { scheme, createPayload };
}

async function connected() {
  const demo = createDemo();
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await demo.createServer().connect(serverSide);
  const client = new Client({ name: "agent", version: "0.0.0" });
  await client.connect(clientSide);
  return client;
}

async function wallet(payees: string[]) {
  const { user, agent } = await testKeys();
  const open = await issueOpenMandate({ userKey: user.privateJwk, agentPublicJwk: agent.publicJwk, constraints: { allowedPayees: payees, allowedAssets: [{ network: NETWORK }] }, expiresAt: Math.floor(Date.now() / 1000) + 3600 });
  return mandateWallet({ open, userPublicJwk: user.publicJwk, agentKey: agent, store: join(dir, `${Math.random()}.json`) });
}

describe("MCP client with a mandate", () => {
  it("pays a tool inside the mandate: the payload carries the chain, its hash is the nonce", async () => {
    const client = await connected();
    const { scheme, createPayload } = nonceHonouringScheme();
    const paying = wrapMcpClient(client, { schemes: [scheme], authorizer: await wallet([PAY_TO]) });
    const result = (await paying.callTool({ name: "financial_analysis", arguments: { ticker: "AAPL" } })) as CallToolResult;
    expect(result.isError).not.toBe(true);
    expect(createPayload).toHaveBeenCalledTimes(1);
    const payload = getPaymentReceipt(result)!.payload as PaymentPayload;
    const chain = (payload.extensions!["ap2-mandate"] as { info: { chain: string } }).info.chain;
    expect((payload.payload as { authorization: { nonce: string } }).authorization.nonce).toBe(keccak256(toBytes(chain)));
    await client.close();
  });

  it("refuses a tool whose payee is outside the mandate, before signing", async () => {
    const client = await connected();
    const { scheme, createPayload } = nonceHonouringScheme();
    const paying = wrapMcpClient(client, { schemes: [scheme], authorizer: await wallet(["0x90F79bf6EB2c4f870365E785982E1f101E93b906"]) });
    const err = await paying.callTool({ name: "financial_analysis", arguments: { ticker: "AAPL" } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MandateRefusedError);
    expect(err).toMatchObject({ constraint: "payment.allowed_payees", code: "payee_not_allowed" });
    expect(createPayload).not.toHaveBeenCalled();
    await client.close();
  });
});
