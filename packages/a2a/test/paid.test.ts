// Paid A2A tasks between the SDK's client and its express JSON-RPC server on a real port-0 HTTP
// server: what runs, what is settled, what is published, and how the paying client accounts for
// each outcome. Stub facilitator and scheme (packages/server/test/fixtures.ts).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { TaskState, type Task } from "@a2a-js/sdk";
import {
  ErrorCode,
  getPaymentReceipt,
  Meta,
  paymentMessage,
  PaymentFailedError,
  PaymentRefusedError,
  PaymentStatus,
  readPaymentError,
  readPaymentRequired,
  readReceipts,
  spendingPolicy,
  wrapA2aClient,
  X402_EXTENSION_URI_V01,
} from "@tollgate/a2a";
import { imageOf, NETWORK, PAYER, PENDING_SETTLE, startMerchant, stubSchemeClient, TX, userMessage, type Merchant } from "./support/merchant.ts";

let merchant: Merchant;
beforeAll(async () => {
  merchant = await startMerchant();
});
afterAll(async () => {
  await merchant?.close();
});
beforeEach(() => merchant.reset());

const policy = (maxPerRequest = "$50") => spendingPolicy({ maxPerRequest, budget: "$200", networks: [NETWORK], maxTimeoutSeconds: 600 });
async function paying(version: "0.3" | "1.0" = "0.3", maxPerRequest?: string) {
  const scheme = stubSchemeClient();
  const p = policy(maxPerRequest);
  return { agent: wrapA2aClient(await merchant.client(version), { schemes: [scheme], policy: p }), scheme, policy: p };
}
const ACTIVATE = { serviceParameters: { "X-A2A-Extensions": X402_EXTENSION_URI_V01, "A2A-Extensions": X402_EXTENSION_URI_V01 } };
const failure = (p: Promise<unknown>) => p.then(() => Promise.reject(new Error("expected a failure")), (e: unknown) => e as PaymentFailedError<Task>);

/** A task asking for payment, opened by an unwrapped client, and a payload for it signed by the stub scheme. */
async function openTask(prompt = "a cat") {
  const client = await merchant.client();
  const task = (await client.sendMessage(userMessage(prompt), ACTIVATE)) as Task;
  const required = readPaymentRequired(task)!.value as { accepts: any[]; resource: unknown };
  const accepted = required.accepts[0];
  const payload = { x402Version: 2, resource: required.resource, accepted, payload: await stubSchemeClient().createPayload(accepted, { x402Version: 2 }) };
  const submit = (p: unknown = payload) => client.sendMessage({ ...userMessage(""), message: paymentMessage(task, PaymentStatus.submitted, "Here is the payment authorization.", { [Meta.payload]: p }) }, ACTIVATE) as Promise<Task>;
  return { client, task, payload, submit };
}

describe("a paid task", () => {
  it.each(["0.3", "1.0"] as const)("is asked for, paid, verified, run, settled and delivered once (A2A %s client)", async (version) => {
    const { agent, scheme, policy: p } = await paying(version);
    const task = (await agent.sendMessage(userMessage("a cat"))) as Task;
    expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(task.status?.message?.metadata?.[Meta.status]).toBe(PaymentStatus.completed);
    expect(JSON.stringify(task.artifacts)).toContain(imageOf("a cat"));
    expect(readReceipts(task)).toEqual([{ success: true, transaction: TX, network: NETWORK, payer: PAYER }]);
    expect(getPaymentReceipt(task)?.receipt).toMatchObject({ success: true, transaction: TX });
    expect(scheme.calls).toHaveLength(1);
    expect(p.spent().usd).toBe("48.24");
    expect(merchant.counters()).toMatchObject({ runs: 1, verify: 1, settle: 1, payers: [PAYER] });
  });

  it("polls a pending settlement until it is final, then delivers", async () => {
    merchant.facilitator.settleQueue = [PENDING_SETTLE, PENDING_SETTLE];
    const { agent } = await paying();
    const task = (await agent.sendMessage(userMessage("a dog"))) as Task;
    expect(task.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(readReceipts(task).at(-1)).toMatchObject({ success: true, transaction: TX });
    expect(merchant.counters()).toMatchObject({ runs: 1, settle: 3 });
  });
});

describe("refusals and failures", () => {
  it("refuses a price over the policy before anything is signed, and tells the merchant payment-rejected", async () => {
    const { agent, scheme, policy: p } = await paying("0.3", "$1");
    const error = await failure(agent.sendMessage(userMessage("a cat")));
    expect(error).toBeInstanceOf(PaymentRefusedError);
    expect((error as unknown as Error).message).toMatch(/^max_per_request/);
    expect(scheme.calls).toHaveLength(0);
    expect(p.spent().usd).toBe("0");
    expect(merchant.counters()).toMatchObject({ runs: 0, verify: 0, settle: 0 });
  });

  it("ends a task the client rejects with payment-rejected, nothing run", async () => {
    const { client, task } = await openTask();
    const rejected = (await client.sendMessage({ ...userMessage(""), message: paymentMessage(task, PaymentStatus.rejected, "Too expensive.") }, ACTIVATE)) as Task;
    expect(rejected.status?.state).toBe(TaskState.TASK_STATE_FAILED);
    expect(rejected.status?.message?.metadata?.[Meta.status]).toBe(PaymentStatus.rejected);
    expect(merchant.counters()).toMatchObject({ runs: 0, verify: 0, settle: 0 });
  });

  it("withholds the output when settlement fails: payment-failed with SETTLEMENT_FAILED, nothing charged", async () => {
    merchant.facilitator.settleResult = { success: false, errorReason: "transaction_failed", errorMessage: "execution reverted", transaction: "", network: NETWORK, payer: PAYER };
    const { agent } = await paying();
    const error = await failure(agent.sendMessage(userMessage("a cat")));
    expect(error).toBeInstanceOf(PaymentFailedError);
    expect(error.charged).toBe(false);
    expect(error.reason).toBe("transaction_failed");
    const task = error.response as Task;
    expect(task.status?.state).toBe(TaskState.TASK_STATE_FAILED);
    expect(task.status?.message?.metadata?.[Meta.status]).toBe(PaymentStatus.failed);
    expect(readPaymentError(task)).toBe(ErrorCode.settlementFailed);
    expect(readReceipts(task)).toMatchObject([{ success: false, errorReason: "transaction_failed" }]);
    expect(JSON.stringify(task)).not.toContain(imageOf("a cat"));
    expect(merchant.counters()).toMatchObject({ runs: 1, settle: 1 });
  });

  it.each(["fail", "throw"])("settles nothing when the work fails (%s)", async (prompt) => {
    const { agent } = await paying();
    const error = await failure(agent.sendMessage(userMessage(prompt)));
    expect(error).toBeInstanceOf(PaymentFailedError);
    expect(error.charged).toBe(false);
    const task = error.response as Task;
    expect(task.status?.state).toBe(TaskState.TASK_STATE_FAILED);
    expect(readReceipts(task)).toEqual([]);
    expect(merchant.counters()).toMatchObject({ runs: 1, verify: 1, settle: 0 });
  });

  it("answers a refused verification with the extension's code (INSUFFICIENT_FUNDS) and never runs the work", async () => {
    merchant.facilitator.verifyResult = { isValid: false, invalidReason: "insufficient_funds", invalidMessage: "balance 0 < 48240000", payer: PAYER };
    const { agent } = await paying();
    const error = await failure(agent.sendMessage(userMessage("a cat")));
    expect(error.charged).toBe(false);
    expect(readPaymentError(error.response as Task)).toBe(ErrorCode.insufficientFunds);
    expect(merchant.counters()).toMatchObject({ runs: 0, verify: 1, settle: 0 });
  });
});

describe("a missing Permit2 allowance (HTTP 412 from the paywall)", () => {
  it("fails the payment with the reason (SETTLEMENT_FAILED, the extension has no own code) and never runs the work", async () => {
    merchant.facilitator.verifyResult = { isValid: false, invalidReason: "permit2_allowance_required", invalidMessage: "approve Permit2 once", payer: PAYER };
    const { agent } = await paying();
    const error = await failure(agent.sendMessage(userMessage("a cat")));
    expect(error.charged).toBe(false);
    expect(error.reason).toMatch(/^permit2_allowance_required/);
    expect(readPaymentError(error.response as Task)).toBe(ErrorCode.settlementFailed);
    expect(merchant.counters()).toMatchObject({ runs: 0, verify: 1, settle: 0 });
  });
});

describe("validating what the client sends", () => {
  it("names the field of a malformed payload", async () => {
    const { submit, payload } = await openTask();
    const task = await submit({ ...payload, accepted: { ...payload.accepted, amount: "ten" } });
    expect(task.status?.state).toBe(TaskState.TASK_STATE_FAILED);
    expect(readPaymentError(task)).toBe(ErrorCode.invalidSignature);
    expect(JSON.stringify(task.status?.message?.parts)).toContain('message.metadata[\\"x402.payment.payload\\"].accepted.amount');
    expect(merchant.counters()).toMatchObject({ runs: 0, verify: 0 });
  });

  it("refuses requirements that were not the ones sent for this task (INVALID_AMOUNT, NETWORK_MISMATCH)", async () => {
    const a = await openTask();
    const cheaper = await a.submit({ ...a.payload, accepted: { ...a.payload.accepted, amount: "1" } });
    expect(readPaymentError(cheaper)).toBe(ErrorCode.invalidAmount);
    const b = await openTask();
    const elsewhere = await b.submit({ ...b.payload, accepted: { ...b.payload.accepted, network: "eip155:1" } });
    expect(readPaymentError(elsewhere)).toBe(ErrorCode.networkMismatch);
    expect(merchant.counters()).toMatchObject({ runs: 0, verify: 0 });
  });
});

describe("one payment buys one result", () => {
  it("refuses a replayed payment on a new task (DUPLICATE_NONCE), and on the finished task, with no second output", async () => {
    const { agent } = await paying();
    const paid = (await agent.sendMessage(userMessage("a cat"))) as Task;
    const payload = getPaymentReceipt(paid)!.payload;

    const again = await openTask("a horse");
    const replay = await again.submit(payload);
    expect(replay.status?.state).toBe(TaskState.TASK_STATE_FAILED);
    expect(readPaymentError(replay)).toBe(ErrorCode.duplicateNonce);
    expect(JSON.stringify(replay)).not.toContain(imageOf("a horse"));

    // The finished task takes no further message at all (the SDK refuses a terminal task).
    const client = await merchant.client();
    await expect(client.sendMessage({ ...userMessage(""), message: paymentMessage(paid, PaymentStatus.submitted, "again", { [Meta.payload]: payload }) }, ACTIVATE)).rejects.toThrow(/terminal state/);
    expect(merchant.counters().settle).toBe(2);
  });

  it("serves concurrent copies of one payload on two tasks once", async () => {
    merchant.facilitator.settleDelayMs = 100;
    const a = await openTask("slow");
    const b = await openTask("slow");
    const results = await Promise.all([a.submit(a.payload), b.submit(a.payload)]);
    const done = results.filter((t) => t.status?.state === TaskState.TASK_STATE_COMPLETED);
    expect(done).toHaveLength(1);
    const other = results.find((t) => t !== done[0])!;
    expect(readPaymentError(other)).toBe(ErrorCode.duplicateNonce);
    expect(JSON.stringify(other)).not.toContain(imageOf("slow"));
    expect(merchant.counters()).toMatchObject({ runs: 1, settle: 1 });
  });

  it("runs the work once for concurrent copies of the payment message on one task", async () => {
    merchant.facilitator.settleDelayMs = 100;
    const a = await openTask("slow");
    const results = await Promise.allSettled([a.submit(), a.submit(), a.submit()]);
    const tasks = results.filter((r): r is PromiseFulfilledResult<Task> => r.status === "fulfilled").map((r) => r.value);
    expect(tasks.length).toBeGreaterThan(0);
    for (const t of tasks) expect(t.id).toBe(a.task.id);
    expect(merchant.counters()).toMatchObject({ runs: 1, verify: 1, settle: 1 });
    const final = await a.client.getTask({ tenant: "", id: a.task.id, historyLength: undefined });
    expect(final.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    expect(final.artifacts.filter((x) => JSON.stringify(x).includes(imageOf("slow")))).toHaveLength(1);
  });
});

