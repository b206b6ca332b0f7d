/**
 * The merchant side: `createA2aPaywall(config).executor(inner, { skills })` wraps an A2A
 * `AgentExecutor` so its paid skills answer as the a2a-x402 extension says.
 *
 * - The first message of a task for a paid skill gets the task back `input-required`, its status
 *   message carrying `x402.payment.status: "payment-required"` and the PaymentRequired in
 *   `x402.payment.required` (or, when the client activated the v0.2 URI and the executor is
 *   configured `embedded`, inside an AP2 CartMandate artifact). The requirements are remembered
 *   for the task.
 * - A `payment-submitted` message on that taskId (payload in `x402.payment.payload`, or in an AP2
 *   PaymentMandate part) must match a remembered requirement; it is then verified, the wrapped
 *   executor runs (`payment-verified`), and only when it succeeded is the payment settled. Its
 *   output (artifacts, final message) is held and published only after the settlement succeeded
 *   (`payment-completed`, state `completed`). Every other ending is state `failed`:
 *   `payment-failed` with `x402.payment.error` (the extension's code), or `payment-rejected`.
 * - `x402.payment.receipts` carries every settle response of the task, oldest first.
 *
 * The money decisions are @tollgate/server's paywall, unchanged: each paid skill is one of its
 * routes (`paywall.route`) and a payment is handed to it as the HTTP request it would be. So
 * offer matching, the in-flight guard (one concurrent use of an authorization), verify, settling
 * after the work and polling a pending settlement are the code the HTTP adapters run. This file
 * only translates: task messages in, task events out.
 */
import { randomUUID } from "node:crypto";
import { Role, TaskState, type Artifact, type Message, type Part, type Task, type TaskArtifactUpdateEvent } from "@a2a-js/sdk";
import { RequestContext, type AgentExecutionEvent, type AgentExecutor, type ExecutionEventBus } from "@a2a-js/sdk/server";
import {
  canonicalJson,
  encodeBase64Json,
  Headers as X402Headers,
  MAX_HEADER_BYTES,
  parsePaymentPayload,
  Reason,
  type PaymentPayload,
  type PaymentRequired,
  type SettleResponse,
} from "@tollgate/core";
import {
  createPaywall,
  PaywallConfigError,
  type HeldResponse,
  type PaidDecision,
  type Payment,
  type PaywallConfig,
  type PaywallRequest,
  type Respond,
  type RouteConfig,
  type RouteGuard,
  type SupportReport,
  respondJson,
  isPaymentRequired,
  respondPaymentRequired,
  respondSettlement,
} from "@tollgate/server";
import {
  cartMandateArtifact,
  errorCodeFor,
  isObject,
  Meta,
  PaymentStatus,
  readEmbeddedPayload,
  reasonCode,
  textPart,
  X402_EXTENSION_URI_V02,
  X402_EXTENSION_URIS,
} from "./meta.ts";

/**
 * The paywall's settings (facilitator, schemes, settlement timing, hooks), as for HTTP. There are
 * no routes (each paid skill is declared on its executor) and no replay cache: a task's result is
 * delivered on the task itself, so a payment-identifier retry gets no second result.
 */
export type A2aPaywallConfig = Omit<PaywallConfig, "routes" | "publicUrl" | "paywallPage" | "replayCache">;

export interface PaidExecutorOptions {
  /** The paid skills (AgentCard skill ids) and their prices, as HTTP routes are priced. */
  skills: Record<string, RouteConfig>;
  /**
   * Which skill the first message of a task asks for; `undefined` runs the wrapped executor
   * unpaid. Default: the message's `metadata.skillId` when it names a paid skill, else the only
   * paid skill (required when there are several).
   */
  skillOf?: (context: RequestContext) => string | undefined;
  /** The PaymentRequired `resource.url` of a skill. Default `a2a://skill/<id>`. */
  resourceUrl?: (skill: string) => string;
  /**
   * Answer in the v0.2 embedded form (the PaymentRequired inside an AP2 CartMandate artifact)
   * when the client activated the v0.2 URI. Default false: the standalone form for everyone.
   */
  embedded?: boolean;
  /**
   * Refuse (state `rejected`) a paid skill to a client that did not activate the extension
   * (either URI) with `X-A2A-Extensions`, as the spec's required extension. Default true.
   */
  requireActivation?: boolean;
  /** How long a task's requirements are remembered while it waits for a payment. Default: one hour. */
  requirementsTtlMs?: number;
  /** At most this many tasks waiting for a payment are remembered (the oldest are forgotten). Default 10 000. */
  maxPendingTasks?: number;
}

export interface A2aPaywall {
  /**
   * Wraps `inner`: its paid skills are compiled once here (a price no scheme can pay, or a bad
   * payTo, throws a PaywallConfigError).
   */
  executor(inner: AgentExecutor, options: PaidExecutorOptions): AgentExecutor;
  /** The paywall's `ready()`: resolves when the facilitator can settle every option of every skill defined so far. */
  ready(): Promise<SupportReport>;
}

/** The verified payment of the running paid task, for the wrapped executor (undefined for an unpaid run). */
export function getPayment(context: RequestContext): Payment | undefined {
  return payments.get(context);
}

const payments = new WeakMap<RequestContext, Payment>();
const DEFAULT_TTL_MS = 60 * 60 * 1000;
const DEFAULT_MAX_PENDING = 10_000;
const SKILL_ID = /^[A-Za-z0-9_.-]{1,128}$/;
const PAYLOAD_FIELD = `message.metadata["${Meta.payload}"]`;

export function createA2aPaywall(config: A2aPaywallConfig): A2aPaywall {
  const paywall = createPaywall({ ...config, routes: {}, publicUrl: undefined, paywallPage: false, replayCache: false });
  const onError = config.onError ?? (() => {});
  return {
    executor: (inner, options) => paidExecutor(inner, options, paywall.route.bind(paywall), onError),
    ready: () => paywall.ready(),
  };
}

/** What the merchant remembers of a paid task. */
interface TaskEntry {
  skill: string;
  guard: RouteGuard;
  url: string;
  required: PaymentRequired;
  /** The message that asked for the work: what the wrapped executor is given once paid. */
  request: RequestContext;
  receipts: SettleResponse[];
  phase: "awaiting" | "processing" | "done";
  /** Resolves when a processing task is finished. */
  done: Promise<void>;
  finish: () => void;
  expires: number;
  /** Whether the requirements ride in an AP2 CartMandate artifact (v0.2 embedded form). */
  embedded: boolean;
  description: string | undefined;
  /** The running wrapped executor's bus, so a cancel reaches it. */
  capture?: Capture;
}

interface Skill {
  guard: RouteGuard;
  url: string;
  route: RouteConfig;
}

function paidExecutor(inner: AgentExecutor, options: PaidExecutorOptions, route: (c: RouteConfig, name?: string) => RouteGuard, onError: (e: unknown) => void): AgentExecutor {
  const ids = Object.keys(options.skills ?? {});
  if (ids.length === 0) throw new PaywallConfigError("skills: expected at least one paid skill");
  if (ids.length > 1 && !options.skillOf) throw new PaywallConfigError("skillOf: required when there is more than one paid skill");
  const skills = new Map<string, Skill>();
  for (const id of ids) {
    if (!SKILL_ID.test(id)) throw new PaywallConfigError(`skills: skill id ${JSON.stringify(id)}: expected 1-128 letters, digits, '_', '-' or '.'`);
    const url = options.resourceUrl?.(id) ?? `a2a://skill/${id}`;
    skills.set(id, { guard: route(options.skills[id]!, id), url, route: options.skills[id]! });
  }
  const ttl = options.requirementsTtlMs ?? DEFAULT_TTL_MS;
  const maxPending = options.maxPendingTasks ?? DEFAULT_MAX_PENDING;
  const requireActivation = options.requireActivation ?? true;
  const tasks = new Map<string, TaskEntry>();

  const skillOf =
    options.skillOf ??
    ((ctx: RequestContext) => {
      const named = ctx.userMessage.metadata?.skillId;
      if (typeof named === "string" && skills.has(named)) return named;
      return ids[0];
    });

  function remember(taskId: string, entry: TaskEntry): void {
    const now = Date.now();
    for (const [id, e] of tasks) {
      if (tasks.size < maxPending && e.expires > now) break;
      if (e.phase !== "processing") tasks.delete(id);
    }
    tasks.set(taskId, entry);
  }

  function entryOf(taskId: string): TaskEntry | undefined {
    const entry = tasks.get(taskId);
    if (entry && entry.phase === "awaiting" && entry.expires <= Date.now()) {
      tasks.delete(taskId);
      return undefined;
    }
    return entry;
  }

  async function execute(ctx: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const activated = activate(ctx);
    const entry = entryOf(ctx.taskId);
    if (entry?.phase === "processing") {
      // A copy of a message on a task whose payment is being processed: that run's result is the task's only result.
      await entry.done;
      return;
    }
    if (entry?.phase === "done") return;
    if (entry) return continueTask(ctx, bus, entry);

    const skillId = skillOf(ctx);
    if (skillId === undefined) return inner.execute(ctx, bus);
    const skill = skills.get(skillId);
    if (!skill) throw new PaywallConfigError(`skillOf returned ${JSON.stringify(skillId)}, which is not a paid skill`);
    if (requireActivation && activated.length === 0) {
      publishStatus(ctx, bus, TaskState.TASK_STATE_REJECTED, agentMessage(ctx, [textPart(`This skill is paid: activate the x402 extension with the ${"X-A2A-Extensions"} header (${X402_EXTENSION_URIS.join(" or ")}).`)], undefined));
      return;
    }
    const required = await offersFor(skill);
    if (!required) {
      publishStatus(ctx, bus, TaskState.TASK_STATE_FAILED, agentMessage(ctx, [textPart("The payment service is unavailable; nothing was charged.")], undefined));
      return;
    }
    let finish = () => {};
    const done = new Promise<void>((resolve) => (finish = resolve));
    const embedded = options.embedded === true && activated.includes(X402_EXTENSION_URI_V02);
    const fresh: TaskEntry = {
      skill: skillId,
      guard: skill.guard,
      url: skill.url,
      required,
      request: ctx,
      receipts: [],
      phase: "awaiting",
      done,
      finish,
      expires: Date.now() + ttl,
      embedded,
      description: skill.route.description,
    };
    remember(ctx.taskId, fresh);
    askForPayment(ctx, bus, fresh);
  }

  /** The skill's PaymentRequired, asked of the paywall without a payment. */
  async function offersFor(skill: Skill): Promise<PaymentRequired | undefined> {
    const answer = await skill.guard.handle(paywallRequest(skill.url));
    if (answer.kind !== "respond" || answer.status !== 402) return undefined;
    const required = respondPaymentRequired(answer);
    return required ? { ...required, error: "Payment required to access this resource" } : undefined;
  }

  function askForPayment(ctx: RequestContext, bus: ExecutionEventBus, entry: TaskEntry): void {
    const { required, embedded, description } = entry;
    const text = `Payment is required${description ? `: ${description}` : "."}`;
    if (embedded) {
      const cart = cartMandateArtifact(required, { id: ctx.taskId, orderId: `order-${ctx.taskId}` });
      publishStatus(ctx, bus, TaskState.TASK_STATE_INPUT_REQUIRED, agentMessage(ctx, [textPart(text)], { [Meta.status]: PaymentStatus.required }), [cart]);
    } else {
      publishStatus(ctx, bus, TaskState.TASK_STATE_INPUT_REQUIRED, agentMessage(ctx, [textPart(text)], { [Meta.status]: PaymentStatus.required, [Meta.required]: required }));
    }
    // The SDK keeps the bus of an input-required task open for the next message; this request's answer ends here.
    bus.finished();
  }

  /** A later message on a task waiting for its payment. */
  async function continueTask(ctx: RequestContext, bus: ExecutionEventBus, entry: TaskEntry): Promise<void> {
    const status = ctx.userMessage.metadata?.[Meta.status];
    if (status === PaymentStatus.rejected) {
      entry.phase = "done";
      tasks.delete(ctx.taskId);
      publishStatus(ctx, bus, TaskState.TASK_STATE_FAILED, agentMessage(ctx, [textPart("Payment rejected by the client; nothing was charged.")], { [Meta.status]: PaymentStatus.rejected, ...receiptsMeta(entry) }));
      return;
    }
    const raw = payloadOf(ctx.userMessage);
    if (status !== PaymentStatus.submitted && raw === undefined) {
      // Not a payment: the task still waits for one.
      askForPayment(ctx, bus, entry);
      return;
    }
    entry.phase = "processing";
    try {
      await pay(ctx, bus, entry, raw);
    } catch (e) {
      onError(e);
      fail(ctx, bus, entry, Reason.unexpectedVerifyError, "internal error while processing the payment");
    } finally {
      entry.phase = "done";
      tasks.delete(ctx.taskId);
      entry.finish();
    }
  }

  /** The failure ending: state failed, `payment-failed`, the extension's code, and a receipt for it unless one is given. */
  function fail(ctx: RequestContext, bus: ExecutionEventBus, entry: TaskEntry, reason: string, message: string | undefined, receipt?: SettleResponse, network?: string): void {
    const code = errorCodeFor(reason);
    entry.receipts.push(
      receipt ?? {
        success: false,
        errorReason: reasonCode(reason),
        ...(message ? { errorMessage: message } : {}),
        transaction: "",
        network: (network ?? entry.required.accepts[0]?.network ?? "") as SettleResponse["network"],
      },
    );
    const text = `Payment failed (${code}): ${reasonCode(reason)}${message ? `: ${message}` : ""}`;
    publishStatus(ctx, bus, TaskState.TASK_STATE_FAILED, agentMessage(ctx, [textPart(text)], { [Meta.status]: PaymentStatus.failed, [Meta.error]: code, ...receiptsMeta(entry) }));
  }

  async function pay(ctx: RequestContext, bus: ExecutionEventBus, entry: TaskEntry, raw: { value: unknown; field: string } | undefined): Promise<void> {
    if (raw === undefined) return fail(ctx, bus, entry, Reason.invalidPayload, `${PAYLOAD_FIELD}: required with ${Meta.status} "${PaymentStatus.submitted}"`);
    const parsed = parsePaymentPayload(raw.value, raw.field);
    if (!parsed.ok) return fail(ctx, bus, entry, Reason.invalidPayload, parsed.message);
    const payload = parsed.value;
    const mismatch = unmatched(payload, entry.required);
    if (mismatch) return fail(ctx, bus, entry, mismatch.reason, mismatch.message, undefined, payload.accepted.network);
    const header = encodeBase64Json(payload);
    if (header.length > MAX_HEADER_BYTES) return fail(ctx, bus, entry, Reason.invalidPayload, `${raw.field}: ${header.length} bytes encoded, over the ${MAX_HEADER_BYTES}-byte limit`);

    const decision = await entry.guard.handle(paywallRequest(entry.url, header));
    if (decision.kind === "respond") return fromRespond(ctx, bus, entry, decision, raw.field, payload);
    if (decision.kind !== "paid") return fail(ctx, bus, entry, Reason.unexpectedVerifyError, "the paywall did not price this skill");
    return runPaid(ctx, bus, entry, decision, payload);
  }

  /** A paywall answer that is not "run the work": refused (402), unreadable (400) or its own failure (500). */
  function fromRespond(ctx: RequestContext, bus: ExecutionEventBus, entry: TaskEntry, r: Respond, field: string, payload: PaymentPayload): void {
    const network = payload.accepted.network;
    // 412 (no Permit2 allowance) fails the payment like a 402: A2A carries its reason code, not the status.
    if (isPaymentRequired(r)) {
      const required = respondPaymentRequired(r);
      const receipt = respondSettlement(r);
      const error = receipt?.errorReason ?? required?.error ?? Reason.unexpectedSettleError;
      return fail(ctx, bus, entry, error, receipt?.errorMessage ?? messageOf(error), receipt, network);
    }
    const body = respondJson(r);
    const reason = typeof body?.reason === "string" ? body.reason : r.status === 400 ? Reason.invalidPayload : Reason.unexpectedVerifyError;
    // The field names the paywall gives are rooted at the header's payload; here it came from the message.
    const message = typeof body?.error === "string" ? body.error.replace(/\bpaymentPayload\b/g, field) : "internal error while processing the payment";
    return fail(ctx, bus, entry, reason, message, undefined, network);
  }

  /** The work runs on a held bus; it is settled for unless it failed, and published only once settled. */
  async function runPaid(ctx: RequestContext, bus: ExecutionEventBus, entry: TaskEntry, decision: PaidDecision, payload: PaymentPayload): Promise<void> {
    let settleCalled = false;
    const settle = (held: HeldResponse) => {
      settleCalled = true;
      return decision.settle(held);
    };
    try {
      if (decision.settled?.settlement) entry.receipts.push(decision.settled.settlement);
      publishStatus(ctx, bus, TaskState.TASK_STATE_WORKING, agentMessage(ctx, [textPart("Payment verified.")], { [Meta.status]: decision.settled ? PaymentStatus.completed : PaymentStatus.verified, ...receiptsMeta(entry) }));

      const capture = new Capture();
      entry.capture = capture;
      const work = new RequestContext(
        { ...entry.request.request, message: { ...entry.request.userMessage, taskId: ctx.taskId, contextId: ctx.contextId } },
        ctx.taskId,
        ctx.contextId,
        ctx.context,
        ctx.task,
        ctx.referenceTasks,
      );
      payments.set(work, decision.payment);
      let thrown: unknown;
      try {
        await inner.execute(work, capture);
      } catch (e) {
        thrown = e ?? new Error("the agent failed");
      }
      const output = outputOf(capture.events, thrown);

      // Settled before the work ran (route option `settle: "before"`): paid whatever the work did.
      if (decision.settled) return publishOutput(ctx, bus, entry, output, output.ok);
      if (capture.cancelled) {
        await settle({ status: 200, aborted: true });
        return publishStatus(ctx, bus, TaskState.TASK_STATE_CANCELED, agentMessage(ctx, [textPart("Canceled; the payment was not settled.")], { [Meta.status]: PaymentStatus.verified, ...receiptsMeta(entry) }));
      }
      if (!output.ok) {
        await settle({ status: 500 });
        return publishOutput(ctx, bus, entry, output, false);
      }
      const body = new TextEncoder().encode(JSON.stringify({ artifacts: output.artifacts, reply: output.reply }));
      const held: HeldResponse = body.byteLength > decision.maxResponseBytes ? { status: 200, tooLarge: true } : { status: 200, headers: [["content-type", "application/json"]], body };
      const outcome = await settle(held);
      if (outcome.kind === "respond") return fromRespond(ctx, bus, entry, outcome, PAYLOAD_FIELD, payload);
      // Never the output without a settlement.
      if (!outcome.settlement) return fail(ctx, bus, entry, Reason.unexpectedSettleError, "no settlement was reported");
      entry.receipts.push(outcome.settlement);
      return publishOutput(ctx, bus, entry, output, true);
    } finally {
      // Something above threw before settle: settle nothing, but free the authorization for a retry.
      if (!decision.settled && !settleCalled) void decision.settle({ status: 500 }).catch(onError);
    }
  }

  function publishOutput(ctx: RequestContext, bus: ExecutionEventBus, entry: TaskEntry, output: Output, paid: boolean): void {
    if (!output.ok) {
      const parts = output.message?.parts.length ? output.message.parts : [textPart(`The agent failed${output.error ? `: ${output.error}` : ""}.`)];
      const note = textPart(paid ? "The payment was settled before the work ran." : "The payment was not settled.");
      publishStatus(ctx, bus, TaskState.TASK_STATE_FAILED, agentMessage(ctx, [...parts, note], { ...output.message?.metadata, [Meta.status]: paid ? PaymentStatus.completed : PaymentStatus.failed, ...receiptsMeta(entry) }));
      return;
    }
    for (const a of output.artifacts) bus.publish({ kind: "artifactUpdate", data: { ...a, taskId: ctx.taskId, contextId: ctx.contextId } });
    const final = output.message ?? output.reply;
    const parts = final?.parts.length ? final.parts : [textPart("Payment successful.")];
    publishStatus(ctx, bus, TaskState.TASK_STATE_COMPLETED, agentMessage(ctx, parts, { ...final?.metadata, [Meta.status]: PaymentStatus.completed, ...receiptsMeta(entry) }));
  }

  async function cancelTask(taskId: string, bus: ExecutionEventBus): Promise<void> {
    const entry = tasks.get(taskId);
    if (!entry) return inner.cancelTask(taskId, bus);
    if (entry.phase === "processing" && entry.capture) {
      entry.capture.cancelled = true;
      return inner.cancelTask(taskId, entry.capture);
    }
    if (entry.phase === "awaiting") {
      tasks.delete(taskId);
      entry.phase = "done";
      const ctx = entry.request;
      bus.publish({
        kind: "statusUpdate",
        data: { taskId, contextId: ctx.contextId, status: { state: TaskState.TASK_STATE_CANCELED, message: undefined, timestamp: new Date().toISOString() }, metadata: undefined },
      });
    }
  }

  return { execute, cancelTask };
}

// ------------------------------------------------------------------ the wrapped executor's output

/** A bus that holds what the wrapped executor publishes until the payment settled. */
class Capture implements ExecutionEventBus {
  readonly events: AgentExecutionEvent[] = [];
  cancelled = false;
  publish(event: AgentExecutionEvent): void {
    this.events.push(event);
  }
  on(): this {
    return this;
  }
  off(): this {
    return this;
  }
  once(): this {
    return this;
  }
  removeAllListeners(): this {
    return this;
  }
  finished(): void {}
}

interface Output {
  ok: boolean;
  artifacts: Omit<TaskArtifactUpdateEvent, "taskId" | "contextId">[];
  /** The last status message the executor published. */
  message: Message | undefined;
  /** A bare Message the executor answered with. */
  reply: Message | undefined;
  error?: string;
}

const SUCCESS_STATES: ReadonlySet<TaskState> = new Set([TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_WORKING, TaskState.TASK_STATE_SUBMITTED]);

/**
 * What the wrapped executor produced, and whether it succeeded: it did not throw, its last state
 * (if any) is completed (or still working), and it produced something.
 */
function outputOf(events: readonly AgentExecutionEvent[], thrown: unknown): Output {
  const artifacts: Output["artifacts"] = [];
  let state: TaskState | undefined;
  let message: Message | undefined;
  let reply: Message | undefined;
  const artifact = (a: Artifact, append = false, lastChunk = true) => artifacts.push({ artifact: a, append, lastChunk, metadata: undefined });
  for (const e of events) {
    switch (e.kind) {
      case "task":
        for (const a of e.data.artifacts ?? []) artifact(a);
        if (e.data.status) {
          state = e.data.status.state;
          if (e.data.status.message) message = e.data.status.message;
        }
        break;
      case "statusUpdate":
        if (e.data.status) {
          state = e.data.status.state;
          if (e.data.status.message) message = e.data.status.message;
        }
        break;
      case "artifactUpdate":
        if (e.data.artifact) artifacts.push({ artifact: e.data.artifact, append: e.data.append, lastChunk: e.data.lastChunk, metadata: e.data.metadata });
        break;
      case "message":
        reply = e.data;
        break;
    }
  }
  const produced = artifacts.length > 0 || reply !== undefined || message !== undefined || state === TaskState.TASK_STATE_COMPLETED;
  const ok = thrown === undefined && (state === undefined || SUCCESS_STATES.has(state)) && produced;
  const out: Output = { ok, artifacts, message, reply };
  if (thrown !== undefined) out.error = thrown instanceof Error ? thrown.message : String(thrown);
  return out;
}

// ------------------------------------------------------------------ task events

function agentMessage(ctx: RequestContext, parts: Part[], metadata: Record<string, unknown> | undefined): Message {
  return { messageId: randomUUID(), contextId: ctx.contextId, taskId: ctx.taskId, role: Role.ROLE_AGENT, parts, metadata, extensions: [], referenceTaskIds: [] };
}

const announced = new WeakSet<RequestContext>();

/** A new task (the first message) or a status update of the existing one, plus any artifacts. */
function publishStatus(ctx: RequestContext, bus: ExecutionEventBus, state: TaskState, message: Message, artifacts: Artifact[] = []): void {
  const status = { state, message, timestamp: new Date().toISOString() };
  if (!ctx.task && !announced.has(ctx)) {
    // The task is created once: later events of this run are updates of it.
    announced.add(ctx);
    const task: Task = { id: ctx.taskId, contextId: ctx.contextId, status, artifacts, history: [], metadata: undefined };
    bus.publish({ kind: "task", data: task });
    return;
  }
  for (const artifact of artifacts) bus.publish({ kind: "artifactUpdate", data: { taskId: ctx.taskId, contextId: ctx.contextId, artifact, append: false, lastChunk: true, metadata: undefined } });
  bus.publish({ kind: "statusUpdate", data: { taskId: ctx.taskId, contextId: ctx.contextId, status, metadata: undefined } });
}

function receiptsMeta(entry: TaskEntry): Record<string, unknown> {
  return { [Meta.receipts]: [...entry.receipts] };
}

/** Activates (and so echoes) each x402 URI the client asked for; returns them. */
function activate(ctx: RequestContext): string[] {
  const requested = ctx.context.requestedExtensions ?? [];
  const activated = X402_EXTENSION_URIS.filter((uri) => requested.includes(uri));
  for (const uri of activated) ctx.context.addActivatedExtension(uri);
  return activated;
}

/** The submitted payload: `x402.payment.payload` (standalone) or an AP2 PaymentMandate part (embedded). */
function payloadOf(message: Message): { value: unknown; field: string } | undefined {
  const metadata = message.metadata;
  if (isObject(metadata) && Meta.payload in metadata) return { value: metadata[Meta.payload], field: PAYLOAD_FIELD };
  return readEmbeddedPayload(message);
}

/** The payload's `accepted` must be one of the requirements remembered for the task, exactly. */
function unmatched(payload: PaymentPayload, required: PaymentRequired): { reason: string; message: string } | undefined {
  const accepted = canonicalJson(payload.accepted);
  if (required.accepts.some((r) => canonicalJson(r) === accepted)) return undefined;
  const sameNetwork = required.accepts.some((r) => r.network === payload.accepted.network && r.scheme === payload.accepted.scheme);
  return sameNetwork
    ? { reason: Reason.requirementsMismatch, message: `${PAYLOAD_FIELD}.accepted: not one of the requirements sent for this task` }
    : { reason: Reason.invalidNetwork, message: `${PAYLOAD_FIELD}.accepted.network: ${payload.accepted.scheme} on ${payload.accepted.network} was not offered for this task` };
}

function paywallRequest(url: string, header?: string): PaywallRequest {
  return { method: "POST", url, headers: (h) => (header !== undefined && h.toLowerCase() === X402Headers.v2.payment.toLowerCase() ? header : undefined) };
}

function messageOf(error: string): string | undefined {
  const i = error.indexOf(":");
  return i < 0 ? undefined : error.slice(i + 1).trim() || undefined;
}

