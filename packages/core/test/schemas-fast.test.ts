// fastVerifyRequest (the hot /verify and /settle parser) and verifyRequestSchema (zod) must agree:
// every field of a valid body is mutated into every kind of value, and both must accept or both
// refuse, the fast one giving zod's value. The only disagreement allowed is the fast path
// declining something zod accepts (it then falls back to zod, so the answer is the same), and
// each such case is listed below with its reason.
import { describe, expect, it } from "vitest";
import { fastVerifyRequest, verifyRequestSchema } from "../src/schemas.ts";

const requirements = () => ({
  scheme: "exact",
  network: "eip155:84532",
  amount: "1000",
  asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
  payTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
  maxTimeoutSeconds: 60,
  extra: { name: "USDC", version: "2" },
});
const body = (): Record<string, any> => ({
  x402Version: 2,
  paymentPayload: {
    x402Version: 2,
    resource: { url: "https://api.example/x", description: "d", mimeType: "application/json" },
    accepted: requirements(),
    payload: { signature: "0x12", authorization: { from: "0x1" } },
    extensions: { foo: { bar: 1 } },
    unknownField: [1, 2],
  },
  paymentRequirements: { ...requirements(), more: true },
});

/** Every path to a value in `v` (object keys and array indices), the root excluded. */
function paths(v: unknown, prefix: string[] = []): string[][] {
  if (v === null || typeof v !== "object") return [];
  return Object.entries(v as Record<string, unknown>).flatMap(([k, child]) => [[...prefix, k], ...paths(child, [...prefix, k])]);
}

const DELETE = Symbol("delete");
/** One of each kind of JSON value, plus the boundary strings and numbers the schema checks. */
const values: Array<[string, unknown]> = [
  ["deleted", DELETE],
  ["null", null],
  ["true", true],
  ["0", 0],
  ["1", 1],
  ["2", 2],
  ["-1", -1],
  ["1.5", 1.5],
  ["1e300", 1e300],
  ["366 days + 1s", 86_400 * 366 + 1],
  ['""', ""],
  ['"x"', "x"],
  ['"0"', "0"],
  ['"2"', "2"],
  ['"-1"', "-1"],
  ['"1.5"', "1.5"],
  ['"1e3"', "1e3"],
  ["uint256 max + 1", (1n << 256n).toString()],
  ['"eip155:1"', "eip155:1"],
  ["64 chars", "s".repeat(64)],
  ["65 chars", "s".repeat(65)],
  ["256 chars", "s".repeat(256)],
  ["257 chars", "s".repeat(257)],
  ["4097 chars", "s".repeat(4097)],
  ["[]", []],
  ["[1]", [1]],
  ["{}", {}],
  ["{a:1}", { a: 1 }],
];

function mutated(path: string[], value: unknown): Record<string, any> {
  const b = body();
  let parent: any = b;
  for (const k of path.slice(0, -1)) parent = parent[k];
  const last = path[path.length - 1]!;
  if (value === DELETE) delete parent[last];
  else parent[last] = value;
  return JSON.parse(JSON.stringify(b));
}

/** zod accepts, the fast path declines on purpose (falls back to zod): the reason for each. */
const intendedDeclines: Array<[RegExp, string]> = [
  // The fast path hands the parsed body on as is; an object with an own `__proto__` or
  // `constructor` key is left to zod, whose output is a fresh object.
  [/\.(__proto__|constructor) added$|^(__proto__|constructor) added$/, "own prototype-looking keys"],
];

function agree(b: unknown, name: string) {
  const viaZod = verifyRequestSchema.safeParse(b);
  const fast = fastVerifyRequest(structuredClone(b));
  if (fast !== undefined) {
    expect(viaZod.success, `${name}: fast accepted what zod refuses`).toBe(true);
    expect(fast, name).toEqual(viaZod.data);
  } else if (viaZod.success) {
    expect(intendedDeclines.some(([re]) => re.test(name)), `${name}: zod accepts, fast declines`).toBe(true);
  }
}

describe("fastVerifyRequest agrees with verifyRequestSchema", () => {
  it("on the valid body", () => {
    expect(fastVerifyRequest(body())).toEqual(verifyRequestSchema.parse(body()));
  });

  const all = paths(body());
  it(`on every field (${all.length}) set to every kind of value (${values.length})`, () => {
    let compared = 0;
    for (const path of all) {
      for (const [label, value] of values) {
        agree(mutated(path, value), `${path.join(".")} = ${label}`);
        compared++;
      }
    }
    expect(compared).toBe(all.length * values.length);
  });

  it("on added fields, including prototype-looking keys", () => {
    for (const path of [[], ["paymentPayload"], ["paymentPayload", "payload"], ["paymentRequirements"], ["paymentRequirements", "extra"], ["paymentPayload", "resource"]]) {
      for (const key of ["extraField", "__proto__", "constructor", "toString"]) {
        const b = body();
        let target: any = b;
        for (const k of path) target = target[k];
        const text = JSON.stringify(b).replace(JSON.stringify(target), JSON.stringify(target).replace(/^\{/, `{${JSON.stringify(key)}:{"x":1},`));
        agree(JSON.parse(text), `${[...path, key].join(".")} added`);
      }
    }
  });

  it("declines non-objects", () => {
    for (const v of [null, undefined, 1, "x", [], [body()]]) expect(fastVerifyRequest(v)).toBeUndefined();
  });
});
