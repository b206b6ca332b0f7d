/**
 * Group commit for ledger statements. Callers each ask for one row's worth of work; what arrives
 * while the store is busy (or within the same event-loop turn) goes out as ONE statement over all
 * of it. Embedded PGlite runs one statement at a time, and per-statement overhead (parse, plan,
 * commit) dominates a one-row write, so fifty claims as one `INSERT ... SELECT FROM unnest(...)`
 * cost little more than one. Nothing waits on a timer: an idle store takes the first item on the
 * next turn, a busy one takes everything that queued meanwhile as soon as it is free.
 */
export interface BatchOptions {
  /** Most items per statement (bounds statement size and memory). */
  maxBatch: number;
  /** Statements of this kind in flight at once: 1 for PGlite (serial anyway), a few for a pool. */
  concurrency: number;
  /**
   * Errors after which the whole statement may simply run again (it was rolled back), such as a
   * deadlock between two processes' multi-row writes locking rows in different orders. Up to
   * MAX_ATTEMPTS attempts, with a short random pause so the two do not collide again.
   */
  retry?: (error: unknown) => boolean;
}

const MAX_ATTEMPTS = 4;

/** `run` gets the items in arrival order and answers one result per item, in the same order. */
export function createBatcher<I, O>(run: (items: I[]) => Promise<O[]>, options: BatchOptions): (item: I) => Promise<O> {
  type Waiter = { item: I; resolve: (o: O) => void; reject: (e: unknown) => void };
  let queue: Waiter[] = [];
  let active = 0;
  let scheduled = false;

  function schedule() {
    if (scheduled || queue.length === 0 || active >= options.concurrency) return;
    scheduled = true;
    // setImmediate: everything that arrives in this I/O phase joins the batch.
    setImmediate(flush);
  }

  function flush() {
    scheduled = false;
    while (queue.length > 0 && active < options.concurrency) {
      const batch = queue.length <= options.maxBatch ? queue : queue.slice(0, options.maxBatch);
      queue = queue.length <= options.maxBatch ? [] : queue.slice(options.maxBatch);
      active++;
      void execute(batch).finally(() => {
        active--;
        schedule();
      });
    }
  }

  async function execute(batch: Waiter[]) {
    try {
      const items = batch.map((w) => w.item);
      let results: O[];
      for (let attempt = 1; ; attempt++) {
        try {
          results = await run(items);
          break;
        } catch (e) {
          if (attempt >= MAX_ATTEMPTS || !options.retry?.(e)) throw e;
          await new Promise((r) => setTimeout(r, 5 + Math.random() * 20 * attempt));
        }
      }
      if (results.length !== batch.length) throw new Error(`ledger batch: ${results.length} results for ${batch.length} items`);
      batch.forEach((w, i) => w.resolve(results[i]!));
    } catch (e) {
      for (const w of batch) w.reject(e);
    }
  }

  return (item) =>
    new Promise<O>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      schedule();
    });
}
