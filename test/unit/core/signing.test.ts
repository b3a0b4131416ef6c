import { readFileSync } from "node:fs";
import fc from "fast-check";
import { decodeBase64 } from "../../../src/core/base64.js";
import { nativeEd25519, nobleEd25519, type Ed25519Backend, type Ed25519Verifier } from "../../../src/core/ed25519.js";
import { computeContentHash } from "../../../src/core/hashes.js";
import type { JsonObject, JsonValue } from "../../../src/core/json.js";
import { getRoomVersion, LINEARIZED_02, LINEARIZED_I1, type RoomVersionRules } from "../../../src/core/room-versions.js";
import {
  checkEventSignatures,
  lpduFormOf,
  signEvent,
  signJson,
  verifyEventSignatures,
  verifyJsonSignatures,
  type SigningKey,
  type VerifyKeyLookup,
} from "../../../src/core/signing.js";

interface SigningCase {
  name: string;
  kind: "json" | "event" | "event_verify" | "json_verify";
  room_version?: string;
  input: JsonObject;
  expected?: JsonObject;
  expected_hashes_sha256?: string;
  expected_signature?: string;
  expect_valid?: boolean;
  reason?: string | null;
}
const vectors = JSON.parse(readFileSync(new URL("../../fixtures/signing-vectors.json", import.meta.url), "utf8")) as {
  signing_key_seed_unpadded_base64: string;
  server_name: string;
  key_id: string;
  cases: SigningCase[];
  supplementary_signing: SigningCase[];
  supplementary_verification: SigningCase[];
};

const lm = getRoomVersion(LINEARIZED_02) as RoomVersionRules;
// The vectors are classic (room v1-style) events. Their redaction and key order are those of
// room version 10 (v1–v10 differ only in keep-lists that these events do not exercise).
const classic = getRoomVersion("10") as RoomVersionRules;
const specSeed = decodeBase64(vectors.signing_key_seed_unpadded_base64) as Uint8Array;

function keyFor(backend: Ed25519Backend, seed: Uint8Array, keyId = "ed25519:1"): { key: SigningKey; verifier: Ed25519Verifier } {
  const signer = backend.signerFromSeed(seed);
  return { key: { keyId, signer }, verifier: backend.verifierFromPublicKey(signer.publicKey) as Ed25519Verifier };
}

/** A key ring of (server, key ID) -> verifier. */
function lookupOf(entries: Array<[string, string, Ed25519Verifier]>): VerifyKeyLookup {
  return (entity, keyId) => entries.find(([e, k]) => e === entity && k === keyId)?.[2];
}

describe.each<[string, Ed25519Backend]>([
  ["native", nativeEd25519],
  ["noble", nobleEd25519],
])("Matrix signing vectors (%s backend)", (_name, backend) => {
  const { key, verifier } = keyFor(backend, specSeed, vectors.key_id);
  const lookup = lookupOf([[vectors.server_name, vectors.key_id, verifier]]);

  test.each(vectors.cases.filter((c) => c.kind === "json").map((c) => [c.name, c] as const))("spec %s", (_n, c) => {
    const signed = signJson(c.input, vectors.server_name, key, "codepoint");
    expect(signed).toEqual(c.expected);
    expect(c.input).not.toHaveProperty("signatures.domain"); // input not modified
    expect(verifyJsonSignatures(signed, vectors.server_name, lookup, "codepoint")).toEqual({ ok: true });
  });

  // Events: set hashes.sha256 to the content hash, then sign the redacted event.
  const eventCases = [...vectors.cases, ...vectors.supplementary_signing].filter((c) => c.kind === "event");
  test.each(eventCases.map((c, i) => [`${c.name} #${i}`, c] as const))("%s", (_n, c) => {
    const hashed: JsonObject = { ...c.input, hashes: { sha256: computeContentHash(c.input, "pdu", classic) } };
    const signed = signEvent(hashed, vectors.server_name, key, classic);
    if (c.expected) {
      expect(signed).toEqual(c.expected);
    } else {
      expect(signed.hashes).toEqual({ sha256: c.expected_hashes_sha256 });
      expect(signed.signatures).toEqual({ [vectors.server_name]: { [vectors.key_id]: c.expected_signature } });
    }
    expect(verifyEventSignatures(signed, vectors.server_name, lookup, classic)).toEqual({ ok: true });
  });

  const verification = vectors.supplementary_verification;
  test.each(verification.filter((c) => c.kind === "event_verify").map((c, i) => [`${c.reason ?? "valid"} #${i}`, c] as const))(
    "gmsl event verification: %s",
    (_n, c) => {
      expect(verifyEventSignatures(c.input, vectors.server_name, lookup, classic).ok).toBe(c.expect_valid);
    },
  );

  const padded = (c: SigningCase) => JSON.stringify(c.input).includes('=="');
  test.each(verification.filter((c) => c.kind === "json_verify" && !padded(c)).map((c, i) => [`${c.reason ?? "valid"} #${i}`, c] as const))(
    "gmsl JSON verification: %s",
    (_n, c) => {
      const result = verifyJsonSignatures(c.input, vectors.server_name, lookup, "codepoint");
      expect(result.ok).toBe(c.expect_valid);
      if (!result.ok) expect(result.reason.length).toBeGreaterThan(0);
    },
  );

  test("a padded base64 signature is accepted: a deliberate difference from gomatrixserverlib", () => {
    // The LM draft ("Unpadded Base64") says implementations SHOULD accept padded input; gmsl
    // rejects it. The padded signature is the spec's valid signature of {} with "==" appended.
    const cases = verification.filter((c) => c.kind === "json_verify" && padded(c));
    expect(cases).toHaveLength(1);
    expect(cases[0]!.expect_valid).toBe(false);
    expect(verifyJsonSignatures(cases[0]!.input, vectors.server_name, lookup, "codepoint")).toEqual({ ok: true });
  });
});

describe("verifyJsonSignatures", () => {
  const { key, verifier } = keyFor(nativeEd25519, specSeed);
  const other = keyFor(nativeEd25519, new Uint8Array(32).fill(7), "ed25519:2");
  const lookup = lookupOf([
    ["domain", "ed25519:1", verifier],
    ["domain", "ed25519:2", other.verifier],
  ]);

  test("ignores unknown key IDs but needs at least one known one; every known one must verify", () => {
    const signed = signJson<JsonObject>({ a: 1 }, "domain", key, "utf16");
    const withUnknown = { ...signed, signatures: { domain: { ...(signed.signatures as { domain: JsonObject }).domain, "ed25519:zzz": "!!!" } } };
    expect(verifyJsonSignatures(withUnknown, "domain", lookup, "utf16")).toEqual({ ok: true });
    const both = signJson(signed, "domain", other.key, "utf16");
    expect(Object.keys((both.signatures as { domain: JsonObject }).domain)).toEqual(["ed25519:1", "ed25519:2"]);
    expect(verifyJsonSignatures(both, "domain", lookup, "utf16")).toEqual({ ok: true });
    // A second known key whose signature is wrong fails the whole check.
    const wrongSecond = { ...both, signatures: { domain: { ...(both.signatures as { domain: JsonObject }).domain, "ed25519:2": (signed.signatures as { domain: { "ed25519:1": string } }).domain["ed25519:1"] } } };
    expect(verifyJsonSignatures(wrongSecond, "domain", lookup, "utf16").ok).toBe(false);
  });

  test("unsigned and other entities' signatures are not covered; everything else is", () => {
    const signed = signJson<JsonObject>({ a: 1, unsigned: { age: 1 } }, "domain", key, "utf16");
    expect(signed.unsigned).toEqual({ age: 1 });
    const plus = { ...signed, unsigned: { age: 2 }, signatures: { ...(signed.signatures as JsonObject), elsewhere: { "ed25519:1": "x" } } };
    expect(verifyJsonSignatures(plus, "domain", lookup, "utf16")).toEqual({ ok: true });
    expect(verifyJsonSignatures({ ...signed, a: 2 }, "domain", lookup, "utf16").ok).toBe(false);
  });

  test("signing keeps other signatures and replaces only its own", () => {
    const signed = signJson({ a: 1, signatures: { x: { "ed25519:9": "s" }, domain: { "ed25519:old": "t" } } }, "domain", key, "utf16");
    expect(signed.signatures).toEqual({
      x: { "ed25519:9": "s" },
      domain: { "ed25519:old": "t", "ed25519:1": expect.any(String) as string },
    });
    // Ill-typed existing signatures are replaced rather than crashing.
    expect(signJson({ signatures: "bad" }, "domain", key, "utf16").signatures).toEqual({ domain: { "ed25519:1": expect.any(String) as string } });
  });

  test.each<[string, unknown]>([
    ["missing signatures", { a: 1 }],
    ["signatures not an object", { signatures: [] }],
    ["signatures null", { signatures: null }],
    ["no entry for the entity", { signatures: { other: { "ed25519:1": "x" } } }],
    ["entity entry not an object", { signatures: { domain: "x" } }],
    ["entity entry empty", { signatures: { domain: {} } }],
    ["signature not a string", { signatures: { domain: { "ed25519:1": 5 } } }],
    ["signature not base64", { signatures: { domain: { "ed25519:1": "not base64!" } } }],
    ["signature of the wrong length", { signatures: { domain: { "ed25519:1": "AAAA" } } }],
    ["only unknown key IDs", { signatures: { domain: { "ed25519:unknown": "AAAA" } } }],
    ["not an object", "event"],
    ["null", null],
    ["a float in the object", { n: 0.5, signatures: { domain: { "ed25519:1": "A".repeat(86) } } }],
  ])("%s fails without throwing", (_n, object) => {
    const result = verifyJsonSignatures(object as JsonObject, "domain", lookup, "utf16");
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toEqual(expect.any(String));
  });
});

// --- Linearized Matrix events: hub-local and LPDU-completed -------------------------------------

const hubKey = keyFor(nativeEd25519, new Uint8Array(32).fill(1));
const participantKey = keyFor(nativeEd25519, new Uint8Array(32).fill(2));
const strangerKey = keyFor(nativeEd25519, new Uint8Array(32).fill(3));
const lmLookup = lookupOf([
  ["hub.example", "ed25519:1", hubKey.verifier],
  ["part.example", "ed25519:1", participantKey.verifier],
  ["stranger.example", "ed25519:1", strangerKey.verifier],
]);

interface EventFields {
  type: string;
  state_key?: string;
  content: JsonObject;
  origin_server_ts: number;
}

/** What a participant does: build the LPDU, hash it, sign it (LM draft "Linearized PDU"). */
function participantLpdu(fields: EventFields, sender = "@alice:part.example"): JsonObject {
  const partial: JsonObject = { room_id: "!room:hub.example", sender, hub_server: "hub.example", ...fields } as JsonObject;
  const hashed = { ...partial, hashes: { lpdu: { sha256: computeContentHash(partial, "lpdu", lm) } } };
  return signEvent(hashed, "part.example", participantKey.key, lm);
}

/** What the hub does with an LPDU: add auth/prev events, hash, sign. */
function hubComplete(lpdu: JsonObject): JsonObject {
  const incomplete = { ...lpdu, auth_events: ["$create", "$power", "$member"], prev_events: ["$prev"] };
  const hashed = { ...incomplete, hashes: { ...(lpdu.hashes as JsonObject), sha256: computeContentHash(incomplete, "pdu", lm) } };
  return signEvent(hashed, "hub.example", hubKey.key, lm);
}

/** An event created on the hub itself: no hub_server, one signature by the hub (sender's server). */
function hubLocal(fields: EventFields): JsonObject {
  const event: JsonObject = {
    room_id: "!room:hub.example",
    sender: "@bob:hub.example",
    ...fields,
    auth_events: ["$create"],
    prev_events: ["$prev"],
  } as JsonObject;
  return signEvent({ ...event, hashes: { sha256: computeContentHash(event, "pdu", lm) } }, "hub.example", hubKey.key, lm);
}

const message: EventFields = { type: "m.room.message", content: { body: "hi", msgtype: "m.text" }, origin_server_ts: 1000 };

describe("checkEventSignatures (LM auth rules 1 and 2, receive step 2)", () => {
  test.each([LINEARIZED_02, LINEARIZED_I1])("an LPDU-completed event passes (%s)", (version) => {
    const pdu = hubComplete(participantLpdu(message));
    expect(Object.keys(pdu.signatures as JsonObject).sort()).toEqual(["hub.example", "part.example"]);
    expect(checkEventSignatures(pdu, lmLookup, getRoomVersion(version) as RoomVersionRules)).toEqual({ ok: true });
  });

  test("the sender's server signature covers the LPDU form, not the whole event", () => {
    const lpdu = participantLpdu(message);
    const pdu = hubComplete(lpdu);
    expect(verifyEventSignatures(lpduFormOf(pdu), "part.example", lmLookup, lm)).toEqual({ ok: true });
    expect(verifyEventSignatures(pdu, "part.example", lmLookup, lm).ok).toBe(false);
    // The LPDU form is the LPDU the participant sent, plus the hub's signature.
    const { signatures: _s, ...form } = lpduFormOf(pdu);
    const { signatures: _t, ...sent } = lpdu;
    expect(form).toEqual(sent);
  });

  test("a hub-local event without hub_server needs only the sender's server", () => {
    expect(checkEventSignatures(hubLocal(message), lmLookup, lm)).toEqual({ ok: true });
  });

  test("hub_server equal to the sender's server: one signature over the whole event", () => {
    const event: JsonObject = { room_id: "!room:hub.example", sender: "@bob:hub.example", hub_server: "hub.example", ...message, auth_events: [], prev_events: [] } as JsonObject;
    const signed = signEvent({ ...event, hashes: { sha256: "x", lpdu: { sha256: "y" } } }, "hub.example", hubKey.key, lm);
    expect(checkEventSignatures(signed, lmLookup, lm)).toEqual({ ok: true });
  });

  test("missing hub signature fails rule 2; missing sender signature fails rule 1", () => {
    const pdu = hubComplete(participantLpdu(message));
    const signatures = pdu.signatures as JsonObject;
    const noHub = { ...pdu, signatures: { "part.example": signatures["part.example"] as JsonValue } };
    expect(checkEventSignatures(noHub, lmLookup, lm)).toMatchObject({ ok: false, rule: "2" });
    const noSender = { ...pdu, signatures: { "hub.example": signatures["hub.example"] as JsonValue } };
    expect(checkEventSignatures(noSender, lmLookup, lm)).toMatchObject({ ok: false, rule: "1" });
    const hubLocalUnsigned = { ...hubLocal(message), signatures: {} };
    expect(checkEventSignatures(hubLocalUnsigned, lmLookup, lm)).toMatchObject({ ok: false, rule: "1" });
  });

  test("a participant signature over the whole PDU instead of the LPDU fails rule 1", () => {
    const pdu = hubComplete(participantLpdu(message));
    const resigned = signEvent(pdu, "part.example", participantKey.key, lm);
    expect(checkEventSignatures(resigned, lmLookup, lm)).toMatchObject({ ok: false, rule: "1" });
  });

  test("the hub cannot be impersonated by another server's key", () => {
    const lpdu = participantLpdu(message);
    const incomplete = { ...lpdu, auth_events: [], prev_events: [] };
    const byStranger = signEvent(incomplete, "hub.example", strangerKey.key, lm);
    expect(checkEventSignatures(byStranger, lmLookup, lm)).toMatchObject({ ok: false, rule: "2" });
  });

  test("other servers' signatures are not considered, valid or not", () => {
    const pdu = hubComplete(participantLpdu(message));
    const withGarbage = { ...pdu, signatures: { ...(pdu.signatures as JsonObject), "stranger.example": { "ed25519:1": "!!" }, "evil.example": 5 } };
    expect(checkEventSignatures(withGarbage, lmLookup, lm)).toEqual({ ok: true });
    const strangerSigned = signEvent(hubLocal(message), "stranger.example", strangerKey.key, lm);
    expect(checkEventSignatures(strangerSigned, lmLookup, lm)).toEqual({ ok: true });
  });

  test.each<[string, (pdu: JsonObject) => unknown, "1" | "2"]>([
    ["not an object", () => "event", "1"],
    ["null", () => null, "1"],
    ["no sender", ({ sender: _s, ...rest }) => rest, "1"],
    ["sender not a string", (pdu) => ({ ...pdu, sender: 42 }), "1"],
    ["sender without a server", (pdu) => ({ ...pdu, sender: "@alice" }), "1"],
    ["hub_server not a string", (pdu) => ({ ...pdu, hub_server: ["hub.example"] }), "2"],
    ["no signatures", ({ signatures: _s, ...rest }) => rest, "1"],
    ["signatures not an object", (pdu) => ({ ...pdu, signatures: "x" }), "1"],
    ["sender's signatures ill-typed", (pdu) => ({ ...pdu, signatures: { ...(pdu.signatures as JsonObject), "part.example": [] } }), "1"],
    ["hub's signatures ill-typed", (pdu) => ({ ...pdu, signatures: { ...(pdu.signatures as JsonObject), "hub.example": { "ed25519:1": 7 } } }), "2"],
    ["only unknown key IDs", (pdu) => ({ ...pdu, signatures: { "part.example": { "ed25519:x": "AAAA" }, "hub.example": { "ed25519:x": "AAAA" } } }), "1"],
    ["bad base64", (pdu) => ({ ...pdu, signatures: { ...(pdu.signatures as JsonObject), "hub.example": { "ed25519:1": "***" } } }), "2"],
    ["hashes ill-typed", (pdu) => ({ ...pdu, hashes: "x" }), "1"],
    ["a float in a covered field", (pdu) => ({ ...pdu, origin_server_ts: 0.5 }), "1"],
  ])("malformed: %s fails without throwing", (_n, mutate, rule) => {
    const pdu = hubComplete(participantLpdu(message));
    const result = checkEventSignatures(mutate(pdu) as JsonObject, lmLookup, lm);
    expect(result).toMatchObject({ ok: false, rule });
    if (!result.ok) expect(result.reason).toEqual(expect.any(String));
  });
});

describe("properties", () => {
  const eventFields: fc.Arbitrary<EventFields> = fc.record(
    {
      type: fc.constantFrom("m.room.message", "m.room.member", "m.room.power_levels", "m.room.create", "org.example.custom"),
      state_key: fc.string(),
      content: fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string(), fc.integer(), fc.boolean()), { maxKeys: 4 }),
      origin_server_ts: fc.nat(),
    },
    { requiredKeys: ["type", "content", "origin_server_ts"] },
  );

  /** Paths the signatures cover (after redaction), each with a way to change it. */
  const coveredChanges: Array<[string, (event: JsonObject, text: string) => JsonObject]> = [
    ["type", (e, t) => ({ ...e, type: `${String(e.type)}${t}x` })],
    ["room_id", (e, t) => ({ ...e, room_id: `!r${t.length}x:hub.example` })],
    ["sender", (e) => ({ ...e, sender: "@mallory:part.example" })],
    ["state_key", (e, t) => ({ ...e, state_key: typeof e.state_key === "string" ? `${e.state_key}${t}x` : t })],
    ["origin_server_ts", (e) => ({ ...e, origin_server_ts: (e.origin_server_ts as number) + 1 })],
    ["hub_server", (e) => ({ ...e, hub_server: "stranger.example" })],
    ["hub_server removed", ({ hub_server: _h, ...rest }) => rest],
    ["hashes.sha256", (e, t) => ({ ...e, hashes: { ...(e.hashes as JsonObject), sha256: `${t}x` } })],
    ["hashes.lpdu.sha256", (e, t) => ({ ...e, hashes: { ...(e.hashes as JsonObject), lpdu: { sha256: `${t}x` } } })],
    ["auth_events", (e) => ({ ...e, auth_events: [...(e.auth_events as string[]), "$extra"] })],
    ["prev_events", (e) => ({ ...e, prev_events: ["$other"] })],
    ["a field redaction keeps in member content", (e) => ({ ...e, type: "m.room.member", content: { ...(e.content as JsonObject), membership: ["changed"] } })],
  ];

  test("any change to a covered field of an LPDU-completed event fails verification", () => {
    fc.assert(
      fc.property(eventFields, fc.integer({ min: 0, max: coveredChanges.length - 1 }), fc.string(), (fields, which, text) => {
        const pdu = hubComplete(participantLpdu(fields));
        expect(checkEventSignatures(pdu, lmLookup, lm)).toEqual({ ok: true });
        const [, change] = coveredChanges[which]!;
        const changed = change(pdu, text);
        expect(checkEventSignatures(changed, lmLookup, lm).ok).toBe(false);
      }),
      { numRuns: 150 },
    );
  });

  test("any change to a covered field of a hub-local event fails verification", () => {
    const applicable = coveredChanges.filter(([name]) => !name.startsWith("hub_server") && name !== "hashes.lpdu.sha256");
    fc.assert(
      fc.property(eventFields, fc.integer({ min: 0, max: applicable.length - 1 }), fc.string(), (fields, which, text) => {
        const event = hubLocal(fields);
        expect(checkEventSignatures(event, lmLookup, lm)).toEqual({ ok: true });
        const [, change] = applicable[which]!;
        expect(checkEventSignatures(change(event, text), lmLookup, lm).ok).toBe(false);
      }),
      { numRuns: 100 },
    );
  });

  test("changes redaction removes (unsigned, content of a message) keep signatures valid: the content hash guards those", () => {
    fc.assert(
      fc.property(fc.string(), fc.jsonValue().filter((v) => !JSON.stringify(v).includes(".")), (body, unsigned) => {
        const pdu = hubComplete(participantLpdu(message));
        const changed = { ...pdu, content: { body }, unsigned: { x: unsigned as JsonValue } };
        expect(checkEventSignatures(changed, lmLookup, lm)).toEqual({ ok: true });
      }),
      { numRuns: 50 },
    );
  });
});
