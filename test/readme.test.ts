/**
 * The README's five-minute tour, run as written: every code block marked
 * `<!-- readme-test: … -->` is extracted from README.md and run the way the README says, in
 * order, against `tollgate dev` on its default ports. Change the README and this runs the new
 * text; nothing here repeats the snippets.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dev } from "../apps/cli/src/commands/dev.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const WORK = join(ROOT, ".readme-test");

/** The blocks marked `<!-- readme-test: NAME -->`, by name, with their language. */
export function readmeBlocks(markdown: string): Map<string, { lang: string; code: string }> {
  const blocks = new Map<string, { lang: string; code: string }>();
  const re = /<!-- readme-test: ([a-z-]+) -->\s*\n```(\w+)\n([\s\S]*?)\n```/g;
  for (const m of markdown.matchAll(re)) blocks.set(m[1]!, { lang: m[2]!, code: m[3]! });
  return blocks;
}

const blocks = readmeBlocks(readFileSync(join(ROOT, "README.md"), "utf8"));
const children: ChildProcess[] = [];

/** Runs a command line the way a shell in the repository root would; resolves with its output. */
function run(command: string, env: NodeJS.ProcessEnv = {}, waitFor?: RegExp): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    // Its own process group, so the whole tree (sh, npx, node) is stopped at the end.
    const child = spawn("sh", ["-c", command], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"], detached: true });
    children.push(child);
    let out = "";
    const timer = setTimeout(() => reject(new Error(`${command}: no result within 90 s\n${out}`)), 90_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (waitFor?.test(out)) {
        clearTimeout(timer);
        resolve({ code: null, out });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

/** The command a `// name.ts: run with …` header or the README's prose gives, as written. */
function commandOf(code: string, file: string): { env: Record<string, string>; command: string } {
  const header = code.split("\n").slice(0, 3).join(" ");
  const m = /((?:[A-Z_]+=\S+\s+)*)npx tsx (\S+\.ts)/.exec(header.replace(/\/\/\s*/g, " "));
  if (!m || m[2] !== file) throw new Error(`the ${file} block does not say how to run it ("npx tsx ${file}")`);
  const env = Object.fromEntries([...m[1]!.matchAll(/([A-Z_]+)=(\S+)/g)].map((e) => [e[1]!, e[2]!]));
  return { env, command: `npx tsx ${join(".readme-test", file)}` };
}

describe("README five-minute tour", () => {
  let stop: (() => Promise<void>) | undefined;
  const config = mkdtempSync(join(tmpdir(), "tollgate-readme-"));

  beforeAll(async () => {
    // Step 1, `npx tollgate dev`, on its documented default ports.
    stop = await dev({ out: () => {}, env: { XDG_CONFIG_HOME: config } });
    rmSync(WORK, { recursive: true, force: true });
    mkdirSync(WORK, { recursive: true });
  });

  afterAll(async () => {
    for (const c of children) {
      try {
        if (c.pid) process.kill(-c.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await stop?.();
    rmSync(WORK, { recursive: true, force: true });
    rmSync(config, { recursive: true, force: true });
  });

  it("has the blocks it promises", () => {
    expect([...blocks.keys()]).toEqual(["shell", "server", "client"]);
  });

  it("2. pays from the shell as printed", async () => {
    const { lang, code } = blocks.get("shell")!;
    expect(lang).toBe("sh");
    const r = await run(code, { XDG_CONFIG_HOME: config });
    expect(r.out).toMatch(/^HTTP 200$/m);
    expect(r.out).toMatch(/"transaction": "0x[0-9a-f]{64}"/);
    expect(r.code).toBe(0);
  });

  it("3 and 4. protects a route, then pays it from code", async () => {
    const server = blocks.get("server")!;
    const client = blocks.get("client")!;
    writeFileSync(join(WORK, "server.ts"), server.code);
    writeFileSync(join(WORK, "pay.ts"), client.code);
    const s = commandOf(server.code, "server.ts");
    const up = await run(s.command, s.env, /paid API on (http:\/\/\S+)/);
    const url = /paid API on (http:\/\/\S+)/.exec(up.out)?.[1];
    expect(url, up.out).toBe("http://127.0.0.1:4022/weather");
    expect((await fetch(url!)).status).toBe(402);
    const c = commandOf(client.code, "pay.ts");
    expect(c.env.TOLLGATE_PRIVATE_KEY).toMatch(/^0x[0-9a-f]{64}$/);
    const paid = await run(c.command, c.env);
    expect(paid.out).toMatch(/^200 \{ forecast: 'sunny' \} 0x[0-9a-f]{64}$/m);
    expect(paid.code).toBe(0);
  });
});
