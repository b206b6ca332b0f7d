// Turning a zod failure into the `{ ok: false, field, reason }` the parse functions return.
import type { z } from "zod/v4";

export type ParseFailure = { ok: false; field: string; reason: string };

/** The first issue, with its path as "services.0.endpoint" ("(root)" for the document itself). */
export function firstIssue(error: z.ZodError): ParseFailure {
  const issue = error.issues[0];
  if (!issue) return { ok: false, field: "(root)", reason: "invalid" };
  const field = issue.path.length > 0 ? issue.path.map(String).join(".") : "(root)";
  return { ok: false, field, reason: issue.message };
}

/** Accepts an already-parsed value or JSON text. */
export function jsonInput(input: unknown): { ok: true; value: unknown } | ParseFailure {
  if (typeof input !== "string") return { ok: true, value: input };
  try {
    return { ok: true, value: JSON.parse(input) as unknown };
  } catch (error) {
    return { ok: false, field: "(root)", reason: `not JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
}

/** A JSON document as a base64 data: URI, usable on-chain as an agentURI or feedbackURI. */
export function toJsonDataUri(value: unknown): string {
  return `data:application/json;base64,${Buffer.from(JSON.stringify(value), "utf8").toString("base64")}`;
}

/** Decodes a data:application/json URI (base64 or percent-encoded); undefined for anything else. */
export function fromJsonDataUri(uri: string): string | undefined {
  const m = /^data:application\/json(?:;charset=[^;,]+)?(;base64)?,(.*)$/s.exec(uri);
  if (!m) return undefined;
  return m[1] ? Buffer.from(m[2] ?? "", "base64").toString("utf8") : decodeURIComponent(m[2] ?? "");
}
