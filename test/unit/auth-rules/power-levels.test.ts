// Power-level calculation (LM draft "Calculating Power Levels", "m.room.power_levels").
import { powerLevelsFrom, powerLevelsFromContent } from "../../../src/auth-rules/index.js";
import type { JsonObject } from "../../../src/core/json.js";
import { ALICE, BOB, CAROL, createEvent, powerLevelsEvent, room, stateOf } from "./builders.js";

describe("with no m.room.power_levels event", () => {
  const levels = powerLevelsFrom(room({ powerLevels: null }));
  test("the creator (sender of m.room.create) has 100, everyone else 0", () => {
    expect(levels.hasEvent).toBe(false);
    expect(levels.userLevel(ALICE)).toBe(100);
    expect(levels.userLevel(BOB)).toBe(0);
  });
  test("actions default to kick/ban/redact 50 and invite 0", () => {
    expect(["kick", "ban", "redact", "invite"].map((a) => levels.actionLevel(a as "kick"))).toEqual([50, 50, 50, 0]);
  });
  test("state events need 50 and other events 0", () => {
    expect(levels.eventLevel("m.room.topic", true)).toBe(50);
    expect(levels.eventLevel("m.room.message", false)).toBe(0);
  });
  test("a room without a create event has no creator", () => {
    expect(powerLevelsFrom(stateOf()).userLevel(ALICE)).toBe(0);
  });
});

describe("with an m.room.power_levels event", () => {
  test("an empty event uses every default and drops the creator's implicit 100", () => {
    const levels = powerLevelsFrom(room({ powerLevels: {} }));
    expect(levels.hasEvent).toBe(true);
    expect(levels.userLevel(ALICE)).toBe(0);
    expect(levels.actionLevel("ban")).toBe(50);
    expect(levels.actionLevel("invite")).toBe(0);
    expect(levels.eventLevel("m.room.name", true)).toBe(50);
    expect(levels.eventLevel("m.room.message", false)).toBe(0);
  });
  test("users, then users_default", () => {
    const levels = powerLevelsFromContent({ users: { [ALICE]: 100 }, users_default: 5 }, ALICE);
    expect(levels.userLevel(ALICE)).toBe(100);
    expect(levels.userLevel(BOB)).toBe(5);
  });
  test("events overrides state_default and events_default; an empty state_key counts as state", () => {
    const levels = powerLevelsFromContent({ events: { "m.room.name": 10, "m.room.message": 20 }, state_default: 30, events_default: 40 }, ALICE);
    expect(levels.eventLevel("m.room.name", true)).toBe(10);
    expect(levels.eventLevel("m.room.message", false)).toBe(20);
    expect(levels.eventLevel("m.room.topic", true)).toBe(30);
    expect(levels.eventLevel("m.custom", false)).toBe(40);
  });
  test("explicit action levels, including 0 and negatives", () => {
    const levels = powerLevelsFromContent({ kick: 0, ban: -1, invite: 70, redact: 20 }, ALICE);
    expect([levels.actionLevel("kick"), levels.actionLevel("ban"), levels.actionLevel("invite"), levels.actionLevel("redact")]).toEqual([0, -1, 70, 20]);
  });
  test("malformed stored values count as absent and never throw", () => {
    const content = { users: { [ALICE]: "100", [BOB]: 1.5 }, users_default: "7", kick: null, ban: 1e300, events: [], state_default: true } as unknown as JsonObject;
    const levels = powerLevelsFromContent(content, ALICE);
    expect(levels.userLevel(ALICE)).toBe(0);
    expect(levels.userLevel(BOB)).toBe(0);
    expect(levels.actionLevel("kick")).toBe(50);
    expect(levels.actionLevel("ban")).toBe(50);
    expect(levels.eventLevel("m.room.name", true)).toBe(50);
  });
  test("inherited object properties are not user or event entries", () => {
    const levels = powerLevelsFromContent({ users: {}, events: {} }, ALICE);
    expect(levels.userLevel("constructor")).toBe(0);
    expect(levels.eventLevel("toString", false)).toBe(0);
  });
  test("a stored event whose content is not an object counts as an empty one", () => {
    const state = stateOf(["$create", createEvent()], ["$pl", powerLevelsEvent(ALICE, null as unknown as JsonObject)]);
    const levels = powerLevelsFrom(state);
    expect(levels.userLevel(ALICE)).toBe(0);
    expect(levels.userLevel(CAROL)).toBe(0);
  });
});
