import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { checkContentHash, computeContentHash, computeEventId, computeReferenceHash } from "../../../src/core/hashes.js";
import { isValidEventId } from "../../../src/core/identifiers.js";
import type { JsonObject } from "../../../src/core/json.js";
import { getRoomVersion, LINEARIZED_02, type RoomVersionRules } from "../../../src/core/room-versions.js";
import { lpduFormOf } from "../../../src/core/signing.js";

const lm = getRoomVersion(LINEARIZED_02) as RoomVersionRules;
const v10 = getRoomVersion("10") as RoomVersionRules;

interface EventCase {
  name: string;
  kind: string;
  input: JsonObject;
  expected?: JsonObject & { hashes: { sha256: string } };
  expected_hashes_sha256?: string;
}
const signingVectors = JSON.parse(readFileSync(new URL("../../fixtures/signing-vectors.json", import.meta.url), "utf8")) as {
  cases: EventCase[];
  supplementary_signing: EventCase[];
};

/** An LPDU as a participant sends it, and the PDU a hub completes from it. */
function lpduAndPdu(): { lpdu: JsonObject; pdu: JsonObject } {
  const partial: JsonObject = {
    room_id: "!room:hub.example",
    type: "m.room.message",
    sender: "@alice:part.example",
    origin_server_ts: 1681340188825,
    hub_server: "hub.example",
    content: { body: "hello", msgtype: "m.text" },
  };
  const lpdu = { ...partial, hashes: { lpdu: { sha256: computeContentHash(partial, "lpdu", lm) } } };
  const incomplete = { ...lpdu, auth_events: ["$create", "$member"], prev_events: ["$prev"] };
  const pdu = { ...incomplete, hashes: { ...lpdu.hashes, sha256: computeContentHash(incomplete, "pdu", lm) } };
  return { lpdu, pdu };
}

describe("content hash (LM draft \"Content Hash Calculation\")", () => {
  test("matches the Matrix spec's and implementations' event vectors (classic events, v10 rules)", () => {
    const withHash = [...signingVectors.cases, ...signingVectors.supplementary_signing].filter((c) => c.kind === "event");
    expect(withHash.length).toBeGreaterThanOrEqual(7);
    for (const c of withHash) {
      const expected = c.expected?.hashes.sha256 ?? c.expected_hashes_sha256;
      expect(computeContentHash(c.input, "pdu", v10)).toBe(expected);
    }
  });

  test("the hand-computed form: drop signatures, unsigned and hashes but hashes.lpdu, canonical JSON, SHA-256, unpadded base64", () => {
    const { pdu } = lpduAndPdu();
    const event = { ...pdu, signatures: { x: { "ed25519:1": "y" } }, unsigned: { age: 5 } };
    const canonical =
      '{"auth_events":["$create","$member"],"content":{"body":"hello","msgtype":"m.text"},' +
      `"hashes":{"lpdu":{"sha256":"${(pdu.hashes as { lpdu: { sha256: string } }).lpdu.sha256}"}},` +
      '"hub_server":"hub.example","origin_server_ts":1681340188825,"prev_events":["$prev"],' +
      '"room_id":"!room:hub.example","sender":"@alice:part.example","type":"m.room.message"}';
    const expected = createHash("sha256").update(canonical).digest("base64").replace(/=+$/, "");
    expect(computeContentHash(event, "pdu", lm)).toBe(expected);
  });

  test("PDU and LPDU hashes differ as specified", () => {
    const { lpdu, pdu } = lpduAndPdu();
    const lpduHash = (lpdu.hashes as { lpdu: { sha256: string } }).lpdu.sha256;
    // The LPDU hash drops `hashes` entirely, so it is the same whether or not hashes.lpdu is set.
    expect(computeContentHash(lpdu, "lpdu", lm)).toBe(lpduHash);
    expect(computeContentHash(lpduFormOf(pdu), "lpdu", lm)).toBe(lpduHash);
    // The PDU hash covers hashes.lpdu, and auth/prev events.
    expect(computeContentHash(pdu, "pdu", lm)).not.toBe(computeContentHash(pdu, "lpdu", lm));
    const otherLpduHash = { ...pdu, hashes: { sha256: "x", lpdu: { sha256: "other" } } };
    expect(computeContentHash(otherLpduHash, "pdu", lm)).not.toBe(computeContentHash(pdu, "pdu", lm));
    expect(computeContentHash(otherLpduHash, "lpdu", lm)).toBe(computeContentHash(pdu, "lpdu", lm));
    // hashes.sha256, signatures and unsigned are never covered.
    const noise = { ...pdu, hashes: { ...(pdu.hashes as JsonObject), sha256: "changed" }, signatures: {}, unsigned: { a: 1 } };
    expect(computeContentHash(noise, "pdu", lm)).toBe(computeContentHash(pdu, "pdu", lm));
  });

  test("checkContentHash accepts a well-formed LPDU and PDU, and reports a mismatch", () => {
    const { lpdu, pdu } = lpduAndPdu();
    expect(checkContentHash(lpdu, "lpdu", lm)).toEqual({ ok: true });
    expect(checkContentHash(pdu, "lpdu", lm)).toEqual({ ok: true });
    expect(checkContentHash(pdu, "pdu", lm)).toEqual({ ok: true });
    const tampered = { ...pdu, content: { body: "changed", msgtype: "m.text" } };
    expect(checkContentHash(tampered, "pdu", lm).ok).toBe(false);
    expect(checkContentHash(tampered, "lpdu", lm).ok).toBe(false);
    // The hub can change auth/prev events without breaking the LPDU hash, but not the PDU hash.
    const reordered = { ...pdu, prev_events: ["$other"] };
    expect(checkContentHash(reordered, "lpdu", lm)).toEqual({ ok: true });
    expect(checkContentHash(reordered, "pdu", lm).ok).toBe(false);
    // A padded hash names the same bytes.
    const sha256 = (pdu.hashes as { sha256: string }).sha256;
    expect(checkContentHash({ ...pdu, hashes: { ...(pdu.hashes as JsonObject), sha256: `${sha256}=` } }, "pdu", lm)).toEqual({ ok: true });
  });

  test("checkContentHash returns failures for malformed events instead of throwing", () => {
    const { pdu } = lpduAndPdu();
    const cases: unknown[] = [
      null,
      "event",
      [],
      { ...pdu, hashes: undefined },
      { ...pdu, hashes: "x" },
      { ...pdu, hashes: { sha256: 1 } },
      { ...pdu, hashes: { sha256: "x", lpdu: "y" } },
      { ...pdu, content: { n: 1.5 } },
      { ...pdu, content: { s: "\uD800" } },
    ];
    for (const event of cases) {
      expect(checkContentHash(event as JsonObject, "pdu", lm).ok).toBe(false);
      expect(checkContentHash(event as JsonObject, "lpdu", lm).ok).toBe(false);
    }
  });
});

describe("reference hash and event ID (LM draft \"Reference Hash Calculation\", \"Events\")", () => {
  test("the hand-computed form: redact, drop signatures and unsigned, canonical JSON, SHA-256, URL-safe unpadded base64", () => {
    const event: JsonObject = {
      room_id: "!room:hub.example",
      type: "m.room.member",
      state_key: "@bob:hub.example",
      sender: "@bob:hub.example",
      origin_server_ts: 5,
      content: { membership: "join", displayname: "Bob" },
      hashes: { sha256: "abc" },
      signatures: { "hub.example": { "ed25519:1": "sig" } },
      unsigned: { age: 1 },
      auth_events: [],
      prev_events: ["$p"],
      depth: 3,
    };
    const canonical =
      '{"auth_events":[],"content":{"membership":"join"},"hashes":{"sha256":"abc"},"origin_server_ts":5,' +
      '"prev_events":["$p"],"room_id":"!room:hub.example","sender":"@bob:hub.example","state_key":"@bob:hub.example","type":"m.room.member"}';
    const expected = createHash("sha256").update(canonical).digest("base64url");
    expect(computeReferenceHash(event, lm)).toBe(expected);
    expect(computeEventId(event, lm)).toBe(`$${expected}`);
  });

  test("event IDs have the draft's shape and ignore what redaction drops", () => {
    const { pdu } = lpduAndPdu();
    const id = computeEventId(pdu, lm);
    expect(id).toMatch(/^\$[A-Za-z0-9_-]{43}$/);
    expect(isValidEventId(id)).toBe(true);
    expect(computeEventId({ ...pdu, content: { body: "other" }, signatures: { a: {} }, unsigned: { b: 1 }, depth: 9 }, lm)).toBe(id);
    expect(computeEventId({ ...pdu, prev_events: ["$x"] }, lm)).not.toBe(id);
    expect(computeEventId({ ...pdu, hashes: { sha256: "x" } }, lm)).not.toBe(id);
  });

  test("LM (RFC 8785) and classic (code point) key order give different IDs when they sort differently", () => {
    const event: JsonObject = { type: "m.room.create", room_id: "!r:s", sender: "@a:s", content: { "\u{1F600}": 1, "\uE000": 2 } };
    const v11 = getRoomVersion("11") as RoomVersionRules;
    const utf16Like: RoomVersionRules = { ...v11, canonicalJsonKeyOrder: "utf16" };
    expect(computeReferenceHash(event, v11)).not.toBe(computeReferenceHash(event, utf16Like));
    const plain: JsonObject = { ...event, content: { a: 1 } };
    expect(computeReferenceHash(plain, v11)).toBe(computeReferenceHash(plain, utf16Like));
  });
});
