/**
 * The `tollgate` command line itself, run as a user would (the bin script, a child process):
 * --version, help for every command, and usage errors that name the flag, exit 2, and start nothing.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";

const BIN = new URL("../bin/tollgate.js", import.meta.url).pathname;

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe("tollgate command line", () => {
  it("--version prints the package version", async () => {
    const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    const r = await run(["--version"]);
    expect(r).toMatchObject({ code: 0, stdout: `${version}\n` });
  });

  it("every command has --help, which runs nothing", async () => {
    for (const command of ["demo", "dev", "facilitator", "pay"]) {
      const r = await run([command, "--help"]);
      expect(r.code, command).toBe(0);
      expect(r.stdout, command).toMatch(new RegExp(`^tollgate ${command}`));
    }
    const all = await run(["help"]);
    expect(all.stdout).toMatch(/tollgate demo[\s\S]*tollgate dev[\s\S]*tollgate facilitator[\s\S]*tollgate pay/);
  });

  it("usage errors name the flag and exit 2 before anything starts", async () => {
    const port = await run(["dev", "--port", "abc"]);
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('--port: expected a port number 0-65535, got "abc"');
    const unknown = await run(["pay", "http://x", "--maxx", "1"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/--maxx/);
    const timeout = await run(["pay", "http://x", "--timeout", "-1"]);
    expect(timeout).toMatchObject({ code: 2 });
    expect(timeout.stderr).toContain("--timeout");
    expect((await run(["frobnicate"])).code).toBe(2);
  });

  it("dev says which port is taken and which flag changes it", async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", () => r()));
    const busy = (taken.address() as { port: number }).port;
    try {
      const r = await run(["dev", "--chain-port", "0", "--solana-port", "0", "--port", "0", "--facilitator-port", String(busy)]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`port ${busy} for the facilitator is already in use`);
      expect(r.stderr).toContain("--facilitator-port");
    } finally {
      taken.close();
    }
  });
});
