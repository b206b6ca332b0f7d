import { describe, expect, it } from "vitest";
import { createMetrics, createRegistry, PROMETHEUS_CONTENT_TYPE } from "../src/metrics.ts";

describe("metrics registry", () => {
  it("renders counters, gauges and cumulative histograms in the text format", async () => {
    const r = createRegistry();
    const c = r.counter("t_total", "A counter");
    const g = r.gauge("t_pending", "A gauge");
    const h = r.histogram("t_seconds", "A histogram", [1, 0.1]); // unsorted on purpose
    c.inc({ result: "success", reason: "" });
    c.inc({ reason: "", result: "success" }, 2); // same series whatever the key order
    c.inc({ result: "failure", reason: "x" });
    g.inc();
    g.inc();
    g.dec();
    h.observe(0.05, { result: "ok" });
    h.observe(0.5, { result: "ok" });
    h.observe(5, { result: "ok" });
    expect(await r.render()).toBe(
      [
        "# HELP t_total A counter",
        "# TYPE t_total counter",
        't_total{result="success",reason=""} 3',
        't_total{result="failure",reason="x"} 1',
        "# HELP t_pending A gauge",
        "# TYPE t_pending gauge",
        "t_pending 1",
        "# HELP t_seconds A histogram",
        "# TYPE t_seconds histogram",
        't_seconds_bucket{result="ok",le="0.1"} 1',
        't_seconds_bucket{result="ok",le="1"} 2',
        't_seconds_bucket{result="ok",le="+Inf"} 3',
        't_seconds_sum{result="ok"} 5.55',
        't_seconds_count{result="ok"} 3',
        "",
      ].join("\n"),
    );
    expect(PROMETHEUS_CONTENT_TYPE).toBe("text/plain; version=0.0.4; charset=utf-8");
  });

  it("label sets never share a series, even when a value contains the separators", async () => {
    const r = createRegistry();
    const c = r.counter("t_total", "A counter");
    c.inc({ a: "1,b=2" });
    c.inc({ a: "1", b: "2" });
    c.inc({ a: "1:b1:2" });
    const lines = (await r.render()).split("\n").filter((l) => l.startsWith("t_total{"));
    expect(lines).toEqual(['t_total{a="1,b=2"} 1', 't_total{a="1",b="2"} 1', 't_total{a="1:b1:2"} 1']);
  });

  it("escapes label values, keeps bigint gauge values exact, and skips a failing collector", async () => {
    const r = createRegistry();
    r.counter("t_total", "A counter").inc({ reason: 'say "hi"\\\n' });
    r.gauge("t_balance", "Balances", () => [{ labels: { address: "0xabc" }, value: 10n ** 21n + 1n }]);
    r.gauge("t_broken", "Fails", () => {
      throw new Error("rpc down");
    });
    const text = await r.render();
    expect(text).toContain('t_total{reason="say \\"hi\\"\\\\\\n"} 1');
    expect(text).toContain('t_balance{address="0xabc"} 1000000000000000000001');
    expect(text).toContain("# TYPE t_broken gauge\n");
    expect(text).not.toContain("rpc down");
  });

  it("createMetrics defines the facilitator's metric names", async () => {
    const m = createMetrics();
    m.verifyDuration.observe(0.002, { result: "valid" });
    m.settleOutcomes.inc({ result: "success", reason: "" });
    const text = await m.registry.render();
    for (const name of [
      "tollgate_verify_duration_seconds",
      "tollgate_settle_duration_seconds",
      "tollgate_verify_total",
      "tollgate_settle_total",
      "tollgate_http_requests_total",
      "tollgate_settlements_pending",
      "tollgate_settle_batch_size",
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(text).toContain('tollgate_verify_duration_seconds_bucket{result="valid",le="0.001"} 0\n');
    expect(text).toContain('tollgate_verify_duration_seconds_bucket{result="valid",le="0.005"} 1\n');
  });
});
