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
    await new Promise((r) => setTimeout(r, 100)); // the settlement is now running
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
});
