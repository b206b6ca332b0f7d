import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { budgetFor, checkPayment, createBudgetStore, verifyOpenMandate } from "../src/index.ts";
import { openMandate, payment, T0, testKeys } from "./helpers.ts";

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "tollgate-mandates-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("budget store", () => {
  it("reserves, releases and commits, and survives a restart (a new store on the same file)", async () => {
    const file = join(dir, "one.json");
    const store = createBudgetStore({ file });
    const a = await store.reserve("m1", "40", 100, { max: "100" });
    const b = await store.reserve("m1", "50", 100, { max: "100" });
    expect(a.ok && b.ok).toBe(true);
    expect(await store.reserve("m1", "20", 100, { max: "100" })).toMatchObject({ ok: false, constraint: "payment.budget", code: "budget_exceeded" });
    expect((await store.reserve("m1", "20", 200, { max: "100" })).ok).toBe(true); // another period
    if (!a.ok || !b.ok) return;
    expect(await store.release(a.reservationId)).toBe(true);
    expect(await store.release(a.reservationId)).toBe(false);
    expect(await store.commit(b.reservationId)).toBe(true);

    const restarted = createBudgetStore({ file });
    expect(await restarted.spent("m1", 100)).toMatchObject({ amount: 50n, committed: 50n, reserved: 0n });
    expect((await restarted.reserve("m1", "51", 100, { max: "100" })).ok).toBe(false);
    expect((await restarted.reserve("m1", "50", 100, { max: "100" })).ok).toBe(true);
    expect(readdirSync(dir).filter((f) => f.startsWith("one.json.") )).toEqual([]); // no lock or temp file left
  });

  it("feeds checkPayment and the store with the same budget units and period", async () => {
    const { user } = await testKeys();
    const v = await verifyOpenMandate(await openMandate(), { userPublicJwk: user.publicJwk, now: T0 });
    if (!v.ok) throw new Error(v.reason);
    const store = createBudgetStore({ file: join(dir, "units.json") });
    const p = payment({ amount: "4000000" }); // 4 USD of a 10 USD daily budget
    for (let i = 0; i < 3; i++) {
      const b = budgetFor(v.mandate, p);
      if (!b || !("units" in b)) throw new Error("no budget");
      const spent = await store.spent(v.mandate.jti, b.periodStart);
      const check = checkPayment(v.mandate, p, spent);
      const r = await store.reserve(v.mandate.jti, b.units, b.periodStart, { max: b.max });
      if (i < 2) expect(check.ok && r.ok).toBe(true);
      else {
        expect(check).toMatchObject({ ok: false, constraint: "payment.budget", code: "budget_exceeded" });
        expect(r.ok).toBe(false);
      }
    }
    // the next day is a new period
    const next = budgetFor(v.mandate, payment({ at: T0 + 86_400 }));
    expect(next && "periodStart" in next && (await store.spent(v.mandate.jti, next.periodStart)).amount).toBe(0n);
  });

  it("never lets two processes together exceed the budget", async () => {
    const file = join(dir, "shared.json");
    const worker = fileURLToPath(new URL("./fixtures/reserve-worker.ts", import.meta.url));
    // each process tries 30 x 7 = 210 against a budget of 200 (28 reservations fit in total)
    const spawn = () => run(process.execPath, ["--import", "tsx", worker, file, "30", "7", "200", "2"], { cwd: fileURLToPath(new URL("../../..", import.meta.url)) });
    const [a, b] = await Promise.all([spawn(), spawn()]);
    const ra = JSON.parse(a.stdout) as { granted: number; refused: number };
    const rb = JSON.parse(b.stdout) as { granted: number; refused: number };
    expect(ra.granted + rb.granted).toBe(28);
    expect(ra.granted + ra.refused + rb.granted + rb.refused).toBe(60);
    const spent = await createBudgetStore({ file }).spent("mandate-shared", 0);
    expect(spent.amount).toBe(196n);
    expect(spent.amount <= 200n).toBe(true);
    expect(spent.committed).toBe(BigInt(7 * (Math.floor(ra.granted / 2) + Math.floor(rb.granted / 2))));
  }, 30_000);
});
