// Launches the anvil binary shipped by @foundry-rs/anvil's platform package on a free port.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

export type StartAnvilOptions = {
  /** Port to listen on; default: a free port chosen by the OS (anvil --port 0). */
  port?: number;
  /** Default 31337. */
  chainId?: number;
  /** Seconds between blocks; default: auto-mine (a block per transaction). */
  blockTime?: number;
  /** Default true: anvil's log output is swallowed. */
  silent?: boolean;
  /** Bound on start-up, default 15 000 ms. */
  timeoutMs?: number;
};

export type AnvilInstance = {
  rpcUrl: string;
  port: number;
  chainId: number;
  /** The anvil process's id (benchmarks read its CPU time from /proc). */
  pid: number | undefined;
  stop(): Promise<void>;
};

const require = createRequire(import.meta.url);

/** Absolute path of the anvil binary for this platform, or a clear error naming the missing package. */
export function anvilBinaryPath(): string {
  const os = process.platform === "win32" ? "win32" : process.platform;
  const cpu = process.arch === "x64" ? "amd64" : process.arch;
  const pkg = `@foundry-rs/anvil-${os}-${cpu}`;
  let pkgDir: string;
  try {
    pkgDir = dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    throw new Error(
      `anvil binary not found: package ${pkg} is not installed (it is an optional dependency of @foundry-rs/anvil; ` +
        `run npm install on ${process.platform}/${process.arch}, or install foundry)`,
    );
  }
  const bin = join(pkgDir, "bin", process.platform === "win32" ? "anvil.exe" : "anvil");
  if (!existsSync(bin)) throw new Error(`anvil binary not found at ${bin}`);
  return bin;
}

// Every anvil we started, so they die with this process even if stop() is never called.
const running = new Set<ChildProcess>();
let exitHooksInstalled = false;

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on("exit", () => {
    for (const child of running) child.kill("SIGKILL");
  });
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = (): void => {
      for (const child of running) child.kill("SIGKILL");
      // Keep the default "die on signal" behaviour unless someone else handles the signal.
      if (process.listenerCount(signal) === 1) {
        process.off(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}

async function rpcAnswers(rpcUrl: string): Promise<boolean> {
  try {
    const res = await fetch(rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      signal: AbortSignal.timeout(1_000),
    });
    if (!res.ok) return false;
    const body = (await res.json()) as { result?: string };
    return typeof body.result === "string";
  } catch {
    return false;
  }
}

export async function startAnvil(opts: StartAnvilOptions = {}): Promise<AnvilInstance> {
  const chainId = opts.chainId ?? 31337;
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const args = ["--host", "127.0.0.1", "--port", String(opts.port ?? 0), "--chain-id", String(chainId)];
  if (opts.blockTime !== undefined) args.push("--block-time", String(opts.blockTime));

  installExitHooks();
  const child = spawn(anvilBinaryPath(), args, { stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.once("exit", () => running.delete(child));

  let output = "";
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`anvil did not start within ${timeoutMs} ms:\n${output.slice(-2000)}`)), timeoutMs);
    function fail(err: Error): void {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(err);
    }
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString();
      if (opts.silent === false) process.stderr.write(text);
      if (output.length < 64_000) output += text;
      // anvil prints the bound address, which is how we learn the port when we asked for port 0.
      const m = /Listening on [^\s:]+:(\d+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("error", (err) => fail(new Error(`failed to run anvil: ${err.message}`)));
    child.once("exit", (code, signal) =>
      fail(new Error(`anvil exited early (code ${code ?? signal}):\n${output.slice(-2000)}`)),
    );
  });

  const rpcUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  while (!(await rpcAnswers(rpcUrl))) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill("SIGKILL");
      throw new Error(`anvil on ${rpcUrl} did not answer JSON-RPC within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    rpcUrl,
    port,
    chainId,
    pid: child.pid,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
