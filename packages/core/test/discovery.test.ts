// The bazaar extension's pieces that know no network: declarations (checked against the spec
// document's examples field for field), route templates, catalog metadata, EXTENSION-RESPONSES,
// and the discovery client's reading of a catalog's answers.
import { describe, expect, it } from "vitest";
import {
  bazaarResponseOf,
  compileDiscovery,
  decodeExtensionResponses,
  discover,
  DiscoveryDeclarationError,
  DiscoveryError,
  encodeExtensionResponses,
  isValidIconUrl,
  isValidRouteTemplate,
  listResources,
  matchRouteTemplate,
  sanitizeServiceMetadata,
  sanitizeTags,
  searchResources,
  toRouteTemplate,
} from "../src/index.ts";

describe("declarations", () => {
  it("a GET route declares what bazaar.md's GET example shows", () => {
    const ext = compileDiscovery({
      queryParams: { city: "San Francisco" },
      queryParamsSchema: { properties: { city: { type: "string" } }, required: ["city"] },
      output: { example: { city: "San Francisco", weather: "foggy", temperature: 60 } },
    })({ method: "get" });
    expect(ext.info).toEqual({
      input: { type: "http", method: "GET", queryParams: { city: "San Francisco" } },
      output: { type: "json", example: { city: "San Francisco", weather: "foggy", temperature: 60 } },
    });
    const input = (ext.schema.properties as Record<string, Record<string, unknown>>).input!;
    expect(ext.schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(ext.schema.required).toEqual(["input"]);
    expect(input.required).toEqual(["type", "method"]);
    expect(input.additionalProperties).toBe(false);
    expect((input.properties as Record<string, unknown>).method).toEqual({ type: "string", enum: ["GET", "HEAD", "DELETE"] });
    expect((input.properties as Record<string, unknown>).queryParams).toEqual({ type: "object", properties: { city: { type: "string" } }, required: ["city"] });
    expect(ext.routeTemplate).toBeUndefined();
  });

  it("a POST route declares bodyType and body, required, as the POST example", () => {
    const ext = compileDiscovery({ body: { query: "example" }, output: { example: { results: [] } } })({ method: "POST" });
    expect(ext.info.input).toEqual({ type: "http", method: "POST", bodyType: "json", body: { query: "example" } });
    const input = (ext.schema.properties as Record<string, Record<string, unknown>>).input!;
    expect(input.required).toEqual(["type", "method", "bodyType", "body"]);
    expect((input.properties as Record<string, unknown>).bodyType).toEqual({ type: "string", enum: ["json", "form-data", "text"] });
  });

  it("an MCP tool declares what the MCP example shows", () => {
    const inputSchema = { type: "object", properties: { ticker: { type: "string" }, analysis_type: { type: "string", enum: ["quick", "deep"] } }, required: ["ticker"] };
    const ext = compileDiscovery({
      type: "mcp",
      toolName: "financial_analysis",
      description: "Advanced AI-powered financial analysis",
      inputSchema,
      example: { ticker: "AAPL", analysis_type: "deep" },
      output: { example: { summary: "Strong fundamentals...", score: 8.5 } },
    })();
    expect(ext.info).toEqual({
      input: { type: "mcp", toolName: "financial_analysis", description: "Advanced AI-powered financial analysis", inputSchema, example: { ticker: "AAPL", analysis_type: "deep" } },
      output: { type: "json", example: { summary: "Strong fundamentals...", score: 8.5 } },
    });
    const input = (ext.schema.properties as Record<string, Record<string, unknown>>).input!;
    expect(input.required).toEqual(["type", "toolName", "inputSchema"]);
    expect((input.properties as Record<string, unknown>).transport).toEqual({ type: "string", enum: ["streamable-http", "sse"] });
  });

  it("a parameterized route carries routeTemplate and this request's pathParams", () => {
    const build = compileDiscovery({ routeTemplate: "/weather/[country]/:city" });
    const ext = build({ method: "GET", path: "/weather/pt/Lisboa%20Norte" });
    expect(ext.routeTemplate).toBe("/weather/:country/:city");
    expect(ext.info.input.pathParams).toEqual({ country: "pt", city: "Lisboa Norte" });
    expect(build({ method: "GET", path: "/other" }).info.input.pathParams).toBeUndefined();
  });

  it("refuses a declaration it cannot send, naming the field", () => {
    expect(() => compileDiscovery({ method: "TRACE" as "GET" })).toThrow(/discovery\.method/);
    expect(() => compileDiscovery({ bodyType: "xml" as "json" })).toThrow(/discovery\.bodyType/);
    expect(() => compileDiscovery({ routeTemplate: "/a/../b" })).toThrow(/discovery\.routeTemplate/);
    expect(() => compileDiscovery({ type: "mcp", toolName: "", inputSchema: {} })).toThrow(DiscoveryDeclarationError);
    expect(() => compileDiscovery({ type: "mcp", toolName: "t", inputSchema: [] as unknown as Record<string, unknown> })).toThrow(/inputSchema/);
  });
});

describe("route templates (the spec's rules)", () => {
  it.each([
    ["/users/:userId", true],
    ["/weather/:country/:city", true],
    ["/api/v1/items", true],
    ["", false],
    ["users/:id", false],
    ["/users/../admin", false],
    ["/a/%2e%2e/b", false],
    ["/a/%252e%252e/b", false],
    ["/x/http://evil", false],
    ["/a b", false],
    ["/a/%zz", false],
  ])("%s -> %s", (value, ok) => {
    expect(isValidRouteTemplate(value)).toBe(ok);
  });

  it("converts [param] and matches concrete paths", () => {
    expect(toRouteTemplate("/users/[userId]/posts/[postId]")).toBe("/users/:userId/posts/:postId");
    expect(matchRouteTemplate("/users/:id", "/users/7")).toEqual({ id: "7" });
    expect(matchRouteTemplate("/users/:id", "/users/7/x")).toBeUndefined();
    expect(matchRouteTemplate("/a.b/:id", "/aXb/1")).toBeUndefined();
  });
});

describe("catalog metadata", () => {
  it("keeps what a catalog may show, drops the rest", () => {
    expect(sanitizeServiceMetadata({ serviceName: "Weather", tags: ["a", "A", "b", "", "x".repeat(33), 7, "c", "d", "e", "f"], iconUrl: "https://cdn.example.com/i.png" })).toEqual({
      serviceName: "Weather",
      tags: ["a", "b", "c", "d", "e"],
      iconUrl: "https://cdn.example.com/i.png",
    });
    expect(sanitizeServiceMetadata({ serviceName: "x".repeat(33) })).toEqual({});
    expect(sanitizeServiceMetadata({ serviceName: "tab\tname" })).toEqual({});
    expect(sanitizeTags("weather")).toBeUndefined();
    for (const bad of ["ftp://x.example/i.png", "https://user:pw@x.example/i", "http://127.0.0.1/i", "http://localhost/i", "http://[::1]/i", "http://0x7f000001/i", "http://2130706433/i", "javascript:alert(1)"]) {
      expect(isValidIconUrl(bad), bad).toBe(false);
    }
  });
});

describe("EXTENSION-RESPONSES", () => {
  it("round-trips the spec's examples and never throws on garbage", () => {
    expect(encodeExtensionResponses({ bazaar: { status: "success" } })).toBe("eyJiYXphYXIiOnsic3RhdHVzIjoic3VjY2VzcyJ9fQ==");
    const rejected = "eyJiYXphYXIiOnsic3RhdHVzIjoicmVqZWN0ZWQiLCJyZWplY3RlZFJlYXNvbiI6ImluZm8gZmFpbGVkIHNjaGVtYSB2YWxpZGF0aW9uIn19";
    expect(bazaarResponseOf(decodeExtensionResponses(rejected))).toEqual({ status: "rejected", rejectedReason: "info failed schema validation" });
    for (const garbage of [undefined, "", "!!!", Buffer.from("[1]").toString("base64"), Buffer.from('{"bazaar":{"status":"maybe"}}').toString("base64")]) {
      expect(bazaarResponseOf(decodeExtensionResponses(garbage))).toBeUndefined();
    }
  });
});

describe("the discovery client", () => {
  const item = (n: number) => ({ resource: `https://api.example.com/r${n}`, type: "http", x402Version: 2, accepts: [], lastUpdated: "2026-11-30T00:00:00Z" });
  function fakeCatalog(total: number, seen: string[]): typeof fetch {
    return (async (input: string | URL | Request) => {
      const url = new URL(String(input));
      seen.push(url.pathname + url.search);
      const limit = Number(url.searchParams.get("limit") ?? 20);
      if (url.pathname.endsWith("/search")) {
        const offset = Number(url.searchParams.get("cursor") ?? 0);
        const items = Array.from({ length: Math.max(0, Math.min(limit, total - offset)) }, (_, i) => item(offset + i));
        return Response.json({ x402Version: 2, resources: items, pagination: { limit, cursor: offset + items.length < total ? String(offset + items.length) : null } });
      }
      const offset = Number(url.searchParams.get("offset") ?? 0);
      const items = Array.from({ length: Math.max(0, Math.min(limit, total - offset)) }, (_, i) => item(offset + i));
      return Response.json({ x402Version: 2, items, pagination: { limit, offset, total } });
    }) as typeof fetch;
  }

  it("walks list pages and search cursors up to max, with the filters on the wire", async () => {
    const seen: string[] = [];
    const all = await discover("https://f.example.com/", { network: "eip155:8453", max: 150 }, { fetch: fakeCatalog(230, seen) });
    expect(all).toHaveLength(150);
    expect(all[0]!.lastUpdated).toBe(Date.parse("2026-11-30T00:00:00Z") / 1000);
    expect(seen[0]).toBe("/discovery/resources?network=eip155%3A8453&limit=100&offset=0");
    const found = await discover("https://f.example.com", { query: "weather", max: 250 }, { fetch: fakeCatalog(230, seen) });
    expect(found).toHaveLength(230);
    expect(seen.filter((s) => s.startsWith("/discovery/search"))).toHaveLength(3);
  });

  it("says what is wrong with a bad answer", async () => {
    const answer = (body: unknown, status = 200) => (async () => new Response(typeof body === "string" ? body : JSON.stringify(body), { status })) as unknown as typeof fetch;
    await expect(listResources("https://f.example.com", {}, { fetch: answer("<html>") })).rejects.toThrow(/not JSON/);
    await expect(listResources("https://f.example.com", {}, { fetch: answer({ error: "limit: bad" }, 400) })).rejects.toThrow(/HTTP 400: limit: bad/);
    await expect(listResources("https://f.example.com", {}, { fetch: answer({ x402Version: 2, items: [{ resource: 1 }], pagination: { limit: 1, offset: 0, total: 1 } }) })).rejects.toThrow(DiscoveryError);
    await expect(searchResources("ftp://f.example.com", { query: "x" })).rejects.toThrow(TypeError);
  });
});
