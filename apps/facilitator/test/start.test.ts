import { describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { startFacilitator } from "../src/start.ts";
import { body, stubScheme } from "./helpers.ts";

const KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

describe("startFacilitator", () => {
  it("serves over HTTP and drains an in-flight settlement on close", async () => {
    const lines: string[] = [];
    const logDestination = new Writable({
      write(chunk, _e, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const scheme = stubScheme(400);
    const running = await startFacilitator({ port: 0, privateKeys: [KEY], apiKeys: ["0123456789abcdef-key"] }, { schemes: [scheme], logDestination });
    expect(running.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await (await fetch(`${running.url}/health`)).json()).toEqual({ status: "ok" });
    expect((await fetch(`${running.url}/ready`)).status).toBe(200);

    const b = body();
    const pending = fetch(`${running.url}/settle`, { method: "POST", headers: { "content-type": "application/json", authorization: "Bearer 0123456789abcdef-key" }, body: JSON.stringify(b) });
    // Closed only once the settlement is running (a fixed sleep races the request on a busy machine).
    await expect.poll(() => scheme.settleCalls, { timeout: 10_000, interval: 5 }).toBe(1);
    const closed = running.close();
    const res = await pending;
    expect(res.status).toBe(200);
    expect((await res.json()).success).toBe(true);
    await closed;
    await expect(fetch(`${running.url}/health`)).rejects.toThrow();
    expect(scheme.settleCalls).toBe(1);

    const all = lines.join("");
    expect(all).toContain("facilitator listening");
    expect(all).toContain("facilitator stopped");
    expect(all.toLowerCase()).not.toContain(KEY.slice(2));
    expect(all).not.toContain("0123456789abcdef-key");
    expect(all.toLowerCase()).not.toContain((b.paymentPayload.payload.signature as string).slice(2));
  });

  it("warns at start about an RPC that does not answer and about having no network, and still starts", async () => {
    const lines: string[] = [];
    const logDestination = new Writable({
      write(chunk, _e, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const logged = () => lines.map((l) => JSON.parse(l) as { level: number; msg: string; check?: string; err?: string });
    // Port 2 on loopback refuses connections: an RPC that is down (fetch will not even try port 1).
    const down = await startFacilitator(
      { port: 0, logLevel: "info", privateKeys: [KEY], networks: [{ network: "eip155:84532", rpcUrl: "http://127.0.0.1:2/v2/secret-api-key" }] },
      { logDestination },
    );
    try {
      const warned = logged().filter((l) => l.level === 40);
      const chain = warned.find((l) => l.check === "chain:eip155:84532");
      expect(chain?.msg).toMatch(/chain:eip155:84532 is not answering at start; payments that need it are refused until it does/);
      expect(chain?.err).toBe("RPC at 127.0.0.1:2 (eth_chainId): connection refused by 127.0.0.1:2 (is it running?)");
      // The RPC URL's path (where providers put API keys) is never logged.
      expect(lines.join("")).not.toContain("secret-api-key");
      expect((await fetch(`${down.url}/health`)).status).toBe(200);
      // The configuration is not dumped at info.
      expect(logged().filter((l) => l.level <= 30 && "config" in l)).toEqual([]);
    } finally {
      await down.close();
    }
    lines.length = 0;
    const none = await startFacilitator({ port: 0, privateKeys: [KEY] }, { logDestination });
    try {
      expect(logged().filter((l) => l.level === 40).map((l) => l.msg)).toContainEqual(expect.stringMatching(/^no network is configured: every \/verify and \/settle will be refused/));
    } finally {
      await none.close();
    }
  });
});
