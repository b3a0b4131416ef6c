// The recent-events cache: which windows it may answer alone, and what it answers.
import type { Pdu } from "../../src/core/events.js";
import { RecentEvents } from "../../src/rooms/recent-events.js";
import type { StoredEvent } from "../../src/storage/ports.js";

const ROOM = "!r:x";

/** The event at `roomSeq`, with stream position 100 + 2 * roomSeq (other rooms use the gaps). */
function event(roomSeq: number, roomId = ROOM): StoredEvent {
  const pdu = { room_id: roomId, type: "m.room.message", sender: "@a:x", content: { body: `m${roomSeq}` }, origin_server_ts: roomSeq } as unknown as Pdu;
  return { eventId: `$${roomId}-${roomSeq}`, roomId, roomSeq, streamPos: 100 + 2 * roomSeq, pdu, redactedBy: null, softFailed: false };
}

const seqs = (events: StoredEvent[]): number[] => events.map((e) => e.roomSeq);

test("a room cached from its first event answers any window alone, newest first", () => {
  const recent = new RecentEvents({ perRoom: 8, maxRooms: 10 });
  for (let seq = 0; seq < 5; seq++) recent.append(event(seq));
  expect(recent.after(ROOM, 0)).toEqual({ events: [4, 3, 2, 1, 0].map((s) => event(s)), complete: true });
  expect(seqs(recent.after(ROOM, 104).events)).toEqual([4, 3]);
  expect(recent.after(ROOM, 104).complete).toBe(true);
  expect(recent.after(ROOM, 108)).toEqual({ events: [], complete: true });
});

test("once the oldest events are dropped, a window reaching before them is not complete", () => {
  const recent = new RecentEvents({ perRoom: 4, maxRooms: 10 });
  for (let seq = 0; seq < 10; seq++) recent.append(event(seq));
  // Cached: seq 6..9 (stream positions 112..118).
  expect(recent.after(ROOM, 111)).toEqual({ events: [9, 8, 7, 6].map((s) => event(s)), complete: false });
  expect(recent.after(ROOM, 112)).toEqual({ events: [9, 8, 7].map((s) => event(s)), complete: true });
});

test("a room first cached after start-up (not from seq 0) covers only windows starting inside it", () => {
  const recent = new RecentEvents({ perRoom: 8, maxRooms: 10 });
  recent.append(event(20));
  recent.append(event(21));
  expect(recent.after(ROOM, 0).complete).toBe(false);
  expect(recent.after(ROOM, 139).complete).toBe(false);
  expect(recent.after(ROOM, 140)).toEqual({ events: [event(21)], complete: true });
  expect(recent.after("!unknown:x", 0)).toEqual({ events: [], complete: false });
});

test("an event appended after a gap starts the room again", () => {
  const recent = new RecentEvents({ perRoom: 8, maxRooms: 10 });
  for (let seq = 0; seq < 3; seq++) recent.append(event(seq));
  recent.append(event(5));
  expect(recent.after(ROOM, 0)).toEqual({ events: [event(5)], complete: false });
});

test("a redaction replaces the cached event by its redacted copy, leaving the old object as it was", () => {
  const recent = new RecentEvents({ perRoom: 8, maxRooms: 10 });
  recent.append(event(0));
  const before = recent.after(ROOM, 0).events[0] as StoredEvent;
  const redacted = { ...before.pdu, content: {} } as Pdu;
  recent.redact(ROOM, before.eventId, "$redaction", redacted);
  const after = recent.after(ROOM, 0).events[0] as StoredEvent;
  expect(after).toMatchObject({ eventId: before.eventId, redactedBy: "$redaction", pdu: { content: {} } });
  expect(before.redactedBy).toBeNull();
  expect(before.pdu.content).toEqual({ body: "m0" });
  // Unknown events and rooms are ignored.
  recent.redact(ROOM, "$nope", "$redaction", redacted);
  recent.redact("!other:x", before.eventId, "$redaction", redacted);
});

test("past maxRooms the room appended to least recently is dropped", () => {
  const recent = new RecentEvents({ perRoom: 8, maxRooms: 2 });
  recent.append(event(0, "!a:x"));
  recent.append(event(0, "!b:x"));
  recent.append(event(1, "!a:x"));
  recent.append(event(0, "!c:x"));
  expect(recent.after("!b:x", 0).complete).toBe(false);
  expect(seqs(recent.after("!a:x", 0).events)).toEqual([1, 0]);
  expect(recent.after("!c:x", 0).complete).toBe(true);
});
