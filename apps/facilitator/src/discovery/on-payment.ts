/**
 * The catalog's part in `/verify` and `/settle`: a payment carrying a bazaar declaration gets
 * the `EXTENSION-RESPONSES` header. `/verify` only checks the declaration (a refusal is said
 * early, nothing is written); `/settle` catalogs it once the payment succeeded — a listing costs
 * a real payment to the resource's payee, not just a signature. A catalog failure never fails
 * the payment: it is logged and reported in the header.
 */
import { EXTENSION_RESPONSES_HEADER, encodeExtensionResponses, safeMessage, type BazaarResponse, type FacilitatorRequest } from "@tollgate/core";
import type { Logger } from "../logger.ts";
import type { Catalog } from "./catalog.ts";
import { readDeclaration } from "./declaration.ts";

export async function catalogHeaders(catalog: Catalog | undefined, logger: Logger, kind: "verify" | "settle", request: FacilitatorRequest, paid: boolean): Promise<Record<string, string> | undefined> {
  if (!catalog || request.x402Version !== 2 || request.payload.extensions?.bazaar === undefined) return undefined;
  const read = readDeclaration(request);
  let bazaar: BazaarResponse | undefined;
  if (read.kind === "rejected") bazaar = { status: "rejected", rejectedReason: read.reason };
  else if (read.kind === "entry" && kind === "settle" && paid) {
    try {
      bazaar = await catalog.record(read.entry);
    } catch (e) {
      logger.error({ err: safeMessage(e), resource: read.entry.resource }, "discovery: could not store a catalog entry");
      bazaar = { status: "rejected", rejectedReason: "the catalog could not store it now; the next payment retries" };
    }
  }
  return bazaar ? { [EXTENSION_RESPONSES_HEADER]: encodeExtensionResponses({ bazaar }) } : undefined;
}
