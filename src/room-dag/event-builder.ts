// Building events on both sides of an LM room (LM draft "Linearized PDU", "Receiving Events/PDUs"):
// a participant builds and signs an LPDU; the hub completes an LPDU into a PDU, or builds a PDU
// for one of its own users directly. All functions are pure: the timestamp comes in the draft.
import { selectAuthEvents } from "../auth-rules/auth-events.js";
import { encodeBase64 } from "../core/base64.js";
import type { Lpdu, Pdu, RoomEvent, RoomStateView } from "../core/events.js";
import { computeContentHash, eventIdOfSignedBytes } from "../core/hashes.js";
import { serverNameOf } from "../core/identifiers.js";
import type { JsonObject } from "../core/json.js";
import { redact } from "../core/redaction.js";
import type { RoomVersionRules } from "../core/room-versions.js";
import { signEvent, signedBytesOf, type SigningKey } from "../core/signing.js";

/** A server acting in a room: its name and current signing key. */
export interface ServerIdentity {
  readonly serverName: string;
  readonly key: SigningKey;
}

/** What a client asks for; the server adds everything else. */
export interface EventDraft {
  room_id: string;
  type: string;
  state_key?: string;
  sender: string;
  content: JsonObject;
  origin_server_ts: number;
}

/** The tip of the log and its current state: what the hub needs to place the next event. */
export interface RoomTip extends RoomStateView {
  readonly lastEvent: RoomEvent | undefined;
}

function senderServerMustBe(draft: { sender: string }, server: ServerIdentity): void {
  // A programming error, not a protocol outcome: the services only build events for local users.
  if (serverNameOf(draft.sender) !== server.serverName) {
    throw new Error(`${server.serverName} cannot build an event for ${draft.sender}`);
  }
}

function copyDraft(draft: EventDraft): EventDraft {
  const copy: EventDraft = {
    room_id: draft.room_id,
    type: draft.type,
    sender: draft.sender,
    content: draft.content,
    origin_server_ts: draft.origin_server_ts,
  };
  if (draft.state_key !== undefined) copy.state_key = draft.state_key;
  return copy;
}

/**
 * Participant side: the LPDU for `draft`, sent through `hubServer`. No `auth_events`, no
 * `prev_events`; `hashes.lpdu` is the LPDU content hash; signed by the participant's server.
 */
export function buildLpdu(draft: EventDraft, hubServer: string, origin: ServerIdentity, rules: RoomVersionRules): Lpdu {
  senderServerMustBe(draft, origin);
  const unhashed = { ...copyDraft(draft), hub_server: hubServer } as unknown as JsonObject;
  const lpdu = {
    ...unhashed,
    hashes: { lpdu: { sha256: computeContentHash(unhashed, "lpdu", rules) } },
    signatures: {},
  };
  return signEvent(lpdu, origin.serverName, origin.key, rules) as unknown as Lpdu;
}

/**
 * Hub side: completes a checked LPDU into a PDU placed after `tip.lastEvent`: auth events from the
 * current state, the one prev event, the content hash (keeping `hashes.lpdu`), the hub's signature
 * and the event ID. The participant's signature over the LPDU is kept as it came.
 */
export function completeLpdu(lpdu: Lpdu, tip: RoomTip, hub: ServerIdentity, rules: RoomVersionRules): RoomEvent {
  const pdu: Pdu = {
    room_id: lpdu.room_id,
    type: lpdu.type,
    sender: lpdu.sender,
    origin_server_ts: lpdu.origin_server_ts,
    hub_server: hub.serverName,
    content: lpdu.content,
    hashes: { sha256: "", lpdu: { sha256: lpdu.hashes.lpdu.sha256 } },
    // A copy the hub's signature is added to (not structuredClone: under jest's vm it makes objects
    // of another realm, which canonical JSON refuses as not plain).
    signatures: Object.fromEntries(Object.entries(lpdu.signatures).map(([server, keys]) => [server, { ...keys }])),
    auth_events: selectAuthEvents(lpdu, tip),
    prev_events: tip.lastEvent ? [tip.lastEvent.eventId] : [],
  };
  if (lpdu.state_key !== undefined) pdu.state_key = lpdu.state_key;
  return hashAndSign(pdu, hub, rules);
}

/**
 * Hub side: a PDU for one of the hub's own users. Such events carry no `hub_server` and no
 * `hashes.lpdu` (they never were LPDUs; the reference implementation does the same), and the
 * hub's signature is the sender's server signature.
 */
export function buildHubEvent(draft: EventDraft, tip: RoomTip, hub: ServerIdentity, rules: RoomVersionRules): RoomEvent {
  senderServerMustBe(draft, hub);
  const isCreate = draft.type === "m.room.create";
  const pdu: Pdu = {
    ...copyDraft(draft),
    hashes: { sha256: "" },
    signatures: {},
    auth_events: isCreate ? [] : selectAuthEvents(draft, tip),
    prev_events: !isCreate && tip.lastEvent ? [tip.lastEvent.eventId] : [],
  };
  return hashAndSign(pdu, hub, rules);
}

/**
 * Sets the content hash, signs and derives the event ID. The bytes signed (the redacted event
 * without `signatures`/`unsigned`) are exactly the bytes of the reference hash, so canonical JSON
 * is computed once for both.
 */
function hashAndSign(pdu: Pdu, hub: ServerIdentity, rules: RoomVersionRules): RoomEvent {
  const asJson = pdu as unknown as JsonObject;
  pdu.hashes.sha256 = computeContentHash(asJson, "pdu", rules);
  const bytes = signedBytesOf(redact(asJson, rules.redaction), rules.canonicalJsonKeyOrder);
  const signature = encodeBase64(hub.key.signer.sign(bytes));
  pdu.signatures[hub.serverName] = { ...pdu.signatures[hub.serverName], [hub.key.keyId]: signature };
  const eventId = eventIdOfSignedBytes(bytes);
  return { eventId, pdu };
}
