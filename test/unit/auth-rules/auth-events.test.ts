// Auth events selection (LM draft "Auth Events Selection") and membership lookup.
import { authEventKeys, membershipOf, selectAuthEvents } from "../../../src/auth-rules/index.js";
import type { JsonObject } from "../../../src/core/json.js";
import { ALICE, BOB, CAROL, EVE, createEvent, member, message, pdu, room, stateEvent } from "./builders.js";

const key = (type: string, stateKey = "") => ({ type, stateKey });

describe("authEventKeys", () => {
  test("m.room.create has no auth events", () => {
    expect(authEventKeys(createEvent())).toEqual([]);
  });
  test("a message: create, power levels, sender's membership", () => {
    expect(authEventKeys(message(BOB))).toEqual([key("m.room.create"), key("m.room.power_levels"), key("m.room.member", BOB)]);
  });
  test("an invite adds the target's membership and the join rules", () => {
    expect(authEventKeys(member(BOB, CAROL, "invite"))).toEqual([
      key("m.room.create"), key("m.room.power_levels"), key("m.room.member", BOB), key("m.room.member", CAROL), key("m.room.join_rules"),
    ]);
  });
  test("a join lists the sender's membership once", () => {
    expect(authEventKeys(member(CAROL, CAROL, "join"))).toEqual([
      key("m.room.create"), key("m.room.power_levels"), key("m.room.member", CAROL), key("m.room.join_rules"),
    ]);
  });
  test.each(["leave", "ban", "knock"])("%s does not select the join rules", (membership) => {
    expect(authEventKeys(member(ALICE, CAROL, membership))).toEqual([
      key("m.room.create"), key("m.room.power_levels"), key("m.room.member", ALICE), key("m.room.member", CAROL),
    ]);
  });
  test("a malformed member event selects what it can", () => {
    expect(authEventKeys(pdu("m.room.member", BOB, null as unknown as JsonObject))).toEqual([
      key("m.room.create"), key("m.room.power_levels"), key("m.room.member", BOB),
    ]);
  });
});

describe("selectAuthEvents", () => {
  test("returns the IDs present in state, in selection order", () => {
    expect(selectAuthEvents(member(ALICE, CAROL, "invite"), room())).toEqual(["$create", "$power_levels", `$member:${ALICE}`, "$join_rules"]);
  });
  test("skips events the room lacks", () => {
    expect(selectAuthEvents(message(CAROL), room({ powerLevels: null }))).toEqual(["$create"]);
  });
  test("works for an LPDU-shaped subject", () => {
    expect(selectAuthEvents({ type: "m.room.topic", sender: BOB, state_key: "", content: {} }, room())).toEqual([
      "$create", "$power_levels", `$member:${BOB}`,
    ]);
  });
});

describe("membershipOf", () => {
  test("reads the membership from state", () => {
    expect(membershipOf(room(), BOB)).toBe("join");
    expect(membershipOf(room(), EVE)).toBe("ban");
  });
  test("is leave when absent or malformed", () => {
    expect(membershipOf(room(), CAROL)).toBe("leave");
    const state = room().with("$bad", stateEvent("m.room.member", CAROL, { membership: 3 }, CAROL));
    expect(membershipOf(state, CAROL)).toBe("leave");
  });
});
