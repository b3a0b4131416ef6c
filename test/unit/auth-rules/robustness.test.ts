// authorize never throws, whatever JSON a remote server put in an event.
import fc from "fast-check";
import { authorize } from "../../../src/auth-rules/index.js";
import type { Pdu } from "../../../src/core/events.js";
import type { JsonObject } from "../../../src/core/json.js";
import { getRoomVersion, LINEARIZED_02, type RoomVersionRules } from "../../../src/core/room-versions.js";
import { ALICE, BOB, MOD, pdu, room, withAuthEvents } from "./builders.js";

const LM = getRoomVersion(LINEARIZED_02) as RoomVersionRules;
const json = fc.jsonValue({ maxDepth: 3 });

test("arbitrary content, state_key and auth_events give a verdict with a rule, never an exception", () => {
  const state = room();
  const types = fc.constantFrom("m.room.member", "m.room.power_levels", "m.room.create", "m.room.join_rules", "m.room.message");
  fc.assert(
    fc.property(types, fc.constantFrom(ALICE, MOD, BOB), json, fc.option(json), fc.boolean(), (type, sender, content, stateKey, selectAuth) => {
      const base = pdu(type, sender, content as JsonObject, undefined, stateKey === null ? {} : { state_key: stateKey as string });
      const event: Pdu = selectAuth ? withAuthEvents(base, state) : { ...base, auth_events: content as string[] };
      const verdict = authorize(event, state, LM, { kind: "verified" });
      expect(verdict.ok === true || (typeof verdict.rule === "string" && typeof verdict.reason === "string")).toBe(true);
    }),
    { numRuns: 2000 },
  );
});

test("power-levels content with arbitrary users and events maps never throws", () => {
  const state = room();
  const map = fc.dictionary(fc.string(), json, { maxKeys: 4 });
  fc.assert(
    fc.property(fc.constantFrom(ALICE, MOD), map, map, json, (sender, users, events, ban) => {
      const event = withAuthEvents(pdu("m.room.power_levels", sender, { users, events, ban } as JsonObject, ""), state);
      const verdict = authorize(event, state, LM, { kind: "verified" });
      expect(typeof verdict.ok).toBe("boolean");
    }),
    { numRuns: 1000 },
  );
});
