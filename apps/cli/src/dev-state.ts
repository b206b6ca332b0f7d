/**
 * What a running `tollgate dev` tells other `tollgate` commands: its endpoints and its local
 * tokens, in a small JSON file under the user's config directory. `tollgate pay` reads it so the
 * local network's tokens count as dollars without flags. Only local networks are listed, and the
 * file is ignored once the process that wrote it is gone.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import type { UsdAsset } from "@tollgate/core";

export interface DevState {
  pid: number;
  startedAt: string;
  facilitatorUrl: string;
  apiUrl: string;
  /** Tokens of the local networks that count as dollars (USDC-like, 6 decimals). */
  usdAssets: UsdAsset[];
}

export function configDir(env: Record<string, string | undefined> = process.env): string {
  return join(env.XDG_CONFIG_HOME || join(homedir(), ".config"), "tollgate");
}

export function devStatePath(env: Record<string, string | undefined> = process.env): string {
  return join(configDir(env), "dev.json");
}

export function writeDevState(state: DevState, env: Record<string, string | undefined> = process.env): () => void {
  const path = devStatePath(env);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.${process.pid}`, JSON.stringify(state, null, 2) + "\n", { mode: 0o600 });
  renameSync(`${path}.${process.pid}`, path);
  return () => {
    // Only our own file: a newer `tollgate dev` may have replaced it.
    if (readDevState(env, { checkAlive: false })?.pid === process.pid) rmSync(path, { force: true });
  };
}

/** The running dev network's state, or undefined (no file, unreadable, or its process is gone). */
export function readDevState(env: Record<string, string | undefined> = process.env, options: { checkAlive?: boolean } = {}): DevState | undefined {
  let state: DevState;
  try {
    state = JSON.parse(readFileSync(devStatePath(env), "utf8")) as DevState;
  } catch {
    return undefined;
  }
  if (typeof state?.pid !== "number" || !Array.isArray(state.usdAssets)) return undefined;
  if (options.checkAlive !== false && !alive(state.pid)) return undefined;
  // Only local networks: a stale or edited file must never value a real chain's token as dollars.
  state.usdAssets = state.usdAssets.filter((a) => a && (a.network === "eip155:31337" || a.network === "solana:localnet"));
  return state;
}

/** Whether a process with this pid exists (EPERM: it does, under another user). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
