/**
 * The AgentCard of a merchant agent that charges with x402: its JSON-RPC endpoint offered over
 * A2A v1.0 and v0.3 (the a2a-x402 spec's wire format), the x402 extension declared in
 * `capabilities.extensions`, and its skills. Everything else the SDK requires, filled empty.
 */
import type { AgentCard } from "@a2a-js/sdk";
import { x402AgentExtensions } from "./meta.ts";

export interface PaidAgentCardOptions {
  name: string;
  description: string;
  /** The JSON-RPC endpoint, e.g. `${baseUrl}/a2a/jsonrpc`. */
  rpcUrl: string;
  version?: string;
  skills: Array<{ id: string; name: string; description: string; tags?: string[] }>;
  inputModes?: string[];
  outputModes?: string[];
  /** Declare the extension as required (clients must activate it). Default false. */
  required?: boolean;
}

export function paidAgentCard(o: PaidAgentCardOptions): AgentCard {
  return {
    name: o.name,
    description: o.description,
    version: o.version ?? "1.0.0",
    provider: undefined,
    capabilities: { streaming: false, pushNotifications: false, extensions: x402AgentExtensions(o.required === undefined ? {} : { required: o.required }) },
    supportedInterfaces: [
      { url: o.rpcUrl, protocolBinding: "JSONRPC", protocolVersion: "1.0", tenant: "" },
      { url: o.rpcUrl, protocolBinding: "JSONRPC", protocolVersion: "0.3", tenant: "" },
    ],
    securitySchemes: {},
    securityRequirements: [],
    defaultInputModes: o.inputModes ?? ["text/plain"],
    defaultOutputModes: o.outputModes ?? ["text/plain"],
    skills: o.skills.map((s) => ({ id: s.id, name: s.name, description: s.description, tags: s.tags ?? [], examples: [], inputModes: [], outputModes: [], securityRequirements: [] })),
    signatures: [],
  };
}
