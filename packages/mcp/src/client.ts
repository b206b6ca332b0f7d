/**
 * The paying side: `wrapMcpClient(client, options).callTool(params)` calls a tool and, when the
 * result is the x402 payment-required shape, pays once under the spending policy and calls again
 * with the payment in `params._meta["x402/payment"]`.
 *
 * Choosing an option, the policy (limits, budget, validity cap), signing and the accounting of
 * what a failed paid call cost are @tollgate/fetch's exchange (`payAndRetry`), the one wrapFetch
 * and @tollgate/axios run: here it is only told how to look at a tool result (payment-required
 * shape = 402 with its PaymentRequired, `_meta["x402/payment-response"]` = the receipt) and how to
 * send the paid call. So a policy refusal throws before anything is signed, a settled receipt
 * commits the amount, and anything else leaves it counted until the authorization expires.
 */
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { RequestOptions } from "@modelcontextprotocol/sdk/shared/protocol.js";
import { CallToolResultSchema, type CallToolRequest, type CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import {
  createPaymentClient,
  encodeBase64Json,
  Headers as X402Headers,
  InvalidPaymentRequiredError,
  type Extensions,
  type Payment,
  type PaymentClient,
  type PaymentClientOptions,
} from "@tollgate/core";
import { PaymentFailedError, payAndRetry, type PaymentInfo, type ResponseView } from "@tollgate/fetch";
import { PAYMENT_META_KEY, rawPaymentResponse, readPaymentRequired, toolResourceUrl } from "./meta.ts";

export type WrapMcpClientOptions = ({ client: PaymentClient } | PaymentClientOptions) & {
  /** Extension data to add to every payment (merged under the server's), e.g. a `payment-identifier` id. */
  extensions?: Extensions;
  /**
   * Request timeout of the paid call, unless the call's own options set one. The server holds
   * the answer until the settlement is final (its `settlementTimeoutMs`, 150 s by default), well
   * past the SDK's 60 s default. Default 180 000.
   */
  paidCallTimeoutMs?: number;
};

export interface PayingMcpClient {
  /** The wrapped MCP client (every other method is used from it directly). */
  readonly client: Client;
  readonly paymentClient: PaymentClient;
  /**
   * `client.callTool`, paying a payment-required result once. Resolves with the tool's result
   * (after a payment: `getPaymentReceipt(result)` says what was paid). Throws the payment
   * client's PaymentRefusedError (the policy said no; nothing signed), InvalidPaymentRequiredError
   * (a malformed PaymentRequired; nothing signed), or PaymentFailedError when the paid call did
   * not return the tool's output: refused, settlement failed or pending, or the tool failed
   * (`error.response` is that result; `error.charged` whether it cost money).
   *
   * The result is read as the server sent it, without the SDK client's `outputSchema` check,
   * which would reject the spec's payment-required result of a tool that declares one.
   */
  callTool(params: CallToolRequest["params"], options?: RequestOptions): Promise<CallToolResult>;
}

const DEFAULT_PAID_CALL_TIMEOUT_MS = 180_000;
const receipts = new WeakMap<CallToolResult, PaymentInfo>();

/** What a wrapped client paid for `result`, or undefined when no payment was made for it. */
export function getPaymentReceipt(result: CallToolResult): PaymentInfo | undefined {
  return receipts.get(result);
}

export function wrapMcpClient(client: Client, options: WrapMcpClientOptions): PayingMcpClient {
  const payer = "client" in options ? options.client : createPaymentClient(options);
  const paidTimeout = options.paidCallTimeoutMs ?? DEFAULT_PAID_CALL_TIMEOUT_MS;
  if (!Number.isSafeInteger(paidTimeout) || paidTimeout <= 0) throw new RangeError("wrapMcpClient: paidCallTimeoutMs must be a positive whole number of milliseconds");
  const call = (params: CallToolRequest["params"], requestOptions?: RequestOptions) =>
    client.request({ method: "tools/call", params }, CallToolResultSchema, requestOptions) as Promise<CallToolResult>;

  async function callTool(params: CallToolRequest["params"], requestOptions?: RequestOptions): Promise<CallToolResult> {
    const first = await call(params, requestOptions);
    const required = readPaymentRequired(first);
    if (!required) return first;

    // The exchange hands the payment header to `send`; the transport wants the payload object itself.
    let payment: Payment | undefined;
    const capturing: PaymentClient = {
      async pay(offer, context) {
        if (offer.x402Version !== 2) throw new InvalidPaymentRequiredError("paymentRequired.x402Version: the MCP transport carries x402 v2 only", [{ field: "paymentRequired.x402Version", reason: "must be 2" }]);
        payment = await payer.pay(offer, context);
        return payment;
      },
      ...(payer.policy ? { policy: payer.policy } : {}),
    };
    const url = typeof (required.resource as { url?: unknown } | undefined)?.url === "string" ? (required.resource as { url: string }).url : toolResourceUrl(params.name);
    try {
      const paid = await payAndRetry<CallToolResult>({
        client: capturing,
        url,
        ...(options.extensions ? { extensions: options.extensions } : {}),
        first: toolView(first),
        view: toolView,
        send: () =>
          call({ ...params, _meta: { ...params._meta, [PAYMENT_META_KEY]: payment!.payload } }, { ...requestOptions, timeout: requestOptions?.timeout ?? paidTimeout }),
      });
      if (paid.kind === "not-x402") return first;
      receipts.set(paid.response, paid.info);
      return paid.response;
    } catch (e) {
      throw e instanceof PaymentFailedError && payment ? toolFailure(e as PaymentFailedError<CallToolResult>, params.name, payment) : e;
    }
  }

  return { client, paymentClient: payer, callTool };
}

/**
 * A tool result as the exchange reads an HTTP response: the payment-required shape is a 402 with
 * its PaymentRequired, any other error result a 500 (the server said nothing about the money:
 * "maybe charged" unless a receipt says otherwise), anything else a 200; the receipt is
 * `_meta["x402/payment-response"]`.
 */
function toolView(result: CallToolResult): ResponseView {
  const required = readPaymentRequired(result);
  const receipt = rawPaymentResponse(result);
  const status = required ? 402 : result.isError ? 500 : 200;
  return {
    status,
    header(name) {
      const n = name.toLowerCase();
      if (required && n === X402Headers.v2.required.toLowerCase()) return encodeBase64Json(required);
      if (receipt !== undefined && n === X402Headers.v2.response.toLowerCase()) return encodeBase64Json(receipt);
      return null;
    },
    // The reason the exchange reports for a failed error result that is not payment-required.
    text: async () => (status === 500 ? JSON.stringify({ error: errorReasonOf(result) }) : ""),
    discard: async () => {},
  };
}

/** The reason code of a non-payment error result: the paywall's own (`{"error","reason"}` text) or `tool_error`. */
function errorReasonOf(result: CallToolResult): string {
  const first = result.content?.[0];
  if (first?.type === "text" && first.text.length < 4096) {
    try {
      const body = JSON.parse(first.text) as { reason?: unknown };
      if (typeof body.reason === "string" && /^[a-z0-9_]{1,64}$/.test(body.reason)) return body.reason;
    } catch {
      // the tool's own error text
    }
  }
  return "tool_error";
}

/** The exchange's failure, reworded for a tool call (its wording is HTTP's); every field is kept. */
function toolFailure(e: PaymentFailedError<CallToolResult>, tool: string, payment: Payment): PaymentFailedError<CallToolResult> {
  const message = e.message.replace(/^payment failed: HTTP \d+, /, `paid call of tool "${tool}" failed: `).replace(/^paid retry failed/, `paid call of tool "${tool}" failed`);
  return new PaymentFailedError<CallToolResult>(
    message,
    {
      reason: e.reason,
      ...(e.receipt ? { receipt: e.receipt } : {}),
      payment,
      charged: e.charged,
      ...(e.response ? { response: e.response } : {}),
    },
    { cause: e.cause ?? e },
  );
}
