/**
 * Paid MCP tools: `createMcpPaywall(config).tool(name, options, handler)` defines a tool that is
 * registered on any number of `McpServer`s (one per Streamable HTTP session, or one over stdio)
 * and answers every `tools/call` as x402 specs/transports-v2/mcp.md says.
 *
 * The decisions are @tollgate/server's paywall, unchanged: each paid tool is one of its routes
 * (`paywall.route`), and a call is handed to it as the HTTP request it would be, the payment
 * from `_meta["x402/payment"]` in the PAYMENT-SIGNATURE header. So route compilation, offer
 * matching, the in-flight guard (one concurrent use of an authorization), verify, the
 * payment-identifier replay cache, settling after the tool and polling a pending settlement are
 * the very code the HTTP adapters run, shared by every tool of one paywall. This file only
 * translates: `_meta` in, tool results out.
 *
 * What a payer can count on, as over HTTP:
 * - the tool never runs without a verified payment;
 * - nothing is settled when the tool threw, returned `isError`, returned output its
 *   `outputSchema` rejects, or the caller cancelled the call;
 * - the tool's output is returned only with a successful settlement; otherwise the result is
 *   the payment-required shape again (the output withheld), its settle response in `_meta`;
 * - one payment buys one result: a concurrent copy of the payment is refused, and a later one
 *   gets no second output (the facilitator hands a settlement out once; a `payment-identifier`
 *   retry gets the cached result of the first call, without running the tool again).
 */
import type { McpServer, RegisteredTool, ToolCallback } from "@modelcontextprotocol/sdk/server/mcp.js";
import {
  getParseErrorMessage,
  normalizeObjectSchema,
  safeParseAsync,
  type AnySchema,
  type SchemaOutput,
  type ShapeOutput,
  type ZodRawShapeCompat,
} from "@modelcontextprotocol/sdk/server/zod-compat.js";
import { toJsonSchemaCompat } from "@modelcontextprotocol/sdk/server/zod-json-schema-compat.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { CallToolResult, ServerNotification, ServerRequest, ToolAnnotations } from "@modelcontextprotocol/sdk/types.js";
import {
  encodeBase64Json,
  Headers as X402Headers,
  MAX_HEADER_BYTES,
  parsePaymentPayload,
  Reason,
  type McpDiscovery,
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
import { PAYMENT_META_KEY, PAYMENT_REQUIRED_MESSAGE, PAYMENT_RESPONSE_META_KEY, paymentRequiredResult, toolResourceUrl } from "./meta.ts";

/**
 * The paywall's settings (facilitator, schemes, settlement timing, replay cache, hooks), as for
 * HTTP. `maxResponseBytes` bounds a tool result's JSON held for settlement. There are no routes:
 * each tool is declared with `tool()`.
 */
export type McpPaywallConfig = Omit<PaywallConfig, "routes" | "publicUrl" | "paywallPage"> & {
  /**
   * The MCP endpoint's public URL (e.g. "https://api.example.com/mcp"), used as every tool's
   * resource URL so a catalog entry says where to call it (the bazaar key is URL + tool name).
   * Omitted: `mcp://tool/<name>`, as in the MCP transport spec's examples.
   */
  resourceUrl?: string;
};

/** RouteConfig (a union) without its HTTP `discovery`, member by member. */
type RouteConfigWithoutDiscovery = RouteConfig extends infer R ? (R extends unknown ? Omit<R, "discovery"> : never) : never;

/**
 * A tool's catalog listing (the bazaar extension): `true` declares it with the tool's own input
 * schema and description; an object adds an example call, the output, the transport.
 */
export type PaidToolDiscovery = true | Partial<Omit<McpDiscovery, "type" | "toolName">>;

/** A tool's input or output schema, as `McpServer.registerTool` takes it (a zod object or raw shape). */
export type ToolSchema = ZodRawShapeCompat | AnySchema;

/**
 * A paid tool: its price (one option inline, or several under `accepts`, as an HTTP route), the
 * route behaviour (`settle`, `maxResponseBytes`), and what `registerTool` takes. `description`
 * is both the tool's and the PaymentRequired resource's; `mimeType` is the resource's.
 */
export type PaidToolOptions<Input extends ToolSchema | undefined = undefined, Output extends ToolSchema | undefined = undefined> = RouteConfigWithoutDiscovery & {
  /** List the tool in facilitators' catalogs (see PaidToolDiscovery). */
  discovery?: PaidToolDiscovery;
  title?: string;
  inputSchema?: Input;
  outputSchema?: Output;
  annotations?: ToolAnnotations;
  _meta?: Record<string, unknown>;
};

/** What a paid tool's handler gets besides its arguments: the SDK's extra, and the verified payment. */
export type PaidToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification> & {
  /** The verified payment (payer, requirements, payload; the settlement too when the tool settles "before"). */
  payment: Payment;
};

type ToolReturn = CallToolResult | Promise<CallToolResult>;

/** The handler, shaped as the SDK's ToolCallback for the same input schema. */
export type PaidToolHandler<Input extends ToolSchema | undefined = undefined> = Input extends ZodRawShapeCompat
  ? (args: ShapeOutput<Input>, extra: PaidToolExtra) => ToolReturn
  : Input extends AnySchema
    ? (args: SchemaOutput<Input>, extra: PaidToolExtra) => ToolReturn
    : (extra: PaidToolExtra) => ToolReturn;

export interface PaidTool {
  readonly name: string;
  /** Registers the tool on `server` (`registerTool`); call it for every server that offers it. */
  register(server: McpServer): RegisteredTool;
}

export interface McpPaywall {
  /**
   * Defines a paid tool, compiled once (a price no scheme can pay, or a bad payTo, throws a
   * PaywallConfigError here). Names are 1-128 of `A-Z a-z 0-9 _ - .` (the MCP tool-name rule), so
   * `mcp://tool/<name>` is a URL as written.
   */
  tool<Input extends ToolSchema | undefined = undefined, Output extends ToolSchema | undefined = undefined>(
    name: string,
    options: PaidToolOptions<Input, Output>,
    handler: PaidToolHandler<Input>,
  ): PaidTool;
  /** The paywall's `ready()`: resolves when the facilitator can settle every option of every tool defined so far. */
  ready(): Promise<SupportReport>;
}

const TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/;
const META_FIELD = `_meta["${PAYMENT_META_KEY}"]`;
type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

export function createMcpPaywall(config: McpPaywallConfig): McpPaywall {
  // No HTML page and no public URL: the resource URL is the tool's own (resourceUrl or mcp://tool/<name>).
  const paywall = createPaywall({ ...config, routes: {}, publicUrl: undefined, paywallPage: false });
  const onError = config.onError ?? (() => {});

  function tool<Input extends ToolSchema | undefined, Output extends ToolSchema | undefined>(
    name: string,
    options: PaidToolOptions<Input, Output>,
    handler: PaidToolHandler<Input>,
  ): PaidTool {
    if (typeof name !== "string" || !TOOL_NAME.test(name)) {
      throw new PaywallConfigError(`tool name ${JSON.stringify(name)}: expected 1-128 letters, digits, '_', '-' or '.'`);
    }
    // The route compiler reads only the price, resource and route fields of the options.
    const { discovery, ...route } = options;
    const guard = paywall.route(discovery === undefined ? (route as RouteConfig) : ({ ...route, discovery: toolDiscovery(name, options) } as RouteConfig), name);
    const run = handler as (...a: unknown[]) => ToolReturn;
    const invoke = (args: unknown, extra: PaidToolExtra) => (options.inputSchema === undefined ? run(extra) : run(args, extra));
    const answer = toolAnswers(name, config.resourceUrl ?? toolResourceUrl(name), guard, options.outputSchema, invoke, onError);
    return {
      name,
      register(server) {
        const callback = options.inputSchema === undefined ? (extra: Extra) => answer(undefined, extra) : (args: unknown, extra: Extra) => answer(args, extra);
        // The SDK's generics follow the schemas' types, which only the caller knows: the config and
        // callback are typed for any schema here (the handler's own type was checked by `tool`).
        return server.registerTool<AnySchema, AnySchema>(
          name,
          {
            ...(options.title !== undefined ? { title: options.title } : {}),
            ...(options.description !== undefined ? { description: options.description } : {}),
            ...(options.inputSchema !== undefined ? { inputSchema: options.inputSchema } : {}),
            ...(options.outputSchema !== undefined ? { outputSchema: options.outputSchema } : {}),
            ...(options.annotations !== undefined ? { annotations: options.annotations } : {}),
            ...(options._meta !== undefined ? { _meta: options._meta } : {}),
          } as { inputSchema?: AnySchema; outputSchema?: AnySchema },
          callback as unknown as ToolCallback<AnySchema>,
        );
      },
    };
  }

  return { tool, ready: () => paywall.ready() };
}

type Invoke = (args: unknown, extra: PaidToolExtra) => ToolReturn;

/** The bazaar declaration of a tool: its JSON input schema as `tools/list` shows it, plus what the caller added. */
function toolDiscovery(name: string, options: PaidToolOptions<ToolSchema | undefined, ToolSchema | undefined>): McpDiscovery {
  const extra = options.discovery === true || options.discovery === undefined ? {} : options.discovery;
  const object = normalizeObjectSchema(options.inputSchema);
  const inputSchema = extra.inputSchema ?? (object ? (toJsonSchemaCompat(object, { strictUnions: true, pipeStrategy: "input" }) as Record<string, unknown>) : { type: "object", properties: {} });
  return {
    type: "mcp",
    toolName: name,
    ...(options.description !== undefined ? { description: options.description } : {}),
    ...extra,
    inputSchema,
  };
}

/** One tool's `tools/call` answer: the payment read from `_meta`, the paywall's decision, the result. */
function toolAnswers(name: string, url: string, guard: RouteGuard, outputSchema: ToolSchema | undefined, invoke: Invoke, onError: (e: unknown) => void) {
  const request = (header?: string): PaywallRequest => ({
    method: "POST",
    url,
    headers: (h) => (header !== undefined && h.toLowerCase() === X402Headers.v2.payment.toLowerCase() ? header : undefined),
  });

  /** The payment-required result with `error`: the paywall's offers for this tool, asked without a payment. */
  async function unpaid(error: string): Promise<CallToolResult> {
    const answer = await guard.handle(request());
    if (answer.kind !== "respond" || answer.status !== 402) return answer.kind === "respond" ? fromRespond(answer) : internalError();
    const required = respondPaymentRequired(answer);
    return required ? paymentRequiredResult({ ...required, error }) : internalError();
  }

  /** A paywall answer that is not "run the tool": 402, 400 (the payment unreadable), a cached result, or 500. */
  async function fromRespond(r: Respond): Promise<CallToolResult> {
    // 412 (no Permit2 allowance) is a payment-required answer too: MCP has one shape for both.
    if (isPaymentRequired(r)) {
      const required = respondPaymentRequired(r);
      const receipt = respondSettlement(r);
      return required ? paymentRequiredResult(required, receipt) : internalError();
    }
    const body = respondJson(r);
    if (r.status === 400) {
      // The field names the paywall gives are rooted at the header's payload; here it came from _meta.
      const message = typeof body?.error === "string" ? body.error.replace(/\bpaymentPayload\b/g, META_FIELD) : "the payment could not be read";
      return unpaid(`${typeof body?.reason === "string" ? body.reason : Reason.invalidPayload}: ${message}`);
    }
    if (r.status === 200 && body) {
      // A payment-identifier retry of a paid call: the result it bought, from the paywall's cache.
      const receipt = respondSettlement(r);
      return receipt ? withReceipt(body as CallToolResult, receipt) : internalError();
    }
    return errorResult(typeof body?.error === "string" ? body.error : "internal error while processing the payment", typeof body?.reason === "string" ? body.reason : Reason.unexpectedVerifyError);
  }

  async function outputProblem(result: CallToolResult): Promise<string | undefined> {
    const schema = normalizeObjectSchema(outputSchema);
    if (!schema) return undefined;
    // The SDK checks this only after the handler returned, which here is after settlement: checked first, so a rejected output is never paid for.
    if (!result.structuredContent) return `Output validation error: Tool ${name} has an output schema but no structured content was provided`;
    const parsed = await safeParseAsync(schema, result.structuredContent);
    return parsed.success ? undefined : `Output validation error: Invalid structured content for tool ${name}: ${getParseErrorMessage(parsed.error)}`;
  }

  /** The tool runs; its result is settled for (unless it failed) and returned only once settled. */
  async function runPaid(decision: PaidDecision, args: unknown, extra: Extra): Promise<CallToolResult> {
    let settleCalled = false;
    const settle = (held: HeldResponse) => {
      settleCalled = true;
      return decision.settle(held);
    };
    try {
      let result: CallToolResult;
      try {
        result = await invoke(args, { ...extra, payment: decision.payment });
      } catch (e) {
        result = toolError(e instanceof Error ? e.message : String(e));
      }
      // Settled before the tool ran (`settle: "before"`): paid whatever the tool did.
      if (decision.settled) return decision.settled.settlement ? withReceipt(result, decision.settled.settlement) : result;
      if (extra.signal.aborted) {
        await settle({ status: 200, aborted: true });
        return result;
      }
      if (result.isError) {
        await settle({ status: 500 });
        return result;
      }
      const problem = await outputProblem(result);
      if (problem) {
        await settle({ status: 500 });
        return toolError(problem);
      }
      const body = new TextEncoder().encode(JSON.stringify(result));
      const held: HeldResponse = body.byteLength > decision.maxResponseBytes ? { status: 200, tooLarge: true } : { status: 200, headers: [["content-type", "application/json"]], body };
      const outcome = await settle(held);
      if (outcome.kind === "respond") return await fromRespond(outcome);
      // Never the output without a settlement.
      return outcome.settlement ? withReceipt(result, outcome.settlement) : internalError(Reason.unexpectedSettleError);
    } finally {
      // Something above threw before settle: settle nothing, but free the authorization for a retry.
      if (!decision.settled && !settleCalled) void decision.settle({ status: 500 }).catch(onError);
    }
  }

  return async function answer(args: unknown, extra: Extra): Promise<CallToolResult> {
    try {
      const raw = extra._meta?.[PAYMENT_META_KEY];
      if (raw === undefined) return await unpaid(PAYMENT_REQUIRED_MESSAGE);
      const parsed = parsePaymentPayload(raw, META_FIELD);
      if (!parsed.ok) return await unpaid(`${Reason.invalidPayload}: ${parsed.message}`);
      const header = encodeBase64Json(parsed.value);
      if (header.length > MAX_HEADER_BYTES) return await unpaid(`${Reason.invalidPayload}: ${META_FIELD}: ${header.length} bytes encoded, over the ${MAX_HEADER_BYTES}-byte limit`);
      const decision = await guard.handle(request(header));
      if (decision.kind === "paid") return await runPaid(decision, args, extra);
      if (decision.kind === "respond") return await fromRespond(decision);
      return internalError();
    } catch (e) {
      onError(e);
      return internalError();
    }
  };
}

function withReceipt(result: CallToolResult, settlement: SettleResponse): CallToolResult {
  return { ...result, _meta: { ...result._meta, [PAYMENT_RESPONSE_META_KEY]: settlement } };
}

/** A tool failure, as the SDK reports a throwing handler. */
function toolError(message: string): CallToolResult {
  return { isError: true, content: [{ type: "text", text: message }] };
}

/** The paywall's own failures (facilitator down, internal error): reason code and a fixed text, as the HTTP 500 body. */
function errorResult(error: string, reason: string): CallToolResult {
  return { isError: true, content: [{ type: "text", text: JSON.stringify({ error, reason }) }] };
}

function internalError(reason: string = Reason.unexpectedVerifyError): CallToolResult {
  return errorResult("internal error while processing the payment", reason);
}
