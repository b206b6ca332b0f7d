// The metered-stream wire: SSE framing both ways (any split of the bytes, CR/LF/CRLF) and the
// client reader (running cost, stop reason, in-band receipt, malformed control events).
import { describe, expect, it } from "vitest";
import { createSseParser, encodeBase64Json, encodeSseEvent, readMeteredStream, type SseEvent } from "../src/index.ts";

function parseAll(pieces: string[]): SseEvent[] {
  const out: SseEvent[] = [];
  const p = createSseParser((e) => out.push(e));
  for (const piece of pieces) p.feed(piece);
  p.end();
  return out;
}

function responseOf(text: string, pieceSize = 7): Response {
  const bytes = new TextEncoder().encode(text);
  return new Response(
    new ReadableStream({
      start(c) {
        for (let i = 0; i < bytes.length; i += pieceSize) c.enqueue(bytes.slice(i, i + pieceSize));
        c.close();
      },
    }),
  );
}

describe("SSE framing", () => {
  it("round-trips multi-line data, names and ids whatever the split", () => {
    const events: SseEvent[] = [{ data: "one" }, { event: "x402-cost", data: '{"a":1}' }, { data: "two\nlines\r\nand CR\rend", id: "7" }, { data: "" }];
    const text = events.map(encodeSseEvent).join("");
    const expected = [{ data: "one" }, { event: "x402-cost", data: '{"a":1}' }, { data: "two\nlines\nand CR\nend", id: "7" }, { data: "", id: "7" }];
    expect(parseAll([text])).toEqual(expected);
    for (const size of [1, 2, 3, 5]) {
      const pieces: string[] = [];
      for (let i = 0; i < text.length; i += size) pieces.push(text.slice(i, i + size));
      expect(parseAll(pieces)).toEqual(expected);
    }
  });

  it("reads CRLF and CR line ends split across pieces, ignores comments, drops an unterminated event", () => {
    expect(parseAll(["data: a\r", "\n\r", "\n: comment\rdata: b\r\r", "data: cut"])).toEqual([{ data: "a" }, { data: "b" }]);
  });

  it("refuses event names and ids that would break the framing", () => {
    expect(() => encodeSseEvent({ event: "a\nb", data: "x" })).toThrow(/no line break/);
    expect(() => encodeSseEvent({ event: "", data: "x" })).toThrow(/non-empty/);
    expect(() => encodeSseEvent({ id: "1\r", data: "x" })).toThrow(/SSE id/);
  });
});

describe("readMeteredStream", () => {
  const settlement = { success: true, transaction: "0x" + "ab".repeat(32), network: "eip155:84532", payer: "0x857b06519E91e3A54538791bDbb0E22373e36b66", amount: "600" };
  const stream = [
    encodeSseEvent({ event: "x402-metered", data: JSON.stringify({ unit: "token", pricePerUnit: "300", max: "1000", asset: "0xA", network: "eip155:84532", endsBy: 1 }) }),
    encodeSseEvent({ data: "hello" }),
    encodeSseEvent({ event: "x402-cost", data: '{"delivered":"1","charged":"300","max":"1000"}' }),
    encodeSseEvent({ event: "chunk", data: "world" }),
    encodeSseEvent({ event: "x402-cost", data: '{"delivered":"2","charged":"600","max":"1000"}' }),
    encodeSseEvent({ event: "x402-settlement", data: JSON.stringify({ delivered: "2", charged: "600", max: "1000", stopped: "done", success: true, paymentResponse: encodeBase64Json(settlement) }) }),
  ].join("");

  it("reports messages, the running cost, the stop reason and the decoded receipt", async () => {
    const messages: SseEvent[] = [];
    const costs: bigint[] = [];
    const r = await readMeteredStream(responseOf(stream), { onMessage: (m) => messages.push(m), onCost: (c) => costs.push(c.charged) });
    expect(messages).toEqual([{ data: "hello" }, { event: "chunk", data: "world" }]);
    expect(costs).toEqual([300n, 600n]);
    expect(r).toMatchObject({ messages: 2, delivered: 2n, charged: 600n, stopped: "done", capReached: false, success: true, error: undefined });
    expect(r.settlement).toMatchObject({ success: true, amount: "600", transaction: settlement.transaction });
    expect(r.terms).toMatchObject({ unit: "token", pricePerUnit: "300" });
  });

  it("malformed control events are reported, never thrown, and never counted as money", async () => {
    const bad = [
      encodeSseEvent({ event: "x402-cost", data: '{"delivered":"1.5","charged":"-3","max":"1000"}' }),
      encodeSseEvent({ event: "x402-settlement", data: JSON.stringify({ delivered: "0", charged: "0", max: "1000", stopped: "done", success: true, paymentResponse: "not base64!" }) }),
    ].join("");
    const r = await readMeteredStream(responseOf(bad));
    expect(r.error).toMatch(/malformed x402-cost event/);
    expect(r.charged).toBe(0n);
    expect(r.settlement).toBeUndefined();
    const r2 = await readMeteredStream(responseOf(encodeSseEvent({ event: "x402-settlement", data: "{" })));
    expect(r2.error).toMatch(/malformed x402-settlement/);
  });

  it("a stream that ends without its final event has no stop reason", async () => {
    const r = await readMeteredStream(responseOf(stream.slice(0, stream.indexOf("event: x402-settlement"))));
    expect(r).toMatchObject({ stopped: undefined, settlement: undefined, charged: 600n });
  });
});
