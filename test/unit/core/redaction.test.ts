import { readFileSync } from "node:fs";
import type { JsonObject } from "../../../src/core/json.js";
import { linearizedRedaction, redact, v10Redaction, v11Redaction, type RedactionRules } from "../../../src/core/redaction.js";
import { getRoomVersion, LINEARIZED_02, LINEARIZED_I1 } from "../../../src/core/room-versions.js";

interface RedactionVector {
  test: string;
  room_version: string;
  input: JsonObject;
  expected_redacted: JsonObject;
  input_var: string;
  expected_var: string;
}

const vectors = JSON.parse(readFileSync(new URL("../../fixtures/redaction-vectors.json", import.meta.url), "utf8")) as {
  cases: RedactionVector[];
};

// Room version 8 is not implemented (its member redaction lacks join_authorised_via_users_server);
// its vector is skipped. v9's rules are unchanged in v10, so v9 vectors run against v10Redaction.
const rulesByVersion: Record<string, RedactionRules | undefined> = { "9": v10Redaction, "10": v10Redaction, "11": v11Redaction };

describe("gomatrixserverlib redaction vectors", () => {
  const runnable = vectors.cases.filter((c) => rulesByVersion[c.room_version] !== undefined);
  test("every vector but room version 8 runs", () => {
    expect(vectors.cases.filter((c) => !runnable.includes(c)).map((c) => c.room_version)).toEqual(["8"]);
  });
  test.each(runnable.map((c) => [`${c.test} v${c.room_version} ${c.input_var} -> ${c.expected_var}`, c] as const))("%s", (_name, c) => {
    const input = structuredClone(c.input);
    expect(redact(input, rulesByVersion[c.room_version]!)).toEqual(c.expected_redacted);
    expect(input).toEqual(c.input); // not modified
  });
});

describe("Linearized Matrix redaction (LM draft \"Event Redactions\")", () => {
  const base = {
    room_id: "!abc:hub.example",
    sender: "@alice:part.example",
    origin_server_ts: 1681340188825,
    hub_server: "hub.example",
    hashes: { sha256: "h", lpdu: { sha256: "l" } },
    signatures: { "hub.example": { "ed25519:1": "s" } },
    auth_events: ["$a"],
    prev_events: ["$p"],
    depth: 12,
    origin: "part.example",
    event_id: "$e",
    membership: "join",
    prev_state: [],
    unsigned: { age: 1 },
  };

  test("keeps exactly the draft's top-level fields: hub_server kept; depth, origin, event_id, unsigned dropped", () => {
    const redacted = redact({ ...base, type: "m.room.message", state_key: "", content: { body: "hi" } }, linearizedRedaction);
    expect(redacted).toEqual({
      type: "m.room.message",
      room_id: "!abc:hub.example",
      sender: "@alice:part.example",
      state_key: "",
      content: {},
      origin_server_ts: 1681340188825,
      hashes: { sha256: "h", lpdu: { sha256: "l" } },
      signatures: { "hub.example": { "ed25519:1": "s" } },
      prev_events: ["$p"],
      auth_events: ["$a"],
      hub_server: "hub.example",
    });
  });

  test.each<[string, JsonObject, JsonObject]>([
    ["m.room.create", { room_version: "I.1", creator: "@a:b", "m.federate": false, extra: { x: 1 } }, { room_version: "I.1", creator: "@a:b", "m.federate": false, extra: { x: 1 } }],
    ["m.room.member", { membership: "join", displayname: "A", join_authorised_via_users_server: "@x:y" }, { membership: "join" }],
    ["m.room.join_rules", { join_rule: "restricted", allow: [{ type: "m.room_membership" }] }, { join_rule: "restricted" }],
    [
      "m.room.power_levels",
      { ban: 50, events: { a: 1 }, events_default: 0, kick: 50, redact: 50, state_default: 50, users: { "@a:b": 100 }, users_default: 0, invite: 0, notifications: { room: 50 } },
      { ban: 50, events: { a: 1 }, events_default: 0, kick: 50, redact: 50, state_default: 50, users: { "@a:b": 100 }, users_default: 0, invite: 0 },
    ],
    ["m.room.history_visibility", { history_visibility: "shared", other: 1 }, { history_visibility: "shared" }],
    ["m.room.redaction", { redacts: "$x", reason: "spam" }, {}],
    ["m.room.aliases", { aliases: ["#a:b"] }, {}],
    ["m.mls.commit", { commit: "AAAA" }, {}],
  ])("%s content", (type, content, expected) => {
    expect(redact({ ...base, type, state_key: "", content }, linearizedRedaction).content).toEqual(expected);
  });

  test("content is always present: absent or non-object content becomes {}", () => {
    expect(redact({ ...base, type: "m.room.create" }, linearizedRedaction).content).toEqual({});
    expect(redact({ ...base, type: "m.room.member", content: "x" }, linearizedRedaction).content).toEqual({});
    expect(redact({ ...base, type: "m.room.member", content: [1] }, linearizedRedaction).content).toEqual({});
  });

  test.each(["constructor", "__proto__", "toString", "hasOwnProperty"])(
    "an event type named like an Object.prototype member (%s) keeps no content instead of throwing",
    (type) => {
      expect(redact({ ...base, type, content: { a: 1 } }, linearizedRedaction).content).toEqual({});
      expect(redact({ ...base, type, content: { a: 1 } }, v11Redaction).content).toEqual({});
    },
  );

  test("is idempotent", () => {
    const event = { ...base, type: "m.room.member", state_key: "@alice:part.example", content: { membership: "join", displayname: "A" } };
    const once = redact(event, linearizedRedaction);
    expect(redact(once, linearizedRedaction)).toEqual(once);
  });

  test("both LM room versions use it, with RFC 8785 key order", () => {
    for (const id of [LINEARIZED_02, LINEARIZED_I1]) {
      expect(getRoomVersion(id)?.redaction).toBe(linearizedRedaction);
      expect(getRoomVersion(id)?.canonicalJsonKeyOrder).toBe("utf16");
    }
  });
});

describe("v11 nested keep paths", () => {
  test("m.room.member keeps only third_party_invite.signed", () => {
    const content = { membership: "invite", third_party_invite: { display_name: "x", signed: { token: "t" } }, displayname: "A" };
    expect(redact({ type: "m.room.member", content }, v11Redaction).content).toEqual({
      membership: "invite",
      third_party_invite: { signed: { token: "t" } },
    });
    expect(redact({ type: "m.room.member", content: { membership: "join", third_party_invite: "x" } }, v11Redaction).content).toEqual({
      membership: "join",
    });
  });
});
