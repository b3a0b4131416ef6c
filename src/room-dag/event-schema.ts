// Receive step 1 (LM draft "Receiving Events/PDUs" step 1, "Events", "Linearized PDU"): the event
// matches the room version's schema, without type-specific content schemas, and its canonical
// JSON (signatures included) is at most `rules.maxEventBytes` bytes. Never throws.
import { encodeCanonicalJson } from "../core/canonical-json.js";
import type { Lpdu, Pdu } from "../core/events.js";
import { isValidEventId, isValidRoomId, isValidServerName, isValidUserId } from "../core/identifiers.js";
import { isJsonObject, type JsonObject } from "../core/json.js";
import type { RoomVersionRules } from "../core/room-versions.js";

export type SchemaResult<T> = { ok: true; event: T; canonicalBytes: number } | { ok: false; reason: string };

const MAX_TYPE_LENGTH = 255;
const MAX_STATE_KEY_LENGTH = 255;
const MAX_TS = Number.MAX_SAFE_INTEGER;

/** A PDU: every required field, `hub_server` implying `hashes.lpdu` and exactly one prev event. */
export function parsePdu(raw: unknown, rules: RoomVersionRules, roomId?: string): SchemaResult<Pdu> {
  const common = checkCommonFields(raw, roomId);
  if (typeof common === "string") return { ok: false, reason: common };
  const event = common;
  const hashes = event.hashes;
  if (!isJsonObject(hashes) || !isHash(hashes.sha256)) return { ok: false, reason: "hashes.sha256 is missing or not a string" };
  for (const key of Object.keys(hashes)) {
    if (key !== "sha256" && key !== "lpdu") return { ok: false, reason: `unknown hash algorithm hashes.${key}` };
  }
  const hubServer = event.hub_server;
  if (hubServer !== undefined) {
    if (!rules.linearized) return { ok: false, reason: "hub_server is not allowed in this room version" };
    if (!isLpduHash(hashes.lpdu)) return { ok: false, reason: "an event with hub_server must carry hashes.lpdu.sha256" };
  } else if (hashes.lpdu !== undefined) {
    return { ok: false, reason: "hashes.lpdu is only allowed with hub_server" };
  }
  for (const field of ["auth_events", "prev_events"] as const) {
    const ids = event[field];
    if (!Array.isArray(ids) || !ids.every((id) => typeof id === "string" && isValidEventId(id))) {
      return { ok: false, reason: `${field} must be an array of event IDs` };
    }
  }
  if (hubServer !== undefined && (event.prev_events as string[]).length !== 1) {
    return { ok: false, reason: "an event with hub_server must have exactly one prev_events entry" };
  }
  return withSize(event as unknown as Pdu, rules);
}

/** An LPDU: no `auth_events`/`prev_events`, `hashes` holding only `lpdu`, `hub_server` required. */
export function parseLpdu(raw: unknown, rules: RoomVersionRules, roomId?: string): SchemaResult<Lpdu> {
  if (!rules.linearized) return { ok: false, reason: `room version ${rules.id} has no LPDUs` };
  const common = checkCommonFields(raw, roomId);
  if (typeof common === "string") return { ok: false, reason: common };
  const event = common;
  if (event.auth_events !== undefined || event.prev_events !== undefined) {
    return { ok: false, reason: "an LPDU must not carry auth_events or prev_events" };
  }
  if (typeof event.hub_server !== "string") return { ok: false, reason: "an LPDU must name its hub_server" };
  const hashes = event.hashes;
  if (!isJsonObject(hashes) || Object.keys(hashes).length !== 1 || !isLpduHash(hashes.lpdu)) {
    return { ok: false, reason: "an LPDU's hashes must hold exactly lpdu.sha256" };
  }
  return withSize(event as unknown as Lpdu, rules);
}

// Unknown top-level fields (e.g. `depth` from a dual-stack hub) are allowed, as in Matrix: they are
// simply not covered once the event is redacted.
function checkCommonFields(raw: unknown, roomId: string | undefined): JsonObject | string {
  if (!isJsonObject(raw)) return "event is not a JSON object";
  const event = raw;
  if (typeof event.room_id !== "string" || !isValidRoomId(event.room_id)) return "room_id is missing or invalid";
  if (roomId !== undefined && event.room_id !== roomId) return `event is for ${event.room_id}, not ${roomId}`;
  if (typeof event.type !== "string" || event.type.length > MAX_TYPE_LENGTH) return "type is missing or longer than 255";
  if (event.state_key !== undefined && (typeof event.state_key !== "string" || event.state_key.length > MAX_STATE_KEY_LENGTH)) {
    return "state_key must be a string of at most 255 characters";
  }
  if (typeof event.sender !== "string" || !isValidUserId(event.sender)) return "sender is missing or not a valid user ID";
  const ts = event.origin_server_ts;
  if (typeof ts !== "number" || !Number.isInteger(ts) || ts < 0 || ts > MAX_TS) return "origin_server_ts must be a non-negative integer";
  if (!isJsonObject(event.content)) return "content must be an object";
  if (event.hub_server !== undefined && (typeof event.hub_server !== "string" || !isValidServerName(event.hub_server))) {
    return "hub_server is not a valid server name";
  }
  if (!isSignatures(event.signatures)) return "signatures must map names to key IDs to strings";
  if (event.unsigned !== undefined && !isJsonObject(event.unsigned)) return "unsigned must be an object";
  return event;
}

function withSize<T>(event: T, rules: RoomVersionRules): SchemaResult<T> {
  let canonical: string;
  try {
    canonical = encodeCanonicalJson(event as unknown as JsonObject, rules.canonicalJsonKeyOrder);
  } catch (error) {
    return { ok: false, reason: `not canonical JSON: ${(error as Error).message}` };
  }
  const bytes = Buffer.byteLength(canonical, "utf8");
  if (bytes > rules.maxEventBytes) return { ok: false, reason: `event is ${bytes} bytes, over the ${rules.maxEventBytes} limit` };
  return { ok: true, event, canonicalBytes: bytes };
}

const isHash = (value: unknown): value is string => typeof value === "string" && value.length > 0;
const isLpduHash = (value: unknown): boolean => isJsonObject(value) && isHash(value.sha256);

function isSignatures(value: unknown): boolean {
  if (!isJsonObject(value)) return false;
  for (const byKey of Object.values(value)) {
    if (!isJsonObject(byKey)) return false;
    for (const signature of Object.values(byKey)) if (typeof signature !== "string") return false;
  }
  return true;
}
