// The linear log's state model (LM draft "State Events", using the draft's own five-event example).
import { buildHubEvent } from "../../../src/room-dag/index.js";
import { RoomLog } from "../../../src/room-dag/room-log.js";
import { alice, bob, draft, hub, hubRoom, rules, ROOM } from "./builders.js";

describe("state at an index (the draft's example)", () => {
  // 0 create, 1 alice joins, 2 a message, 3 bob's membership, 4 alice's membership changes.
  const log = new RoomLog(ROOM);
  const append = (type: string, sender: string, content: Record<string, string>, stateKey?: string) =>
    log.append({ eventId: `$e${log.length}`, pdu: { ...draft(type, sender, content, stateKey), hashes: { sha256: "x" }, signatures: {}, auth_events: [], prev_events: [] } });
  append("m.room.create", alice, { room_version: rules.id }, "");
  append("m.room.member", alice, { membership: "join" }, alice);
  append("m.room.encrypted", alice, { ciphertext: "..." });
  append("m.room.member", bob, { membership: "invite" }, bob);
  append("m.room.member", alice, { membership: "leave" }, alice);

  test("state before index 2 holds the create and alice's first membership", () => {
    const state = log.stateBefore(2);
    expect(state.get("m.room.create", "")?.eventId).toBe("$e0");
    expect(state.get("m.room.member", alice)?.eventId).toBe("$e1");
    expect(state.get("m.room.member", bob)).toBeUndefined();
  });

  test("state before index 4 still has alice's old membership; after it, the new one", () => {
    expect(log.stateBefore(4).get("m.room.member", alice)?.eventId).toBe("$e1");
    expect(log.stateBefore(4).get("m.room.member", bob)?.eventId).toBe("$e3");
    expect(log.stateAfter(4).get("m.room.member", alice)?.eventId).toBe("$e4");
    expect(log.get("m.room.member", alice)?.eventId).toBe("$e4");
  });

  test("state before index 0 is empty; non-state events are not state", () => {
    expect(log.stateBefore(0).get("m.room.create", "")).toBeUndefined();
    expect(log.currentStateEvents().map((e) => e.eventId).sort()).toEqual(["$e0", "$e3", "$e4"]);
  });

  test("memberships and joined members follow the latest event", () => {
    expect(log.membership(alice)).toBe("leave");
    expect(log.membership(bob)).toBe("invite");
    expect(log.membership("@nobody:hub.example")).toBe("leave");
    expect([...log.joinedMembers()]).toEqual([]);
    expect([...log.membersEver()].sort()).toEqual([alice, bob].sort());
  });

  test("refuses a duplicate event ID and an event of another room", () => {
    expect(() => log.append(log.at(0)!)).toThrow(/already/);
    const other = log.at(2)!;
    expect(() => log.append({ eventId: "$new", pdu: { ...other.pdu, room_id: "!other:hub.example" } })).toThrow(/belongs to/);
  });
});

describe("a hub room", () => {
  const log = hubRoom();
  test("knows its hub, its joined servers and its tip", () => {
    expect(log.hubServer()).toBe("hub.example");
    expect([...log.joinedServers()].sort()).toEqual(["hub.example", "participant.example"]);
    expect(log.lastEvent?.pdu.state_key).toBe(bob);
    expect(log.indexOf(log.lastEvent!.eventId)).toBe(log.length - 1);
    expect(log.getEvent(log.at(0)!.eventId)?.pdu.type).toBe("m.room.create");
  });

  test("each event's prev_events is the previous event; the create has none", () => {
    expect(log.at(0)!.pdu.prev_events).toEqual([]);
    expect(log.at(0)!.pdu.auth_events).toEqual([]);
    for (let i = 1; i < log.length; i++) expect(log.at(i)!.pdu.prev_events).toEqual([log.at(i - 1)!.eventId]);
  });

  test("a hub event's auth events are selected from current state", () => {
    const event = buildHubEvent(draft("m.room.member", alice, { membership: "invite" }, "@carol:participant.example"), log, hub, rules);
    expect(event.pdu.auth_events).toEqual([
      log.get("m.room.create", "")!.eventId,
      log.get("m.room.power_levels", "")!.eventId,
      log.get("m.room.member", alice)!.eventId,
      log.get("m.room.join_rules", "")!.eventId,
    ]);
  });
});
