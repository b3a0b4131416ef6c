// History visibility (DESIGN.md decision; Matrix history visibility rules) on small logs.
import type { JsonObject } from "../../../src/core/json.js";
import { historyVisibilityIn, isVisibleToServer, isVisibleToUser, visibilityAt } from "../../../src/room-dag/history-visibility.js";
import { RoomLog } from "../../../src/room-dag/room-log.js";
import { alice, bob, draft, ROOM, rules } from "./builders.js";

const carol = "@carol:participant.example";

/** A log built from [type, sender, content, stateKey?] rows with placeholder hashes. */
function logOf(rows: Array<[string, string, JsonObject, string?]>): RoomLog {
  const log = new RoomLog(ROOM);
  for (const [type, sender, content, stateKey] of rows) {
    log.append({ eventId: `$e${log.length}`, pdu: { ...draft(type, sender, content, stateKey), hashes: { sha256: "x" }, signatures: {}, auth_events: [], prev_events: [] } });
  }
  return log;
}

const start: Array<[string, string, JsonObject, string?]> = [
  ["m.room.create", alice, { room_version: rules.id }, ""],
  ["m.room.member", alice, { membership: "join" }, alice],
];
const hv = (value: string): [string, string, JsonObject, string] => ["m.room.history_visibility", alice, { history_visibility: value }, ""];
const msg = (body: string): [string, string, JsonObject] => ["m.room.message", alice, { body }];
const member = (user: string, membership: string): [string, string, JsonObject, string] => ["m.room.member", user, { membership }, user];

test("shared is the default and unknown values count as shared", () => {
  expect(historyVisibilityIn(logOf(start))).toBe("shared");
  expect(historyVisibilityIn(logOf([...start, hv("bogus")]))).toBe("shared");
});

test("shared: a user who joins later sees earlier events; one who never joins does not", () => {
  const log = logOf([...start, msg("before"), member(bob, "join")]);
  expect(isVisibleToUser(log, 2, bob)).toBe(true);
  expect(isVisibleToUser(log, 2, carol)).toBe(false);
});

test("joined: only events from the user's join on", () => {
  const log = logOf([...start, hv("joined"), msg("before"), member(bob, "invite"), msg("invited"), member(bob, "join"), msg("after")]);
  expect(isVisibleToUser(log, 3, bob)).toBe(false);
  expect(isVisibleToUser(log, 5, bob)).toBe(false);
  expect(isVisibleToUser(log, 6, bob)).toBe(true); // their own join
  expect(isVisibleToUser(log, 7, bob)).toBe(true);
});

test("invited: events from the invite on", () => {
  const log = logOf([...start, hv("invited"), msg("before"), member(bob, "invite"), msg("invited"), member(bob, "join")]);
  expect(isVisibleToUser(log, 3, bob)).toBe(false);
  expect(isVisibleToUser(log, 5, bob)).toBe(true);
});

test("a user who left sees nothing after leaving", () => {
  const log = logOf([...start, hv("joined"), member(bob, "join"), msg("in"), member(bob, "leave"), msg("gone")]);
  expect(isVisibleToUser(log, 4, bob)).toBe(true);
  expect(isVisibleToUser(log, 5, bob)).toBe(true); // their own leave
  expect(isVisibleToUser(log, 6, bob)).toBe(false);
});

test("world_readable: anyone", () => {
  const log = logOf([...start, hv("world_readable"), msg("public")]);
  expect(isVisibleToUser(log, 3, carol)).toBe(true);
  expect(isVisibleToServer(log, 3, "stranger.example")).toBe(true);
});

test("a change of the setting is judged by the more permissive of old and new", () => {
  const log = logOf([...start, hv("joined"), hv("world_readable"), hv("joined")]);
  expect(visibilityAt(log, 2)).toBe("shared"); // default before it
  expect(visibilityAt(log, 3)).toBe("world_readable");
  expect(visibilityAt(log, 4)).toBe("world_readable");
  expect(isVisibleToUser(log, 4, carol)).toBe(true);
});

test("m.mls.commit is visible to every current member whatever the setting", () => {
  const log = logOf([...start, hv("joined"), ["m.mls.commit", alice, { message: "AAAA" }], msg("secret"), member(bob, "join")]);
  expect(isVisibleToUser(log, 3, bob)).toBe(true);
  expect(isVisibleToUser(log, 4, bob)).toBe(false);
  expect(isVisibleToUser(log, 3, carol)).toBe(false);
  expect(isVisibleToServer(log, 3, "participant.example")).toBe(true);
  expect(isVisibleToServer(log, 4, "participant.example")).toBe(false);
});

test("servers see what their most privileged user could", () => {
  const log = logOf([...start, hv("invited"), msg("early"), member(carol, "invite"), msg("after invite")]);
  expect(isVisibleToServer(log, 3, "participant.example")).toBe(false);
  expect(isVisibleToServer(log, 5, "participant.example")).toBe(true);
  expect(isVisibleToServer(log, 5, "stranger.example")).toBe(false);
  expect(isVisibleToServer(log, 99, "participant.example")).toBe(false);
});
