/**
 * "Facilitators must validate `info` against `schema` before cataloging" (bazaar.md). Both come
 * from strangers (a client echoes what a server declared), so the schema is treated as hostile
 * input, not as code:
 *
 * - @cfworker/json-schema interprets the schema; it generates no code from it (ajv compiles
 *   schemas to JavaScript, the wrong tool for untrusted schemas), and it speaks draft 2020-12.
 * - Bounded before any work: size, nesting depth, and no `$ref`/`$id` leaving the document.
 * - No `pattern`/`patternProperties`: a regular expression from a stranger can take exponential
 *   time on a crafted string, and this runs on the settlement path.
 */
import { Validator } from "@cfworker/json-schema";

const MAX_SCHEMA_CHARS = 32 * 1024;
const MAX_DEPTH = 32;
const REFUSED_KEYWORDS = new Set(["pattern", "patternProperties", "$dynamicRef", "$recursiveRef"]);

export type SchemaCheck = { ok: true } | { ok: false; reason: string };

export function checkAgainstSchema(info: unknown, schema: unknown): SchemaCheck {
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) return { ok: false, reason: "schema: expected a JSON Schema object" };
  let size: number;
  try {
    size = JSON.stringify(schema).length;
  } catch {
    return { ok: false, reason: "schema: not serializable JSON" };
  }
  if (size > MAX_SCHEMA_CHARS) return { ok: false, reason: `schema: ${size} characters, over the ${MAX_SCHEMA_CHARS} this catalog accepts` };
  const shape = refusedShape(schema, "schema", 0);
  if (shape) return { ok: false, reason: shape };
  if (depthOver(info, 0)) return { ok: false, reason: `info: nested deeper than ${MAX_DEPTH} levels` };
  try {
    const result = new Validator(schema as Record<string, unknown>, "2020-12", true).validate(info);
    if (result.valid) return { ok: true };
    // The deepest error says what is wrong; the outer ones only that something below failed.
    const error = result.errors[result.errors.length - 1] ?? result.errors[0];
    const at = error?.instanceLocation && error.instanceLocation !== "#" ? `info${error.instanceLocation.slice(1).replace(/\//g, ".")}` : "info";
    return { ok: false, reason: `${at}: does not match the declared schema (${error?.keyword ?? "?"}${error?.error ? `: ${error.error.slice(0, 200)}` : ""})` };
  } catch (e) {
    return { ok: false, reason: `schema: could not be evaluated (${e instanceof Error ? e.message.slice(0, 200) : "error"})` };
  }
}

/** Keywords whose values are data (examples, constants), never evaluated as schemas. */
const DATA_KEYWORDS = new Set(["const", "enum", "default", "examples"]);
/** Keywords whose members are names (of properties, definitions), not keywords. */
const NAME_MAPS = new Set(["properties", "$defs", "definitions", "dependentSchemas", "dependentRequired"]);

function refusedShape(node: unknown, path: string, depth: number, names = false): string | undefined {
  if (depth > MAX_DEPTH) return `${path}: nested deeper than ${MAX_DEPTH} levels`;
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) {
      const found = refusedShape(node[i], `${path}[${i}]`, depth + 1);
      if (found) return found;
    }
    return undefined;
  }
  if (typeof node !== "object" || node === null) return undefined;
  for (const [key, value] of Object.entries(node)) {
    if (!names) {
      if (DATA_KEYWORDS.has(key)) continue;
      if (REFUSED_KEYWORDS.has(key)) return `${path}.${key}: not accepted by this catalog (regular expressions and dynamic references from strangers are not evaluated)`;
      if ((key === "$ref" || key === "$id") && (typeof value !== "string" || !value.startsWith("#"))) return `${path}.${key}: only references inside the schema ("#...") are accepted`;
    }
    const found = refusedShape(value, `${path}.${key}`, depth + 1, !names && NAME_MAPS.has(key));
    if (found) return found;
  }
  return undefined;
}

function depthOver(node: unknown, depth: number): boolean {
  if (depth > MAX_DEPTH) return true;
  if (typeof node !== "object" || node === null) return false;
  for (const value of Array.isArray(node) ? node : Object.values(node)) if (depthOver(value, depth + 1)) return true;
  return false;
}
