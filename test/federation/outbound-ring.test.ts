// The outbound queues' in-memory ring (src/federation/outbound/ring.ts) and the pre-encoded
// transaction bodies it feeds: one canonical encoding per event, spliced into each destination's
// transaction and signed without encoding it again.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "@jest/globals";
import { encodeCanonicalJson, parseStrictJson } from "../../src/core/canonical-json.js";
import { nativeEd25519 } from "../../src/core/ed25519.js";
import type { Pdu } from "../../src/core/events.js";
import type { JsonObject } from "../../src/core/json.js";
import { OutboxRing } from "../../src/federation/outbound/ring.js";
import { canonicalTransactionBody } from "../../src/federation/outbound/transaction.js";
import { signCanonicalRequest, signRequest } from "../../src/federation/transport/x-matrix.js";

const pdu = (n: number): Pdu => ({ type: "m.room.message", room_id: "!r:hub", sender: "@a:hub", content: { body: `m${n}`, "ü": "é", z: n }, origin_server_ts: n, auth_events: [], prev_events: [], hashes: { sha256: "x" }, signatures: {} }) as unknown as Pdu;
const event = (n: number, destinations: string[]) => ({ streamPos: n, eventId: `$e${n}`, pdu: pdu(n), destinations: new Set(destinations) });

describe("outbox ring", () => {
  it("holds what was queued after its start, in stream order, per destination", () => {
    const ring = new OutboxRing(10);
    ring.add([event(11, ["a", "b"]), event(13, ["a"]), event(12, ["b"])]);
    expect(ring.covers(10)).toBe(true);
    expect(ring.covers(9)).toBe(false);
    expect(ring.peek("a", 10, 100, 10).events.map((e) => e.streamPos)).toEqual([11, 13]);
    expect(ring.peek("b", 10, 100, 10).events.map((e) => e.streamPos)).toEqual([11, 12]);
    expect(ring.peek("a", 11, 100, 1).events.map((e) => e.streamPos)).toEqual([13]);
    // Each event's canonical JSON is the core encoder's.
    expect(ring.peek("a", 10, 100, 1).events[0]?.canonical).toBe(encodeCanonicalJson(pdu(11) as unknown as JsonObject, "utf16"));
    // Nothing from before its start.
    ring.add([event(5, ["a"])]);
    expect(ring.peek("a", 0, 100, 10).events.map((e) => e.streamPos)).toEqual([11, 13]);
  });

  it("holds back positions not yet visible and says so", () => {
    const ring = new OutboxRing(0);
    ring.add([event(1, ["a"]), event(2, ["a"]), event(3, ["b"])]);
    expect(ring.peek("a", 0, 1, 10)).toMatchObject({ events: [{ streamPos: 1 }], heldBack: true });
    expect(ring.peek("b", 0, 2, 10)).toMatchObject({ events: [], heldBack: true });
    expect(ring.peek("a", 0, 3, 10).heldBack).toBe(false);
  });

  it("sends the redacted copy of an event redacted after it was queued", () => {
    const ring = new OutboxRing(0);
    ring.add([event(1, ["a"])]);
    const before = ring.peek("a", 0, 9, 1).events[0]?.canonical;
    ring.redacted("$e1", { ...pdu(1), content: {} } as Pdu);
    const after = ring.peek("a", 0, 9, 1).events[0]?.canonical;
    expect(before).toContain('"body":"m1"');
    expect(after).not.toContain("m1");
  });

  it("evicts its oldest events past its capacity and no longer covers them", () => {
    const ring = new OutboxRing(0, 100);
    ring.add(Array.from({ length: 101 }, (_, i) => event(i + 1, ["a"])));
    expect(ring.covers(0)).toBe(false);
    expect(ring.covers(10)).toBe(true);
    expect(ring.peek("a", 10, 1000, 1000).events).toHaveLength(91);
  });
});

describe("pre-encoded transaction bodies", () => {
  it("are canonical JSON of the transaction, and sign exactly as the encoder would", () => {
    const pdus = [pdu(1), pdu(2)].map((p) => encodeCanonicalJson(p as unknown as JsonObject, "utf16"));
    const edus = [encodeCanonicalJson({ edu_type: "m.typing", content: { typing: true } }, "utf16")];
    for (const withEdus of [[], edus]) {
      const body = canonicalTransactionBody("origin.example", 1234, pdus, withEdus);
      const parsed = parseStrictJson(body);
      expect(parsed.ok).toBe(true);
      const content = (parsed as { ok: true; value: JsonObject }).value;
      expect(encodeCanonicalJson(content, "utf16")).toBe(body);
      const key = { keyId: "ed25519:k", signer: nativeEd25519.signerFromSeed(randomBytes(32)) };
      const request = { method: "PUT", uri: "/_matrix/federation/v2/send/t%201", origin: "origin.example", destination: "dest.example:8448" };
      expect(signCanonicalRequest(request, body, [key])).toEqual(signRequest({ ...request, content }, [key]));
    }
  });
});
