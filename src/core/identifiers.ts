// Identifier grammar and limits (LM draft "Server Names", "Rooms", "Room Versions", "Users",
// "Devices", "Events", "Signing"). These are the LM (I.1) grammars; classic Matrix room versions
// allow more historical forms and would need their own predicates.

/** `hostname [":" port]`, hostname = 1*255 (DIGIT / ALPHA / "-" / "."), port = 1*5DIGIT. */
const SERVER_NAME = /^([A-Za-z0-9.-]{1,255})(?::([0-9]{1,5}))?$/;
/** RFC 1123 section 2.1: a host name never has the dotted-decimal form; refusing every all-digit
 *  name also refuses the shorthand IPv4 forms resolvers accept (`127.1`, `2130706433`). IPv6
 *  literals need `[` `:` and fail the grammar already. */
const NUMERIC_HOST = /^[0-9.]+$/;
const USER_LOCALPART = /^[a-z0-9=_/+.-]+$/;
const ROOM_LOCALPART = /^[A-Za-z0-9~_.-]+$/;
const EVENT_ID = /^\$[A-Za-z0-9_-]+$/;
/** `1*128room_version_char`, room_version_char = DIGIT / a-z / "-" / ".". */
const ROOM_VERSION = /^[0-9a-z.-]{1,128}$/;
/** The draft reserves the `I.` prefix for IETF versions and names itself `I.1`, yet its ABNF has no
 *  uppercase letters: accept `I.` followed by ABNF characters, 128 characters in all. */
const IETF_ROOM_VERSION = /^I\.[0-9a-z.-]{1,126}$/;
const KEY_VERSION = /^[A-Za-z0-9_]+$/;
const KEY_ID = /^ed25519:[A-Za-z0-9_]+$/;

/** Room, user and event IDs "MUST NOT exceed 255 characters". */
const MAX_ID_LENGTH = 255;

export function isValidServerName(name: string): boolean {
  if (typeof name !== "string") return false;
  const match = SERVER_NAME.exec(name);
  if (!match) return false;
  const [, host, port] = match;
  if (host === undefined || NUMERIC_HOST.test(host)) return false;
  return port === undefined || Number(port) <= 65535;
}

/** `sigil localpart ":" server_name`, at most 255 characters, localpart checked by `localpart`. */
function isValidSigilId(id: string, sigil: string, localpart: RegExp): boolean {
  if (typeof id !== "string" || id.length > MAX_ID_LENGTH || !id.startsWith(sigil)) return false;
  // Neither localpart grammar allows ":", so the first one separates the server name.
  const colon = id.indexOf(":");
  if (colon < 0) return false;
  return localpart.test(id.slice(1, colon)) && isValidServerName(id.slice(colon + 1));
}

export function isValidUserId(id: string): boolean {
  return isValidSigilId(id, "@", USER_LOCALPART);
}

export function isValidRoomId(id: string): boolean {
  return isValidSigilId(id, "!", ROOM_LOCALPART);
}

/** `$` + reference hash in URL-safe unpadded base64 characters (LM draft "Events"). */
export function isValidEventId(id: string): boolean {
  return typeof id === "string" && id.length <= MAX_ID_LENGTH && EVENT_ID.test(id);
}

export function isValidRoomVersionId(id: string): boolean {
  return typeof id === "string" && (ROOM_VERSION.test(id) || IETF_ROOM_VERSION.test(id));
}

/** `ed25519:<key_version>` */
export function isValidKeyId(id: string): boolean {
  return typeof id === "string" && KEY_ID.test(id);
}

export function isValidKeyVersion(version: string): boolean {
  return typeof version === "string" && KEY_VERSION.test(version);
}

/** Device IDs share the key-version grammar because they serve as key versions (LM draft "Devices"). */
export function isValidDeviceId(id: string): boolean {
  return isValidKeyVersion(id);
}

/**
 * The server name part of a user, room or event ID with a `:server` suffix; undefined if none.
 * The server name follows the first `:` after a sigil (`@` `!` `#` `$`) and a non-empty localpart,
 * and must itself be a valid server name.
 */
export function serverNameOf(id: string): string | undefined {
  if (typeof id !== "string" || id.length < 4) return undefined;
  const sigil = id[0];
  if (sigil !== "@" && sigil !== "!" && sigil !== "#" && sigil !== "$") return undefined;
  const colon = id.indexOf(":");
  if (colon < 2) return undefined;
  const server = id.slice(colon + 1);
  return isValidServerName(server) ? server : undefined;
}
