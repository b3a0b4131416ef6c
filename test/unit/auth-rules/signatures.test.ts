// LM auth rules 1 and 2 with real Ed25519 signatures: the sender's server signs the event (or
// the LPDU when a hub completed it) and `hub_server` signs the whole event.
import { authorize, type SignatureInput } from "../../../src/auth-rules/index.js";
import { nativeEd25519 } from "../../../src/core/ed25519.js";
import type { Pdu } from "../../../src/core/events.js";
import type { JsonObject } from "../../../src/core/json.js";
import { getRoomVersion, LINEARIZED_02, type RoomVersionRules } from "../../../src/core/room-versions.js";
import { lpduFormOf, signEvent, type SigningKey, type VerifyKeyLookup } from "../../../src/core/signing.js";
import { ALICE, BOB, HUB, createEvent, message, room, stateOf, withAuthEvents } from "./builders.js";

const LM = getRoomVersion(LINEARIZED_02) as RoomVersionRules;
const REMOTE = "remote.example";

const keyFromSeed = (byte: number): SigningKey => ({ keyId: "ed25519:1", signer: nativeEd25519.signerFromSeed(new Uint8Array(32).fill(byte)) });
const hubKey = keyFromSeed(1);
const remoteKey = keyFromSeed(2);
const rogueKey = keyFromSeed(3);

/** Knows hub.example's and remote.example's `ed25519:1`. */
const lookup: VerifyKeyLookup = (entity, keyId) => {
  const key = entity === HUB ? hubKey : entity === REMOTE ? remoteKey : undefined;
  return key !== undefined && keyId === key.keyId ? nativeEd25519.verifierFromPublicKey(key.signer.publicKey) : undefined;
};
const KEYS: SignatureInput = { kind: "keys", lookup };

const state = room();
// Pdu is a JSON object; the interface lacks JsonObject's index signature.
const asJson = (event: Pdu): JsonObject => event as unknown as JsonObject;
const sign = (event: Pdu, entity: string, key: SigningKey): Pdu => signEvent(asJson(event), entity, key, LM) as unknown as Pdu;

/** A message from Alice, created on the hub itself: one signature by hub.example. */
const hubMessage = withAuthEvents(message(ALICE), state);
/** Bob's message as the hub completed it from his LPDU: `hub_server` set, hashes.lpdu present. */
const completed: Pdu = withAuthEvents({ ...message(BOB), hub_server: HUB, hashes: { sha256: "fake", lpdu: { sha256: "fakelpdu" } } }, state);
/** Bob's server's signature over the LPDU form, copied onto the completed PDU as the hub does. */
const withLpduSignature = (event: Pdu, key: SigningKey): Pdu => {
  const lpdu = signEvent(lpduFormOf(asJson(event)), REMOTE, key, LM);
  return { ...event, signatures: { ...event.signatures, ...(lpdu.signatures as Pdu["signatures"]) } };
};
const fullyCompleted = sign(withLpduSignature(completed, remoteKey), HUB, hubKey);

interface SignatureCase {
  rule: string;
  name: string;
  event: Pdu;
  expect: "allow" | "reject";
  signatures?: SignatureInput;
}

const cases: SignatureCase[] = [
  { rule: "1", name: "hub-created event signed by the sender's server", event: sign(hubMessage, HUB, hubKey), expect: "allow" },
  { rule: "1", name: "hub_server naming the sender's own server: one signature covers it",
    event: sign({ ...hubMessage, hub_server: HUB }, HUB, hubKey), expect: "allow" },
  { rule: "1", name: "unsigned event", event: hubMessage, expect: "reject" },
  { rule: "1", name: "signed only by a key the lookup does not know",
    event: sign(hubMessage, HUB, { ...rogueKey, keyId: "ed25519:other" }), expect: "reject" },
  { rule: "1", name: "signed by another key under the sender server's key ID", event: sign(hubMessage, HUB, rogueKey), expect: "reject" },
  { rule: "1", name: "field changed after signing", event: { ...sign(hubMessage, HUB, hubKey), origin_server_ts: 1 }, expect: "reject" },
  { rule: "1", name: "signed by a server other than the sender's", event: sign(withAuthEvents(message(BOB), state), HUB, hubKey), expect: "reject" },
  { rule: "1", name: "unsigned create event fails rule 1 before rule 3", event: createEvent(), expect: "reject" },
  { rule: "2", name: "LPDU signed by the sender's server and PDU by the hub", event: fullyCompleted, expect: "allow" },
  { rule: "1", name: "hub signed but the LPDU signature is missing", event: sign(completed, HUB, hubKey), expect: "reject" },
  { rule: "1", name: "sender's server signed the full PDU, not the LPDU",
    event: sign(sign(completed, REMOTE, remoteKey), HUB, hubKey), expect: "reject" },
  { rule: "2", name: "LPDU signed but the hub's signature is missing", event: withLpduSignature(completed, remoteKey), expect: "reject" },
  { rule: "2", name: "hub signature by the wrong key", event: sign(withLpduSignature(completed, remoteKey), HUB, rogueKey), expect: "reject" },
  { rule: "2", name: "hub changed auth_events after signing (the LPDU does not cover them)",
    event: { ...fullyCompleted, auth_events: ["$create"] }, expect: "reject" },
  { rule: "1", name: "kind verified: the pipeline already checked signatures", event: hubMessage, expect: "allow", signatures: { kind: "verified" } },
];

describe.each(cases)("rule $rule: $name", (c) => {
  test(`is ${c.expect === "allow" ? "allowed" : `rejected by rule ${c.rule}`}`, () => {
    const verdict = authorize(c.event, state, LM, c.signatures ?? KEYS);
    if (c.expect === "allow") expect(verdict).toEqual({ ok: true });
    else expect(verdict).toMatchObject({ ok: false, rule: c.rule });
  });
});

test("a valid create event with real signatures is allowed by rule 3.4", () => {
  expect(authorize(sign(createEvent(), HUB, hubKey), stateOf(), LM, KEYS)).toEqual({ ok: true });
});
