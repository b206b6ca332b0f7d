/** Command-line numbers and a hard time limit, shared by the benchmarks. */

/**
 * `--name=N` (or env `BENCH_NAME`), else `fallback`. Positive by default; `integer` and
 * `allowZero` tighten or loosen that. A bad value stops the run with a message naming the flag.
 */
export function option(name: string, fallback: number, opts: { integer?: boolean; allowZero?: boolean } = {}): number {
  const arg = process.argv.find((a) => a.startsWith(`--${name}=`));
  const raw = arg ? arg.slice(name.length + 3) : process.env[`BENCH_${name.toUpperCase()}`];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  const ok = Number.isFinite(n) && (opts.allowZero ? n >= 0 : n > 0) && (!opts.integer || Number.isInteger(n));
  if (!ok) throw new Error(`--${name}: expected a ${opts.allowZero ? "non-negative" : "positive"} ${opts.integer ? "integer" : "number"}, got ${JSON.stringify(raw)}`);
  return n;
}

/** Ends the process if the benchmark runs past `ms` (a benchmark must stop by itself); returns the cancel. */
export function stopAfter(ms: number): () => void {
  const timer = setTimeout(() => {
    console.error(`bench: exceeded ${ms / 1000}s; stopping`);
    process.exit(2);
  }, ms);
  timer.unref();
  return () => clearTimeout(timer);
}
