// Property tests: the pipeline never throws on mutated input, and a change to any field the
// signatures or hashes cover never comes back as an unchanged acceptance.
import fc from "fast-check";
import type { JsonObject, JsonValue } from "../../../src/core/json.js";
import { acceptLpdu, buildLpdu, receivePdu } from "../../../src/room-dag/index.js";
import { bob, draft, hub, hubRoom, keys, overTheWire, participant, replicaOf, ROOM, rules } from "./builders.js";

const log = hubRoom();
const replica = replicaOf(log);
const lpdu = buildLpdu(draft("m.room.message", bob, { msgtype: "m.text", body: "fuzz me" }), hub.serverName, participant, rules);
const accepted = acceptLpdu(lpdu, { rules, keys, tip: log, hub });
if (accepted.action !== "accept") throw new Error("setup failed");
const pdu = accepted.event.pdu as unknown as JsonObject;

const jsonValue: fc.Arbitrary<JsonValue> = fc.jsonValue() as fc.Arbitrary<JsonValue>;
const fieldPath = fc.constantFrom<string[]>(
  ["type"],
  ["sender"],
  ["room_id"],
  ["origin_server_ts"],
  ["hub_server"],
  ["content"],
  ["content", "body"],
  ["content", "msgtype"],
  ["hashes"],
  ["hashes", "sha256"],
  ["hashes", "lpdu"],
  ["signatures"],
  ["auth_events"],
  ["prev_events"],
  ["state_key"],
);

function mutate(event: JsonObject, path: string[], value: JsonValue | undefined): JsonObject {
  const copy = overTheWire(event);
  let holder: JsonObject = copy;
  for (const key of path.slice(0, -1)) {
    const next = holder[key];
    if (typeof next !== "object" || next === null || Array.isArray(next)) return copy;
    holder = next;
  }
  const last = path[path.length - 1]!;
  if (value === undefined) delete holder[last];
  else holder[last] = value;
  return copy;
}

test("receivePdu never throws and never accepts a changed covered field as the original", () => {
  fc.assert(
    fc.property(fieldPath, fc.option(jsonValue, { nil: undefined }), (path, value) => {
      const mutated = mutate(pdu, path, value);
      const outcome = receivePdu(mutated, { rules, keys, stateBefore: replica, roomId: ROOM });
      const unchanged = JSON.stringify(mutated) === JSON.stringify(pdu);
      if (outcome.action === "accept" && !unchanged) {
        // Only a change that leaves every covered byte as it was may be accepted, e.g. an
        // extra signature by a server nobody asked.
        expect(path[0]).toBe("signatures");
      }
    }),
    { numRuns: 300 },
  );
});

test("acceptLpdu never throws on mutated LPDUs", () => {
  const lpduJson = lpdu as unknown as JsonObject;
  fc.assert(
    fc.property(fieldPath, fc.option(jsonValue, { nil: undefined }), (path, value) => {
      const outcome = acceptLpdu(mutate(lpduJson, path, value), { rules, keys, tip: replicaOf(log), hub });
      expect(["accept", "reject"]).toContain(outcome.action);
    }),
    { numRuns: 200 },
  );
});

test("receivePdu never throws on arbitrary JSON", () => {
  fc.assert(
    fc.property(jsonValue, (value) => {
      expect(receivePdu(value, { rules, keys, stateBefore: replica }).action).toBe("drop");
    }),
    { numRuns: 300 },
  );
});
