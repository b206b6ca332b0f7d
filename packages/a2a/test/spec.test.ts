// Conformance: the merchant's JSON-RPC messages, as a v0.3 client sees them on the wire, against
// the spec documents' example messages field by field (test/fixtures/spec-examples.ts). Every
// field of an example must be present with the same JSON type, and the same value unless the
// test names it as one that necessarily differs (generated ids, our test network's token and
// payee, human-readable texts).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Reason } from "@tollgate/core";
import { X402_EXTENSION_URI_V01, X402_EXTENSION_URI_V02 } from "@tollgate/a2a";
import {
  agentCardDeclaration,
  agentCardDeclarationV02,
  embeddedPaymentRequiredResponse,
  embeddedPaymentSubmittedRequest,
  paymentCompletedResponse,
  paymentFailedResponse,
  paymentRequiredResponse,
  paymentSubmittedRequest,
} from "./fixtures/spec-examples.ts";
import { imageOf, PAYER, rpc, startMerchant, stubSchemeClient, type Merchant } from "./support/merchant.ts";

/** Checks `actual` against a spec example: every field present, same type, same value unless its path is in `differs`. */
function conforms(actual: unknown, expected: unknown, differs: readonly string[], path = ""): void {
  if (Array.isArray(expected)) {
    expect(Array.isArray(actual), `${path}: expected an array`).toBe(true);
    expected.forEach((e, i) => conforms((actual as unknown[])[i], e, differs, `${path}[${i}]`));
    return;
  }
  if (typeof expected === "object" && expected !== null) {
    expect(typeof actual === "object" && actual !== null && !Array.isArray(actual), `${path}: expected an object, got ${JSON.stringify(actual)}`).toBe(true);
    for (const [k, v] of Object.entries(expected)) {
      const p = path ? `${path}.${k}` : k;
      expect(actual as object, `${p}: missing`).toHaveProperty([k]);
      conforms((actual as Record<string, unknown>)[k], v, differs, p);
    }
    return;
  }
  expect(typeof actual, `${path}: type`).toBe(typeof expected);
  if (!differs.includes(path)) expect(actual, path).toEqual(expected);
}

const ACTIVATE_V01 = { "X-A2A-Extensions": X402_EXTENSION_URI_V01 };
const firstMessage = (id = "req-001") => ({
  jsonrpc: "2.0",
  id,
  method: "message/send",
  params: { message: { kind: "message", messageId: crypto.randomUUID(), role: "user", parts: [{ kind: "text", text: "Generate an image of a cat." }] } },
});
/** Our test network's option differs from the example's Base mainnet one in these fields only. */
const OPTION_DIFFERS = ["network", "asset", "payTo"];
const REQUIRED = "result.status.message.metadata.x402.payment.required";

let merchant: Merchant;
beforeAll(async () => {
  merchant = await startMerchant();
});
afterAll(async () => {
  await merchant?.close();
});
beforeEach(() => merchant.reset());

/** Paths of a metadata key that contains dots, as `conforms` writes them. */
const meta = (key: string) => `result.status.message.metadata.${key}`;

describe("the spec's example messages, field by field (v0.3 JSON-RPC wire)", () => {
  it("answers the first message of a paid task with the Payment Required Signaling example", async () => {
    const { json } = await rpc(merchant, firstMessage(), ACTIVATE_V01);
    conforms(json, paymentRequiredResponse, [
      "result.id",
      "result.status.message.parts[0].text",
      ...OPTION_DIFFERS.map((f) => `${REQUIRED}.accepts[0].${f}`),
    ]);
    expect(json.result.status.message.parts[0].text).toBe("Payment is required: Generate an image");
    // Nothing was verified, run or settled for a request without a payment.
    expect(merchant.counters()).toMatchObject({ runs: 0, verify: 0, settle: 0 });
  });

  it("reads the Payment Payload Transmission example's message and answers with the Successful Settlement example", async () => {
    const first = await rpc(merchant, firstMessage(), ACTIVATE_V01);
    const required = first.json.result.status.message.metadata["x402.payment.required"];
    const accepted = required.accepts[0];
    const request = structuredClone(paymentSubmittedRequest) as any;
    request.params.message.taskId = first.json.result.id;
    request.params.message.messageId = crypto.randomUUID();
    request.params.message.kind = "message";
    const payload = request.params.message.metadata["x402.payment.payload"];
    payload.accepted = accepted;
    payload.payload = await stubSchemeClient().createPayload(accepted, { x402Version: 2 });

    const { json, headers } = await rpc(merchant, request, ACTIVATE_V01);
    expect(headers.get("x-a2a-extensions")).toBe(X402_EXTENSION_URI_V01);
    const { artifacts: _artifacts, ...withoutArtifacts } = paymentCompletedResponse.result;
    conforms(json, { ...paymentCompletedResponse, result: withoutArtifacts }, [
      "result.id",
      `${meta("x402.payment.receipts")}[0].transaction`,
      `${meta("x402.payment.receipts")}[0].network`,
    ]);
    expect(json.result.status.message.metadata["x402.payment.receipts"][0]).toMatchObject({ success: true, network: "eip155:84532", payer: PAYER });
    // The spec's artifact (`kind: "image"`, `data`) is not an A2A Artifact; ours is the v0.3 one, with the output.
    expect(json.result.artifacts).toHaveLength(1);
    expect(json.result.artifacts[0]).toMatchObject({ name: "generated-image.png", parts: [{ kind: "text", text: imageOf("Generate an image of a cat.") }] });
    expect(merchant.counters()).toMatchObject({ runs: 1, verify: 1, settle: 1 });
  });

  it("answers an expired authorization with the Payment Failure example", async () => {
    merchant.facilitator.verifyResult = { isValid: false, invalidReason: Reason.evmValidBefore, invalidMessage: "validBefore is in the past", payer: PAYER };
    const first = await rpc(merchant, firstMessage(), ACTIVATE_V01);
    const accepted = first.json.result.status.message.metadata["x402.payment.required"].accepts[0];
    const request = structuredClone(paymentSubmittedRequest) as any;
    Object.assign(request.params.message, { taskId: first.json.result.id, messageId: crypto.randomUUID(), kind: "message" });
    const payload = request.params.message.metadata["x402.payment.payload"];
    payload.accepted = accepted;
    payload.payload = await stubSchemeClient().createPayload(accepted, { x402Version: 2 });

    const { json } = await rpc(merchant, request, ACTIVATE_V01);
    conforms(json, paymentFailedResponse, [
      "result.id",
      "result.status.message.parts[0].text",
      `${meta("x402.payment.receipts")}[0].errorReason`,
      `${meta("x402.payment.receipts")}[0].network`,
    ]);
    const receipt = json.result.status.message.metadata["x402.payment.receipts"][0];
    expect(receipt).toMatchObject({ success: false, errorReason: Reason.evmValidBefore, network: "eip155:84532", transaction: "" });
    expect(json.result.status.message.parts[0].text).toMatch(/^Payment failed \(EXPIRED_PAYMENT\): invalid_exact_evm_payload_authorization_valid_before/);
    expect(json.result.artifacts ?? []).toEqual([]);
    expect(merchant.counters()).toMatchObject({ runs: 0, verify: 1, settle: 0 });
  });

  it("declares both extension URIs in the AgentCard as the spec's declaration example", async () => {
    const card = await (await fetch(`${merchant.url}/.well-known/agent-card.json`)).json();
    const byUri = (uri: string) => ({ capabilities: { extensions: card.capabilities.extensions.filter((e: { uri: string }) => e.uri === uri) } });
    // `required` is false: the SDK refuses a request that does not activate EVERY required URI,
    // and either URI is enough here; the paywall itself refuses paid skills to clients that activate neither.
    conforms(byUri(X402_EXTENSION_URI_V01), agentCardDeclaration, ["capabilities.extensions[0].required"]);
    conforms(byUri(X402_EXTENSION_URI_V02), agentCardDeclarationV02, ["capabilities.extensions[0].required"]);
    expect(card.capabilities.extensions.map((e: { required: boolean }) => e.required)).toEqual([false, false]);
  });
});

describe("activation (X-A2A-Extensions)", () => {
  it.each([
    ["v0.1", X402_EXTENSION_URI_V01, X402_EXTENSION_URI_V01],
    ["v0.2", X402_EXTENSION_URI_V02, X402_EXTENSION_URI_V02],
    ["both", `${X402_EXTENSION_URI_V01}, ${X402_EXTENSION_URI_V02}`, `${X402_EXTENSION_URI_V01}, ${X402_EXTENSION_URI_V02}`],
  ])("accepts the %s URI and echoes it", async (_name, sent, echoed) => {
    const { json, headers } = await rpc(merchant, firstMessage(), { "X-A2A-Extensions": sent });
    expect(headers.get("x-a2a-extensions")).toBe(echoed);
    expect(json.result.status.state).toBe("input-required");
    expect(json.result.status.message.metadata["x402.payment.status"]).toBe("payment-required");
  });

  it("echoes nothing it does not know, and refuses a paid skill to a client that activated no x402 URI", async () => {
    const { json, headers } = await rpc(merchant, firstMessage(), { "X-A2A-Extensions": "https://example.com/other-extension" });
    expect(headers.get("x-a2a-extensions")).toBeNull();
    expect(json.result.status.state).toBe("rejected");
    expect(json.result.status.message.metadata).toBeUndefined();
    expect(JSON.stringify(json)).not.toContain("x402.payment.required");
    expect(merchant.counters()).toMatchObject({ runs: 0, verify: 0 });
  });
});

describe("the v0.2 embedded form (AP2)", () => {
  it("puts the requirements in a CartMandate artifact shaped as the spec's example, and reads the payload from a PaymentMandate part", async () => {
    const embedded = await startMerchant({ embedded: true });
    try {
      const first = await rpc(embedded, firstMessage(), { "X-A2A-Extensions": X402_EXTENSION_URI_V02 });
      const example = structuredClone(embeddedPaymentRequiredResponse) as any;
      const cartData = example.result.artifacts[0].parts[0].data;
      delete cartData.merchant_signature; // a signature of AP2's, which this merchant does not produce
      const x402 = cartData["ap2.mandates.CartMandate"].payment_request.method_data[0].data;
      const ours = first.json.result.artifacts[0].parts[0].data["ap2.mandates.CartMandate"].payment_request.method_data[0].data;
      // The example's method data is an x402 v1 PaymentRequired; ours is v2 (checked below on its own).
      cartData["ap2.mandates.CartMandate"].payment_request.method_data[0].data = {};
      delete cartData["ap2.mandates.CartMandate"].payment_request.details.total; // the order total is the merchant's to state
      conforms(first.json, example, [
        "result.id",
        "result.status.message.parts[0].text",
        "result.artifacts[0].artifactId",
        "result.artifacts[0].parts[0].data.ap2.mandates.CartMandate.id",
        "result.artifacts[0].parts[0].data.ap2.mandates.CartMandate.payment_request.details.id",
        "result.artifacts[0].parts[0].data.timestamp",
      ]);
      expect(x402.x402Version).toBe(1);
      expect(ours).toMatchObject({ x402Version: 2, accepts: [{ scheme: "exact", amount: "48240000" }] });
      expect(first.json.result.status.message.metadata).toEqual({ "x402.payment.status": "payment-required" });

      const request = structuredClone(embeddedPaymentSubmittedRequest) as any;
      Object.assign(request.params.message, { taskId: first.json.result.id, messageId: crypto.randomUUID(), kind: "message" });
      const accepted = ours.accepts[0];
      request.params.message.parts[0].data["ap2.mandates.PaymentMandate"].payment_details.payment_method.data = {
        x402Version: 2,
        accepted,
        payload: await stubSchemeClient().createPayload(accepted, { x402Version: 2 }),
      };
      const { json } = await rpc(embedded, request, { "X-A2A-Extensions": X402_EXTENSION_URI_V02 });
      expect(json.result.status.state).toBe("completed");
      expect(json.result.status.message.metadata["x402.payment.status"]).toBe("payment-completed");
      expect(json.result.status.message.metadata["x402.payment.receipts"]).toMatchObject([{ success: true }]);
      expect(JSON.stringify(json.result.artifacts)).toContain(imageOf("Generate an image of a cat."));
      expect(embedded.counters()).toMatchObject({ runs: 1, verify: 1, settle: 1 });
    } finally {
      await embedded.close();
    }
  });

  it("answers a v0.1 client of the same merchant in the standalone form", async () => {
    const embedded = await startMerchant({ embedded: true });
    try {
      const { json } = await rpc(embedded, firstMessage(), ACTIVATE_V01);
      expect(json.result.status.message.metadata["x402.payment.required"]).toMatchObject({ x402Version: 2 });
      expect(json.result.artifacts ?? []).toEqual([]);
    } finally {
      await embedded.close();
    }
  });
});
