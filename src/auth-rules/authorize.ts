// The LM authorization rules (draft "Auth Rules Algorithm"), as one pure function of the event,
// the room state before it, and the room version's rules. Each check carries its rule number in a
// comment and in the verdict. Malformed events come back as rejections, never as exceptions.
//
// Where the draft is unclear we follow room version 11, which the draft is derived from
// (mx-differences.md: "The majority of mechanics are based upon MSC3820: Room version 11"):
// - Missing `m.room.join_rules` counts as `invite` (the draft leaves the default as a TODO; Synapse
//   and eigen-server both use `invite`).
// - 9.8.1 rejects when the current value is higher than *or equal to* the sender's level: room v11
//   and eigen-server say so, and without it two moderators at the same level could demote each
//   other, which the draft's stated consequences do not suggest.
// - 9.5 compares the fields as written in the two events: an added field has no current value and
//   a removed field has no new value; neither is replaced by its default for the comparison.
import { isStateEvent, type Pdu, type RoomEvent, type RoomStateView } from "../core/events.js";
import { isValidUserId, serverNameOf } from "../core/identifiers.js";
import { isJsonObject, type JsonObject, type JsonValue } from "../core/json.js";
import { getRoomVersion, type RoomVersionRules } from "../core/room-versions.js";
import { checkEventSignatures, type VerifyKeyLookup } from "../core/signing.js";
import { authEventKeys, membershipIn, membershipOf } from "./auth-events.js";
import {
  POWER_LEVEL_INTEGER_FIELDS,
  integerField,
  isPowerLevelInteger,
  objectField,
  powerLevelsFrom,
  type PowerLevels,
} from "./power-levels.js";

export type AuthVerdict = { ok: true } | { ok: false; rule: string; reason: string };

/**
 * How rules 1 and 2 (signatures) are satisfied. `keys`: verify here with already-fetched keys.
 * `verified`: the caller's receive pipeline already verified the sender's and hub's signatures
 * (room-dag step 2, "Checks performed upon receipt of a PDU"), so they are not checked twice.
 */
export type SignatureInput = { kind: "keys"; lookup: VerifyKeyLookup } | { kind: "verified" };

const ALLOW: AuthVerdict = { ok: true };

function reject(rule: string, reason: string): AuthVerdict {
  return { ok: false, rule, reason };
}

/** Decides whether `event` is allowed in a room whose state before it is `stateBefore`. */
export function authorize(
  event: Pdu,
  stateBefore: RoomStateView,
  rules: RoomVersionRules,
  signatures: SignatureInput,
): AuthVerdict {
  if (rules.authRules !== "linearized") {
    return reject("0", `auth rules for room version ${rules.id} are not implemented`);
  }
  // Fields are read as unknown: the event may be any JSON that reached us, whatever Pdu says.
  const sender: unknown = event.sender;
  if (typeof sender !== "string") return reject("1", "sender is not a string, so no server can have signed the event");

  // 1, 2. Signed by the sender's server (the LPDU when a hub completed it) and by `hub_server`.
  if (signatures.kind === "keys") {
    // Pdu is a JSON object; the interface lacks the index signature JsonObject declares.
    const checked = checkEventSignatures(event as unknown as JsonObject, signatures.lookup, rules);
    if (!checked.ok) return reject(checked.rule ?? "1", checked.reason);
  }

  // 3. m.room.create
  if (event.type === "m.room.create") return authorizeCreate(event);

  // 4. auth_events
  const authEventsVerdict = checkAuthEvents(event, sender, stateBefore);
  if (!authEventsVerdict.ok) return authEventsVerdict;

  const powerLevels = powerLevelsFrom(stateBefore);

  // 5. m.room.member
  if (event.type === "m.room.member") return authorizeMembership(event, sender, stateBefore, powerLevels);

  // 6. The sender must be joined.
  const senderMembership = membershipOf(stateBefore, sender);
  if (senderMembership !== "join") return reject("6", `sender's membership is ${senderMembership}, not join`);

  // 7. The sender's level must reach the level required for the event type.
  const senderLevel = powerLevels.userLevel(sender);
  const required = powerLevels.eventLevel(event.type, isStateEvent(event));
  if (required > senderLevel) {
    return reject("7", `sending ${event.type} requires power level ${required}, sender has ${senderLevel}`);
  }

  // 8. A state_key that looks like a user ID may only be set by that user.
  const stateKey: unknown = event.state_key;
  if (typeof stateKey === "string" && stateKey.startsWith("@") && stateKey !== sender) {
    return reject("8", "state_key starts with @ and is not the sender");
  }

  // 9. m.room.power_levels
  if (event.type === "m.room.power_levels") return authorizePowerLevels(event, sender, stateBefore, senderLevel);

  // 10. Otherwise, allow.
  return ALLOW;
}

/** Rule 3, plus the shape the draft's "m.room.create" section requires. */
function authorizeCreate(event: Pdu): AuthVerdict {
  // 3.1 No prev_events; "m.room.create" also forbids auth_events (checked here, same sentence).
  const prevEvents: unknown = event.prev_events;
  if (!Array.isArray(prevEvents) || prevEvents.length > 0) return reject("3.1", "m.room.create has prev_events");
  const authEvents: unknown = event.auth_events;
  if (!Array.isArray(authEvents) || authEvents.length > 0) return reject("3.1", "m.room.create has auth_events");

  // 3.2 The room ID's domain is the sender's.
  const roomId: unknown = event.room_id;
  const roomServer = typeof roomId === "string" ? serverNameOf(roomId) : undefined;
  const senderServer = serverNameOf(event.sender);
  if (roomServer === undefined || senderServer === undefined || roomServer !== senderServer) {
    return reject("3.2", "room_id domain differs from sender domain");
  }

  // 3.3 content.room_version names an LM room version (the draft says `I.1`; the unstable
  // `.02` identifier denotes the same algorithms).
  const content: unknown = event.content;
  const roomVersion: JsonValue | undefined = isJsonObject(content) && Object.hasOwn(content, "room_version") ? content.room_version : undefined;
  if (typeof roomVersion !== "string" || getRoomVersion(roomVersion)?.authRules !== "linearized") {
    return reject("3.3", "content.room_version is not a Linearized Matrix room version");
  }

  // "m.room.create": the state_key MUST be "".
  const stateKey: unknown = event.state_key;
  if (stateKey !== "") return reject("3", "m.room.create state_key is not an empty string");

  // 3.4 Otherwise, allow.
  return ALLOW;
}

/**
 * Rule 4. Each entry of auth_events must be the event currently in `stateBefore` for one of the
 * keys the selection algorithm names for this event; an ID that is not is an entry that does not
 * match the selection (4.2). The rule does not require every selected event to be listed.
 */
function checkAuthEvents(event: Pdu, sender: string, stateBefore: RoomStateView): AuthVerdict {
  const authEvents: unknown = event.auth_events;
  if (!Array.isArray(authEvents)) return reject("4.2", "auth_events is not a list");

  const keyOfSelected = new Map<string, string>();
  for (const key of authEventKeys({ type: event.type, sender, state_key: event.state_key, content: event.content })) {
    const current = stateBefore.get(key.type, key.stateKey);
    if (current !== undefined) keyOfSelected.set(current.eventId, `${key.type}\u0000${key.stateKey}`);
  }

  // 4.1 No two entries for the same (type, state_key).
  const seen = new Set<string>();
  for (const id of authEvents as unknown[]) {
    const key = typeof id === "string" ? keyOfSelected.get(id) : undefined;
    if (key === undefined) continue;
    if (seen.has(key)) return reject("4.1", `auth_events lists ${String(id)} more than once`);
    seen.add(key);
  }

  // 4.2 Every entry is one the selection algorithm names.
  for (const id of authEvents as unknown[]) {
    if (typeof id !== "string" || !keyOfSelected.has(id)) {
      return reject("4.2", `auth_events entry ${JSON.stringify(id)} is not a current state event the selection names`);
    }
  }

  // 4.3 The m.room.create event is among them.
  const create = stateBefore.get("m.room.create", "");
  if (create === undefined || !(authEvents as unknown[]).includes(create.eventId)) {
    return reject("4.3", "auth_events has no m.room.create event");
  }
  return ALLOW;
}

/** Rule 5: m.room.member. "Current membership" is membership in `stateBefore`. */
function authorizeMembership(event: Pdu, sender: string, stateBefore: RoomStateView, powerLevels: PowerLevels): AuthVerdict {
  // 5.1 A state_key (non-empty, "m.room.member") and a string content.membership.
  const target: unknown = event.state_key;
  const membership = membershipIn(event.content);
  if (typeof target !== "string" || target === "") return reject("5.1", "m.room.member has no state_key");
  if (membership === undefined) return reject("5.1", "m.room.member has no string content.membership");

  const senderMembership = membershipOf(stateBefore, sender);
  const targetMembership = membershipOf(stateBefore, target);
  const senderLevel = powerLevels.userLevel(sender);
  const targetLevel = powerLevels.userLevel(target);

  switch (membership) {
    case "join": {
      // 5.2.1 The creator's join right after the create event.
      const create = stateBefore.get("m.room.create", "");
      if (create !== undefined && isOnlyPrevEvent(event, create) && target === create.pdu.sender) return ALLOW;
      // 5.2.2
      if (sender !== target) return reject("5.2.2", "cannot join on behalf of another user");
      // 5.2.3
      if (senderMembership === "ban") return reject("5.2.3", "sender is banned");
      const joinRule = joinRuleOf(stateBefore);
      // 5.2.4
      if ((joinRule === "invite" || joinRule === "knock") && (senderMembership === "invite" || senderMembership === "join")) {
        return ALLOW;
      }
      // 5.2.5
      if (joinRule === "public") return ALLOW;
      // 5.2.6
      return reject("5.2.6", `join rule ${joinRule} does not let a user with membership ${senderMembership} join`);
    }
    case "invite": {
      // 5.3.1
      if (senderMembership !== "join") return reject("5.3.1", `sender's membership is ${senderMembership}, not join`);
      // 5.3.2
      if (targetMembership === "join" || targetMembership === "ban") {
        return reject("5.3.2", `target's membership is ${targetMembership}`);
      }
      // 5.3.3
      const inviteLevel = powerLevels.actionLevel("invite");
      if (senderLevel >= inviteLevel) return ALLOW;
      // 5.3.4
      return reject("5.3.4", `inviting requires power level ${inviteLevel}, sender has ${senderLevel}`);
    }
    case "leave": {
      // 5.4.1 Leaving voluntarily (or rejecting an invite, or retracting a knock).
      if (sender === target) {
        if (senderMembership === "knock" || senderMembership === "join" || senderMembership === "invite") return ALLOW;
        return reject("5.4.1", `cannot leave from membership ${senderMembership}`);
      }
      // 5.4.2
      if (senderMembership !== "join") return reject("5.4.2", `sender's membership is ${senderMembership}, not join`);
      // 5.4.3 Unbanning needs the ban level; together with 5.4.4 this is the draft's consequence
      // that an unban needs both the kick and ban levels and a level above the target's.
      const banLevel = powerLevels.actionLevel("ban");
      if (targetMembership === "ban" && senderLevel < banLevel) {
        return reject("5.4.3", `unbanning requires power level ${banLevel}, sender has ${senderLevel}`);
      }
      // 5.4.4
      const kickLevel = powerLevels.actionLevel("kick");
      if (senderLevel >= kickLevel && targetLevel < senderLevel) return ALLOW;
      // 5.4.5
      return reject("5.4.5", `kicking requires power level ${kickLevel} and more than the target's ${targetLevel}; sender has ${senderLevel}`);
    }
    case "ban": {
      // 5.5.1
      if (senderMembership !== "join") return reject("5.5.1", `sender's membership is ${senderMembership}, not join`);
      // 5.5.2
      const banLevel = powerLevels.actionLevel("ban");
      if (senderLevel >= banLevel && targetLevel < senderLevel) return ALLOW;
      // 5.5.3
      return reject("5.5.3", `banning requires power level ${banLevel} and more than the target's ${targetLevel}; sender has ${senderLevel}`);
    }
    case "knock": {
      // 5.6.1
      const joinRule = joinRuleOf(stateBefore);
      if (joinRule !== "knock") return reject("5.6.1", `join rule ${joinRule} does not allow knocking`);
      // 5.6.2
      if (sender !== target) return reject("5.6.2", "cannot knock on behalf of another user");
      // 5.6.3
      if (senderMembership !== "ban" && senderMembership !== "join") return ALLOW;
      // 5.6.4
      return reject("5.6.4", `cannot knock with membership ${senderMembership}`);
    }
    default:
      // 5.7
      return reject("5.7", `unknown membership ${membership}`);
  }
}

/** "The previous event is m.room.create": exactly one prev_event, and it is the create event. */
function isOnlyPrevEvent(event: Pdu, create: RoomEvent): boolean {
  const prevEvents: unknown = event.prev_events;
  return Array.isArray(prevEvents) && prevEvents.length === 1 && prevEvents[0] === create.eventId;
}

/** `join_rule` of the current `m.room.join_rules`; `invite` when there is none (see header). */
function joinRuleOf(state: RoomStateView): string {
  const content: unknown = state.get("m.room.join_rules", "")?.pdu.content;
  const joinRule = isJsonObject(content) && Object.hasOwn(content, "join_rule") ? content.join_rule : undefined;
  return typeof joinRule === "string" ? joinRule : "invite";
}

/** Rule 9: m.room.power_levels. */
function authorizePowerLevels(event: Pdu, sender: string, stateBefore: RoomStateView, senderLevel: number): AuthVerdict {
  const content: unknown = event.content;
  if (!isJsonObject(content)) return reject("9.1", "content is not an object");

  // 9.1 The integer fields are integers when present.
  for (const field of POWER_LEVEL_INTEGER_FIELDS) {
    if (Object.hasOwn(content, field) && !isPowerLevelInteger(content[field])) {
      return reject("9.1", `${field} is not an integer`);
    }
  }
  // 9.2 `events` maps to integers.
  if (Object.hasOwn(content, "events")) {
    const events = content.events;
    if (!isJsonObject(events)) return reject("9.2", "events is not an object");
    for (const [type, level] of Object.entries(events)) {
      if (!isPowerLevelInteger(level)) return reject("9.2", `events[${JSON.stringify(type)}] is not an integer`);
    }
  }
  // 9.3 `users` maps valid user IDs to integers.
  if (Object.hasOwn(content, "users")) {
    const users = content.users;
    if (!isJsonObject(users)) return reject("9.3", "users is not an object");
    for (const [userId, level] of Object.entries(users)) {
      if (!isValidUserId(userId)) return reject("9.3", `users key ${JSON.stringify(userId)} is not a valid user ID`);
      if (!isPowerLevelInteger(level)) return reject("9.3", `users[${JSON.stringify(userId)}] is not an integer`);
    }
  }

  // 9.4 The first power-levels event is allowed.
  const previous = stateBefore.get("m.room.power_levels", "");
  if (previous === undefined) return ALLOW;
  const previousContent: unknown = previous.pdu.content;
  const current: JsonObject = isJsonObject(previousContent) ? previousContent : {};

  // 9.5 Each added, changed or removed top-level field.
  for (const field of POWER_LEVEL_INTEGER_FIELDS) {
    const before = integerField(current, field);
    const after = integerField(content, field);
    if (before === after) continue;
    // 9.5.1
    if (before !== undefined && before > senderLevel) {
      return reject("9.5.1", `${field} is ${before}, above the sender's ${senderLevel}`);
    }
    // 9.5.2
    if (after !== undefined && after > senderLevel) {
      return reject("9.5.2", `${field} would be ${after}, above the sender's ${senderLevel}`);
    }
  }

  const eventsBefore = objectField(current, "events") ?? {};
  const eventsAfter = objectField(content, "events") ?? {};
  // 9.6 Each entry of `events` changed or removed: 9.6.1 its current value.
  for (const type of Object.keys(eventsBefore)) {
    const before = integerField(eventsBefore, type);
    const after = integerField(eventsAfter, type);
    if (before === after) continue;
    if (before !== undefined && before > senderLevel) {
      return reject("9.6.1", `events[${JSON.stringify(type)}] is ${before}, above the sender's ${senderLevel}`);
    }
  }
  // 9.7 Each entry of `events` added or changed: 9.7.1 its new value.
  for (const type of Object.keys(eventsAfter)) {
    const before = integerField(eventsBefore, type);
    const after = integerField(eventsAfter, type);
    if (before === after) continue;
    if (after !== undefined && after > senderLevel) {
      return reject("9.7.1", `events[${JSON.stringify(type)}] would be ${after}, above the sender's ${senderLevel}`);
    }
  }

  const usersBefore = objectField(current, "users") ?? {};
  const usersAfter = objectField(content, "users") ?? {};
  // 9.8 Each entry of `users` changed or removed, except the sender's own: 9.8.1 its current
  // value must be below the sender's level (room v11's "greater than or equal"; see header).
  for (const userId of Object.keys(usersBefore)) {
    if (userId === sender) continue;
    const before = integerField(usersBefore, userId);
    const after = integerField(usersAfter, userId);
    if (before === after) continue;
    if (before !== undefined && before >= senderLevel) {
      return reject("9.8.1", `users[${JSON.stringify(userId)}] is ${before}, not below the sender's ${senderLevel}`);
    }
  }
  // 9.9 Each entry of `users` added or changed: 9.9.1 its new value.
  for (const userId of Object.keys(usersAfter)) {
    const before = integerField(usersBefore, userId);
    const after = integerField(usersAfter, userId);
    if (before === after) continue;
    if (after !== undefined && after > senderLevel) {
      return reject("9.9.1", `users[${JSON.stringify(userId)}] would be ${after}, above the sender's ${senderLevel}`);
    }
  }

  // 9.10 Otherwise, allow.
  return ALLOW;
}
