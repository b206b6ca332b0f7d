// The discovery catalog at the facilitator's edge: what it accepts from a payment's bazaar
// declaration, what it refuses and says so (EXTENSION-RESPONSES), what it never evaluates, its
// bounds, and its list/search answers. Stub scheme (signed payloads, no chain); the store is real
// (PGlite, and PostgreSQL for the multi-instance case).
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileDiscovery, decodeExtensionResponses, EXTENSION_RESPONSES_HEADER, type PaymentPayload } from "@tollgate/core";
import { createFacilitatorApp } from "../src/app.ts";
import { createCatalog } from "../src/discovery/catalog.ts";
import { readDeclaration } from "../src/discovery/declaration.ts";
import { checkAgainstSchema } from "../src/discovery/schema-check.ts";
import { createLedger, type Ledger } from "../src/ledger/ledger.ts";
import { body, post, stubFacilitator } from "./helpers.ts";

const weatherDeclaration = compileDiscovery({ queryParams: { city: "Lisbon" }, queryParamsSchema: { properties: { city: { type: "string" } }, required: ["city"] } });

function withBazaar(bazaar: unknown, resource: PaymentPayload["resource"] = { url: "https://api.example.com/weather?city=Porto#x", description: "Weather now", serviceName: "Weather", tags: ["weather"] }) {
  const b = body();
  b.paymentPayload.resource = resource;
  b.paymentPayload.extensions = { bazaar };
  return b;
}

async function bazaarHeader(res: Response) {
  return decodeExtensionResponses(res.headers.get(EXTENSION_RESPONSES_HEADER))?.bazaar;
}

let ledger: Ledger;
beforeAll(async () => {
  ledger = await createLedger();
});
afterAll(async () => {
  await ledger?.close();
});

describe("what the catalog reads from a payment", () => {
  it("keys an HTTP entry on the canonical URL (no query, no fragment) and method; a valid routeTemplate replaces the path", () => {
    const read = readDeclaration({ x402Version: 2, payload: withBazaar(weatherDeclaration({ method: "GET" })).paymentPayload, requirements: body().paymentRequirements });
    expect(read.kind).toBe("entry");
    if (read.kind !== "entry") return;
    expect(read.entry.key).toBe("http|https://api.example.com/weather|GET");
    expect(read.entry).toMatchObject({ resource: "https://api.example.com/weather", serviceName: "Weather", tags: ["weather"], description: "Weather now" });

    const dynamic = compileDiscovery({ routeTemplate: "/users/[userId]" })({ method: "GET", path: "/users/42" });
    expect(dynamic.routeTemplate).toBe("/users/:userId");
    expect(dynamic.info.input.pathParams).toEqual({ userId: "42" });
    const read2 = readDeclaration({ x402Version: 2, payload: withBazaar(dynamic, { url: "https://api.example.com/users/42" }).paymentPayload, requirements: body().paymentRequirements });
    expect(read2.kind === "entry" && read2.entry.resource).toBe("https://api.example.com/users/:userId");

    // A poisoned template is ignored: the concrete path is cataloged.
    for (const routeTemplate of ["/users/../admin", "/a/%2e%2e/b", "/a/%252e%252e/b", "http://evil.example/x", "relative"]) {
      const read3 = readDeclaration({ x402Version: 2, payload: withBazaar({ ...dynamic, routeTemplate }, { url: "https://api.example.com/users/42" }).paymentPayload, requirements: body().paymentRequirements });
      expect(read3.kind === "entry" && read3.entry.resource, routeTemplate).toBe("https://api.example.com/users/42");
    }
  });

  it("refuses with a reason naming the field: wrong shapes, info not matching its schema, hostile schemas", () => {
    const good = weatherDeclaration({ method: "GET" });
    const cases: Array<[unknown, string]> = [
      ["nope", "extensions.bazaar:"],
      [{ ...good, info: undefined }, "extensions.bazaar.info:"],
      [{ ...good, info: { input: { type: "ftp" } } }, "extensions.bazaar.info.input.type:"],
      [{ ...good, info: { input: { type: "http", method: "TRACE" } } }, "extensions.bazaar.info.input.method:"],
      [{ ...good, info: { input: { type: "http", method: "POST", body: {} } } }, "extensions.bazaar.info.input.bodyType:"],
      [{ ...good, info: { input: { type: "mcp", toolName: "bad name!", inputSchema: {} } } }, "extensions.bazaar.info.input.toolName:"],
      [{ ...good, info: { input: { type: "http", method: "GET", queryParams: { town: "x" } } } }, "extensions.bazaar.info.input"],
      [{ ...good, schema: { ...good.schema, properties: { input: { type: "object", properties: { method: { type: "string", pattern: "^(a+)+$" } } } } } }, "extensions.bazaar.schema.properties.input.properties.method.pattern:"],
      [{ ...good, schema: { $ref: "https://evil.example/schema.json" } }, "extensions.bazaar.schema.$ref:"],
    ];
    for (const [bazaar, prefix] of cases) {
      const read = readDeclaration({ x402Version: 2, payload: withBazaar(bazaar).paymentPayload, requirements: body().paymentRequirements });
      expect(read.kind, JSON.stringify(bazaar).slice(0, 120)).toBe("rejected");
      if (read.kind === "rejected") expect(read.reason.startsWith(prefix), read.reason).toBe(true);
    }
    // A property NAMED pattern is fine; only the keyword is refused.
    expect(checkAgainstSchema({ pattern: "x" }, { type: "object", properties: { pattern: { type: "string" } } })).toEqual({ ok: true });
    // Deep nesting is refused before evaluation.
    let deep: unknown = {};
    for (let i = 0; i < 100; i++) deep = { a: deep };
    expect(checkAgainstSchema(deep, {}).ok).toBe(false);
  });

  it("needs a URL it can catalog", () => {
    for (const url of ["", "not a url", "ftp://x.example/a", "https://user:pw@api.example.com/a"]) {
      const read = readDeclaration({ x402Version: 2, payload: withBazaar(weatherDeclaration({ method: "GET" }), { url }).paymentPayload, requirements: body().paymentRequirements });
      expect(read.kind === "rejected" && read.reason.startsWith("resource.url:"), url).toBe(true);
    }
  });
});

describe("the catalog over /verify and /settle", () => {
  it("verify says a refusal early and writes nothing; settle catalogs only a successful payment", async () => {
    const { facilitator, scheme } = stubFacilitator();
    const app = createFacilitatorApp({ facilitator, ledger });
    const bad = withBazaar({ ...weatherDeclaration({ method: "GET" }), info: { input: { type: "http", method: "GET", queryParams: { town: "x" } } } });
    const verified = await app.request(post("/verify", bad));
    expect(((await verified.json()) as { isValid: boolean }).isValid).toBe(true); // the payment itself is fine
    expect(await bazaarHeader(verified)).toMatchObject({ status: "rejected" });

    const good = withBazaar(weatherDeclaration({ method: "GET" }), { url: "https://verify-only.example.com/w" });
    const v = await app.request(post("/verify", good));
    expect(v.headers.get(EXTENSION_RESPONSES_HEADER)).toBeNull();
    expect((await createCatalog(ledger).list({}, 100, 0)).items.map((i) => i.resource)).not.toContain("https://verify-only.example.com/w");

    scheme.failWith = "insufficient_funds";
    const failed = await app.request(post("/settle", withBazaar(weatherDeclaration({ method: "GET" }), { url: "https://unpaid.example.com/w" })));
    expect(((await failed.json()) as { success: boolean }).success).toBe(false);
    expect(failed.headers.get(EXTENSION_RESPONSES_HEADER)).toBeNull();
    scheme.failWith = undefined;

    const paid = await app.request(post("/settle", withBazaar(weatherDeclaration({ method: "GET" }), { url: "https://paid.example.com/w" })));
    expect(((await paid.json()) as { success: boolean }).success).toBe(true);
    expect(await bazaarHeader(paid)).toEqual({ status: "success" });
    const resources = (await createCatalog(ledger).list({}, 100, 0)).items.map((i) => i.resource);
    expect(resources).toContain("https://paid.example.com/w");
    expect(resources).not.toContain("https://unpaid.example.com/w");

    const supported = (await (await app.request("/supported")).json()) as { extensions: string[] };
    expect(supported.extensions).toEqual(expect.arrayContaining(["payment-identifier", "bazaar"]));
  });

  it("is bounded: a full catalog refuses new entries (and says so), known ones still refresh", async () => {
    const own = await createLedger({ sql: ledger.sql, schema: "discovery_full" });
    try {
      const { facilitator } = stubFacilitator();
      const app = createFacilitatorApp({ facilitator, ledger: own, discovery: { maxEntries: 2, refreshMs: 0 } });
      const settle = (url: string) => app.request(post("/settle", withBazaar(weatherDeclaration({ method: "GET" }), { url })));
      expect(await bazaarHeader(await settle("https://a.example.com/1"))).toEqual({ status: "success" });
      expect(await bazaarHeader(await settle("https://a.example.com/2"))).toEqual({ status: "success" });
      const third = await bazaarHeader(await settle("https://a.example.com/3"));
      expect(third?.status).toBe("rejected");
      expect(third?.rejectedReason).toMatch(/full/);
      expect(await bazaarHeader(await settle("https://a.example.com/1"))).toEqual({ status: "success" });
      expect((await createCatalog(own).list({}, 100, 0)).total).toBe(2);
      const off = createFacilitatorApp({ facilitator, ledger: own, discovery: false });
      expect((await off.request("/discovery/resources")).status).toBe(404);
      expect((await settle("https://a.example.com/1")).ok).toBe(true);
    } finally {
      await own.close();
    }
  });

  it("merges the ways a resource was paid, one per (scheme, network, asset, payee)", async () => {
    const own = await createLedger({ sql: ledger.sql, schema: "discovery_merge" });
    try {
      const catalog = createCatalog(own, { refreshMs: 0 });
      const read = readDeclaration({ x402Version: 2, payload: withBazaar(weatherDeclaration({ method: "GET" })).paymentPayload, requirements: body().paymentRequirements });
      if (read.kind !== "entry") throw new Error("expected an entry");
      await catalog.record(read.entry);
      await catalog.record({ ...read.entry, accepted: { ...read.entry.accepted, amount: "20000" } });
      await catalog.record({ ...read.entry, accepted: { ...read.entry.accepted, network: "eip155:8453" } });
      const [item] = (await catalog.list({}, 10, 0)).items;
      expect(item!.accepts.map((a) => [a.network, a.amount])).toEqual([
        ["eip155:8453", "10000"],
        ["eip155:84532", "20000"],
      ]);
      expect((await catalog.list({ network: "eip155:8453" }, 10, 0)).total).toBe(1);
      expect((await catalog.list({ scheme: "upto" }, 10, 0)).total).toBe(0);
    } finally {
      await own.close();
    }
  });
});

describe("the catalog shared by several facilitators (PostgreSQL)", () => {
  const url = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const schema = `discovery_${process.pid}`;
  let a: Ledger | undefined;
  let b: Ledger | undefined;

  afterAll(async () => {
    await a?.close();
    await b?.close();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  });

  it("concurrent writers of one entry from two instances keep every way to pay", async () => {
    a = await createLedger({ databaseUrl: url, schema });
    b = await createLedger({ databaseUrl: url, schema });
    const read = readDeclaration({ x402Version: 2, payload: withBazaar(weatherDeclaration({ method: "GET" })).paymentPayload, requirements: body().paymentRequirements });
    if (read.kind !== "entry") throw new Error("expected an entry");
    const networks = ["eip155:1", "eip155:10", "eip155:137", "eip155:8453", "eip155:42161", "eip155:84532"];
    await Promise.all(networks.map((network, i) => createCatalog(i % 2 ? a! : b!, { refreshMs: 0 }).record({ ...read.entry, accepted: { ...read.entry.accepted, network: network as `eip155:${string}` } })));
    const [item] = (await createCatalog(a).list({}, 10, 0)).items;
    expect(item!.accepts.map((x) => x.network).sort()).toEqual([...networks].sort());
  });
});
