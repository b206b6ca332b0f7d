// The `ap2-mandate` x402 extension (docs/extensions/ap2-mandate.md): how a server asks for an AP2
// mandate chain, how a client carries one in its payment payload, and the id that binds a closed
// mandate to one resource and one set of payment requirements.
import { createHash } from "node:crypto";
import { canonicalJson, type Extensions, type PaymentRequirements } from "@tollgate/core";
import type { PublicMandateJwk } from "./keys.ts";
import { OPEN_PAYMENT_MANDATE_VCT, PAYMENT_MANDATE_VCT } from "./types.ts";

export const AP2_MANDATE = "ap2-mandate";

/** What the client puts under `extensions["ap2-mandate"].info` in the payment payload. */
export interface Ap2MandatePayloadInfo {
  /** `<open SD-JWT VC>~~<closed mandate KB-JWT>`; its keccak256 is the payment's nonce. */
  chain: string;
  /** The user's public key that signed the open mandate (the verifier decides whether it trusts it). */
  issuerJwk: PublicMandateJwk;
}

/** The 402 advertisement of a route that requires a mandate. */
export function ap2MandateAdvertisement(): Extensions[string] {
  return {
    info: { required: true, version: "0.2", vct: [OPEN_PAYMENT_MANDATE_VCT, PAYMENT_MANDATE_VCT], nonceBinding: "keccak256(chain)" },
    schema: {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      type: "object",
      properties: {
        info: {
          type: "object",
          properties: {
            chain: { type: "string", pattern: "^[^~]+(~[^~]*)*~~[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$" },
            issuerJwk: { type: "object", properties: { kty: { const: "EC" }, crv: { const: "P-256" }, x: { type: "string" }, y: { type: "string" } }, required: ["kty", "crv", "x", "y"] },
          },
          required: ["chain", "issuerJwk"],
        },
      },
      required: ["info"],
    },
  };
}

/**
 * The closed mandate's `transaction_id` for one payment: `0x` + sha256 of the canonical JSON of
 * `{ resource: <resource URL>, accepted: <the PaymentRequirements paid> }`. The server computes it
 * from the resource it serves and the option it matched, so a closed mandate cannot be spent on
 * another resource, payee, amount or network.
 */
export function mandateTransactionId(resourceUrl: string, requirements: PaymentRequirements): string {
  return "0x" + createHash("sha256").update(canonicalJson({ resource: resourceUrl, accepted: requirements })).digest("hex");
}

/** Reads the chain and issuer key from a payload's extensions; undefined when absent or malformed. */
export function readAp2MandateInfo(extensions: unknown): Ap2MandatePayloadInfo | { malformed: string } | undefined {
  if (typeof extensions !== "object" || extensions === null) return undefined;
  const ext = (extensions as Record<string, unknown>)[AP2_MANDATE];
  if (ext === undefined) return undefined;
  const info = (ext as { info?: unknown } | null)?.info as Record<string, unknown> | undefined;
  if (typeof info !== "object" || info === null || info.chain === undefined) return undefined;
  if (typeof info.chain !== "string" || !info.chain.includes("~~")) return { malformed: "info.chain must be <open>~~<closed>" };
  if (typeof info.issuerJwk !== "object" || info.issuerJwk === null) return { malformed: "info.issuerJwk must be the issuer's public JWK" };
  return { chain: info.chain, issuerJwk: info.issuerJwk as PublicMandateJwk };
}

/** Splits `open~~closed` (the open SD-JWT ends in "~" separators, so the last "~~" divides them). */
export function splitChain(chain: string): { open: string; closed: string } | undefined {
  const i = chain.lastIndexOf("~~");
  if (i <= 0) return undefined;
  // The chain drops the open SD-JWT's trailing "~"; put it back so no disclosure reads as a KB-JWT.
  const open = chain.slice(0, i) + "~";
  const closed = chain.slice(i + 2);
  if (closed.split(".").length !== 3 || open.split("~")[0]!.split(".").length !== 3) return undefined;
  return { open, closed };
}
