/** Usage errors (exit code 2): a flag or value the command cannot use, found before anything starts. */
import { createServer } from "node:net";

export class UsageError extends Error {
  override name = "UsageError";
}

/** A TCP port from a flag: a whole number 0..65535 (0: any free port); `fallback` when absent. */
export function parsePort(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw new UsageError(`${flag}: expected a port number 0-65535, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** Fails with the flag that sets a port when something already listens on it (0 is always free). */
export async function assertPortsFree(ports: ReadonlyArray<{ port: number; flag: string; what: string }>, host = "127.0.0.1"): Promise<void> {
  for (const { port, flag, what } of ports) {
    if (port === 0) continue;
    const free = await new Promise<boolean>((resolve) => {
      const probe = createServer();
      probe.once("error", () => resolve(false));
      probe.listen(port, host, () => probe.close(() => resolve(true)));
    });
    if (!free) throw new UsageError(`port ${port} for the ${what} is already in use on ${host}: stop what uses it, or choose another with ${flag} N (0 picks a free port)`);
  }
}
