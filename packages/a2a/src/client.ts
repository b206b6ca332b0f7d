/**
 * The client agent: `wrapA2aClient(client, options).sendMessage(params)` sends a message with the
 * x402 extension activated and, when the task comes back `input-required` with
 * `payment-required`, pays once under the spending policy and submits `payment-submitted` on the
 * same taskId (in the form the merchant asked in: `x402.payment.payload`, or an AP2
 * PaymentMandate part when the requirements came in a CartMandate artifact).
 *
 * Choosing an option, the policy (limits, budget, validity cap), signing and the accounting of
 * what a failed paid task cost are @tollgate/fetch's exchange (`payAndRetry`), the one wrapFetch,
 * @tollgate/axios and @tollgate/mcp run: here it is only told how to look at a task (asking for a
 * payment = 402 with its PaymentRequired, the last of `x402.payment.receipts` = the receipt) and
 * how to send the paid message. A refusal by the policy or the `authorizer` (e.g. an AP2 mandate
 * wallet) throws before anything is signed (and tells the merchant `payment-rejected`), a settled
 * receipt commits the amount, and anything else leaves it counted until the authorization expires.
 */
import { randomUUID } from "node:crypto";
import { Role, TaskState, type Message, type Part, type SendMessageRequest, type Task } from "@a2a-js/sdk";
import type { Client, RequestOptions } from "@a2a-js/sdk/client";
import {
  createPaymentClient,
  encodeBase64Json,
  Headers as X402Headers,
  InvalidPaymentRequiredError,
  PaymentRefusedError,
  type Extensions,
  type Payment,
  type PaymentClient,
  type PaymentClientOptions,
  type PaymentPayload,
} from "@tollgate/core";
import { PaymentFailedError, payAndRetry, type PaymentInfo, type ResponseView } from "@tollgate/fetch";
import {
  EXTENSIONS_HEADER,
  EXTENSIONS_HEADER_V1,
  isObject,
  isTask,
  Meta,
  paymentMandatePart,
  PaymentStatus,
  paymentStatusOf,
  readPaymentError,
  readPaymentRequired,
  readReceipts,
  textPart,
  X402_EXTENSION_URIS,
} from "./meta.ts";

export type WrapA2aClientOptions = ({ client: PaymentClient } | PaymentClientOptions) & {
  /** Extension data to add to every payment (merged under the merchant's), e.g. a `payment-identifier` id. */
  extensions?: Extensions;
  /** The extension URIs to activate with `X-A2A-Extensions` (and `A2A-Extensions`). Default: both x402 URIs. */
  activate?: readonly string[];
  /**
   * Tell the merchant `payment-rejected` on the task when this client will not pay it: the policy or
   * the `authorizer` (e.g. an AP2 mandate wallet) refused, or the requirements were malformed. Default true.
   */
  rejectOnRefusal?: boolean;
};

export interface PayingA2aClient {
  /** The wrapped A2A client (every other method is used from it directly). */
  readonly client: Client;
  readonly paymentClient: PaymentClient;
  /**
   * `client.sendMessage` with the extension activated, paying a `payment-required` task once.
   * Resolves with the agent's answer (after a payment, the final task: `getPaymentReceipt(task)`
   * says what was paid, `readReceipts(task)` is the merchant's settle history). Throws the payment
   * client's PaymentRefusedError (the policy said no; nothing signed), its authorizer's refusal
   * (e.g. @tollgate/mandates' MandateRefusedError; nothing signed), InvalidPaymentRequiredError
   * (malformed requirements; nothing signed), or PaymentFailedError when the paid task did not
   * complete: payment failed, settlement failed or pending, or the work failed (`error.response`
   * is that task; `error.charged` whether it cost money).
   */
  sendMessage(params: SendMessageRequest, options?: RequestOptions): Promise<Message | Task>;
}

const receipts = new WeakMap<object, PaymentInfo>();

/** What a wrapped client paid for `task`, or undefined when no payment was made for it. */
export function getPaymentReceipt(task: Task): PaymentInfo | undefined {
  return receipts.get(task);
}

/** The message a client agent sends a merchant on a task: payment-submitted, payment-rejected, ... */
export function paymentMessage(task: Pick<Task, "id" | "contextId">, status: string, text: string, metadata: Record<string, unknown> = {}, parts: Part[] = [textPart(text)]): Message {
  return {
    messageId: randomUUID(),
    contextId: task.contextId,
    taskId: task.id,
    role: Role.ROLE_USER,
    parts,
    metadata: { [Meta.status]: status, ...metadata },
    extensions: [],
    referenceTaskIds: [],
  };
}

export function wrapA2aClient(client: Client, options: WrapA2aClientOptions): PayingA2aClient {
  const payer = "client" in options ? options.client : createPaymentClient(options);
  const uris = [...(options.activate ?? X402_EXTENSION_URIS)];
  const rejectOnRefusal = options.rejectOnRefusal ?? true;

  const activated = (o?: RequestOptions): RequestOptions => {
    const value = uris.join(", ");
    return { ...o, serviceParameters: { ...o?.serviceParameters, [EXTENSIONS_HEADER]: value, [EXTENSIONS_HEADER_V1]: value } };
  };
  const send = (params: SendMessageRequest, o?: RequestOptions) => client.sendMessage(params, activated(o)) as Promise<Message | Task>;

  async function sendMessage(params: SendMessageRequest, requestOptions?: RequestOptions): Promise<Message | Task> {
    const first = await send(params, requestOptions);
    if (!isTask(first)) return first;
    const found = readPaymentRequired(first);
    if (!found) return first;

    // The exchange hands the payment header to `send`; the task message wants the payload object itself.
    let payment: Payment | undefined;
    let declined = false;
    const capturing: PaymentClient = {
      async pay(offer, context) {
        if (offer.x402Version !== 2) throw new InvalidPaymentRequiredError(`${Meta.required}.x402Version: this client pays x402 v2 only`, [{ field: `${Meta.required}.x402Version`, reason: "must be 2" }]);
        try {
          payment = await payer.pay(offer, context);
        } catch (e) {
          // No payment was made (the policy or the authorizer refused, e.g. an AP2 mandate wallet's
          // MandateRefusedError, or signing failed): this client will not pay the task, so say so.
          declined = true;
          throw e;
        }
        return payment;
      },
      ...(payer.policy ? { policy: payer.policy } : {}),
    };
    const resource = isObject(found.value) && isObject(found.value.resource) && typeof found.value.resource.url === "string" ? found.value.resource.url : `a2a://task/${first.id}`;
    const submit = () => {
      const payload = payment!.payload as PaymentPayload;
      const message = found.embedded
        ? paymentMessage(first, PaymentStatus.submitted, "", {}, [paymentMandatePart(payload, { paymentRequestId: `order-${first.id}` })])
        : paymentMessage(first, PaymentStatus.submitted, "Here is the payment authorization.", { [Meta.payload]: payload });
      return send({ ...params, message, metadata: undefined }, requestOptions);
    };
    try {
      const paid = await payAndRetry<Message | Task>({
        client: capturing,
        url: resource,
        ...(options.extensions ? { extensions: options.extensions } : {}),
        first: requiredView(found.value),
        view: taskView,
        send: submit,
      });
      if (paid.kind === "not-x402") return first;
      receipts.set(paid.response, paid.info);
      return paid.response;
    } catch (e) {
      if (rejectOnRefusal && !payment && (declined || e instanceof PaymentRefusedError || e instanceof InvalidPaymentRequiredError)) {
        const reason = e instanceof Error ? e.message : String(e);
        await send({ ...params, message: paymentMessage(first, PaymentStatus.rejected, `Payment rejected: ${reason}`), metadata: undefined }, requestOptions).catch(() => {});
      }
      throw e instanceof PaymentFailedError && payment ? taskFailure(e as PaymentFailedError<Message | Task>, first.id, payment) : e;
    }
  }

  return { client, paymentClient: payer, sendMessage };
}

/** The task asking for payment, as the exchange reads a 402: its PaymentRequired in PAYMENT-REQUIRED. */
function requiredView(required: unknown): ResponseView {
  const encoded = encodeBase64Json(required);
  return {
    status: 402,
    header: (name) => (name.toLowerCase() === X402Headers.v2.required.toLowerCase() ? encoded : null),
    text: async () => "",
    discard: async () => {},
  };
}

/**
 * The answer to a paid message as the exchange reads an HTTP response: a completed task is a
 * 200, a task that failed with a payment status (or asks for payment again) a 402, anything else
 * a 500 (the merchant said nothing about the money: "maybe charged" unless a receipt says
 * otherwise). The receipt is the last of `x402.payment.receipts`, when the task has a new one.
 */
function taskView(result: Message | Task): ResponseView {
  if (!isTask(result)) return { status: 200, header: () => null, text: async () => "", discard: async () => {} };
  const state = result.status?.state;
  const payment = paymentStatusOf(result);
  const history = readReceipts(result);
  const receipt = history.at(-1);
  const again = readPaymentRequired(result);
  const status =
    state === TaskState.TASK_STATE_COMPLETED
      ? 200
      : again || payment === PaymentStatus.failed || payment === PaymentStatus.rejected || payment === PaymentStatus.required
        ? 402
        : 500;
  return {
    status,
    header(name) {
      const n = name.toLowerCase();
      if (again && n === X402Headers.v2.required.toLowerCase()) return encodeBase64Json(again.value);
      if (receipt && n === X402Headers.v2.response.toLowerCase()) return encodeBase64Json(receipt);
      return null;
    },
    text: async () => (status === 200 ? "" : JSON.stringify({ error: readPaymentError(result) ?? (receipt ? undefined : "resource_failed") })),
    discard: async () => {},
  };
}

/** The exchange's failure, reworded for a task (its wording is HTTP's); every field is kept. */
function taskFailure(e: PaymentFailedError<Message | Task>, taskId: string, payment: Payment): PaymentFailedError<Message | Task> {
  const message = e.message.replace(/^payment failed: HTTP \d+, /, `paid task ${taskId} failed: `).replace(/^paid retry failed/, `paid task ${taskId} failed`);
  return new PaymentFailedError<Message | Task>(
    message,
    { reason: e.reason, ...(e.receipt ? { receipt: e.receipt } : {}), payment, charged: e.charged, ...(e.response ? { response: e.response } : {}) },
    { cause: e.cause ?? e },
  );
}
