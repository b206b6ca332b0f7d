// The agent registration file an agentURI resolves to (ERC-8004 v2.0.0, "registration-v1"), with
// a zod schema for files read from elsewhere and a framework-free handler that serves one at
// /.well-known/agent-registration.json (the spec's endpoint-domain verification file).
import { getAddress, type Address } from "viem";
import { z } from "zod/v4";
import { agentRegistryId } from "./addresses.ts";
import { firstIssue, jsonInput, type ParseFailure } from "./result.ts";

export const REGISTRATION_FILE_TYPE = "https://eips.ethereum.org/EIPS/eip-8004#registration-v1";
export const WELL_KNOWN_REGISTRATION_PATH = "/.well-known/agent-registration.json";

/** Service names the spec gives examples for; any other string is allowed too. */
export type KnownServiceName = "web" | "A2A" | "MCP" | "OASF" | "ENS" | "DID" | "email";

const nonEmpty = z.string().min(1, "must not be empty");
/** agentId as JSON carries it: an integer, or a decimal string for ids beyond 2^53. */
const agentIdSchema = z.union([z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER), z.string().regex(/^\d+$/, "must be a decimal integer")]);

const serviceSchema = z
  .object({
    name: nonEmpty,
    endpoint: nonEmpty,
    version: z.string().optional(),
    skills: z.array(z.string()).optional(),
    domains: z.array(z.string()).optional(),
  })
  .passthrough();

const registrationSchema = z.object({
  agentId: agentIdSchema,
  agentRegistry: z.string().regex(/^eip155:\d+:0x[0-9a-fA-F]{40}$/, "must be eip155:<chainId>:<identity registry address>"),
});

export const registrationFileSchema = z
  .object({
    type: z.literal(REGISTRATION_FILE_TYPE),
    name: nonEmpty,
    description: z.string(),
    image: z.string().optional(),
    services: z.array(serviceSchema),
    x402Support: z.boolean(),
    active: z.boolean(),
    registrations: z.array(registrationSchema),
    supportedTrust: z.array(z.string()).optional(),
  })
  .passthrough();

export type RegistrationService = {
  name: KnownServiceName | (string & {});
  endpoint: string;
  version?: string;
  skills?: string[];
  domains?: string[];
  [extra: string]: unknown;
};

export type AgentRegistration = { agentId: number | string; agentRegistry: string };

export type RegistrationFile = {
  type: typeof REGISTRATION_FILE_TYPE;
  name: string;
  description: string;
  image?: string;
  services: RegistrationService[];
  x402Support: boolean;
  active: boolean;
  registrations: AgentRegistration[];
  /** e.g. "reputation", "crypto-economic", "tee-attestation"; absent or empty: discovery only. */
  supportedTrust?: string[];
  [extra: string]: unknown;
};

export type BuildRegistrationFileInput = {
  name: string;
  description: string;
  image?: string;
  services: RegistrationService[];
  /** Default false. */
  x402Support?: boolean;
  /** Default true. */
  active?: boolean;
  registrations: { agentId: bigint | number; chainId: number; identityRegistry?: Address }[];
  supportedTrust?: string[];
};

/** Builds a registration file and checks it against the schema (throws naming the bad field). */
export function buildRegistrationFile(input: BuildRegistrationFileInput): RegistrationFile {
  const file: RegistrationFile = {
    type: REGISTRATION_FILE_TYPE,
    name: input.name,
    description: input.description,
    ...(input.image !== undefined ? { image: input.image } : {}),
    services: input.services.map((s) => ({ ...s })),
    x402Support: input.x402Support ?? false,
    active: input.active ?? true,
    registrations: input.registrations.map((r) => ({
      agentId: jsonAgentId(r.agentId),
      agentRegistry: agentRegistryId(r.chainId, r.identityRegistry === undefined ? undefined : getAddress(r.identityRegistry)),
    })),
    ...(input.supportedTrust !== undefined ? { supportedTrust: [...input.supportedTrust] } : {}),
  };
  const checked = parseRegistrationFile(file);
  if (!checked.ok) throw new Error(`invalid registration file: ${checked.field}: ${checked.reason}`);
  return checked.file;
}

/** Validates a registration file (an object or JSON text) read from anywhere. */
export function parseRegistrationFile(input: unknown): { ok: true; file: RegistrationFile } | ParseFailure {
  const json = jsonInput(input);
  if (!json.ok) return json;
  const parsed = registrationFileSchema.safeParse(json.value);
  if (!parsed.success) return firstIssue(parsed.error);
  return { ok: true, file: parsed.data as RegistrationFile };
}

/** The registration entries of `file` naming `agentId` in `agentRegistry` (endpoint-domain check). */
export function registrationMatches(file: RegistrationFile, agentId: bigint, agentRegistry: string): boolean {
  return file.registrations.some((r) => BigInt(r.agentId) === agentId && r.agentRegistry.toLowerCase() === agentRegistry.toLowerCase());
}

export type RegistrationFileHandlerOptions = {
  /** Default /.well-known/agent-registration.json. */
  path?: string;
  /** Cache-Control max-age in seconds; default 300. */
  maxAgeSeconds?: number;
};

/**
 * A fetch-style handler (Request -> Response) serving `file` as JSON at the well-known path:
 * 200 for GET/HEAD there, 405 for other methods there, 404 elsewhere. Mount it in any framework
 * that speaks WHATWG Request/Response (Hono, Next, Bun, Deno, node's fetch adapters).
 */
export function registrationFileHandler(file: RegistrationFile, opts: RegistrationFileHandlerOptions = {}): (request: Request) => Response {
  const checked = parseRegistrationFile(file);
  if (!checked.ok) throw new Error(`invalid registration file: ${checked.field}: ${checked.reason}`);
  const body = JSON.stringify(checked.file, null, 2);
  const path = opts.path ?? WELL_KNOWN_REGISTRATION_PATH;
  const maxAge = opts.maxAgeSeconds ?? 300;
  return (request) => {
    if (new URL(request.url).pathname !== path) return new Response("not found", { status: 404 });
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    return new Response(request.method === "HEAD" ? null : body, {
      status: 200,
      headers: {
        "content-type": "application/json; charset=utf-8",
        "cache-control": `public, max-age=${maxAge}`,
        "access-control-allow-origin": "*",
      },
    });
  };
}

function jsonAgentId(id: bigint | number): number | string {
  const big = BigInt(id);
  if (big < 0n) throw new Error(`agentId must not be negative: ${id}`);
  return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big.toString();
}
